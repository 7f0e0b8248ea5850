#!/bin/bash
#
# Builds the real Pulumi toolchain for the host tests and `npm run rehearse` (issue 7), cached.
#
# Usage: tools/real/build.sh [TOOL...]
#   TOOL: pulumi, pulumi-language-nodejs, pulumi-resource-command, pulumi-resource-random,
#         pulumi-resource-aws, moto (default: all of them).
#
# Progress goes to stderr, one line per stage with elapsed seconds. The LAST line on stdout is the
# bin dir to put first on PATH: ${PMS_TOOLS_CACHE}/bin.
#
# Environment:
#   PMS_TOOLS_CACHE     cache root (default /var/cache/pms-secrets/tools). Holds bin/, Go's build
#                       cache (go-build/, so a rebuild after a small change takes seconds), build
#                       logs (logs/) and cache keys (stamps/). CI caches this one directory.
#   PMS_GOMODCACHE      Go module cache (default: `go env GOMODCACHE`); made complete for every
#                       module with `go mod download` before building.
#   PMS_BUILD_PULUMI=1  build the CLI even when a `pulumi` that is not ours is on PATH.
#
# A tool is rebuilt only when its cache key changes: its pinned version, the sha256 of every file
# in its source dir, and `go version`.

set -o errexit -o nounset -o pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=SCRIPTDIR/versions.sh disable=SC1091
source "${SCRIPT_DIR}/versions.sh"

readonly CACHE="${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}"
readonly BIN="${CACHE}/bin"
readonly START_SECONDS="${SECONDS}"

# Every tool: name|source dir (under tools/real)|pinned version|what it is.
readonly TOOLS=(
  "pulumi|pulumi-cli|${PULUMI_VERSION}|the real Pulumi CLI (github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION})"
  "pulumi-language-nodejs|language-nodejs|${PULUMI_LANGUAGE_NODEJS_VERSION}|our Node.js language host (stands in for ${PULUMI_LANGUAGE_NODEJS_VERSION})"
  "pulumi-resource-command|provider-command|${PULUMI_COMMAND_VERSION}|our command provider (stands in for pulumi-command v${PULUMI_COMMAND_VERSION})"
  "pulumi-resource-random|provider-random|${PULUMI_RANDOM_VERSION}|our random provider (stands in for pulumi-random v${PULUMI_RANDOM_VERSION})"
  "pulumi-resource-aws|provider-aws|${PULUMI_AWS_VERSION}|our aws provider (stands in for pulumi-aws v${PULUMI_AWS_VERSION}, secretsmanager only)"
)

#######################################
# Prints one progress line to stderr with the seconds since the script started.
# Arguments:
#   Message words.
#######################################
progress() {
  printf '[build.sh %4ds] %s\n' "$((SECONDS - START_SECONDS))" "$*" >&2
}

#######################################
# Prints an error naming what failed and how to fix it, then exits 1.
# Arguments:
#   Message words.
#######################################
die() {
  printf 'build.sh: error: %s\n' "$*" >&2
  exit 1
}

#######################################
# Prints the sha256 over every file below a dir (names and contents).
# Arguments:
#   Absolute dir.
#######################################
tree_sha() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

#######################################
# Prints the cache key of a Go module dir: version, source hash (with the local modules its
# go.mod replaces with a ../ path, e.g. pluginkit), go version.
# Arguments:
#   Tool version, absolute source dir.
#######################################
cache_key() {
  local version="$1" dir="$2" src_sha local_dir
  src_sha="$(tree_sha "${dir}")"
  while read -r local_dir; do
    [[ -n "${local_dir}" ]] || continue
    src_sha="${src_sha}+${local_dir}:$(tree_sha "${dir}/${local_dir}")"
  done < <(sed -n 's/^replace[[:space:]].*=>[[:space:]]*\(\.\.\/[^[:space:]]*\)[[:space:]]*$/\1/p' "${dir}/go.mod")
  printf 'version=%s src=%s go=%s\n' "${version}" "${src_sha}" "$(go version)"
}

#######################################
# Prints the module path declared in DIR/go.mod.
# Arguments:
#   Absolute module dir.
#######################################
module_path() {
  sed -n 's/^module[[:space:]]\{1,\}//p' "$1/go.mod" | head -n 1
}

