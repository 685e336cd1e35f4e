# Sourced by scripts/up.sh and scripts/test.sh: installs a missing tool from Debian's packages when
# this runs as root with apt-get (saying what it installs), and otherwise prints the one command
# that would. Never fails the caller: each caller decides what a missing tool means.

# True when the Postgres server binaries (initdb, pg_ctl) are installed (Debian keeps them off PATH).
have_postgres_server() {
  command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

# True when Mesa's software Vulkan driver (lavapipe) is installed: a wgpu adapter on any CPU.
have_lavapipe() {
  ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1
}

# ensure_packages WHAT CHECK PACKAGE…: runs CHECK (a command); when it fails, installs PACKAGE….
ensure_packages() {
  local what=$1 check=$2
  shift 2
  if $check >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $* from Debian's packages ($what)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "$@" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$@" >/dev/null 2>&1; } \
      || { echo "*** could not install $*: $what is missing ***" >&2; return 1; }
  else
    echo "*** $what is missing; install it with: sudo apt-get install $* ***" >&2
    return 1
  fi
}
