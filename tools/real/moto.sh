#!/usr/bin/env bash
#
# moto, the AWS emulator the real-engine tests point Secrets Manager and KMS at.
#
#   moto.sh install    create (once) a venv with the pinned moto[server] from PyPI under
#                      ${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}/moto-<version>;
#                      prints the venv directory as the last stdout line.
#   moto.sh bin        print the path of the installed moto_server (exit 1 if not installed).
#   moto.sh run PORT   exec moto_server on 127.0.0.1:PORT in the foreground; the caller owns
#                      the PID (and stops it by that PID).
#   moto.sh aws-shim DIR
#                      write DIR/aws, a wrapper around Debian's /usr/bin/aws that passes
#                      --endpoint-url "$AWS_ENDPOINT_URL" and refuses any endpoint but
#                      loopback. Debian 12's awscli (2.9.19) ignores AWS_ENDPOINT_URL (the CLI
#                      reads it from 2.13 on), so without the flag a runbook command run by a
#                      test would go to real AWS. Put DIR first on PATH in tests.
#
# The venv is keyed by the moto version and validated by the sha256 of
# moto-requirements.txt, written only after a complete install: a changed pin set or an
# interrupted install reinstalls, an unchanged complete one is a no-op.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly REQUIREMENTS="${SCRIPT_DIR}/moto-requirements.txt"
readonly CACHE_DIR="${PMS_TOOLS_CACHE:-/var/cache/pms-secrets/tools}"

err() {
  echo "moto.sh: $*" >&2
}

# The moto version pinned in the requirements file (the line `moto[server]==X`).
moto_version() {
  local version
  version="$(sed -n 's/^moto\[server\]==\([^[:space:]]*\).*/\1/p' "${REQUIREMENTS}")"
  if [[ -z "${version}" ]]; then
    err "no 'moto[server]==<version>' line in ${REQUIREMENTS}; add one"
    return 1
  fi
  echo "${version}"
}

requirements_hash() {
  sha256sum "${REQUIREMENTS}" | cut -d' ' -f1
}

venv_dir() {
  echo "${CACHE_DIR}/moto-$(moto_version)"
}

is_installed() {
  local dir="$1"
  [[ -x "${dir}/bin/moto_server" && -f "${dir}/.pms-requirements-sha256" ]] \
    && [[ "$(cat "${dir}/.pms-requirements-sha256")" == "$(requirements_hash)" ]]
}

cmd_install() {
  local dir version start
  version="$(moto_version)"
  dir="$(venv_dir)"
  if is_installed "${dir}"; then
    echo "moto ${version}: already installed in ${dir}"
    echo "${dir}"
    return 0
  fi
  if ! command -v python3 > /dev/null; then
    err "python3 not found; install it (Debian: apt-get install python3 python3-venv)"
    return 1
  fi
  mkdir -p "${CACHE_DIR}"
  start="${SECONDS}"
  # A venv records its own path in its scripts, so it is built where it will live; the
  # requirements hash, written last, is what marks it complete (is_installed).
  rm -rf "${dir}"
  echo "moto ${version}: creating venv ${dir}"
  if ! python3 -m venv "${dir}"; then
    err "python3 -m venv failed; install the venv module (Debian: apt-get install python3-venv)"
    return 1
  fi
  echo "moto ${version}: pip install -r ${REQUIREMENTS} (about a minute)"
  if ! "${dir}/bin/python" -m pip install --disable-pip-version-check --no-input \
    --progress-bar off -r "${REQUIREMENTS}" \
    | sed -u -n 's/^\(Collecting\|Successfully installed\) /  &/p'; then
    err "pip install of moto[server]==${version} failed (see the pip output above); PyPI must be reachable"
    return 1
  fi
  if [[ ! -x "${dir}/bin/moto_server" ]]; then
    err "moto[server]==${version} installed but ${dir}/bin/moto_server is missing"
    return 1
  fi
  requirements_hash > "${dir}/.pms-requirements-sha256"
  echo "moto ${version}: installed in ${dir} ($((SECONDS - start))s)"
  echo "${dir}"
}

cmd_bin() {
  local dir
  dir="$(venv_dir)"
  if ! is_installed "${dir}"; then
    err "moto $(moto_version) is not installed in ${dir}; run: $0 install"
    return 1
  fi
  echo "${dir}/bin/moto_server"
}

cmd_run() {
  local port="${1:-}" server
  if [[ ! "${port}" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    err "run needs a TCP port (1-65535), got '${port}'; e.g. $0 run 5000"
    return 1
  fi
  server="$(cmd_bin)"
  # Loopback only: the tests may send traffic nowhere else.
  exec "${server}" -H 127.0.0.1 -p "${port}"
}

cmd_aws_shim() {
  local dir="${1:-}" real_aws=/usr/bin/aws
  if [[ -z "${dir}" || ! -d "${dir}" ]]; then
    err "aws-shim needs an existing directory, got '${dir}'; e.g. $0 aws-shim \"\$(mktemp -d)\""
    return 1
  fi
  if [[ ! -x "${real_aws}" ]]; then
    err "${real_aws} not found; install Debian's AWS CLI: apt-get install awscli"
    return 1
  fi
  cat > "${dir}/aws" << SHIM
#!/usr/bin/env bash
# Written by tools/real/moto.sh aws-shim, for tests only. Debian's awscli 2.9 ignores
# AWS_ENDPOINT_URL, so pass it as --endpoint-url; refuse anything but moto on loopback.
set -euo pipefail
case "\${AWS_ENDPOINT_URL:-}" in
  http://127.0.0.1:[0-9]*) ;;
  *)
    echo "aws (test shim): AWS_ENDPOINT_URL must be http://127.0.0.1:<moto port>, got '\${AWS_ENDPOINT_URL:-}'" >&2
    exit 2
    ;;
esac
exec ${real_aws} --endpoint-url "\${AWS_ENDPOINT_URL}" "\$@"
SHIM
  chmod 0755 "${dir}/aws"
  echo "${dir}/aws"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "${cmd}" in
    install) cmd_install ;;
    bin) cmd_bin ;;
    run) cmd_run "$@" ;;
    aws-shim) cmd_aws_shim "$@" ;;
    *)
      err "usage: $0 install | bin | run PORT | aws-shim DIR"
      return 2
      ;;
  esac
}

main "$@"