#######################################
# True if `pulumi` on PATH exists and is not a binary this script built.
# Outputs:
#   Writes the resolved path of that pulumi to stdout.
#######################################
foreign_pulumi() {
  local found resolved
  found="$(command -v pulumi 2>/dev/null)" || return 1
  resolved="$(readlink -f "${found}")" || return 1
  [[ -x "${resolved}" ]] || return 1
  case "${resolved}" in
    "${CACHE}"/*) return 1 ;;
  esac
  printf '%s\n' "${resolved}"
}

#######################################
# Builds (or reuses) one tool into ${BIN}.
# Arguments:
#   Tool name, source dir name, version, description.
#######################################
build_tool() {
  local name="$1" dirname="$2" version="$3" what="$4"
  local dir="${SCRIPT_DIR}/${dirname}" out="${BIN}/$1" stamp="${CACHE}/stamps/$1.key"
  local log="${CACHE}/logs/$1.log" key module started

  if [[ "${name}" == "pulumi" && "${PMS_BUILD_PULUMI:-}" != "1" ]]; then
    local external
    if external="$(foreign_pulumi)"; then
      ln -sfn "${external}" "${out}"
      printf 'external=%s\n' "${external}" >"${stamp}"
      progress "pulumi: using the pulumi already on PATH (${external}, $("${external}" version 2>/dev/null || echo 'version unknown')); not building ${what}. Set PMS_BUILD_PULUMI=1 to build it."
      return 0
    fi
  fi

  if [[ ! -f "${dir}/go.mod" ]]; then
    die "${name}: tools/real/${dirname} is missing or has no go.mod; it must be the Go module of ${what} (package main at its root for providers and the language host)."
  fi
  module="$(module_path "${dir}")"
  key="$(cache_key "${version}" "${dir}")"
  if [[ -x "${out}" && ! -L "${out}" && -f "${stamp}" && "$(cat "${stamp}")" == "${key}" ]]; then
    progress "${name}: cached (${what}, module ${module})"
    return 0
  fi

  started="${SECONDS}"
  progress "${name}: building ${what} from module ${module} (log: ${log})"
  local target="." ldflags=""
  if [[ "${name}" == "pulumi" ]]; then
    target="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
    ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${version}"
  fi
  # Fetch exactly the modules the build needs (`go mod download` would also fetch every test-only
  # module of the graph, some of which the proxy refuses); a no-op when the module cache is warm.
  if ! (cd "${dir}" && go list -deps "${target}" >/dev/null) 2>"${log}"; then
    tail -n 20 "${log}" >&2
    die "${name}: resolving the modules of ${module} (${what}, version ${version}) failed; see ${log}. A '403 ... not available' line names a module version the Go proxy refuses."
  fi
  progress "${name}: modules ready after $((SECONDS - started))s, compiling"
  if ! (cd "${dir}" && go build -trimpath -buildvcs=false -ldflags "${ldflags}" \
    -o "${out}.tmp.$$" "${target}") >>"${log}" 2>&1; then
    rm -f "${out}.tmp.$$"
    tail -n 20 "${log}" >&2
    die "${name}: go build of ${module} (${what}, version ${version}) failed; see ${log}."
  fi
  mv -f "${out}.tmp.$$" "${out}"
  printf '%s\n' "${key}" >"${stamp}"
  progress "${name}: built in $((SECONDS - started))s"
}

#######################################
# Installs the moto venv through tools/real/moto.sh (owned by the aws stand-in's author).
#######################################
install_moto() {
  local started="${SECONDS}"
  [[ -f "${SCRIPT_DIR}/moto.sh" ]] \
    || die "moto: tools/real/moto.sh is missing; it must install moto[server] (the AWS emulator) into \${PMS_TOOLS_CACHE}."
  progress "moto: installing (tools/real/moto.sh install; log: ${CACHE}/logs/moto.log)"
  if ! PMS_TOOLS_CACHE="${CACHE}" bash "${SCRIPT_DIR}/moto.sh" install >"${CACHE}/logs/moto.log" 2>&1; then
    tail -n 20 "${CACHE}/logs/moto.log" >&2
    die "moto: tools/real/moto.sh install failed; see ${CACHE}/logs/moto.log."
  fi
  progress "moto: ready in $((SECONDS - started))s"
}

main() {
  command -v go >/dev/null || die "go is not on PATH; install Go >= 1.25 (https://go.dev/dl/) to build the toolchain."
  mkdir -p "${BIN}" "${CACHE}/stamps" "${CACHE}/logs" "${CACHE}/go-build"
  export GOCACHE="${CACHE}/go-build"
  if [[ -n "${PMS_GOMODCACHE:-}" ]]; then
    export GOMODCACHE="${PMS_GOMODCACHE}"
  fi
  # Build with the installed Go, never a downloaded toolchain, so the cache key's `go version` is
  # the compiler that ran.
  export GOTOOLCHAIN=local

  # One build at a time per cache: parallel test files may all call this script.
  exec 9>"${CACHE}/.lock"
  if ! flock --nonblock 9; then
    progress "waiting for another build.sh using ${CACHE}"
    flock 9
  fi

  local wanted=("$@") entry name found
  if ((${#wanted[@]} == 0)); then
    for entry in "${TOOLS[@]}"; do
      wanted+=("${entry%%|*}")
    done
    wanted+=("moto")
  fi
  progress "cache ${CACHE}; $(go version); tools: ${wanted[*]}"
  for name in "${wanted[@]}"; do
    if [[ "${name}" == "moto" ]]; then
      install_moto
      continue
    fi
    found=""
    for entry in "${TOOLS[@]}"; do
      if [[ "${entry%%|*}" == "${name}" ]]; then
        found="${entry}"
      fi
    done
    [[ -n "${found}" ]] || die "unknown tool '${name}'; known: pulumi pulumi-language-nodejs pulumi-resource-command pulumi-resource-random pulumi-resource-aws moto"
    local dirname version what rest
    rest="${found#*|}"
    dirname="${rest%%|*}"
    rest="${rest#*|}"
    version="${rest%%|*}"
    what="${rest#*|}"
    build_tool "${name}" "${dirname}" "${version}" "${what}"
  done
  progress "done"
  printf '%s\n' "${BIN}"
}

main "$@"
