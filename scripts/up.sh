#!/usr/bin/env bash
# Runs Crucible on this machine: builds the dashboard's hydration bundle (first time: installs the
# wasm32 target and wasm-bindgen), then `crucible up` — Postgres found or started, the server and
# dashboard on :8080, a local worker, the shipped model registered. Arguments go to `crucible up`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crucible/target}
scripts/build-site.sh
exec cargo run --release -p crucible -- up "$@"
