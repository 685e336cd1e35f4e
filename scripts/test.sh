#!/usr/bin/env bash
# Runs Crucible's whole test suite on a fresh machine: finds (or starts) Postgres, installs what is
# missing from Debian's packages when run as root (the Postgres server, bubblewrap, Chromium and
# ChromeDriver, Mesa's software Vulkan) and the test peers from PyPI (the mlflow client,
# prometheus_client, the openai client, lm-evaluation-harness, schemathesis),
# then `cargo test --release --workspace`.
# Extra arguments go to cargo test (e.g. `scripts/test.sh -p crucible-tests`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/crucible/target}
mkdir -p "$CARGO_TARGET_DIR"

# shellcheck source=scripts/debian-packages.sh
. scripts/debian-packages.sh

# --- Postgres: DATABASE_URL, else 127.0.0.1:5432, else a throwaway cluster --------------------
pg_bin() {
  command -v "$1" 2>/dev/null && return
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
if [ -z "${DATABASE_URL:-}" ]; then
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
  else
    ensure_packages "the Postgres server, for a throwaway test cluster" have_postgres_server postgresql || true
    initdb=$(pg_bin initdb); pg_ctl=$(pg_bin pg_ctl)
    if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
      echo "error: no Postgres for the tests. Set DATABASE_URL, run a server on 127.0.0.1:5432," >&2
      echo "       or install the server binaries (Debian/Ubuntu: apt-get install postgresql)." >&2
      exit 1
    fi
    pgtmp=$(mktemp -d /tmp/crucible-pg.XXXXXX)
    as_pg=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$pgtmp"; as_pg=(runuser -u postgres --); fi
    "${as_pg[@]}" "$initdb" -D "$pgtmp/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
    "${as_pg[@]}" "$pg_ctl" -D "$pgtmp/data" -l "$pgtmp/pg.log" -w -t 60 \
      -o "-p 55439 -k $pgtmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    trap '"${as_pg[@]}" "$pg_ctl" -D "$pgtmp/data" -m immediate stop >/dev/null; rm -rf "$pgtmp"' EXIT
    export DATABASE_URL=postgres://postgres@127.0.0.1:55439/postgres
  fi
fi
echo "tests use Postgres at $DATABASE_URL"
# The crash test (tests/tests/durability.rs) runs a cluster of its own: required wherever it can.
if [ -n "$(pg_bin initdb)" ] && [ -n "$(pg_bin pg_ctl)" ]; then export CRUCIBLE_REQUIRE_PG_CRASH=1; fi

# --- The code sandbox's private filesystem: bubblewrap (the sandbox refuses to run without it) ---
ensure_packages "bubblewrap, the code sandbox's filesystem layer (its tests will FAIL without it)" \
  "command -v bwrap" bubblewrap || true

# --- A wgpu adapter on any machine: Mesa's software Vulkan (lavapipe) --------------------------
# The wgpu kernel and model tests run on it; with CRUCIBLE_REQUIRE_WGPU=1 a missing adapter fails
# them instead of skipping. lavapipe is pinned so that results do not depend on the host's GPU.
ensure_packages "Mesa's software Vulkan, for the wgpu backend's tests (they FAIL without it)" \
  have_lavapipe mesa-vulkan-drivers || true
lavapipe=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1 || true)
if [ -n "$lavapipe" ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then export VK_ICD_FILENAMES=$lavapipe; fi
export CRUCIBLE_REQUIRE_WGPU=1
# lavapipe wants a runtime directory (it only warns without one).
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then export XDG_RUNTIME_DIR=$(mktemp -d /tmp/crucible-xdg.XXXXXX); fi

# --- Public benchmark data (read in place, never copied) --------------------------------------
if [ -z "${CRUCIBLE_DATA_DIR:-}" ] && [ -d "$root/../shared/datasets" ]; then
  export CRUCIBLE_DATA_DIR="$root/../shared/datasets"
fi
# Where the data is here, the tests that read it must run: a missing input fails, never skips.
if [ -n "${CRUCIBLE_DATA_DIR:-}" ]; then export CRUCIBLE_REQUIRE_DATA=1; fi

# --- The real mlflow client (the MLflow-compatibility test), Prometheus's client library, whose
# OpenMetrics parser reads the /metrics pages, and the openai client (the model server's test) --
venv="$CARGO_TARGET_DIR/mlflow-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import mlflow, prometheus_client, openai" 2>/dev/null; then
  echo "installing the mlflow, prometheus_client and openai clients from PyPI into $venv"
  if python3 -m venv "$venv" && "$venv/bin/pip" install -q "mlflow-skinny>=3,<4" "prometheus-client>=0.20" "openai>=1.40"; then :; else
    echo "*** WARNING: could not install mlflow/prometheus_client/openai from PyPI: their tests will FAIL ***" >&2
  fi
fi
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import mlflow" 2>/dev/null; then
  export CRUCIBLE_MLFLOW_PYTHON="$venv/bin/python" CRUCIBLE_REQUIRE_MLFLOW=1
fi
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import prometheus_client" 2>/dev/null; then
  export CRUCIBLE_PROMETHEUS_PYTHON="$venv/bin/python" CRUCIBLE_REQUIRE_PROMETHEUS=1
fi
export CRUCIBLE_OPENAI_PYTHON="$venv/bin/python" CRUCIBLE_REQUIRE_OPENAI=1

# --- lm-evaluation-harness, run against `crucible serve-model` (cli/tests/lm_eval.rs) ------------
lm_version=0.4.13
lm_venv="$CARGO_TARGET_DIR/lmeval-venv"
if ! "$lm_venv/bin/python" -c "import lm_eval, tenacity, sys; sys.exit(lm_eval.__version__ != '$lm_version')" 2>/dev/null; then
  echo "installing lm-evaluation-harness $lm_version from PyPI into $lm_venv"
  if python3 -m venv "$lm_venv" && "$lm_venv/bin/pip" install -q "lm-eval[api]==$lm_version"; then :; else
    echo "*** WARNING: could not install lm-eval from PyPI: its test will FAIL ***" >&2
  fi
fi
export CRUCIBLE_LM_EVAL="$lm_venv/bin/lm_eval" CRUCIBLE_REQUIRE_LM_EVAL=1

# --- schemathesis, which fuzzes the server against its OpenAPI document (tests/tests/api_contract.rs)
st_version=4.32.5
st_venv="$CARGO_TARGET_DIR/schemathesis-venv"
if ! "$st_venv/bin/schemathesis" --version 2>/dev/null | grep -q "$st_version"; then
  echo "installing schemathesis $st_version from PyPI into $st_venv"
  if python3 -m venv "$st_venv" && "$st_venv/bin/pip" install -q "schemathesis==$st_version"; then :; else
    echo "*** WARNING: could not install schemathesis from PyPI: the API-contract test will FAIL ***" >&2
  fi
fi
export CRUCIBLE_SCHEMATHESIS="$st_venv/bin/schemathesis" CRUCIBLE_REQUIRE_SCHEMATHESIS=1

# --- The dashboard's browser test: Debian's Chromium + ChromeDriver, and the hydration bundle ----
ensure_packages "Chromium and ChromeDriver, for the dashboard's browser test (SKIPPED without them)" \
  "command -v chromedriver" chromium chromium-driver || true
if scripts/build-site.sh; then
  export CRUCIBLE_SITE_DIR="$CARGO_TARGET_DIR/site"
  if command -v chromedriver >/dev/null; then export CRUCIBLE_REQUIRE_BROWSER=1; fi
else
  echo "*** WARNING: the dashboard bundle did not build: the browser test will be SKIPPED ***" >&2
fi

# --- Style and structure, before the (long) tests ----------------------------------------------
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
# The dashboard crate compiles twice: on the server (ssr, above: the server enables it) and for
# the browser (hydrate, wasm32), with the profile the bundle is built with.
cargo clippy -p crucible-app --lib --target wasm32-unknown-unknown --no-default-features \
  --features hydrate --profile wasm-release -- -D warnings
python3 tools/import_cycles.py
if cargo tree -p crucible-verify --features cli -e normal --prefix none | grep '^candle' >/dev/null; then
  echo "error: crucible-verify (or its crucible-verify binary) depends on candle; the verifiers must build without it" >&2
  exit 1
fi

cargo test --release --workspace --no-fail-fast "$@"
