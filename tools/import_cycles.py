#!/usr/bin/env python3
"""Finds files that import each other, directly or in a loop, inside each crate of the workspace.

An edge A -> B means file A names a path into module B (`use crate::x::y`, `use super::z`,
`crate::x::f()` …). A module's use of its own submodules (a `mod.rs` re-exporting its children)
is the facade pattern and not counted. Exits 1 and prints every cycle when there is one.

Usage: tools/import_cycles.py [workspace root]
"""
import os
import re
import sys

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z_0-9]*)+|::\{)")
USE = re.compile(r"\buse\s+((?:crate|super|self)::[^;]*);", re.S)
COMMENT = re.compile(r"//[^\n]*")


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rindex("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [head + p for part in parts if part for p in expand(part)]


def modules_of(src):
    """Module path (tuple) -> file, for every .rs file under a crate's src/."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            mods[tuple(rel)] = os.path.join(dirpath, f)
    return mods


def resolve(here, path, mods):
    """The module a path names, from module `here` (longest existing prefix)."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    else:
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    target = base
    for s in segs:
        if base + (s,) in mods or any(m[: len(base) + 1] == base + (s,) for m in mods):
            base = base + (s,)
            target = base if base in mods else target
        else:
            break
    return target


def edges_of(mods):
    edges = {m: set() for m in mods}
    for m, file in mods.items():
        text = COMMENT.sub("", open(file, encoding="utf-8").read())
        paths = [p for u in USE.findall(text) for p in expand(u)]
        paths += [g[0] + g[1] for g in PATH.findall(text) if g[1] != "::{"]
        for p in paths:
            t = resolve(m, p, mods)
            if t != m and t[: len(m)] != m:  # not itself, not its own submodule
                edges[m].add(t)
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    found = 0
    for crate in sorted(os.listdir(root)):
        src = os.path.join(root, crate, "src")
        if not os.path.isfile(os.path.join(root, crate, "Cargo.toml")) or not os.path.isdir(src):
            continue
        mods = modules_of(src)
        for comp in cycles(edges_of(mods)):
            found += 1
            files = sorted(os.path.relpath(mods[m], root) for m in comp)
            print("import cycle: " + " <-> ".join(files))
    if found:
        sys.exit(1)
    print("no import cycles")


if __name__ == "__main__":
    main()
