#!/bin/bash
#
# Builds the real Pulumi toolchain for the host tests and `npm run rehearse`, cached: the Pulumi
# CLI from Go modules; the upstream command and random providers and the upstream Node.js
# language host from their release sources in ../shared/vendor (issue 17); our aws stand-in (the
# one plugin that cannot be built here); moto.
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
#   PMS_VENDOR_DIR      the upstream plugin sources (default: ../shared/vendor next to the
#                       repository, else /work/shared/vendor). Read only: each is copied to
#                       ${PMS_TOOLS_CACHE}/src first.
#
# A tool is rebuilt only when its cache key changes: its pinned version, the sha256 of every file
# in its source dir (for an upstream plugin: its vendored tree and upstream/prepare.sh, the only
# steps applied to it), and `go version`.

set -o errexit -o nounset -o pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# shellcheck source=SCRIPTDIR/versions.sh disable=SC1091
source "${SCRIPT_DIR}/versions.sh"
# shellcheck source=SCRIPTDIR/upstream/prepare.sh disable=SC1091
source "${SCRIPT_DIR}/upstream/prepare.sh"

readonly CACHE="${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}"
readonly BIN="${CACHE}/bin"
readonly START_SECONDS="${SECONDS}"

REPO_PARENT="$(cd "${SCRIPT_DIR}/../../.." && pwd)"
readonly REPO_PARENT
# ../shared/vendor next to the clone; a clone made elsewhere on this workplace's machines (CI's fresh
# clone) finds the same read-only folder at /work/shared/vendor.
if [[ -n "${PMS_VENDOR_DIR:-}" ]]; then
  VENDOR_DIR="${PMS_VENDOR_DIR}"
elif [[ ! -d "${REPO_PARENT}/shared/vendor" && -d /work/shared/vendor ]]; then
  VENDOR_DIR=/work/shared/vendor
else
  VENDOR_DIR="${REPO_PARENT}/shared/vendor"
fi
readonly VENDOR_DIR

