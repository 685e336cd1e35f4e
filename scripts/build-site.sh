#!/usr/bin/env bash
# Builds the dashboard's hydration bundle (crucible.js + crucible.wasm) into
# $CARGO_TARGET_DIR/site/pkg, where the server finds it. Installs what it needs on first use: the
# wasm32 target and the wasm-bindgen CLI of exactly the version in Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crucible/target}
site="$CARGO_TARGET_DIR/site"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (about 2 minutes)"
  # Not --locked: its lock file pins a webpki-roots release that crates.io no longer serves.
  # --force: cargo skips a crate it recorded as installed even when its binary is gone.
  cargo install -q --force wasm-bindgen-cli --version "$want"
fi

cargo build -q -p crucible-app --lib --target wasm32-unknown-unknown --no-default-features \
  --features hydrate --profile wasm-release
mkdir -p "$site/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site/pkg" --out-name crucible \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/crucible_app.wasm"
# leptos's hydration script loads <output name>.wasm when LEPTOS_OUTPUT_NAME is set.
mv "$site/pkg/crucible_bg.wasm" "$site/pkg/crucible.wasm"
if command -v wasm-opt >/dev/null; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$site/pkg/crucible.wasm" -o "$site/pkg/crucible.wasm"
fi
echo "dashboard bundle: $site/pkg ($(du -k "$site/pkg/crucible.wasm" | cut -f1) KiB wasm)"
