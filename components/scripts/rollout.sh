#!/usr/bin/env bash
# pms-secrets host rollout.
#
# Runs as root on the target host (through `sudo -n` for a non-root login) as
#   bash -s -- --host NAME --env-file PATH --service UNIT [--service UNIT ...] [options]
# with stdin = this script followed by the new env file. bash reads a script on
# a pipe one byte at a time, so when `main` runs, the rest of stdin is exactly
# the env file: the secret never appears in argv, the environment or a log.
#
# Steps: validate input -> check command under the new env -> back up the old
# env -> atomic replace -> drop-ins + daemon-reload -> restart each service in
# order and verify it (stable, journal, health URL). Any failed check restores
# the previous env and drop-ins, restarts what was restarted, and exits non-zero
# with one line naming host, service and check.
#
# Nothing printed here may contain a value of the env file: output that comes
# from elsewhere (the check command, the journal) is redacted first.
set -euo pipefail
umask 077

PROG=pms-rollout
HOST=""
ENV_FILE=""
APP_DIR=""
GROUP=""
CHECK=""
HEALTH_URL=""
STABLE_SECONDS=5
HEALTH_TIMEOUT=30
RESTART_TIMEOUT=300
CHECK_TIMEOUT=300
LOCK_TIMEOUT=600
DROPIN_NAME=50-pms-secrets.conf
STATE_DIR=/var/lib/pms-secrets
SERVICES=()

STARTED_AT=$(date +%s%N)
TMP_ENV=""
WORK_DIR=""
HAD_PREVIOUS_ENV=0
ENV_REPLACED=0
DROPINS_CHANGED=()
RESTARTED=()
SECRET_VALUES=()
REDACT_KEYS=" "
ROLLBACK_OUTCOME=""

log() {
  local now ms
  now=$(date +%s%N)
  ms=$(((now - STARTED_AT) / 1000000))
  printf '%s[%s] +%d.%03ds %s\n' "$PROG" "$HOST" $((ms / 1000)) $((ms % 1000)) "$*"
}

# Replaces every env value (4+ chars) in $1 by [redacted].
redact() {
  local text=$1 v
  for v in "${SECRET_VALUES[@]+"${SECRET_VALUES[@]}"}"; do
    if [ "${#v}" -ge 4 ]; then text=${text//"$v"/[redacted]}; fi
  done
  printf '%s' "$text"
}

# Collects the values of the secret keys (--redact) of an env file, ours or a
# hand-written previous one, for redact. Plain settings (hosts, ports) stay readable.
collect_values() {
  local line key
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      '#'* | '') continue ;;
      *=*) key=${line%%=*}; key=${key#export }; line=${line#*=} ;;
      *) continue ;;
    esac
    case $REDACT_KEYS in *" $key "*) ;; *) continue ;; esac
    case $line in
      \'*\') line=${line#\'}; line=${line%\'} ;;
      \"*\") line=${line#\"}; line=${line%\"} ;;
    esac
    SECRET_VALUES+=("$line")
  done <"$1"
}

usage_error() {
  printf '%s FAILED host=%s service=- check=arguments: %s\n' "$PROG" "${HOST:-?}" "$*" >&2
  exit 2
}

# Failure before anything on the host changed.
fail_untouched() { # service check detail
  printf '%s FAILED host=%s service=%s check=%s: %s; nothing on the host was changed\n' \
    "$PROG" "$HOST" "$1" "$2" "$(redact "$3")" >&2
  exit 1
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  if [ -n "$TMP_ENV" ] && [ -e "$TMP_ENV" ]; then rm -f -- "$TMP_ENV"; fi
  if [ -n "$WORK_DIR" ] && [ -d "$WORK_DIR" ]; then rm -rf -- "$WORK_DIR"; fi
}
trap cleanup EXIT

