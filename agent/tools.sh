#!/usr/bin/env bash
# The host agent's lint tools and checks.
#
#   tools.sh install   create (once) a venv with agent/requirements-lint.txt's pinned ruff, mypy and
#                      vermin from PyPI under ${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}/agent-lint-<hash>
#                      (.ci/run runs it; a changed pin set gets a new venv)
#   tools.sh lint      ruff check, ruff format --check, mypy --strict, vermin (3.9 the oldest Python)
#   tools.sh test      the agent's unit tests (python3 -m unittest, no root, seconds)
#   tools.sh test-oldest
#                      the same tests under the oldest Python the agent supports: Debian 11's
#                      python3 (3.9), in a minbase rootfs made once with debootstrap under
#                      the cache dir (root; a private mount namespace, nothing mounted outside it)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly REQUIREMENTS="${SCRIPT_DIR}/requirements-lint.txt"
readonly CACHE_DIR="${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}"
# The oldest Python the agent supports (Debian 11's python3 is 3.9).
readonly MIN_PYTHON=3.9

venv_dir() {
  printf '%s/agent-lint-%s' "$CACHE_DIR" "$(sha256sum "$REQUIREMENTS" | cut -c 1-12)"
}

cmd_install() {
  local dir
  dir=$(venv_dir)
  if [ -x "$dir/bin/ruff" ] && [ -f "$dir/.complete" ]; then
    echo "agent lint tools: already installed in $dir"
    return 0
  fi
  mkdir -p "$CACHE_DIR"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  touch "$dir/.complete"
  echo "agent lint tools: installed in $dir"
}

cmd_lint() {
  local dir
  dir=$(venv_dir)
  if [ ! -f "$dir/.complete" ]; then
    echo "tools.sh: the agent's lint tools are not installed in $dir; run: bash agent/tools.sh install" >&2
    return 1
  fi
  cd "$SCRIPT_DIR"
  "$dir/bin/ruff" check .
  "$dir/bin/ruff" format --check .
  "$dir/bin/mypy"
  "$dir/bin/vermin" --no-tips --violations --eval-annotations -t="${MIN_PYTHON}-" main.py pms_agent tests
  shellcheck bootstrap.sh tools.sh
}

# Debian 11 (bullseye) ships Python 3.9: the agent's oldest. The recipe names the cached rootfs.
readonly OLDEST_SUITE=bullseye
readonly OLDEST_RECIPE="debootstrap --variant=minbase --include=python3 ${OLDEST_SUITE}"

oldest_rootfs() {
  printf '%s/agent-oldest-python-%s' "$CACHE_DIR" "$(printf '%s' "$OLDEST_RECIPE" | sha256sum | cut -c 1-12)"
}

cmd_test_oldest() {
  local root tmp
  root=$(oldest_rootfs)
  if [ "$(id -u)" != 0 ]; then
    echo "tools.sh test-oldest: needs root (debootstrap, chroot)" >&2
    return 1
  fi
  if [ ! -f "$root/.complete" ]; then
    echo "agent tests on the oldest Python: building Debian ${OLDEST_SUITE}'s rootfs in $root (once)"
    mkdir -p "$CACHE_DIR"
    tmp=$(mktemp -d "$root.tmp.XXXXXX")
    # shellcheck disable=SC2086 # the recipe is words
    if ! $OLDEST_RECIPE "$tmp" http://deb.debian.org/debian >"$tmp.log" 2>&1; then
      tail -20 "$tmp.log" >&2
      rm -rf "$tmp" "$tmp.log"
      return 1
    fi
    rm -f "$tmp.log"
    touch "$tmp/.complete"
    rm -rf "$root"
    mv "$tmp" "$root"
  fi
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  # The checkout at /agent, its own /proc, /dev, and a root-only /run and /tmp (the tests make
  # directories there and check their modes), all in a mount namespace that ends with the run.
  unshare --mount --pid --fork --propagation private bash -euc '
    root=$1 agent=$2
    mkdir -p "$root/agent"
    mount --bind "$agent" "$root/agent"
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o mode=755 tmpfs "$root/run"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root PYTHONDONTWRITEBYTECODE=1 \
      /bin/bash -c "cd /agent && python3 --version && python3 -m unittest discover -s tests -t ."
  ' bash "$root" "$SCRIPT_DIR"
}

cmd_test() {
  cd "$SCRIPT_DIR"
  PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t . "$@"
}

case "${1:-}" in
  install) cmd_install ;;
  lint) cmd_lint ;;
  test) shift; cmd_test "$@" ;;
  test-oldest) cmd_test_oldest ;;
  *) echo "usage: tools.sh install|lint|test|test-oldest" >&2; exit 2 ;;
esac