# The tools built from a Go module in tools/real: name|source dir|pinned version|what it is.
# The upstream plugins (UPSTREAM_PLUGINS in upstream/prepare.sh) are built from VENDOR_DIR.
readonly TOOLS=(
  "pulumi|pulumi-cli|${PULUMI_VERSION}|the real Pulumi CLI (github.com/pulumi/pulumi/pkg/v3 v${PULUMI_VERSION})"
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
# Records where a tool in ${BIN} came from, for `npm run rehearse` and the tests to show:
# ${CACHE}/stamps/<tool>.origin, one line.
# Arguments:
#   Tool name, origin text.
#######################################
record_origin() {
  printf '%s\n' "$2" >"${CACHE}/stamps/$1.origin"
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
      record_origin "${name}" "the pulumi already on PATH (${external}), not built here"
      progress "pulumi: using the pulumi already on PATH (${external}, $("${external}" version 2>/dev/null || echo 'version unknown')); not building ${what}. Set PMS_BUILD_PULUMI=1 to build it."
      return 0
    fi
  fi

  if [[ ! -f "${dir}/go.mod" ]]; then
    die "${name}: tools/real/${dirname} is missing or has no go.mod; it must be the Go module of ${what} (package main at its root for providers and the language host)."
  fi
  module="$(module_path "${dir}")"
  key="$(cache_key "${version}" "${dir}")"
  record_origin "${name}" "${what}, built from tools/real/${dirname}"
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
  compile "${name}" "${dir}" "${target}" "${ldflags}" "${key}" "${started}" "${module} (${what}, version ${version})"
}

#######################################
# The common end of both builds: `go build` into bin/ (atomically), the cache key, progress.
# Arguments:
#   Tool name, module dir, package, ldflags, cache key, start SECONDS, what it is (for errors).
#######################################
compile() {
  local name="$1" dir="$2" target="$3" ldflags="$4" key="$5" started="$6" what="$7"
  local out="${BIN}/$1" log="${CACHE}/logs/$1.log"
  progress "${name}: modules ready after $((SECONDS - started))s, compiling"
  if ! (cd "${dir}" && go build -trimpath -buildvcs=false -ldflags "${ldflags}" \
    -o "${out}.tmp.$$" "${target}") >>"${log}" 2>&1; then
    rm -f "${out}.tmp.$$"
    tail -n 20 "${log}" >&2
    die "${name}: go build of ${what} failed; see ${log}."
  fi
  mv -f "${out}.tmp.$$" "${out}"
  printf '%s\n' "${key}" >"${CACHE}/stamps/${name}.key"
  progress "${name}: built in $((SECONDS - started))s"
}

#######################################
# Builds (or reuses) one upstream plugin from its release source in VENDOR_DIR: a fresh writable
# copy under ${CACHE}/src, the prepare_<name> steps of upstream/prepare.sh, then `go build` with
# upstream's version ldflag.
# Arguments:
#   One UPSTREAM_PLUGINS entry.
#######################################
build_upstream() {
  local name folder moddir pkg ldflag version prepare
  IFS='|' read -r name folder moddir pkg ldflag version <<<"$1"
  local vendored="${VENDOR_DIR}/${folder}" out="${BIN}/${name}" stamp="${CACHE}/stamps/${name}.key"
  local log="${CACHE}/logs/${name}.log" src="${CACHE}/src/${folder}" key started
  local what="upstream ${name} ${version} (${vendored})"

  if [[ ! -d "${vendored}/${moddir}" ]]; then
    die "${name}: the upstream source ${vendored}/${moddir} is missing. It is the release tag's tree that ../shared/vendor/README.md lists; put ../shared/vendor next to this repository, or set PMS_VENDOR_DIR to the folder holding ${folder}/."
  fi
  prepare="$(declare -f "prepare_${name}")"
  key="$(printf 'version=%s src=%s prepare=%s go=%s\n' "${version}" "$(tree_sha "${vendored}")" \
    "$(printf '%s' "${prepare}" | sha256sum | cut -d' ' -f1)" "$(go version)")"
  record_origin "${name}" "upstream ${folder%-v*} ${version}, built from ${vendored} (tools/real/upstream/prepare.sh)"
  if [[ -x "${out}" && ! -L "${out}" && -f "${stamp}" && "$(cat "${stamp}")" == "${key}" ]]; then
    progress "${name}: cached (${what})"
    return 0
  fi

  started="${SECONDS}"
  progress "${name}: building ${what} (log: ${log})"
  rm -rf "${src}"
  mkdir -p "$(dirname "${src}")"
  cp -R "${vendored}" "${src}"
  chmod -R u+w "${src}"
  if ! (cd "${src}/${moddir}" && "prepare_${name}") >"${log}" 2>&1; then
    tail -n 20 "${log}" >&2
    die "${name}: preparing ${src}/${moddir} (prepare_${name} in tools/real/upstream/prepare.sh) failed; see ${log}. A '403 ... not available' line names a module version the Go proxy refuses."
  fi
  compile "${name}" "${src}/${moddir}" "${pkg}" "-X ${ldflag}" "${key}" "${started}" "${src}/${moddir} (${what})"
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
    wanted=(pulumi)
    for entry in "${UPSTREAM_PLUGINS[@]}"; do
      wanted+=("${entry%%|*}")
    done
    wanted+=(pulumi-resource-aws moto)
  fi
  progress "cache ${CACHE}; $(go version); tools: ${wanted[*]}"
  for name in "${wanted[@]}"; do
    if [[ "${name}" == "moto" ]]; then
      install_moto
      continue
    fi
    found=""
    for entry in "${UPSTREAM_PLUGINS[@]}"; do
      if [[ "${entry%%|*}" == "${name}" ]]; then
        found="${entry}"
      fi
    done
    if [[ -n "${found}" ]]; then
      build_upstream "${found}"
      continue
    fi
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