parse_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --host) HOST=$2; shift 2 ;;
      --env-file) ENV_FILE=$2; shift 2 ;;
      --app-dir) APP_DIR=$2; shift 2 ;;
      --group) GROUP=$2; shift 2 ;;
      --service) SERVICES+=("$2"); shift 2 ;;
      --check) CHECK=$2; shift 2 ;;
      --health-url) HEALTH_URL=$2; shift 2 ;;
      --stable-seconds) STABLE_SECONDS=$2; shift 2 ;;
      --health-timeout) HEALTH_TIMEOUT=$2; shift 2 ;;
      --redact) REDACT_KEYS="$REDACT_KEYS$2 "; shift 2 ;;
      *) usage_error "unknown argument $1" ;;
    esac
  done
  [ -n "$HOST" ] || usage_error "--host is required"
  case $ENV_FILE in /*) ;; *) usage_error "--env-file must be an absolute path" ;; esac
  [ "${#SERVICES[@]}" -gt 0 ] || usage_error "at least one --service is required"
  [ -n "$APP_DIR" ] || APP_DIR=$(dirname -- "$ENV_FILE")
}

unit_prop() { # unit property
  systemctl show -p "$2" --value -- "$1.service"
}

dropin_path() { printf '/etc/systemd/system/%s.service.d/%s' "$1" "$DROPIN_NAME"; }

dropin_content() {
  printf '# Managed by pms-secrets: the service reads its secrets from this file.\n'
  printf '# Do not edit; the next rollout rewrites it.\n[Service]\nEnvironmentFile=%s\n' "$ENV_FILE"
}

# Writes stdin to $1 atomically: same-directory temp file, fsync, rename, fsync dir.
atomic_write() { # path mode
  local dest=$1 mode=$2 dir tmp
  dir=$(dirname -- "$dest")
  mkdir -p -- "$dir"
  tmp=$(mktemp "$dir/.pms-secrets.XXXXXX")
  cat >"$tmp"
  chmod "$mode" -- "$tmp"
  sync -- "$tmp"
  mv -f -- "$tmp" "$dest"
  sync -- "$dir"
}

read_new_env() {
  local dir
  dir=$(dirname -- "$ENV_FILE")
  [ -d "$dir" ] || fail_untouched - env-file "directory $dir does not exist (is app.dir right?)"
  TMP_ENV=$(mktemp "$dir/.env.pms-new.XXXXXX")
  cat >"$TMP_ENV"
  [ -s "$TMP_ENV" ] || fail_untouched - env-file "received an empty env file"
  [ "$(tail -c 1 -- "$TMP_ENV" | od -An -c | tr -d ' ')" = '\n' ] || fail_untouched - env-file "env file does not end with a newline (truncated transfer?)"
  if grep -v -E -e '^#' -e "^[A-Za-z_][A-Za-z0-9_]*='[^'\\\\]*'\$" -- "$TMP_ENV" >/dev/null; then
    fail_untouched - env-file "env file has a line that is not KEY='value' (the program never sends one; refusing)"
  fi
  grep -q -E "^SECRET_KEY='.+'\$" -- "$TMP_ENV" || fail_untouched - env-file "env file has no SECRET_KEY"
  collect_values "$TMP_ENV"
  if [ -n "$GROUP" ]; then
    getent group "$GROUP" >/dev/null || fail_untouched - env-file "group $GROUP does not exist on the host (app.envFileGroup)"
    chgrp -- "$GROUP" "$TMP_ENV"
    chmod 0640 -- "$TMP_ENV"
  else
    chmod 0600 -- "$TMP_ENV"
  fi
}

# The check command runs under the new env exactly as systemd would load it:
# a transient unit with EnvironmentFile= pointing at the new file, as the first
# service's user, in its working directory.
run_check() {
  local svc=${SERVICES[0]} user wd out rc=0 props=()
  [ -n "$CHECK" ] || return 0
  user=$(unit_prop "$svc" User)
  wd=$(unit_prop "$svc" WorkingDirectory)
  [ -n "$wd" ] && [ "$wd" != "!" ] || wd=$APP_DIR
  props=(-p "EnvironmentFile=$TMP_ENV" -p "WorkingDirectory=$wd" -p "RuntimeMaxSec=$CHECK_TIMEOUT")
  if [ -n "$user" ]; then props+=(-p "User=$user"); fi
  log "check: running the check command under the new env (as ${user:-root} in $wd)"
  out=$(systemd-run --quiet --wait --pipe --collect --service-type=exec "${props[@]}" -- /bin/sh -c "$CHECK" </dev/null 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail_untouched "$svc" check-command "\`$CHECK\` exited $rc under the new env: $(redact "$(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')")"
  fi
  log "check: passed"
}

backup_previous() {
  local bak=$ENV_FILE.bak
  if [ -e "$ENV_FILE" ]; then
    HAD_PREVIOUS_ENV=1
    collect_values "$ENV_FILE"
    # The backup keeps the previous file's mode and owner, so it is as private as the original.
    cp -p -- "$ENV_FILE" "$bak.tmp"
    sync -- "$bak.tmp"
    mv -f -- "$bak.tmp" "$bak"
    cp -p -- "$ENV_FILE" "$WORK_DIR/env.previous"
    log "env: previous file kept as $bak"
  else
    log "env: no previous $ENV_FILE (first deploy)"
  fi
}

install_env() {
  local dir
  dir=$(dirname -- "$ENV_FILE")
  sync -- "$TMP_ENV"
  mv -f -- "$TMP_ENV" "$ENV_FILE"
  TMP_ENV=""
  sync -- "$dir"
  ENV_REPLACED=1
  log "env: new $ENV_FILE in place ($(stat -c '%a %U:%G' -- "$ENV_FILE"))"
}

install_dropins() {
  local svc path
  for svc in "${SERVICES[@]}"; do
    path=$(dropin_path "$svc")
    if [ -f "$path" ] && [ "$(cat -- "$path")" = "$(dropin_content)" ]; then continue; fi
    if [ -f "$path" ]; then cp -p -- "$path" "$WORK_DIR/dropin.$svc"; fi
    DROPINS_CHANGED+=("$svc")
    dropin_content | atomic_write "$path" 0644
    log "drop-in: wrote $path"
  done
  if [ "${#DROPINS_CHANGED[@]}" -gt 0 ]; then
    systemctl daemon-reload
    log "systemd: daemon-reload"
  fi
}

dropins_loaded() {
  local svc
  for svc in "${SERVICES[@]}"; do
    case " $(unit_prop "$svc" EnvironmentFiles) " in
      *" $ENV_FILE "*) ;;
      *) printf '%s' "$svc"; return 1 ;;
    esac
  done
}

# Health is judged by the unit staying up and not being restarted by systemd for
# STABLE_SECONDS, not by `systemctl restart`'s exit code: gunicorn under
# Type=simple reports success and then crash-loops.
verify_stable() { # service; prints the failed check and detail on failure
  local svc=$1 n0 pid0 state n pid deadline
  n0=$(unit_prop "$svc" NRestarts)
  pid0=$(unit_prop "$svc" MainPID)
  deadline=$(($(date +%s%N) + STABLE_SECONDS * 1000000000))
  while :; do
    state=$(unit_prop "$svc" ActiveState)
    n=$(unit_prop "$svc" NRestarts)
    pid=$(unit_prop "$svc" MainPID)
    if [ "$state" != active ]; then
      printf 'stability|unit is %s/%s, not active' "$state" "$(unit_prop "$svc" SubState)"
      return 1
    fi
    if [ "$n" != "$n0" ] || [ "$pid" != "$pid0" ] || [ "$pid" = 0 ]; then
      printf 'stability|systemd restarted it within %ss (restart loop)' "$STABLE_SECONDS"
      return 1
    fi
    [ "$(date +%s%N)" -lt "$deadline" ] || return 0
    sleep 0.5
  done
}

# Reads only this start of the unit (its InvocationID), so lines from the previous
# process, e.g. a crash loop before the first deploy, never count against it.
verify_journal() { # service
  local id line
  id=$(unit_prop "$1" InvocationID)
  [ -n "$id" ] || return 0
  line=$(journalctl "_SYSTEMD_INVOCATION_ID=$id" -o cat --no-pager -q 2>/dev/null | grep -m 1 -F SECRET_KEY || true)
  if [ -n "$line" ]; then
    printf 'journal|journal shows a SECRET_KEY error since the restart: %s' "$(redact "$line" | cut -c 1-200)"
    return 1
  fi
}

http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -sS -o /dev/null -m 5 -w '%{http_code}' -- "$1" 2>/dev/null || true
  else
    python3 - "$1" <<'PY' 2>/dev/null || true
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status, end="")
except urllib.error.HTTPError as e:
    print(e.code, end="")
PY
  fi
}

verify_health() {
  local deadline status=""
  [ -n "$HEALTH_URL" ] || return 0
  deadline=$(($(date +%s) + HEALTH_TIMEOUT))
  while :; do
    status=$(http_status "$HEALTH_URL")
    case $status in 2??) return 0 ;; esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'health-url|%s answered %s for %ss' "$HEALTH_URL" "${status:-nothing (connection failed)}" "$HEALTH_TIMEOUT"
      return 1
    fi
    sleep 1
  done
}

# Restarts one service and runs every check on it. Prints "check|detail" on failure.
restart_and_verify() { # service
  local svc=$1 rc=0
  timeout "$RESTART_TIMEOUT" systemctl restart -- "$svc.service" 2>/dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf 'restart|systemctl restart exited %s' "$rc"
    return 1
  fi
  verify_stable "$svc" || return 1
  verify_journal "$svc" || return 1
  if [ "$svc" = "${SERVICES[0]}" ]; then verify_health || return 1; fi
}

# Sets ROLLBACK_OUTCOME to one sentence for the failure line.
rollback() {
  local svc result problems=""
  log "rollback: restoring the previous env"
  if [ "$ENV_REPLACED" = 1 ]; then
    if [ "$HAD_PREVIOUS_ENV" = 1 ]; then
      local mode
      mode=$(stat -c '%a' -- "$WORK_DIR/env.previous")
      atomic_write "$ENV_FILE" "$mode" <"$WORK_DIR/env.previous"
      chown --reference="$WORK_DIR/env.previous" -- "$ENV_FILE"
    else
      rm -f -- "$ENV_FILE"
    fi
  fi
  for svc in "${DROPINS_CHANGED[@]+"${DROPINS_CHANGED[@]}"}"; do
    if [ -f "$WORK_DIR/dropin.$svc" ]; then
      atomic_write "$(dropin_path "$svc")" 0644 <"$WORK_DIR/dropin.$svc"
    else
      rm -f -- "$(dropin_path "$svc")"
    fi
  done
  if [ "${#DROPINS_CHANGED[@]}" -gt 0 ]; then systemctl daemon-reload; fi
  for svc in "${RESTARTED[@]+"${RESTARTED[@]}"}"; do
    if [ "$HAD_PREVIOUS_ENV" = 0 ]; then
      # Nothing worked before either: put the unit back as it was, without judging it.
      log "rollback: restarting $svc without an env file, as before the rollout"
      timeout "$RESTART_TIMEOUT" systemctl restart -- "$svc.service" 2>/dev/null || true
      continue
    fi
    log "rollback: restarting $svc on the previous env"
    if ! result=$(restart_and_verify "$svc"); then
      problems="$problems $svc (${result%%|*}: $(redact "${result#*|}"))"
    fi
  done
  if [ -n "$problems" ]; then
    ROLLBACK_OUTCOME="ROLLBACK INCOMPLETE, the host needs attention:$problems"
  elif [ "$HAD_PREVIOUS_ENV" = 1 ]; then
    ROLLBACK_OUTCOME="previous env restored and services healthy on it"
  else
    ROLLBACK_OUTCOME="there was no previous env file: the new one and the drop-ins were removed again, services are as before the rollout"
  fi
  log "rollback: $ROLLBACK_OUTCOME"
}

fail_rolled_back() { # service check detail
  rollback
  printf '%s FAILED host=%s service=%s check=%s: %s; %s\n' "$PROG" "$HOST" "$1" "$2" "$(redact "$3")" "$ROLLBACK_OUTCOME" >&2
  exit 1
}

main() {
  parse_args "$@"
  local svc state desired applied="" marker result failed
  log "rollout of $ENV_FILE to ${SERVICES[*]}"

  mkdir -p -- "$STATE_DIR" /run/lock
  exec 9<>/run/lock/pms-secrets.lock
  flock -w "$LOCK_TIMEOUT" 9 || fail_untouched - lock "another rollout (PID $(head -c 20 /run/lock/pms-secrets.lock)) held the host lock for ${LOCK_TIMEOUT}s"
  # The holder's PID, for operators (and tests) who need to find a rollout in progress.
  printf '%s\n' "$$" >/run/lock/pms-secrets.lock
  # Holding the lock, anything a killed earlier rollout left behind is stale: remove it
  # (its temp env files and work dirs hold secrets, even if only root can read them).
  find "$(dirname -- "$ENV_FILE")" -maxdepth 1 -name '.env.pms-new.*' -type f -delete
  find "$STATE_DIR" -mindepth 1 -maxdepth 1 -name 'rollout.*' -type d -exec rm -rf -- {} +
  WORK_DIR=$(mktemp -d "$STATE_DIR/rollout.XXXXXX")

  for svc in "${SERVICES[@]}"; do
    state=$(unit_prop "$svc" LoadState)
    [ "$state" = loaded ] || fail_untouched "$svc" unit "systemd has no loaded unit $svc.service (LoadState=$state)"
  done
  read_new_env

  # What this rollout establishes: env bytes and ownership, drop-in text and service list. When
  # it is already in place and was verified, a re-run restarts nothing.
  desired=$({ cat -- "$TMP_ENV"; dropin_content; printf '%s\n' "${SERVICES[@]}" "group=$GROUP"; } | sha256sum | cut -c 1-64)
  marker=$STATE_DIR/$(printf '%s' "$ENV_FILE" | sha256sum | cut -c 1-16).applied
  if [ -f "$marker" ]; then applied=$(cat -- "$marker"); fi
  if [ "$applied" = "$desired" ] && cmp -s -- "$TMP_ENV" "$ENV_FILE" && [ -z "$(dropins_loaded)" ]; then
    log "already in place and verified; nothing to do"
    return 0
  fi

  run_check
  backup_previous
  install_env
  install_dropins
  if failed=$(dropins_loaded); then :; else
    fail_rolled_back "$failed" drop-in "EnvironmentFiles of $failed.service does not list $ENV_FILE after daemon-reload (a unit override?)"
  fi

  for svc in "${SERVICES[@]}"; do
    log "restart: $svc"
    RESTARTED+=("$svc")
    if ! result=$(restart_and_verify "$svc"); then
      fail_rolled_back "$svc" "${result%%|*}" "${result#*|}"
    fi
    if [ "$svc" = "${SERVICES[0]}" ] && [ -n "$HEALTH_URL" ]; then
      log "restart: $svc active and stable for ${STABLE_SECONDS}s, health URL answered 2xx"
    else
      log "restart: $svc active and stable for ${STABLE_SECONDS}s"
    fi
  done

  printf '%s\n' "$desired" | atomic_write "$marker" 0600
  log "done: env fingerprint $(sha256sum -- "$ENV_FILE" | cut -c 1-16)"
}

# Must stay the last line, on one line: stdin after it is the env file.
main "$@"; exit $?
