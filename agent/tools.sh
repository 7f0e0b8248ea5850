#!/usr/bin/env bash
# The host agent's lint tools and checks.
#
#   tools.sh install   create (once) a venv with agent/requirements-lint.txt's pinned ruff, mypy and
#                      vermin from PyPI under ${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}/agent-lint-<hash>
#                      (.ci/run runs it; a changed pin set gets a new venv)
#   tools.sh lint      ruff check, ruff format --check, mypy --strict, vermin (3.9 the oldest Python)
#   tools.sh test      the agent's unit tests (python3 -m unittest, no root, seconds)
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

cmd_test() {
  cd "$SCRIPT_DIR"
  PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t . "$@"
}

case "${1:-}" in
  install) cmd_install ;;
  lint) cmd_lint ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: tools.sh install|lint|test" >&2; exit 2 ;;
esac
