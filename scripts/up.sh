#!/usr/bin/env bash
# Runs Crucible on this machine: installs what is missing from Debian's packages when run as root
# (the Postgres server, bubblewrap, Mesa's Vulkan drivers for the wgpu backend), builds the dashboard's hydration bundle (first time: installs the
# wasm32 target and wasm-bindgen), then `crucible up` — Postgres found or started, the server and
# dashboard on :8080, a local worker, the shipped model registered. Arguments go to `crucible up`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crucible/target}
# shellcheck source=scripts/debian-packages.sh
. scripts/debian-packages.sh
# Postgres: a server already listening or DATABASE_URL needs nothing; else `crucible up` starts a
# cluster of its own (kept across restarts), which needs the server binaries.
if [ -z "${DATABASE_URL:-}" ] && ! { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }; then
  ensure_packages "the Postgres server, for Crucible's own cluster" have_postgres_server postgresql || true
fi
ensure_packages "bubblewrap, the code sandbox (code evals refuse to run without it)" \
  "command -v bwrap" bubblewrap || true
# Mesa's Vulkan drivers: the wgpu backend's software adapter, which a job asking for `wgpu` runs on
# when the machine has no GPU driver of its own (models run on the CPU otherwise).
ensure_packages "Mesa's Vulkan drivers, for the wgpu backend (wgpu jobs cannot run without an adapter)" \
  have_lavapipe mesa-vulkan-drivers || true
scripts/build-site.sh
exec cargo run --release -p crucible -- up "$@"
