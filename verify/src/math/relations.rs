//! Inequalities and set membership read as sets of reals: `x \le 3` is `(-\infty, 3]`,
//! `2 \le x < 5` is `[2, 5)`, `x \ne 1` is `(-\infty, 1) \cup (1, \infty)`, `x \in [0, 1]` is `[0, 1]`.
//!
//! Why: a completion may answer "the solution set" with an inequality where the reference writes an
//! interval, and a careful grader accepts either.

use super::expr::Expr;
use super::parse::parse_expr;
use super::shape::{Answer, is_simple_variable};

/// A comparison between two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

impl Rel {
    /// The same relation read from the other side (`a < x` is `x > a`).
    fn flipped(self) -> Rel {
        match self {
            Rel::Lt => Rel::Gt,
            Rel::Le => Rel::Ge,
            Rel::Gt => Rel::Lt,
            Rel::Ge => Rel::Le,
            Rel::Ne => Rel::Ne,
        }
    }
}

/// The relation symbol starting at byte `i` of `s`, with its length.
fn relation_at(s: &str, i: usize) -> Option<(Rel, usize)> {
    let rest = &s[i..];
    for (sym, rel) in [("\\le", Rel::Le), ("\\ge", Rel::Ge), ("\\ne", Rel::Ne)] {
        if let Some(after) = rest.strip_prefix(sym)
            && !after.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Some((rel, sym.len()));
        }
    }
    match rest.as_bytes().first()? {
        b'<' if rest.starts_with("<=") => Some((Rel::Le, 2)),
        b'>' if rest.starts_with(">=") => Some((Rel::Ge, 2)),
        b'<' => Some((Rel::Lt, 1)),
        b'>' => Some((Rel::Gt, 1)),
        _ => None,
    }
}

/// Splits `s` at top-level relation symbols: the sides and the relations between them.
fn split_relations(s: &str) -> (Vec<&str>, Vec<Rel>) {
    let (mut sides, mut rels) = (Vec::new(), Vec::new());
    let (mut depth, mut start, mut i) = (0i32, 0usize, 0usize);
    let bytes = s.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0
            && s.is_char_boundary(i)
            && let Some((rel, len)) = relation_at(s, i)
        {
            sides.push(s[start..i].trim());
            rels.push(rel);
            i += len;
            start = i;
            continue;
        }
        i += 1;
    }
    sides.push(s[start..].trim());
    (sides, rels)
}

fn is_variable(side: &str) -> bool {
    matches!(parse_expr(side), Some(Expr::Var(_)))
}

/// A bound: an expression with no unknowns.
fn bound(side: &str) -> Option<Expr> {
    let e = parse_expr(side)?;
    let mut vars = std::collections::BTreeSet::new();
    e.variables(&mut vars);
    vars.is_empty().then_some(e)
}

fn endpoint(e: Expr) -> Box<Answer> {
    Box::new(Answer::Expr(e))
}

fn interval(low: Expr, left_closed: bool, high: Expr, right_closed: bool) -> Answer {
    Answer::Interval {
        left_closed,
        low: endpoint(low),
        high: endpoint(high),
        right_closed,
    }
}

fn minus_infinity() -> Expr {
    Expr::Neg(Box::new(Expr::Infinity))
}

/// `x rel b` as a set.
fn one_sided(rel: Rel, b: Expr) -> Answer {
    match rel {
        Rel::Lt | Rel::Le => interval(minus_infinity(), false, b, rel == Rel::Le),
        Rel::Gt | Rel::Ge => interval(b, rel == Rel::Ge, Expr::Infinity, false),
        Rel::Ne => Answer::Union(vec![
            interval(minus_infinity(), false, b.clone(), false),
            interval(b, false, Expr::Infinity, false),
        ]),
    }
}

/// Reads `x < b`, `b \ge x` or `a \le x < b` (one unknown, constant bounds) as an interval.
pub fn relation_chain(s: &str) -> Option<Answer> {
    let (sides, rels) = split_relations(s);
    match (sides.as_slice(), rels.as_slice()) {
        ([l, r], [rel]) if is_variable(l) => Some(one_sided(*rel, bound(r)?)),
        ([l, r], [rel]) if is_variable(r) => Some(one_sided(rel.flipped(), bound(l)?)),
        ([a, x, b], [r1, r2]) if is_variable(x) => {
            let ascending = |r: &Rel| matches!(r, Rel::Lt | Rel::Le);
            let descending = |r: &Rel| matches!(r, Rel::Gt | Rel::Ge);
            let (low, lc, high, rc) = if ascending(r1) && ascending(r2) {
                (bound(a)?, *r1 == Rel::Le, bound(b)?, *r2 == Rel::Le)
            } else if descending(r1) && descending(r2) {
                (bound(b)?, *r2 == Rel::Ge, bound(a)?, *r1 == Rel::Ge)
            } else {
                return None;
            };
            Some(interval(low, lc, high, rc))
        }
        _ => None,
    }
}

/// The set in `x \in S`.
pub fn membership(s: &str) -> Option<&str> {
    let (var, set) = s.split_once("\\in")?;
    if set.starts_with(|c: char| c.is_ascii_alphabetic()) || !is_simple_variable(var) {
        return None;
    }
    Some(set.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(a: &Answer) -> Option<(bool, bool)> {
        match a {
            Answer::Interval {
                left_closed,
                right_closed,
                ..
            } => Some((*left_closed, *right_closed)),
            _ => None,
        }
    }

    #[test]
    fn inequalities_become_intervals() {
        assert_eq!(
            closed(&relation_chain(r"x \le 3").unwrap()),
            Some((false, true))
        );
        assert_eq!(
            closed(&relation_chain(r"2 \le x < 5").unwrap()),
            Some((true, false))
        );
        assert_eq!(
            closed(&relation_chain(r"5 > x \ge 2").unwrap()),
            Some((true, false))
        );
        assert_eq!(
            closed(&relation_chain("3 < x").unwrap()),
            Some((false, false))
        );
        assert!(matches!(relation_chain(r"x \ne 1"), Some(Answer::Union(v)) if v.len() == 2));
        assert!(
            relation_chain("x < y").is_none(),
            "bounds must be constants"
        );
        assert!(relation_chain("2 < x > 5").is_none());
        assert_eq!(membership(r"x \in [0, 1]"), Some("[0, 1]"));
        assert_eq!(membership(r"x \infty"), None);
    }
}
