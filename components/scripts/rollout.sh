#!/usr/bin/env bash
# pms-secrets host rollout.
#
# Runs as root on the target host (through `sudo -n` for a non-root login) as
#   bash -s -- --host NAME --env-file PATH --service UNIT [--service UNIT ...] [options]
# with stdin = this script followed by the new env file and an end marker line
# `# pms-secrets-end sha256=HEX` (required: without it a transfer cut at a line end looks whole).
# bash reads a script on a pipe one byte at a time, so when `main` runs the rest of stdin is
# exactly the env file: no secret in argv, environment or log.
#
# Options (the contract, with types, ranges and defaults: agent/options.json, docs/AGENT-OPTIONS.md):
#   --app-dir PATH, --group G (env file 0640 root:G, else 0600 root:root), --check CMD,
#   --health-url URL (repeatable), --health-host NAME, --health-ca PATH, --health-insecure,
#   --stable-seconds N (1..300, default 5), --health-timeout N (1..600, default 30), --redact KEY (repeatable),
#   --unmanaged-keys refuse|keep|drop (default refuse), --backups N (1..20, default 3),
#   --purge-old-copies (emergency: delete every backup once the new env is proven),
#   --secret-key-fallbacks N (0..5, default 1: previous keys the host keeps, see below),
#   --emergency (no fallback kept, implies --purge-old-copies),
#   --secret-key-accept (phase 1 of a fleet's two-phase SECRET_KEY rotation: the new env, but the
#     host keeps signing with its current SECRET_KEY and only accepts the delivered one, first in
#     SECRET_KEY_FALLBACKS; a host with no current key changes nothing. See compose_secret_key_fallbacks),
#   --login-url URL --login-user NAME --login-password-file PATH --login-check-url URL (all four:
#     after the health URLs answer, log in as that account as a browser does and fetch a page that
#     needs the session; the password file must be root-only, see login_probe),
#   --socket UNIT.socket (the first service is socket-activated by it: checked before any change
#     and watched after the restart, see docs/ZERO-DOWNTIME.md; a unit idle behind a listening
#     socket, with or without --socket, is started and proven like a running one),
#   --rotate-db-password (a changed DB_PASSWORD is set in the local PostgreSQL first, see below),
#   --db-roles A,B (with --rotate-db-password: two alternating login roles, the host writes DB_USER),
#   --db-follow ADMIN_HOST (with --rotate-db-password: a shared database that host changes; this
#     host never changes PostgreSQL, it proves the new password logs in before moving to it),
#   --production (a production stack: an env directory that a user other than root can write is
#     refused instead of warned about, see open_env_dir),
#   --verify-only (change nothing: exit 0 in sync, 3 drift, other error; reads the env file under
#     the same rules as the rollout: no link, regular file, size bound).
#
# Steps (main/worker below read like this list):
#   1. front end (the SSH session): parse arguments, read ALL of stdin into a root-only run dir,
#      validate it, then start the worker as a transient systemd unit and relay its log. An SSH
#      drop kills only the front end: the worker finishes or rolls back on its own.
#   2. worker: take the host lock, sweep what killed runs left, check every unit (unknown ->
#      error before any change), open the env directory safely, read the current env file,
#      compose the new one (unmanaged keys: refuse / keep / drop), stop here when everything is
#      already in place and proven, set a changed DB_PASSWORD in PostgreSQL (--rotate-db-password),
#      run the check command as the first unit runs (after that, so it may use the database), back
#      up the current file, install the new file, install drop-ins, restart the services in order
#      (the next one only once the health service answers its URLs), watch them all in one
#      stability window, prove each one's processes hold the new env, close the DB role the app
#      left (--emergency with --db-roles), purge old copies if asked.
#   Any failure after the first change rolls back every step (each attempted, each failure
#   reported) and ends with one `pms-rollout FAILED host= service= check=` line.
#
# Safety rules:
#   - Root never writes through a path a non-root user controls. Every ancestor of the env
#     directory (given and physical path) must be root-owned and not group/other-writable. The env
#     directory itself should be too (the default /etc/pms-backend is created root 0755): where
#     another user can write it, that user can swap the env file for a link to any root-only file
#     between runs, and systemd, reading EnvironmentFile= as root, hands that file's lines to the
#     services; refused with --production, a WARNING otherwise. Where it is writable, the script
#     only (a) creates a fresh directory with an unpredictable name (mkdir fails on anything
#     already there) and works inside it, root 0700, by relative paths from its own working directory, (b) rename(2)s the
#     finished file onto the env file name (rename replaces a link, never follows it) and
#     (c) reads the current file through one descriptor after checking it is a regular file with
#     one link. A symlinked env file is refused. State, lock and backups live in /var/lib/pms-secrets
#     (root 0700); drop-ins in /etc/systemd/system/UNIT.service.d (must be root-owned).
#   - Backups: root-only, one file per generation, the newest --backups kept.
#   - Proof: each restarted service's main process and every process in its cgroup that inherited
#     the unit's env (INVOCATION_ID or a delivered key in its environ: a child started with env -i
#     is not judged, a process left from an earlier start is) must hold exactly the delivered
#     values (sha256 over KEY=value of every delivered key). The journal is read only to explain
#     a failure already found, never to decide one.
#   - Redaction of relayed output: every value of a --redact key (new and previous file) and every
#     value of a key only the host file had, longest first, whatever its length.
#
# Time bounds: every wait has one, and systemd enforces the worker's two budgets (S services,
# U health URLs; forward_budget / rollback_budget / worst_case_seconds compute them from the
# arguments, components/rollout-time.ts from the stack config, which refuses a config whose worst
# case exceeds the command's 30-minute resource timeout):
#   forward (RuntimeMaxSec= of the worker) = lock 120 + 8*15 systemctl + stable + S*(restart 90
#     + 4*15) + U*(health-timeout + 5) [+ check 210] [+ PostgreSQL 190] [+ login probe 3*5]
#   rollback (TimeoutStopSec=, then SIGKILL) = 2*15 + U*(health-timeout + 5)
#     + S*(90 + 4*15 + stable) [+ PostgreSQL restore 120]
#   whole run on the host = systemd-run 15 + hand-off 30 + forward + rollback + relay 60.
#   Two services, one URL, stable 5, health 30, a check command: forward 790 + rollback 375, run
#   1270 s (21 min); with --rotate-db-password 1580 s, with the login probe too 1595 s (27 min);
#   typically 10-30 s. Past the forward budget systemd stops the worker and it rolls back.
# shellcheck disable=SC2317 # worker() and what it calls run in the generated worker script
set -euo pipefail
umask 077

readonly PROG=pms-rollout
readonly STATE_DIR=/var/lib/pms-secrets
readonly RUNS_DIR=$STATE_DIR/runs
readonly BACKUP_ROOT=$STATE_DIR/backups
readonly LOCK_FILE=$STATE_DIR/lock
readonly DB_CLOSE_PENDING=$STATE_DIR/db-close-pending
readonly PID_FILE=$STATE_DIR/rollout.pid
readonly DROPIN_NAME=50-pms-secrets.conf
readonly PRIVATE_PREFIX=.pms-secrets.
readonly END_MARKER='# pms-secrets-end sha256='
readonly LOCK_TIMEOUT=120
readonly CHECK_TIMEOUT=180
readonly RESTART_TIMEOUT=90
readonly SYSTEMCTL_TIMEOUT=15
readonly HTTP_TIMEOUT=5
readonly HANDOFF_TIMEOUT=30
# What the PostgreSQL steps may take: the change (host lookup 10 + login 30 + read 60 + ALTER 60 +
# login 30), and its rollback (two psql calls of 60).
readonly DB_BUDGET=190
readonly DB_RESTORE_BUDGET=120
readonly RELAY_MARGIN=60
# An env file is a few KB; root never reads more than this from a path in the env directory.
readonly MAX_ENV_BYTES=1048576
readonly EXIT_DRIFT=3
# Longest relayed line, in characters (at most 4 bytes each: far below pulumi-command's 64 KiB).
readonly MAX_LINE=8000
# The two errors the old guide names for a missing key, as a Python traceback's last line.
readonly KEY_ERROR_PATTERN='^([A-Za-z_][A-Za-z0-9_.]*\.)?(ValueError: SECRET_KEY environment variable must be set|ImproperlyConfigured: The SECRET_KEY setting must not be empty)'

# Arguments (parse_args sets them once; the worker gets them as declarations).
HOST=""
ENV_FILE=""
APP_DIR=""
GROUP=""
CHECK=""
HEALTH_URLS=()
HEALTH_HOST=""
HEALTH_CA=""
HEALTH_INSECURE=0
STABLE_SECONDS=5
HEALTH_TIMEOUT=30
REDACT_KEYS=()
SERVICES=()
UNMANAGED=refuse
BACKUPS=3
PURGE_OLD=0
VERIFY_ONLY=0
SK_FALLBACKS=1
SK_ACCEPT=0
EMERGENCY=0
DB_ROTATE=0
DB_ROLES=()
DB_FOLLOW=""
SOCKET=""
LOGIN_URL=""
LOGIN_USER=""
LOGIN_PASSWORD_FILE=""
LOGIN_CHECK_URL=""
PRODUCTION=0

# Run state.
STARTED_AT=${EPOCHREALTIME/./}
RUN_DIR=""
RUN_ID=""
ENV_DIR=""
ENV_NAME=""
PRIVATE_NAME=""
HAD_PREVIOUS=0
ENV_INSTALLED=0
INSTALLED_ID=""
CHANGED=0
FAILED_PRINTED=0
ROLLED_BACK=0
LAST_ERR=""
DELIVERED_HASH=""
DELIVERED_KEYS=()
REDACT_VALUES=()
UNMANAGED_KEYS=()
DROPINS_CHANGED=()
RESTARTED=()
declare -A ACTION=()
declare -A IDLE=()
DB_ALTERED=0
DB_ROLE=""
DB_HOST_=""
DB_PORT_=""
DB_NAME_=""
DB_SWITCH=0
DB_PREV_ROLE=""
DB_FOLLOWED=0
DB_ROLLBACK_NOTE=""
WARNINGS=()
MIGRATED_FROM=""
MIGRATED_ID=""
MOVED_ID=""

# --- output -------------------------------------------------------------------------------

# One progress line. The worker also keeps it in the run log, which the front end relays.
log() {
  local ms=$(((${EPOCHREALTIME/./} - STARTED_AT) / 1000))
  emit O "$(printf '%s[%s] +%d.%03ds %s' "$PROG" "$HOST" $((ms / 1000)) $((ms % 1000)) "$*")"
}

# emit CHANNEL LINE: O = stdout, E = stderr. The worker writes both to the run log, which the
# front end relays, and to stderr (its journal): never to stdout, which callers may capture.
# A line longer than MAX_LINE characters is cut: pulumi-command 1.2.1 relays output line by line
# with a 64 KiB limit, and at a longer line it stops reading and the SSH session never ends, so
# `pulumi up` would hang (a check or a journal line can be that long).
emit() {
  local line=$2
  if [ "${#line}" -gt "$MAX_LINE" ]; then
    line="${line:0:MAX_LINE} [cut: $((${#2} - MAX_LINE)) more characters]"
  fi
  if [ "${IN_WORKER:-0}" = 1 ]; then
    printf '%s %s\n' "$1" "$line" >>"$RUN_DIR/log"
    printf '%s\n' "$line" >&2
  elif [ "$1" = E ]; then
    printf '%s\n' "$line" >&2
  else
    printf '%s\n' "$line"
  fi
}

# Replaces every collected value in $1 by [redacted], longest first so a secret that contains
# another one is never left half visible.
redact() {
  local text=$1 v
  for v in "${REDACT_VALUES[@]+"${REDACT_VALUES[@]}"}"; do
    text=${text//"$v"/[redacted]}
  done
  printf '%s' "$text"
}

add_redactions() { # value...
  local v
  for v in "$@"; do
    if [ -n "$v" ]; then REDACT_VALUES+=("$v"); fi
  done
  [ "${#REDACT_VALUES[@]}" -gt 0 ] || return 0
  # Values go through a pipe, never argv. Longest first.
  mapfile -t REDACT_VALUES < <(printf '%s\n' "${REDACT_VALUES[@]}" |
    awk '{ print length($0) "\t" $0 }' | sort -rn -k1,1 | cut -f 2- | awk '!seen[$0]++')
}

failed_line() { # service check detail outcome
  FAILED_PRINTED=1
  emit E "$(printf '%s FAILED host=%s service=%s check=%s: %s; %s' "$PROG" "${HOST:-?}" "$1" "$2" "$(redact "$3")" "$4")"
}

# A problem that does not stop the run: logged now and repeated as the run's last lines, so the
# person reading `pulumi up` sees it next to the result.
warn() { # service check detail
  WARNINGS+=("$(printf '%s WARNING host=%s service=%s check=%s: %s' "$PROG" "${HOST:-?}" "$1" "$2" "$(redact "$3")")")
  emit E "${WARNINGS[${#WARNINGS[@]}-1]}"
}

usage_error() {
  failed_line - arguments "$*" "nothing on the host was changed"
  exit 2
}

# Failure before anything on the host changed. A refusal after a change (the DB password is set
# before the env file moves) rolls back instead: one FAILED line, with what really happened.
fail_untouched() { # service check detail
  if [ "${CHANGED:-0}" = 1 ] && [ "${ROLLED_BACK:-0}" = 0 ]; then fail_rolled_back "$@"; fi
  failed_line "$1" "$2" "$3" "nothing on the host was changed"
  exit 1
}

fail_rolled_back() { # service check detail
  local outcome
  outcome=$(rollback)
  ROLLED_BACK=1
  failed_line "$1" "$2" "$3" "$outcome"
  exit 1
}

# --- arguments ----------------------------------------------------------------------------

parse_args() {
  while [ $# -gt 0 ]; do
    case $1 in
      --health-insecure) HEALTH_INSECURE=1; shift; continue ;;
      --purge-old-copies) PURGE_OLD=1; shift; continue ;;
      --verify-only) VERIFY_ONLY=1; shift; continue ;;
      --emergency) EMERGENCY=1; PURGE_OLD=1; shift; continue ;;
      --secret-key-accept) SK_ACCEPT=1; shift; continue ;;
      --rotate-db-password) DB_ROTATE=1; shift; continue ;;
      --production) PRODUCTION=1; shift; continue ;;
    esac
    [ $# -ge 2 ] || usage_error "$1 needs a value"
    case $1 in
      --host) HOST=$2 ;;
      --env-file) ENV_FILE=$2 ;;
      --app-dir) APP_DIR=$2 ;;
      --group) GROUP=$2 ;;
      --service) SERVICES+=("${2%.service}") ;;
      --check) CHECK=$2 ;;
      --health-url) HEALTH_URLS+=("$2") ;;
      --health-host) HEALTH_HOST=$2 ;;
      --health-ca) HEALTH_CA=$2 ;;
      --socket) SOCKET=$2 ;;
      --login-url) LOGIN_URL=$2 ;;
      --login-user) LOGIN_USER=$2 ;;
      --login-password-file) LOGIN_PASSWORD_FILE=$2 ;;
      --login-check-url) LOGIN_CHECK_URL=$2 ;;
      --stable-seconds) STABLE_SECONDS=$2 ;;
      --health-timeout) HEALTH_TIMEOUT=$2 ;;
      --redact) REDACT_KEYS+=("$2") ;;
      --unmanaged-keys) UNMANAGED=$2 ;;
      --backups) BACKUPS=$2 ;;
      --secret-key-fallbacks) SK_FALLBACKS=$2 ;;
      --db-roles) IFS=, read -r -a DB_ROLES <<<"$2" ;;
      --db-follow) DB_FOLLOW=$2 ;;
      *) usage_error "unknown argument $1" ;;
    esac
    shift 2
  done
  [ -n "$HOST" ] || usage_error "--host is required"
  case $ENV_FILE in
    */ | *//* | */./* | */../* | */. | */..) usage_error "--env-file $ENV_FILE must be a plain absolute file path" ;;
    /?*) ;;
    *) usage_error "--env-file must be an absolute path" ;;
  esac
  [ "${#SERVICES[@]}" -gt 0 ] || usage_error "at least one --service is required"
  local svc
  for svc in "${SERVICES[@]}"; do
    case $svc in
      '' | *@ | */* | -*) usage_error "--service '$svc' is not a unit name (a template needs an instance: name@instance)" ;;
    esac
  done
  if [ -n "$LOGIN_URL$LOGIN_USER$LOGIN_PASSWORD_FILE$LOGIN_CHECK_URL" ]; then
    if [ -z "$LOGIN_URL" ] || [ -z "$LOGIN_USER" ] || [ -z "$LOGIN_CHECK_URL" ] || [ "${#HEALTH_URLS[@]}" = 0 ]; then
      usage_error "--login-url, --login-user, --login-password-file and --login-check-url go together, with --health-url"
    fi
    case $LOGIN_PASSWORD_FILE in /?*) ;; *) usage_error "--login-password-file must be an absolute path" ;; esac
  fi
  case $SOCKET in
    '' | [A-Za-z0-9_]*.socket) ;;
    *) usage_error "--socket '$SOCKET' is not a socket unit name (e.g. pms-backend.socket)" ;;
  esac
  case $UNMANAGED in refuse | keep | drop) ;; *) usage_error "--unmanaged-keys must be refuse, keep or drop" ;; esac
  is_count "$BACKUPS" 1 20 || usage_error "--backups must be 1..20"
  is_count "$SK_FALLBACKS" 0 5 || usage_error "--secret-key-fallbacks must be 0..5"
  if [ "$SK_ACCEPT" = 1 ] && [ "$EMERGENCY" = 1 ]; then usage_error "--secret-key-accept and --emergency exclude each other (an emergency is one phase)"; fi
  is_count "$STABLE_SECONDS" 1 300 || usage_error "--stable-seconds must be 1..300"
  is_count "$HEALTH_TIMEOUT" 1 600 || usage_error "--health-timeout must be 1..600"
  if [ -n "$HEALTH_CA" ] && [ "$HEALTH_INSECURE" = 1 ]; then usage_error "--health-ca and --health-insecure exclude each other"; fi
  check_db_roles_arg
  [ -n "$APP_DIR" ] || APP_DIR=${ENV_FILE%/*}
  ENV_DIR=${ENV_FILE%/*}
  ENV_DIR=${ENV_DIR:-/}
  ENV_NAME=${ENV_FILE##*/}
}

is_count() { # value min max
  case $1 in '' | *[!0-9]*) return 1 ;; esac
  [ "${#1}" -le 4 ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

is_health_service() { [ "$1" = "${SERVICES[0]}" ] && [ "${#HEALTH_URLS[@]}" -gt 0 ]; }

# --- systemd ------------------------------------------------------------------------------

unit_prop() { # unit property
  timeout "$SYSTEMCTL_TIMEOUT" systemctl show -p "$2" --value -- "$1.service"
}

socket_prop() { # property
  timeout "$SYSTEMCTL_TIMEOUT" systemctl show -p "$1" --value -- "$SOCKET"
}

dropin_dir() { printf '/etc/systemd/system/%s.service.d' "$1"; }

dropin_content() {
  printf '# Managed by pms-secrets: the service reads its secrets from this file.\n'
  printf '# Do not edit; the next rollout rewrites it.\n[Service]\nEnvironmentFile=%s\n' "$ENV_FILE"
}

# The unit's env files in load order, one path per line ("-" prefix when errors are ignored).
unit_env_files() { # unit
  local line
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    case $line in
      *' (ignore_errors=yes)') printf -- '-%s\n' "${line% (ignore_errors=yes)}" ;;
      *) printf '%s\n' "${line% (ignore_errors=no)}" ;;
    esac
  done < <(unit_prop "$1" EnvironmentFiles)
}

# Our env file is the last one systemd loads for the unit, so its values win.
ours_loads_last() { # unit
  [ "$(unit_env_files "$1" | tail -n 1)" = "$ENV_FILE" ]
}

# The drop-ins that sort after ours and set environment: what beats our EnvironmentFile=.
later_dropins() { # unit
  local f
  for f in $(unit_prop "$1" DropInPaths); do
    [ "${f##*/}" \> "$DROPIN_NAME" ] || continue
    if grep -q -E '^[[:space:]]*(EnvironmentFile|UnsetEnvironment)[[:space:]]*=' -- "$f" 2>/dev/null; then
      printf '%s ' "$f"
    fi
  done
}

# Pids of the unit: its main process, then every process in its cgroup (workers, pool children).
unit_pids() { # unit
  local main cg base
  main=$(unit_prop "$1" MainPID)
  if [ -n "$main" ] && [ "$main" != 0 ]; then printf '%s\n' "$main"; fi
  cg=$(unit_prop "$1" ControlGroup)
  [ -n "$cg" ] || return 0
  for base in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    if [ -r "$base$cg/cgroup.procs" ]; then
      grep -v -x -F -e "$main" -- "$base$cg/cgroup.procs" || true
      return 0
    fi
  done
}

# sha256 over "KEY=value\n" of the delivered keys as a process sees them ("KEY\n" when unset).
# Reads NUL-separated /proc/PID/environ, so a newline inside some other variable cannot fake a key.
process_env_hash() { # pid
  local entry key
  declare -A seen=()
  while IFS= read -r -d '' entry; do
    key=${entry%%=*}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [[ -v DELIVERED_SET[$key] ]] && [[ ! -v seen[$key] ]]; then seen[$key]=${entry#*=}; fi
  done <"/proc/$1/environ" || return 1
  for key in "${DELIVERED_KEYS[@]}"; do
    if [[ -v seen[$key] ]]; then printf '%s=%s\n' "$key" "${seen[$key]}"; else printf '%s\n' "$key"; fi
  done | sha256sum | cut -c 1-64
}

# Whether a process inherited the unit's environment: systemd gives every process it starts for the
# unit INVOCATION_ID, and the unit's env carries the delivered keys. A child started with a
# scrubbed environment (env -i, subprocess with env={...}) has neither and holds no delivered
# value, old or new: it is not judged. A process left from an earlier start still has both (its
# own INVOCATION_ID and the old values), so it is judged and fails the proof.
inherits_unit_env() { # pid
  local entry key
  while IFS= read -r -d '' entry; do
    key=${entry%%=*}
    if [ "$key" = INVOCATION_ID ] || [[ -v DELIVERED_SET[$key] ]]; then return 0; fi
  done <"/proc/$1/environ" || return 0
  return 1
}

# Proof: the unit's main process and every process in its cgroup that inherited the unit's env hold
# the delivered values. Prints "proof|detail" on failure.
prove_env() { # unit expected-hash (empty: all processes agree with the first one)
  local pid hash n=0 scrubbed=0 bad="" expected=$2 main
  main=$(unit_prop "$1" MainPID)
  while IFS= read -r pid; do
    [ -n "$pid" ] || continue
    if [ "$pid" != "$main" ] && ! inherits_unit_env "$pid" 2>/dev/null; then
      scrubbed=$((scrubbed + 1))
      continue
    fi
    hash=$(process_env_hash "$pid" 2>/dev/null) || continue # exited meanwhile
    n=$((n + 1))
    expected=${expected:-$hash}
    if [ "$hash" != "$expected" ]; then bad="$bad $pid($(head -c 40 "/proc/$pid/comm" 2>/dev/null || printf '?'))"; fi
  done < <(unit_pids "$1")
  if [ -n "$bad" ]; then
    printf 'proof|processes%s do not hold the delivered env (an override, a wrapper or UnsetEnvironment= wins over %s, or a process left from before the restart)' "$bad" "$ENV_FILE"
    return 1
  fi
  if [ "$n" = 0 ]; then
    PROOF_NOTE="no running process to read (MainPID=0, empty cgroup): state checked only"
  else
    PROOF_NOTE="$n processes hold the delivered env"
  fi
  if [ "$scrubbed" -gt 0 ]; then PROOF_NOTE="$PROOF_NOTE ($scrubbed child process(es) with a scrubbed environment, no unit env and no delivered key, not judged)"; fi
}

# --- paths --------------------------------------------------------------------------------

# Every ancestor of $1 (not $1 itself) must be root-owned and not group/other-writable, and a
# symlink on the way must belong to root: then no other user can swap the directory under us.
# A path through a (root-owned) link, e.g. /var/run -> /run, is checked again as its physical path.
check_ancestors() { # absolute-path what [logical|physical]
  local p="" part info parts=()
  IFS=/ read -r -a parts <<<"${1#/}"
  if [ "${#parts[@]}" -gt 0 ]; then unset 'parts[${#parts[@]}-1]'; fi
  check_owner_root / "$2" || return 1
  for part in "${parts[@]+"${parts[@]}"}"; do
    p=$p/$part
    check_owner_root "$p" "$2" || return 1
  done
  info=$(realpath -e -- "$1" 2>/dev/null) || return 0
  if [ "$info" != "$1" ] && [ "${3:-logical}" != physical ]; then check_ancestors "$info" "$2 (physical path $info)" physical; fi
}

check_owner_root() { # path what
  local info uid mode type
  info=$(stat -c '%u %a %F' -- "$1" 2>/dev/null) || return 0 # missing: the next step says so
  uid=${info%% *}; info=${info#* }; mode=${info%% *}; type=${info#* }
  if [ "$uid" != 0 ]; then
    REFUSAL="$1 belongs to uid $uid, so that user could swap $2; make every directory above it root-owned"
    return 1
  fi
  if [ "$type" = directory ] && (((8#$mode & 8#022) != 0)); then
    REFUSAL="$1 is writable by group or others (mode $mode), so they could swap $2; chmod go-w $1"
    return 1
  fi
}

# Opens the env directory: working directory = a fresh root-only directory inside it, so every
# name written afterwards is ours. Sets PRIVATE_NAME.
open_env_dir() {
  local id
  check_ancestors "$ENV_DIR" "the env directory" logical || fail_untouched - env-dir "$REFUSAL"
  create_env_dir
  [ -d "$ENV_DIR" ] || fail_untouched - env-dir "directory $ENV_DIR does not exist (is app.dir / app.envFile right?)"
  check_env_dir_root_only
  cd -P -- "$ENV_DIR" || fail_untouched - env-dir "cannot enter $ENV_DIR"
  id=$(stat -c '%d:%i' .)
  sweep_env_dir
  PRIVATE_NAME=$(mktemp -d "./${PRIVATE_PREFIX}XXXXXXXXXX" 2>&1) ||
    fail_untouched - env-dir "cannot create a private directory in $ENV_DIR ($PRIVATE_NAME)"
  PRIVATE_NAME=${PRIVATE_NAME#./}
  cd -P -- "./$PRIVATE_NAME" || fail_untouched - env-dir "cannot enter our private directory in $ENV_DIR"
  # Swapped for someone else's directory or a link between mkdir and cd: refuse.
  if [ "$(stat -c '%u %a %h' .)" != "0 700 2" ] || [ "$(stat -c '%d:%i' ..)" != "$id" ] || [ -n "$(ls -A .)" ]; then
    fail_untouched - env-dir "the private directory $ENV_DIR/$PRIVATE_NAME changed under us (another user races this rollout)"
  fi
}

# The env directory under a root-owned parent (the default /etc/pms-backend) is made on the first
# run: root 0755, so a group that may read the file (app.envFileGroup) can reach it.
create_env_dir() {
  local parent=${ENV_DIR%/*}
  if [ -e "$ENV_DIR" ] || [ -L "$ENV_DIR" ] || [ ! -d "${parent:-/}" ]; then return 0; fi
  mkdir -m 0755 -- "$ENV_DIR" 2>/dev/null || fail_untouched - env-dir "cannot create $ENV_DIR"
  log "env: created $ENV_DIR (root 0755)"
}

# Issue 19: where a user other than root can write the env directory, that user can replace the
# env file with a link to any root-only file between rollouts; systemd reads EnvironmentFile= as
# root and follows the link, so that file's KEY=VALUE lines reach processes the user controls.
check_env_dir_root_only() {
  local info uid mode fix
  info=$(stat -L -c '%u %a' -- "$ENV_DIR") || return 0
  read -r uid mode <<<"$info"
  if [ "$uid" = 0 ] && (((8#$mode & 8#022) == 0)); then return 0; fi
  fix="Fix: put the env file in a directory only root can write: remove app.envFile for the default /etc/pms-backend/.env.production (the rollout moves the file there once), or chown root $ENV_DIR && chmod go-w $ENV_DIR"
  REFUSAL="$ENV_DIR (the env file's directory) is writable by $([ "$uid" != 0 ] && printf 'uid %s (%s), its owner' "$uid" "$(id -nu "$uid" 2>/dev/null || printf '?')" || printf 'group or others (mode %s)' "$mode"): that user can replace $ENV_NAME with a link to any root-only file between rollouts, and systemd, reading EnvironmentFile= as root, would hand its KEY=VALUE lines to the services"
  if [ "$PRODUCTION" = 1 ]; then fail_untouched - env-dir "$REFUSAL (refused on a production stack). $fix"; fi
  warn - env-dir "$REFUSAL. $fix"
}

# Opens ../NAME (relative to the private dir) for reading if it is a regular file with one link,
# checked on the descriptor itself. Sets SAFE_FD. Returns 1 when missing, 2 when unsafe (REFUSAL).
open_regular() { # name what
  local type a b
  type=$(stat -c '%F' -- "../$1" 2>/dev/null) || return 1
  case $type in
    'regular file' | 'regular empty file') ;;
    'symbolic link')
      REFUSAL="$2 $ENV_DIR/$1 is a symbolic link; root does not read or replace a file through a link another user may have planted: put the real file there (e.g. cp --remove-destination \"\$(readlink -f $ENV_DIR/$1)\" $ENV_DIR/$1)"
      return 2 ;;
    *) REFUSAL="$2 $ENV_DIR/$1 is a $type, not a regular file"; return 2 ;;
  esac
  exec {SAFE_FD}<"../$1" || return 1
  a=$(stat -L -c '%d:%i %h %F' "/dev/fd/$SAFE_FD")
  b=$(stat -c '%d:%i %h %F' -- "../$1" 2>/dev/null || true)
  if [ "$a" != "$b" ] || [ "${a#* }" != "1 ${type}" ]; then
    exec {SAFE_FD}<&-
    REFUSAL="$2 $ENV_DIR/$1 changed while it was opened or has other hard links ($a); refusing to read it as root"
    return 2
  fi
  if [ "$(stat -L -c %s "/dev/fd/$SAFE_FD")" -gt "$MAX_ENV_BYTES" ]; then
    exec {SAFE_FD}<&-
    REFUSAL="$2 $ENV_DIR/$1 is larger than $MAX_ENV_BYTES bytes: not an env file; refusing to read it as root"
    return 2
  fi
}

# --- moving the env file to its configured path (issue 19) -----------------------------------
# A host whose drop-ins name another env file (the earlier default <app dir>/.env.production, in a
# directory the app user owns) gets it moved once: a copy of the same bytes at the configured
# path first; this rollout then points the drop-ins at it, restarts and proves as usual, and only
# then moves the old path's backups along (so an emergency purge covers them) and removes the old
# copy, saying each. A failure before any change removes the copy again; a rollback restores the
# drop-ins, and the old file is still there.

# The env file the drop-ins of our services name, when it is not ENV_FILE.
dropin_env_file() {
  local svc f
  for svc in "${SERVICES[@]}"; do
    f=$(sed -n 's/^EnvironmentFile=//p' -- "$(dropin_dir "$svc")/$DROPIN_NAME" 2>/dev/null | tail -n 1)
    if [ -n "$f" ] && [ "$f" != "$ENV_FILE" ] && [ "${f#/}" != "$f" ]; then printf '%s' "$f"; return 0; fi
  done
}

migrate_env_file() {
  local old old_dir info a b
  old=$(dropin_env_file)
  [ -n "$old" ] || return 0
  MIGRATED_FROM=$old
  if [ -e "../$ENV_NAME" ] || [ -L "../$ENV_NAME" ]; then
    log "env: the drop-ins name $old; $ENV_FILE exists already and is the env file from now on"
    return 0
  fi
  old_dir=${old%/*}
  check_ancestors "${old_dir:-/}" "the previous env file" logical || fail_untouched - env-move "$REFUSAL"
  info=$(stat -c '%F %h' -- "$old" 2>/dev/null) || { log "env: the drop-ins name $old, which does not exist: nothing to move"; return 0; }
  [ "$info" = "regular file 1" ] || fail_untouched - env-move "$old (named by the drop-ins) is not a regular file with one link ($info); root does not read it: put the real file there or remove it, then run again"
  exec {SAFE_FD}<"$old" || fail_untouched - env-move "cannot read $old"
  a=$(stat -L -c '%d:%i %h %F' "/dev/fd/$SAFE_FD")
  b=$(stat -c '%d:%i %h %F' -- "$old" 2>/dev/null || true)
  if [ "$a" != "$b" ]; then exec {SAFE_FD}<&-; fail_untouched - env-move "$old changed while it was opened; refusing to read it as root"; fi
  MIGRATED_ID=${a%% *}
  { cat <&"$SAFE_FD" >./moved && chmod 0600 ./moved && sync -- ./moved; } 2>/dev/null || { exec {SAFE_FD}<&-; rm -f ./moved; fail_untouched - env-move "cannot copy $old to $ENV_DIR (disk full?)"; }
  exec {SAFE_FD}<&-
  if [ -n "$GROUP" ]; then chgrp -- "$GROUP" ./moved 2>/dev/null && chmod 0640 ./moved; fi
  MOVED_ID=$(stat -c '%d:%i' ./moved)
  mv -f -T -- ./moved "../$ENV_NAME"
  log "env: moving $old to $ENV_FILE: a copy is in place; the drop-ins follow in this rollout, the old copy is removed once the services are proven on it"
}

# The backup generations kept under the old path's directory join the configured path's.
move_backups() { # old-path
  local from dir n
  from=$BACKUP_ROOT/$(printf '%s' "$1" | sha256sum | cut -c 1-16)
  [ -d "$from" ] && [ ! -L "$from" ] || return 0
  dir=$(backup_dir)
  n=$(find "$from" -maxdepth 1 -type f -name '*.env' | wc -l)
  find "$from" -maxdepth 1 -type f -name '*.env' -exec mv -f -t "$dir" -- {} +
  rm -rf -- "$from"
  prune_backups "$dir"
  if [ "$n" != 0 ]; then log "env: $n backup generation(s) of $1 moved to $dir"; fi
}

# After the services are proven on ENV_FILE: the old copy goes, unless a unit still loads it.
finish_migration() {
  local svc
  [ -n "$MIGRATED_FROM" ] || return 0
  move_backups "$MIGRATED_FROM"
  for svc in "${SERVICES[@]}"; do
    if unit_env_files "$svc" | grep -qxF -e "$MIGRATED_FROM" -e "-$MIGRATED_FROM"; then
      warn "$svc" env-move "$svc.service still loads $MIGRATED_FROM (an EnvironmentFile= outside our drop-in), so it was left in place: remove that line from the unit, then delete $MIGRATED_FROM"
      return 0
    fi
  done
  if [ -n "$MIGRATED_ID" ] && [ "$(stat -c '%d:%i' -- "$MIGRATED_FROM" 2>/dev/null)" != "$MIGRATED_ID" ]; then
    warn - env-move "$MIGRATED_FROM was replaced during the rollout; left as it is: check it and delete it"
    return 0
  fi
  if [ -e "$MIGRATED_FROM" ] || [ -L "$MIGRATED_FROM" ]; then
    rm -f -- "$MIGRATED_FROM"
    log "env: removed the old copy $MIGRATED_FROM; the env file is $ENV_FILE now (the drop-ins name it)"
  fi
}

# --- env content --------------------------------------------------------------------------

# Reads the rest of stdin into the run dir and checks it is a whole file the program sent.
receive_env() {
  local file=$RUN_DIR/received.env
  cat >"$file"
  [ -s "$file" ] || fail_untouched - env-file "received an empty env file"
  [ "$(tail -c 1 -- "$file" | od -An -c | tr -d ' ')" = '\n' ] ||
    fail_untouched - env-file "env file does not end with a newline (truncated transfer?)"
  strip_end_marker "$file"
  if grep -v -E -e '^#' -e "^[A-Za-z_][A-Za-z0-9_]*='[^'\\\\]*'\$" -- "$file" >/dev/null; then
    fail_untouched - env-file "env file has a line that is not KEY='value' (the program never sends one; refusing)"
  fi
  grep -q -E "^SECRET_KEY='.+'\$" -- "$file" || fail_untouched - env-file "env file has no SECRET_KEY"
}

# The program ends every env file it sends with `# pms-secrets-end sha256=<sha256 of the file>`:
# without it a transfer cut at a line end would look whole (and lose the keys after the cut).
# Required whenever an env file is sent; checked and stripped before anything else reads it.
strip_end_marker() { # file
  local last sum
  last=$(tail -n 1 -- "$1")
  [ "${last#"$END_MARKER"}" != "$last" ] ||
    fail_untouched - env-file "the env file arrived without its end marker line (a transfer cut short, or a program older than this script); nothing was read from it. Fix: run pulumi up again (the program sends the marker)"
  sum=$(head -n -1 -- "$1" | sha256sum | cut -c 1-64)
  [ "$sum" = "${last#"$END_MARKER"}" ] || fail_untouched - env-file "env file does not match its end marker (truncated or damaged transfer); run pulumi up again"
  head -n -1 -- "$1" >"$1.tmp" && mv -f -- "$1.tmp" "$1"
}

# Keys and values of an env file of ours (every line KEY='value'), their hash, and the values to
# redact. Run on the received file, then on the composed one (with the carried keys).
load_delivered() { # file
  local line key value
  declare -g -A DELIVERED_SET=()
  while IFS= read -r line; do
    case $line in '#'* | '') continue ;; esac
    key=${line%%=*}; value=${line#*=\'}; value=${value%\'}
    DELIVERED_SET[$key]=$value
    if is_redacted_key "$key"; then add_redactions "$value"; fi
  done <"$1"
  mapfile -t DELIVERED_KEYS < <(printf '%s\n' "${!DELIVERED_SET[@]}" | LC_ALL=C sort)
  DELIVERED_HASH=$(for key in "${DELIVERED_KEYS[@]}"; do printf '%s=%s\n' "$key" "${DELIVERED_SET[$key]}"; done | sha256sum | cut -c 1-64)
}

is_redacted_key() { # key
  local k
  for k in "${REDACT_KEYS[@]+"${REDACT_KEYS[@]}"}"; do [ "$k" != "$1" ] || return 0; done
  return 1
}

# The key of one line of a hand-written env file as systemd reads it, or nothing.
line_key() { # line
  local l=$1
  l=${l#"${l%%[![:space:]]*}"}
  case $l in '#'* | ';'* | '') return 0 ;; esac
  l=${l#export }
  case $l in *=*) ;; *) return 0 ;; esac
  l=${l%%=*}
  l=${l%"${l##*[![:space:]]}"}
  [[ $l =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && printf '%s' "$l"
}

# The value of one line of a hand-written file when bash, systemd, python-dotenv and
# django-environ all read it the same: unquoted without blanks, or wholly inside one pair of
# quotes; never a quote, backslash, $ or backtick inside (each reads those differently).
line_value() { # line
  local v=${1#*=}
  v=${v#"${v%%[![:space:]]*}"}
  v=${v%"${v##*[![:space:]]}"}
  case $v in
    \'*\' | \"*\") v=${v:1:${#v}-2} ;;
    *[[:space:]]*) return 1 ;;
  esac
  case $v in *[\'\"\\\$\`]*) return 1 ;; esac
  printf '%s' "$v"
}

# Reads the current env file (if any) into the run dir, links it for the rollback, finds the keys
# the config does not manage and composes the final file by the unmanaged-keys policy.
compose_env() {
  local rc=0 line key value final=$RUN_DIR/final.env carried=()
  declare -A seen=()
  open_regular "$ENV_NAME" "the env file" || rc=$?
  [ "$rc" != 2 ] || fail_untouched - env-file "$REFUSAL"
  cp -- "$RUN_DIR/received.env" "$final"
  [ "$rc" = 0 ] || return 0
  HAD_PREVIOUS=1
  PREVIOUS_ID=$(stat -L -c '%d:%i' "/dev/fd/$SAFE_FD")
  cat <&"$SAFE_FD" >"$RUN_DIR/previous.env"
  exec {SAFE_FD}<&-
  while IFS= read -r line || [ -n "$line" ]; do
    key=$(line_key "$line")
    [ -n "$key" ] || continue
    if [[ -v DELIVERED_SET[$key] ]]; then
      if is_redacted_key "$key" && value=$(line_value "$line"); then add_redactions "$value"; fi
      continue
    fi
    value=$(line_value "$line") || fail_untouched - unmanaged-keys "$key in $ENV_FILE has a value that cannot be carried over exactly (a quote, backslash, \$, backtick, blank or line break in it); add $key to the stack config"
    add_redactions "$value"
    # Written in our one form, which systemd reads (it ignores `export` lines) as bash did.
    carried+=("$key='$value'")
    if [[ ! -v seen[$key] ]]; then seen[$key]=1; UNMANAGED_KEYS+=("$key"); fi
  done <"$RUN_DIR/previous.env"
  [ "${#UNMANAGED_KEYS[@]}" -gt 0 ] || return 0
  local names
  names=$(printf '%s, ' "${UNMANAGED_KEYS[@]}"); names=${names%, }
  case $UNMANAGED in
    refuse)
      fail_untouched - unmanaged-keys "$ENV_FILE has keys the config does not manage: $names. Fix: add them to the stack config (env or secrets), or set app.unmanagedKeys to keep (carried over on the host, values never leave it) or drop (left out; the old file stays in the root-only backups)" ;;
    keep)
      { printf '# Carried over from the previous file on this host (app.unmanagedKeys: keep); not managed by pms-secrets.\n'
        printf '%s\n' "${carried[@]}"; } >>"$final"
      log "env: carried over from the host's file (unmanagedKeys=keep): $names" ;;
    drop)
      log "env: left out (unmanagedKeys=drop; kept in the backup): $names" ;;
  esac
}

# --- SECRET_KEY_FALLBACKS (issue 10) --------------------------------------------------------
# The host keeps the previous keys itself. When the delivered SECRET_KEY differs from the one in
# the host's current file (a rotation, or the first deploy onto a hand-written file: adoption),
# the old key goes first into SECRET_KEY_FALLBACKS, newest first, at most --secret-key-fallbacks
# (0 retires them all). Why on the host: the old key never travels or lands in state or the
# secret store, nobody types it, and a re-run without a keeper change computes the same list from
# the same file, so the file and the proof stay equal and nothing restarts. --emergency keeps none.

# The list is the host's to compose: a delivered one is refused, a host one is never "unmanaged".
claim_secret_key_fallbacks() {
  if [[ -v DELIVERED_SET[SECRET_KEY_FALLBACKS] ]]; then
    fail_untouched - secret-key-fallbacks "the delivered env file sets SECRET_KEY_FALLBACKS; the host keeps that list itself (remove it from the stack config; set secretKeyFallbacks instead)"
  fi
  DELIVERED_SET[SECRET_KEY_FALLBACKS]=""
}

# Adds the SECRET_KEY_FALLBACKS line to final.env, right after SECRET_KEY (bash builtins only:
# no key in any argv).
compose_secret_key_fallbacks() {
  local line key value current="" listed="" limit=$SK_FALLBACKS new=${DELIVERED_SET[SECRET_KEY]}
  local candidates=() kept=() listed_keys=() skipped=0 joined tmp=$RUN_DIR/final.env.tmp
  declare -A seen=()
  if [ "$HAD_PREVIOUS" = 1 ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      key=$(line_key "$line")
      case $key in
        SECRET_KEY)
          if value=$(line_value "$line") || value=$(running_value SECRET_KEY); then current=$value; else current=""; skipped=$((skipped + 1)); fi ;;
        SECRET_KEY_FALLBACKS) if value=$(line_value "$line"); then listed=$value; else listed=""; skipped=$((skipped + 1)); fi ;;
      esac
    done <"$RUN_DIR/previous.env"
  elif value=$(running_value SECRET_KEY); then
    # No env file at this path yet, but the app runs with a key from elsewhere (a unit's own
    # EnvironmentFile=, a hand-written file at an earlier path such as the app directory): that is
    # the key its users' sessions are signed with, so it is adopted like a previous file's.
    current=$value
  fi
  if [ "$EMERGENCY" = 1 ]; then limit=0; fi
  if [ "$SK_ACCEPT" = 1 ] && [ "$current" != "$new" ]; then
    add_redactions "$current"
    secret_key_accept_only "$current"
    # The delivered key is accepted first; the host's current key stays SECRET_KEY, so it is no fallback.
    kept+=("$new"); seen[$new]=1; limit=$((limit + 1)); new=$current
  elif [ -n "$current" ] && [ "$current" != "$new" ]; then candidates+=("$current"); fi
  IFS=, read -r -a listed_keys <<<"$listed"
  candidates+=("${listed_keys[@]+"${listed_keys[@]}"}")
  for value in "${candidates[@]+"${candidates[@]}"}"; do
    add_redactions "$value"
    value=${value#"${value%%[![:space:]]*}"}
    value=${value%"${value##*[![:space:]]}"}
    if [ -z "$value" ] || [ "$value" = "$new" ] || [[ -v seen[$value] ]]; then continue; fi
    seen[$value]=1
    if [ "${#kept[@]}" -lt "$limit" ]; then kept+=("$value"); fi
  done
  if [ "$skipped" -gt 0 ]; then
    log "secret key: a SECRET_KEY or SECRET_KEY_FALLBACKS value in $ENV_FILE cannot be read exactly (a quote, backslash, \$, backtick or blank) and the running app's value was not usable either: not kept as a fallback"
  fi
  if [ "${#kept[@]}" -gt 0 ]; then
    joined=$(IFS=,; printf '%s' "${kept[*]}")
    while IFS= read -r line; do
      printf '%s\n' "$line"
      if [ "${line%%=*}" = SECRET_KEY ]; then printf "SECRET_KEY_FALLBACKS='%s'\n" "$joined"; fi
    done <"$RUN_DIR/final.env" >"$tmp"
    mv -f -- "$tmp" "$RUN_DIR/final.env"
  fi
  if [ "$SK_ACCEPT" = 1 ] && [ "$current" = "$new" ] && [ "${DELIVERED_SET[SECRET_KEY]}" != "$new" ]; then
    log "secret key: accept (phase 1 of 2): the delivered key is accepted (first in SECRET_KEY_FALLBACKS, ${#kept[@]} listed); this host still signs with its current key until phase 2"
  elif [ -n "$current" ] && [ "$current" != "$new" ] && [ "$EMERGENCY" = 1 ]; then
    SK_CHANGED=1
    log "secret key: EMERGENCY (--emergency): no fallback kept; the old key is rejected as soon as the services restart, and backups holding it are deleted once the new env is proven"
  elif [ -n "$current" ] && [ "$current" != "$new" ]; then
    SK_CHANGED=1
    log "secret key: changes; the host's previous key is kept as a fallback (${#kept[@]} kept, at most $limit)"
  else
    log "secret key: unchanged; ${#kept[@]} fallback(s) kept (at most $limit)"
  fi
}

# --secret-key-accept (phase 1, issue 20): final.env keeps the host's current SECRET_KEY, so the
# host goes on signing with it while it starts accepting the delivered one (the caller lists that
# one first in SECRET_KEY_FALLBACKS). Phase 2 (the same env without the flag) then finds the
# current key differing from the delivered one and keeps it as a fallback as usual, so the
# delivered key moves from the list to SECRET_KEY. A host with no current key it can write back
# (a new host, or a hand-written value the parsers read differently and no running app) has
# nothing to keep signing with: it changes nothing and phase 2 installs the env.
secret_key_accept_only() { # current-key
  local line tmp=$RUN_DIR/final.env.tmp
  if [ -z "$1" ]; then
    log "secret key: accept (phase 1 of 2): no current SECRET_KEY on this host to keep signing with; nothing changed, phase 2 installs the env"
    exit 0
  fi
  while IFS= read -r line; do
    if [ "${line%%=*}" = SECRET_KEY ]; then printf "SECRET_KEY='%s'\n" "$1"; else printf '%s\n' "$line"; fi
  done <"$RUN_DIR/final.env" >"$tmp"
  mv -f -- "$tmp" "$RUN_DIR/final.env"
}

# An emergency's proof of closure, timed (issue 20): once every process of the first service holds
# the new env, none accepts the old key; the program reads this line into secretKeyEmergency.
note_old_key_rejected() { # service
  if [ "$EMERGENCY" = 1 ] && [ "${SK_CHANGED:-0}" = 1 ] && [ "$1" = "${SERVICES[0]}" ]; then
    log "secret key: the old key is rejected by $1 since $(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) (emergency)"
  fi
}

# A hand-written value the file parsers read differently (typically a `$` in a key made by
# Django's get_random_secret_key) is taken from where it matters: the environment of the first
# service's running main process, i.e. the key the users' sessions were signed with. Only a value
# this script can write back exactly (no quote, backslash, comma, `${`, leading `$`, control char).
running_value() { # key
  local pid entry value=""
  [ "$(unit_prop "${SERVICES[0]}" ActiveState)" = active ] || return 1
  pid=$(unit_prop "${SERVICES[0]}" MainPID)
  if [ -z "$pid" ] || [ "$pid" = 0 ]; then return 1; fi
  while IFS= read -r -d '' entry; do
    if [ "${entry%%=*}" = "$1" ]; then value=${entry#*=}; break; fi
  done <"/proc/$pid/environ" || return 1
  [ -n "$value" ] || return 1
  case $value in *[\'\\,]* | *\$\{* | \$*) return 1 ;; esac
  [[ ! $value =~ [[:cntrl:]] ]] || return 1
  printf '%s' "$value"
}

# The proof covers the list too: with none kept, a process that still holds SECRET_KEY_FALLBACKS
# (not restarted, or an override) must not pass, so the key is hashed as "absent".
prove_secret_key_fallbacks() {
  local key
  [[ ! -v DELIVERED_SET[SECRET_KEY_FALLBACKS] ]] || return 0
  DELIVERED_SET[SECRET_KEY_FALLBACKS]=""
  mapfile -t DELIVERED_KEYS < <(printf '%s\n' "${!DELIVERED_SET[@]}" | LC_ALL=C sort)
  DELIVERED_HASH=$(for key in "${DELIVERED_KEYS[@]}"; do
    if [ "$key" = SECRET_KEY_FALLBACKS ]; then printf '%s\n' "$key"; else printf '%s=%s\n' "$key" "${DELIVERED_SET[$key]}"; fi
  done | sha256sum | cut -c 1-64)
}

# --- DB_PASSWORD rotation (issue 10) --------------------------------------------------------
# With --rotate-db-password (the program passes it when DB_PASSWORD is generated) a delivered
# DB_PASSWORD that differs from the host file's is set in PostgreSQL before the env file moves:
# through the local superuser (runuser -u postgres -- psql), SQL on stdin, log_statement off in
# that session, and only a SCRAM-SHA-256 verifier computed here travels to the server, never the
# password. The role's current verifier (pg_authid.rolpassword) is kept in the root-only run dir,
# so a rollback restores it exactly without anyone knowing the old password. "Already changed"
# (several hosts of a run on one database, a re-run) is decided from that stored verifier,
# recomputed from the new password with its salt and iterations, never by a login: where
# pg_hba.conf trusts the connection every password logs in. For the same reason a login proves
# a password only where a deliberately wrong one is refused on the same route; otherwise the run
# fails untouched naming the pg_hba.conf fix. A rollback ends with a database login of the
# restored env (db_rollback_login), whatever the health URL checks.

# Alternating login roles (--db-roles A,B, the zero-downtime option): both roles are LOGIN
# members of the role that owns the schema. The host writes DB_USER itself: a DB_PASSWORD change
# goes to the role its running app does NOT use (the first one when DB_USER is neither), and
# DB_USER points at it. The role in use keeps its password, so processes not yet restarted keep
# opening connections: no request fails between the change and the restart. A re-run without a
# keeper change keeps the current role, so the composed file equals the host's and nothing moves.

check_db_roles_arg() {
  [ -z "$DB_FOLLOW" ] || [ "$DB_ROTATE" = 1 ] || usage_error "--db-follow needs --rotate-db-password"
  [ "${#DB_ROLES[@]}" -gt 0 ] || return 0
  [ "$DB_ROTATE" = 1 ] || usage_error "--db-roles needs --rotate-db-password"
  if [ "${#DB_ROLES[@]}" != 2 ] || [[ ! ${DB_ROLES[0]} =~ ^[a-z_][a-z0-9_]*$ ]] || [[ ! ${DB_ROLES[1]} =~ ^[a-z_][a-z0-9_]*$ ]] ||
    [ "${DB_ROLES[0]}" = "${DB_ROLES[1]}" ]; then
    usage_error "--db-roles must be two different plain role names, A,B"
  fi
}

# DB_USER is the host's to write: a delivered one is refused, the host file's is never "unmanaged".
claim_db_user() {
  [ "${#DB_ROLES[@]}" -gt 0 ] || return 0
  if [[ -v DELIVERED_SET[DB_USER] ]]; then
    fail_untouched - db-password "the delivered env file sets DB_USER, but with --db-roles the host writes it (remove env.DB_USER from the stack config)"
  fi
  DELIVERED_SET[DB_USER]=""
}

# Adds DB_USER='<role>' to final.env, right after DB_PASSWORD, and decides whether that role's
# password must be set in PostgreSQL (DB_SWITCH).
compose_db_user() {
  local line key value current="" old="" new target tmp=$RUN_DIR/final.env.tmp
  [ "${#DB_ROLES[@]}" -gt 0 ] || return 0
  new=${DELIVERED_SET[DB_PASSWORD]-}
  [ -n "$new" ] || fail_untouched - db-password "--rotate-db-password needs DB_PASSWORD in the delivered env file"
  if [ "$HAD_PREVIOUS" = 1 ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      key=$(line_key "$line")
      case $key in
        DB_USER) current=$(line_value "$line") || current="" ;;
        DB_PASSWORD) old=$(line_value "$line") || old="" ;;
      esac
    done <"$RUN_DIR/previous.env"
  fi
  if [ "$current" = "${DB_ROLES[0]}" ] || [ "$current" = "${DB_ROLES[1]}" ]; then
    if [ "$old" = "$new" ]; then
      target=$current
      log "db roles: DB_PASSWORD unchanged; the app stays on $current"
    else
      if [ "$current" = "${DB_ROLES[0]}" ]; then target=${DB_ROLES[1]}; else target=${DB_ROLES[0]}; fi
      DB_SWITCH=1
      DB_PREV_ROLE=$current
      log "db roles: DB_PASSWORD changes; it goes to $target, the role the app does not use ($current keeps its password until the next rotation)"
    fi
  else
    target=${DB_ROLES[0]}
    DB_SWITCH=1
    log "db roles: the host's DB_USER is ${current:-not set}, neither of ${DB_ROLES[0]}, ${DB_ROLES[1]}: moving to $target${current:+ ($current keeps its password)}"
  fi
  if [ -n "$DB_FOLLOW" ] && [ "$DB_SWITCH" = 1 ]; then
    follow_db_role "$target"
    target=$DB_ROLE
    log "db roles: following $DB_FOLLOW (the database's admin host): the new password logs in as $target, so the app moves to $target; no change in PostgreSQL from this host"
  fi
  if grep -q "^DB_PASSWORD=" -- "$RUN_DIR/final.env"; then
    while IFS= read -r line; do
      printf '%s\n' "$line"
      if [ "${line%%=*}" = DB_PASSWORD ]; then printf "DB_USER='%s'\n" "$target"; fi
    done <"$RUN_DIR/final.env" >"$tmp"
    mv -f -- "$tmp" "$RUN_DIR/final.env"
  fi
}

# Shared database (--db-follow ADMIN): the admin host changed the password earlier in this run, so
# this host only proves it. Tries the role $1, then each --db-roles role: DB_ROLE is the first the
# new password logs in as over TCP; none fails untouched, naming the admin host's step.
follow_db_role() { # role
  local role new=${DELIVERED_SET[DB_PASSWORD]-} esc
  [ -n "$new" ] || fail_untouched - db-password "--rotate-db-password needs DB_PASSWORD in the delivered env file"
  DB_HOST_=${DELIVERED_SET[DB_HOST]-}; DB_PORT_=${DELIVERED_SET[DB_PORT]:-5432}; DB_NAME_=${DELIVERED_SET[DB_NAME]-}
  is_count "$DB_PORT_" 1 65535 || fail_untouched - db-password "DB_PORT '$DB_PORT_' is not a port number"
  command -v psql >/dev/null || fail_untouched - db-password "psql is needed on this host to prove the new DB_PASSWORD logs in before the env file moves"
  esc=${new//\\/\\\\}
  esc=${esc//:/\\:}
  printf '*:*:*:*:%s\n' "$esc" >"$RUN_DIR/db-new.pgpass"
  chmod 0600 -- "$RUN_DIR/db-new.pgpass"
  for role in "$1" "${DB_ROLES[@]}"; do
    DB_ROLE=$role
    if [ -n "$role" ] && db_login_works "$RUN_DIR/db-new.pgpass"; then
      db_wrong_password_refused ||
        fail_untouched - db-password "$(db_trust_refusal "on $DB_FOLLOW (the database's admin host)")"
      return 0
    fi
  done
  DB_ROLE=""
  local as=${1:-DB_USER}
  [ "${#DB_ROLES[@]}" = 0 ] || as="${DB_ROLES[0]} nor as ${DB_ROLES[1]}"
  fail_untouched - db-password "the new DB_PASSWORD does not log in to $DB_HOST_:$DB_PORT_ as $as; the database's admin host $DB_FOLLOW changes it first in this run. Fix: check that the rollout of $DB_FOLLOW succeeded (its db password step) and that PostgreSQL there accepts this host (listen_addresses, a pg_hba.conf host line with scram-sha-256), then run again"
}

# Whether DB_HOST is an address of this host (a shared database's admin host names itself by the
# address the other hosts use).
db_host_is_here() {
  local here there
  here=$(ip -o addr show 2>/dev/null | awk '{ sub("/.*", "", $4); print $4 }') || return 1
  there=$(timeout 10 getent ahosts "$DB_HOST_" 2>/dev/null | awk '{ print $1 }' | sort -u) || return 1
  [ -n "$here" ] && [ -n "$there" ] && grep -qxF -f <(printf '%s\n' "$there") <<<"$here"
}

# Computes a SCRAM-SHA-256 verifier (RFC 5802/7677, PostgreSQL's stored form) of the password on
# stdin. The code is on argv, the password never is. `scram_verifier random`: of a random password
# made inside python and forgotten there (a role closed for good, see close_previous_db_role).
scram_verifier() { # [random]
  python3 -c '
import base64, hashlib, hmac, os, sys
p = os.urandom(32).hex().encode() if sys.argv[1:] == ["random"] else sys.stdin.buffer.read()
salt = os.urandom(16)
n = 4096
salted = hashlib.pbkdf2_hmac("sha256", p, salt, n)
client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
b = lambda x: base64.b64encode(x).decode()
print("SCRAM-SHA-256$%d:%s$%s:%s" % (n, b(salt), b(hashlib.sha256(client).digest()), b(server)))
' "$@"
}

# The local superuser's psql, SQL on stdin; statements of this session are never logged.
db_admin() {
  { printf "SET log_statement = 'none';\nSET log_min_duration_statement = -1;\nSET log_min_error_statement = 'panic';\n"
    cat; } | timeout 60 runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$DB_PORT_" -d postgres
}

# Whether the password in the pgpass file $1 logs in over TCP as the app does.
db_login_works() { # pgpass-file
  env -u PGPASSWORD PGPASSFILE="$1" PGCONNECT_TIMEOUT=10 timeout 30 \
    psql -X -q -w -At -h "$DB_HOST_" -p "$DB_PORT_" -U "$DB_ROLE" -d "$DB_NAME_" -c 'SELECT 1' >/dev/null 2>&1
}

# A login proves a password only where a wrong one is refused: pg_hba.conf's `trust` (what initdb
# writes for 127.0.0.1 without -A) lets any password in. Tries a deliberately wrong password as
# DB_ROLE over the same route; true when PostgreSQL refuses it.
db_wrong_password_refused() {
  local wrong
  wrong=pms-secrets-wrong-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '*:*:*:*:%s\n' "$wrong" >"$RUN_DIR/db-wrong.pgpass"
  chmod 0600 -- "$RUN_DIR/db-wrong.pgpass"
  ! db_login_works "$RUN_DIR/db-wrong.pgpass"
}

# The refusal when a wrong password logs in (where: whose pg_hba.conf to fix).
db_trust_refusal() { # where
  printf '%s' "PostgreSQL at $DB_HOST_:$DB_PORT_ let $DB_ROLE in with a deliberately wrong password (pg_hba.conf trusts this connection, as initdb writes for 127.0.0.1 without -A), so no login can prove a DB_PASSWORD and an old one may stay valid wherever a password is asked. Fix: $1, in pg_hba.conf (runuser -u postgres -- psql -At -c 'SHOW hba_file') set the method of the line matching host $DB_HOST_ / user $DB_ROLE to scram-sha-256, then runuser -u postgres -- psql -c 'SELECT pg_reload_conf()', and run again"
}

# Whether the stored password $1 of role $2 (pg_authid.rolpassword: a SCRAM-SHA-256 verifier or
# md5) is the one on stdin: the verifier recomputed with its own salt and iterations. Decides
# "already changed" without a login, so a trusting pg_hba.conf cannot fake it. The password reaches
# python only on stdin (after the stored form's line), never argv or the environment.
db_stored_matches() { # stored role < password
  { printf '%s\n' "$1"; cat; } | python3 -c '
import base64, binascii, hashlib, hmac, sys
data = sys.stdin.buffer.read()
stored, _, pw = data.partition(b"\n")
stored = stored.decode("ascii", "replace")
if stored.startswith("md5"):
    ok = hmac.compare_digest(stored[3:], hashlib.md5(pw + sys.argv[1].encode()).hexdigest())
elif stored.startswith("SCRAM-SHA-256$"):
    try:
        head, keys = stored[len("SCRAM-SHA-256$"):].split("$", 1)
        n, salt = head.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        salted = hashlib.pbkdf2_hmac("sha256", pw, base64.b64decode(salt, validate=True), int(n))
    except (ValueError, binascii.Error):
        sys.exit(2)
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    ok = hmac.compare_digest(hashlib.sha256(client).digest(), base64.b64decode(stored_key)) and hmac.compare_digest(
        server, base64.b64decode(server_key)
    )
else:
    sys.exit(1)
sys.exit(0 if ok else 1)
' "$2"
}

# Sets DB_STORED to the stored password of role $1 (through the local superuser); fails untouched
# when unreadable. (Not a command substitution: its refusal must end the worker itself.)
db_stored_password() { # role
  local out
  out=$(printf "SELECT 'v:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '%s';\n" "$1" | db_admin 2>&1) ||
    fail_untouched - db-password "cannot read the role $1 through the local postgres superuser: $(redact "${out##*$'\n'}")"
  case $out in
    v:*) ;;
    *) fail_untouched - db-password "PostgreSQL has no role $1 (DB_USER)" ;;
  esac
  [[ $out != *\'* ]] || fail_untouched - db-password "the stored password of $1 has an unexpected form"
  DB_STORED=${out#v:}
}

# The value of KEY in the host's previous env file ("" when absent or not exactly readable).
previous_value() { # key
  local line value=""
  [ "$HAD_PREVIOUS" = 1 ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    if [ "$(line_key "$line")" = "$1" ]; then value=$(line_value "$line") || value=""; fi
  done <"$RUN_DIR/previous.env"
  printf '%s' "$value"
}

rotate_db_password() {
  local new old="" line key verifier out stored
  [ "$DB_ROTATE" = 1 ] || return 0
  new=${DELIVERED_SET[DB_PASSWORD]-}
  [ -n "$new" ] || fail_untouched - db-password "--rotate-db-password needs DB_PASSWORD in the delivered env file"
  if [ "${#DB_ROLES[@]}" -gt 0 ]; then
    # compose_db_user decided: the role DB_USER now names gets the password, or nothing changes.
    [ "$DB_SWITCH" = 1 ] || return 0
  else
    if [ "$HAD_PREVIOUS" = 1 ]; then
      while IFS= read -r line || [ -n "$line" ]; do
        key=$(line_key "$line")
        if [ "$key" = DB_PASSWORD ]; then old=$(line_value "$line") || old=""; fi
      done <"$RUN_DIR/previous.env"
    fi
    if [ "$old" = "$new" ]; then return 0; fi
  fi
  if [ -n "$DB_FOLLOW" ]; then
    # A follower never changes PostgreSQL (compose_db_user already proved an alternating role).
    [ "${#DB_ROLES[@]}" -gt 0 ] || follow_db_role "${DELIVERED_SET[DB_USER]-}"
    DB_FOLLOWED=1
    log "db password: following $DB_FOLLOW (the database's admin host): the new password logs in to $DB_HOST_:$DB_PORT_ as $DB_ROLE; no change in PostgreSQL from this host (a wrong password is refused on that route, so the login proves it)"
    return 0
  fi
  DB_ROLE=${DELIVERED_SET[DB_USER]-}; DB_HOST_=${DELIVERED_SET[DB_HOST]-}
  DB_PORT_=${DELIVERED_SET[DB_PORT]:-5432}; DB_NAME_=${DELIVERED_SET[DB_NAME]-}
  [[ $DB_ROLE =~ ^[a-z_][a-z0-9_]*$ ]] ||
    fail_untouched - db-password "DB_USER '$DB_ROLE' is not a plain lower-case role name; Fix: use such a role or supply DB_PASSWORD (secrets.DB_PASSWORD) and change it in PostgreSQL yourself"
  case $DB_HOST_ in
    127.0.0.1 | localhost | ::1) ;;
    *) db_host_is_here || fail_untouched - db-password "DB_HOST '$DB_HOST_' is not this host: the password is changed through the local postgres superuser. Fix: run the rotation on the database host (generated.DB_PASSWORD.adminHost names it), or supply DB_PASSWORD (secrets.DB_PASSWORD) and change it in PostgreSQL yourself" ;;
  esac
  is_count "$DB_PORT_" 1 65535 || fail_untouched - db-password "DB_PORT '$DB_PORT_' is not a port number"
  local LC_ALL=C
  [[ $new =~ ^[[:graph:]]+$ ]] || fail_untouched - db-password "the new DB_PASSWORD has characters other than printable ASCII (a SCRAM verifier would not match PostgreSQL's SASLprep)"
  if ! command -v psql >/dev/null || ! command -v python3 >/dev/null || ! id -u postgres >/dev/null 2>&1; then
    fail_untouched - db-password "psql, python3 and the postgres user are needed on this host to change DB_PASSWORD in PostgreSQL"
  fi
  # pgpass: backslash and colon escaped; written by builtins (no password in argv).
  local esc=${new//\\/\\\\}
  esc=${esc//:/\\:}
  printf '*:*:*:*:%s\n' "$esc" >"$RUN_DIR/db-new.pgpass"
  chmod 0600 -- "$RUN_DIR/db-new.pgpass"
  # "Already changed" (an earlier host of this run, or a re-run) is decided from the stored
  # verifier, never by a login: where pg_hba.conf trusts the connection every password logs in.
  db_stored_password "$DB_ROLE"
  stored=$DB_STORED
  if printf '%s' "$new" | db_stored_matches "$stored" "$DB_ROLE"; then
    log "db password: $DB_ROLE@$DB_HOST_:$DB_PORT_ already accepts the new password (its stored verifier matches it, checked without a login: changed by an earlier host of this run); no change in PostgreSQL"
    return 0
  fi
  # The proof after the change is a login; it proves something only where a wrong password fails.
  db_wrong_password_refused || fail_untouched - db-password "$(db_trust_refusal "on this host")"
  printf '%s' "$stored" >"$RUN_DIR/db-old.verifier"
  verifier=$(printf '%s' "$new" | scram_verifier) || fail_untouched - db-password "python3 could not compute the SCRAM-SHA-256 verifier"
  CHANGED=1
  DB_ALTERED=1
  out=$(printf "ALTER ROLE %s PASSWORD '%s';\n" "$DB_ROLE" "$verifier" | db_admin 2>&1) ||
    fail_rolled_back - db-password "ALTER ROLE $DB_ROLE failed: $(redact "${out##*$'\n'}")"
  db_login_works "$RUN_DIR/db-new.pgpass" ||
    fail_rolled_back - db-password "the new password does not log in to $DB_HOST_:$DB_PORT_ as $DB_ROLE (pg_hba.conf? password_encryption?)"
  db_wrong_password_refused || fail_rolled_back - db-password "$(db_trust_refusal "on this host")"
  if [ -n "$old" ]; then
    printf '*:*:*:*:%s\n' "$(pgpass_escape "$old")" >"$RUN_DIR/db-old.pgpass"
    ! db_login_works "$RUN_DIR/db-old.pgpass" ||
      fail_rolled_back - db-password "the previous DB_PASSWORD still logs in to $DB_HOST_:$DB_PORT_ as $DB_ROLE after ALTER ROLE (another pg_hba.conf line or role?)"
  fi
  log "db password: changed for $DB_ROLE in PostgreSQL (SCRAM-SHA-256 verifier, statement not logged) and proven by a login to $DB_HOST_:$DB_PORT_ (a wrong password refused there${old:+, the previous one too}); the previous verifier is kept for a rollback"
}

# A password as a pgpass field: backslash and colon escaped (builtins only, no argv).
pgpass_escape() { # value
  local v=${1//\\/\\\\}
  printf '%s' "${v//:/\\:}"
}

# Puts the role's previous verifier back (rollback). Prints nothing on stdout. On failure the
# verifier is kept in the state dir (root-only; the run dir is removed) and it returns 1.
restore_db_password() {
  local old sql
  [ "$DB_ALTERED" = 1 ] || return 0
  if old=$(cat -- "$RUN_DIR/db-old.verifier"); then
    if [ -z "$old" ]; then sql="ALTER ROLE $DB_ROLE PASSWORD NULL;"; else sql="ALTER ROLE $DB_ROLE PASSWORD '$old';"; fi
    if printf '%s\n' "$sql" | db_admin >/dev/null 2>&1 &&
      [ "$(printf "SELECT 'v:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '%s';\n" "$DB_ROLE" | db_admin 2>/dev/null)" = "v:$old" ]; then
      DB_ALTERED=0
      log "rollback: PostgreSQL role $DB_ROLE has its previous password again (verifier restored)"
      return 0
    fi
  fi
  cp -- "$RUN_DIR/db-old.verifier" "$STATE_DIR/db-old-verifier.$DB_ROLE" 2>/dev/null
  return 1
}

# Emergency with alternating roles (--emergency): moving the app to the other role is not enough,
# the leaked password still opens the role it used. Once every service runs proven on the new
# role (and the backups are purged), that role gets a random password made and forgotten inside
# python (stored nowhere, known to nobody) and its open sessions are ended. Not NOLOGIN: the next
# routine rotation moves the app back to this role and only sets its password, which a NOLOGIN
# role would still refuse. Proven: the previous DB_PASSWORD no longer logs in as that role. A
# failure here keeps the new env (rolling back would bring the leaked password back), fails the
# run and leaves $DB_CLOSE_PENDING naming the role, so the next run closes it even when it finds
# everything else in place (close_pending_db_role).
close_previous_db_role() {
  [ "$EMERGENCY" = 1 ] && [ "$DB_ALTERED" = 1 ] && [ -n "$DB_PREV_ROLE" ] && [ "$DB_PREV_ROLE" != "$DB_ROLE" ] || return 0
  close_db_role "$DB_PREV_ROLE" "$(previous_value DB_PASSWORD)"
}

# The no-op path: a role an earlier emergency run could not close.
close_pending_db_role() {
  local role
  [ -f "$DB_CLOSE_PENDING" ] && [ "$DB_ROTATE" = 1 ] && [ -z "$DB_FOLLOW" ] || return 0
  role=$(head -n 1 -- "$DB_CLOSE_PENDING")
  [[ $role =~ ^[a-z_][a-z0-9_]*$ ]] || { rm -f -- "$DB_CLOSE_PENDING"; return 0; }
  DB_HOST_=${DELIVERED_SET[DB_HOST]-}; DB_PORT_=${DELIVERED_SET[DB_PORT]:-5432}; DB_NAME_=${DELIVERED_SET[DB_NAME]-}
  DB_ROLE=${DELIVERED_SET[DB_USER]-}
  if [ "$role" = "$DB_ROLE" ]; then
    rm -f -- "$DB_CLOSE_PENDING" # the app runs on it again: a later rotation gave it a new password
    return 0
  fi
  log "db password: $role was left open by an earlier emergency run ($DB_CLOSE_PENDING); closing it now"
  close_db_role "$role" ""
}

close_db_role() { # role previous-password
  local role=$1 old=$2 verifier out before after fix
  fix="the new env is in place and proven on $DB_ROLE, but $role may still accept the previous DB_PASSWORD; the next run tries again. Fix: give $role a password nobody keeps and end its sessions as docs/RUNBOOK.md section 4 step 3 shows (as root on the database host)"
  # From here a failure keeps the new env (CHANGED=0: no rollback): the previous one holds the leak.
  CHANGED=0
  printf '%s\n' "$role" >"$DB_CLOSE_PENDING"
  before=$(printf "SELECT 'v:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '%s';\n" "$role" | db_admin 2>/dev/null) || before=""
  verifier=$(scram_verifier random) || { failed_line - db-emergency "python3 could not compute a verifier" "$fix"; exit 1; }
  out=$({ printf "ALTER ROLE %s PASSWORD '%s';\n" "$role" "$verifier"
    printf "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '%s' AND pid <> pg_backend_pid();\n" "$role"; } |
    db_admin 2>&1) || { failed_line - db-emergency "ALTER ROLE $role failed: $(redact "${out##*$'\n'}")" "$fix"; exit 1; }
  after=$(printf "SELECT 'v:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '%s';\n" "$role" | db_admin 2>/dev/null) || after=""
  if [ "$after" != "v:$verifier" ] || [ "$after" = "$before" ]; then
    failed_line - db-emergency "PostgreSQL does not hold the new verifier for $role after ALTER ROLE" "$fix"
    exit 1
  fi
  if [ -n "$old" ]; then
    printf '*:*:*:*:%s\n' "$(pgpass_escape "$old")" >"$RUN_DIR/db-old.pgpass"
    if DB_ROLE=$role db_login_works "$RUN_DIR/db-old.pgpass"; then
      failed_line - db-emergency "the previous DB_PASSWORD still logs in to $DB_HOST_:$DB_PORT_ as $role after ALTER ROLE" "$fix"
      exit 1
    fi
  fi
  rm -f -- "$DB_CLOSE_PENDING"
  log "db password: EMERGENCY (--emergency): $role, the role the app used before, got a random password nobody knows (stored nowhere) and its ${out:-0} open session(s) were ended${old:+; the previous DB_PASSWORD is refused for it}. The next routine rotation gives it a new password and moves the app back to it"
}

# Shared database, single role: once this follower moved, PostgreSQL no longer accepts the
# previous DB_PASSWORD (the admin host changed it), so a rollback that restored it would leave the
# app unable to connect. The rollback restores the previous env with the new DB_PASSWORD instead
# (the root-only backup keeps the previous file as it was). The same with alternating roles in an
# emergency, with the new DB_USER: the admin host closed the previous role.
db_follower_rollback_env() {
  local line key written=0 new=${DELIVERED_SET[DB_PASSWORD]-} user=""
  [ "$DB_FOLLOWED" = 1 ] && [ "$ENV_INSTALLED" = 1 ] && [ "$HAD_PREVIOUS" = 1 ] || return 0
  if [ "${#DB_ROLES[@]}" -gt 0 ]; then
    [ "$EMERGENCY" = 1 ] || return 0
    user=$DB_ROLE
  fi
  cp -p -- ./previous ./previous.db || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    key=$(line_key "$line")
    if [ "$key" = DB_PASSWORD ] || { [ -n "$user" ] && [ "$key" = DB_USER ]; }; then
      if [ "$written" = 0 ]; then
        printf "DB_PASSWORD='%s'\n" "$new"
        if [ -n "$user" ]; then printf "DB_USER='%s'\n" "$user"; fi
      fi
      written=1
    else
      printf '%s\n' "$line"
    fi
  done <"$RUN_DIR/previous.env" >./previous.db || return 1
  if [ "$written" = 0 ]; then
    printf "DB_PASSWORD='%s'\n" "$new" >>./previous.db
    if [ -n "$user" ]; then printf "DB_USER='%s'\n" "$user" >>./previous.db; fi
  fi
  mv -f -T -- ./previous.db ./previous || return 1
  DB_ROLLBACK_NOTE=" (with the new DB_PASSWORD${user:+ and DB_USER $user} from $DB_FOLLOW: PostgreSQL no longer accepts the previous one)"
  # Units not restarted yet hold the dead password too: the rollback restarts every running unit.
  local svc
  RESTARTED=()
  for svc in "${SERVICES[@]}"; do
    if [ "${ACTION[$svc]}" = restart ]; then RESTARTED+=("$svc"); fi
  done
  log "rollback: the previous env goes back with the new DB_PASSWORD, which $DB_FOLLOW set in the shared database"
}

# The database-backed check of a rollback: the restored env's DB_USER and DB_PASSWORD log in to its
# DB_HOST over TCP, as the app connects (a health URL need not touch the database). Prints the
# problem, if any.
db_rollback_login() {
  local file=../$ENV_NAME line key user="" password="" host="" port=5432 name=""
  [ "$DB_ROTATE" = 1 ] && [ "$HAD_PREVIOUS" = 1 ] && [ "$ENV_INSTALLED" = 1 ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    key=$(line_key "$line")
    case $key in
      DB_USER) user=$(line_value "$line") || user="" ;;
      DB_PASSWORD) password=$(line_value "$line") || password="" ;;
      DB_HOST) host=$(line_value "$line") || host="" ;;
      DB_PORT) port=$(line_value "$line") || port=5432 ;;
      DB_NAME) name=$(line_value "$line") || name="" ;;
    esac
  done < <(cat -- "$file" 2>/dev/null)
  if [ -z "$user" ] || [ -z "$password" ] || [ -z "$host" ]; then
    printf '; the restored %s has no DB_USER, DB_PASSWORD or DB_HOST that can be read exactly: the database login was not checked' "$ENV_FILE"
    return 0
  fi
  printf '*:*:*:*:%s\n' "$(pgpass_escape "$password")" >"$RUN_DIR/db-rollback.pgpass"
  if ! DB_ROLE=$user DB_HOST_=$host DB_PORT_=$port DB_NAME_=$name db_login_works "$RUN_DIR/db-rollback.pgpass"; then
    printf '; the restored DB_PASSWORD does not log in to %s:%s as %s (database check after the rollback): the app cannot reach its database. Fix: find the password PostgreSQL has for %s (the rollout log above says who changed it), put it in %s or run the rotation again' "$host" "$port" "$user" "$user" "$ENV_FILE"
    return 0
  fi
  log "rollback: the restored DB_PASSWORD logs in to $host:$port as $user (database check)"
}

# --- the no-op path -----------------------------------------------------------------------

# Everything this rollout establishes is already there and the running processes prove it.
already_in_place() {
  local svc
  [ "$HAD_PREVIOUS" = 1 ] && cmp -s -- "$RUN_DIR/final.env" "$RUN_DIR/previous.env" || return 1
  [ "$(stat -c '%a %U:%G' -- "../$ENV_NAME")" = "$(desired_mode_owner)" ] || return 1
  for svc in "${SERVICES[@]}"; do
    [ "$(cat -- "$(dropin_dir "$svc")/$DROPIN_NAME" 2>/dev/null)" = "$(dropin_content)" ] || return 1
    ours_loads_last "$svc" || return 1
    # An idle socket-activated unit has nothing running to prove; its file and drop-in are what
    # the run that put them there proved.
    if [ "${ACTION[$svc]}" = restart ] && [ -z "${IDLE[$svc]:-}" ]; then
      [ "$(unit_prop "$svc" ActiveState)" = active ] && prove_env "$svc" "$DELIVERED_HASH" >/dev/null || return 1
    fi
  done
}

desired_mode_owner() {
  if [ -n "$GROUP" ]; then printf '640 root:%s' "$GROUP"; else printf '600 root:root'; fi
}

# --- checks before any change -------------------------------------------------------------

# Decides per unit: restart (running, crash-looping or failed) or leave (deliberately stopped).
check_units() {
  local svc load active enabled dir
  for svc in "${SERVICES[@]}"; do
    load=$(unit_prop "$svc" LoadState) || fail_untouched "$svc" unit "systemctl show $svc.service did not answer within ${SYSTEMCTL_TIMEOUT}s"
    [ "$load" = loaded ] || fail_untouched "$svc" unit "systemd has no loaded unit $svc.service (LoadState=$load): is app.services right?"
    dir=$(dropin_dir "$svc")
    if [ -e "$dir" ] || [ -L "$dir" ]; then
      if [ ! -d "$dir" ] || [ -L "$dir" ]; then fail_untouched "$svc" drop-in "$dir is not a directory"; fi
      check_owner_root "$dir" "the drop-in" || fail_untouched "$svc" drop-in "$REFUSAL"
    fi
    active=$(unit_prop "$svc" ActiveState)
    enabled=$(unit_prop "$svc" UnitFileState)
    case $active in
      inactive | deactivating)
        if socket_listening_for "$svc"; then
          # Idle, not stopped: the next connection starts it on whatever env is in place, so the
          # new env is proven now (started through its socket's service like a restart).
          ACTION[$svc]=restart
          IDLE[$svc]=1
          log "unit: $svc is idle ($active) but $SOCKET_FOR listens for it (socket activation): started now, so the new env is checked and proven before the rollout reports success"
        else
          ACTION[$svc]=leave
          log "unit: $svc is stopped ($active, $enabled)${SOCKET_FOR:+ and so is $SOCKET_FOR}: left stopped; it reads the new env when next started"
        fi ;;
      *)
        ACTION[$svc]=restart
        if [ "$enabled" = disabled ]; then log "unit: $svc is disabled but $active: restarted, left disabled"; fi ;;
    esac
  done
  check_socket
  check_login_probe
}

# Whether a socket unit that activates the (inactive) unit is listening: then the unit is idle,
# running on demand, not stopped. Sets SOCKET_FOR to its socket units. A masked unit never counts.
socket_listening_for() { # unit
  local u found=1
  SOCKET_FOR=""
  [ "$(unit_prop "$1" UnitFileState)" != masked ] || return 1
  for u in $(unit_prop "$1" TriggeredBy); do
    case $u in *.socket) ;; *) continue ;; esac
    SOCKET_FOR="$SOCKET_FOR${SOCKET_FOR:+ }$u"
    if [ "$(timeout "$SYSTEMCTL_TIMEOUT" systemctl show -p ActiveState --value -- "$u")" = active ]; then found=0; fi
  done
  return "$found"
}

# --socket: the first service must really be socket-activated by that unit, or its restart
# refuses connections (docs/ZERO-DOWNTIME.md). Checked before any change.
check_socket() {
  local svc=${SERVICES[0]} load active triggered fix="install and enable $SOCKET as docs/ZERO-DOWNTIME.md shows, or remove app.socketUnit"
  [ -n "$SOCKET" ] || return 0
  load=$(socket_prop LoadState) || fail_untouched "$svc" socket "systemctl show $SOCKET did not answer within ${SYSTEMCTL_TIMEOUT}s"
  [ "$load" = loaded ] || fail_untouched "$svc" socket "systemd has no loaded unit $SOCKET (LoadState=$load): $fix"
  active=$(socket_prop ActiveState)
  [ "$active" = active ] || fail_untouched "$svc" socket "$SOCKET is $active, not listening: start it (systemctl enable --now $SOCKET)"
  triggered=$(unit_prop "$svc" TriggeredBy)
  case " $triggered " in
    *" $SOCKET "*) ;;
    *) fail_untouched "$svc" socket "$svc.service is not activated by $SOCKET (its TriggeredBy is ${triggered:-empty}): gunicorn binds its own port and a restart refuses connections; $fix" ;;
  esac
  log "socket: $svc.service is activated by $SOCKET ($(socket_prop Listen | head -n 1)): connections queue during its restart"
}

# The check command runs as the first unit runs: bash, its Environment=, every EnvironmentFile=
# in order with the new file last (in place of ours), User=, Group=, WorkingDirectory=.
run_check() {
  local svc=${SERVICES[0]} v f out rc=0 props=()
  [ -n "$CHECK" ] || return 0
  for f in User Group SupplementaryGroups; do
    v=$(unit_prop "$svc" "$f")
    if [ -n "$v" ]; then props+=(-p "$f=$v"); fi
  done
  v=$(unit_prop "$svc" WorkingDirectory)
  if [ -z "$v" ] || [ "$v" = "!" ]; then v=$APP_DIR; fi
  props+=(-p "WorkingDirectory=$v")
  while IFS= read -r -d '' f; do
    f=${f//\\/\\\\}
    props+=(-p "Environment=\"${f//\"/\\\"}\"")
  done < <(unit_prop "$svc" Environment | xargs -r printf '%s\0' 2>/dev/null)
  while IFS= read -r f; do
    if [ "$f" != "$ENV_FILE" ] && [ "$f" != "-$ENV_FILE" ]; then props+=(-p "EnvironmentFile=$f"); fi
  done < <(unit_env_files "$svc")
  props+=(-p "EnvironmentFile=$RUN_DIR/final.env")
  log "check: running the check command as $svc runs, under the new env"
  # The command goes on stdin, so systemd never expands $VARS or %specifiers in it.
  out=$(printf '%s\n' "$CHECK" | timeout $((CHECK_TIMEOUT + 30)) systemd-run --quiet --wait --pipe --collect \
    --service-type=exec -p "RuntimeMaxSec=$CHECK_TIMEOUT" "${props[@]}" -- /bin/bash -s 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    while IFS= read -r v; do log "check output: $(redact "$v")"; done < <(printf '%s\n' "$out" | tail -n 20)
    fail_untouched "$svc" check-command "the check command exited $rc under the new env (its last lines are above, redacted)"
  fi
  log "check: passed"
}

# --- changes ------------------------------------------------------------------------------

# Root-only generations in the state dir; the newest BACKUPS kept.
backup_previous() {
  [ "$HAD_PREVIOUS" = 1 ] || { log "env: no previous $ENV_FILE (first deploy)"; return 0; }
  local dir name
  dir=$(backup_dir)
  name=$(date -u +%Y%m%dT%H%M%S.%NZ)-$RUN_ID.env
  if ! { cp -- "$RUN_DIR/previous.env" "$dir/.$name" && sync -- "$dir/.$name" && mv -f -- "$dir/.$name" "$dir/$name"; }; then
    rm -f -- "$dir/.$name"
    fail_untouched - backup "cannot write the backup to $dir (disk full?)"
  fi
  prune_backups "$dir"
  log "env: previous file backed up as $dir/$name (root-only; newest $BACKUPS kept)"
}

backup_dir() {
  local dir
  dir=$BACKUP_ROOT/$(printf '%s' "$ENV_FILE" | sha256sum | cut -c 1-16)
  mkdir -p -- "$dir"
  chmod 0700 -- "$dir"
  printf '%s\n' "$ENV_FILE" >"$dir/path"
  # The services this env file served, so an emergency finds its backups after app.envFile changed.
  printf '%s\n' "${SERVICES[@]}" | LC_ALL=C sort -u -o "$dir/services" - "$dir/services" 2>/dev/null ||
    printf '%s\n' "${SERVICES[@]}" >"$dir/services"
  printf '%s' "$dir"
}

prune_backups() { # dir
  find "$1" -maxdepth 1 -type f -name '*.env' ! -name '.*' -printf '%f\n' | LC_ALL=C sort -r |
    tail -n +$((BACKUPS + 1)) | while IFS= read -r f; do rm -f -- "${1:?}/$f"; done
}

# Keeps the current file as a hard link in our private dir (the rollback renames it back: no
# space needed), then renames the new file over the env file name.
install_env() {
  local rc=0
  if [ "$HAD_PREVIOUS" = 1 ]; then
    ln -- "../$ENV_NAME" ./previous 2>/dev/null || cp -p -- "$RUN_DIR/previous.env" ./previous ||
      fail_untouched - env-file "cannot keep the current file for a rollback in $ENV_DIR (disk full?)"
    [ "$(stat -c '%d:%i' ./previous)" = "$PREVIOUS_ID" ] || cmp -s ./previous "$RUN_DIR/previous.env" ||
      fail_untouched - env-file "$ENV_FILE changed during the rollout (someone else is writing it)"
  fi
  { cp -- "$RUN_DIR/final.env" ./new && sync -- ./new; } 2>/dev/null || rc=$?
  if [ "$rc" != 0 ]; then fail_untouched - env-file "cannot write the new env file in $ENV_DIR (disk full?)"; fi
  if [ -n "$GROUP" ]; then
    getent group "$GROUP" >/dev/null || fail_untouched - env-file "group $GROUP does not exist on the host (app.envFileGroup)"
    chgrp -- "$GROUP" ./new && chmod 0640 ./new
  else
    chmod 0600 ./new
  fi
  INSTALLED_ID=$(stat -c '%d:%i' ./new)
  CHANGED=1
  mv -f -T -- ./new "../$ENV_NAME"
  ENV_INSTALLED=1
  sync -- .. 2>/dev/null || true
  log "env: new $ENV_FILE in place ($(stat -c '%a %U:%G' -- "../$ENV_NAME"))"
}

# Writes stdin to $1 (in a root-owned directory) by a temp file and rename.
atomic_write() { # path mode
  local tmp
  tmp=$(mktemp "${1%/*}/.pms-secrets.XXXXXXXXXX") || return 1
  if cat >"$tmp" && chmod "$2" -- "$tmp" && sync -- "$tmp" && mv -f -T -- "$tmp" "$1"; then return 0; fi
  rm -f -- "$tmp"
  return 1
}

install_dropins() {
  local svc dir path
  for svc in "${SERVICES[@]}"; do
    dir=$(dropin_dir "$svc")
    path=$dir/$DROPIN_NAME
    if [ "$(cat -- "$path" 2>/dev/null)" = "$(dropin_content)" ]; then continue; fi
    if [ -f "$path" ]; then cp -p -- "$path" "$RUN_DIR/dropin.$svc"; fi
    DROPINS_CHANGED+=("$svc")
    CHANGED=1
    if ! { mkdir -p -- "$dir" && dropin_content | atomic_write "$path" 0644; }; then
      fail_rolled_back "$svc" drop-in "cannot write $path (disk full?)"
    fi
    log "drop-in: wrote $path"
  done
  if [ "${#DROPINS_CHANGED[@]}" -gt 0 ]; then
    timeout "$SYSTEMCTL_TIMEOUT" systemctl daemon-reload || fail_rolled_back - daemon-reload "systemctl daemon-reload failed"
    log "systemd: daemon-reload"
  fi
  for svc in "${SERVICES[@]}"; do
    ours_loads_last "$svc" && continue
    fail_rolled_back "$svc" drop-in "$ENV_FILE is not the last env file $svc.service loads; drop-ins sorting after $DROPIN_NAME override it: $(later_dropins "$svc")(move their EnvironmentFile=/UnsetEnvironment= into the unit or rename them to sort before $DROPIN_NAME)"
  done
}

# --- login probe (the old guide's "tested login") -------------------------------------------

# The probe account's password file must be root's alone: a regular file, one link, no group or
# other bits, every directory above it root-owned. Read once here, kept in memory only (never in
# argv or the worker script), and redacted from everything relayed. Before any change.
check_login_probe() {
  local svc=${SERVICES[0]} info uid mode links
  [ -n "$LOGIN_URL" ] || return 0
  command -v curl >/dev/null 2>&1 || fail_untouched "$svc" login-probe "the login probe needs curl on the host (apt-get install curl)"
  if [ -L "$LOGIN_PASSWORD_FILE" ] || [ ! -f "$LOGIN_PASSWORD_FILE" ]; then
    fail_untouched "$svc" login-probe "$LOGIN_PASSWORD_FILE is missing or not a regular file: write the probe account's password there, root-only (runbook, Host setup)"
  fi
  info=$(stat -c '%u %a %h' -- "$LOGIN_PASSWORD_FILE")
  read -r uid mode links <<<"$info"
  if [ "$uid" != 0 ] || [ "$links" != 1 ] || (((8#$mode & 8#077) != 0)); then
    fail_untouched "$svc" login-probe "$LOGIN_PASSWORD_FILE must be root's alone (it is uid $uid, mode $mode, $links link(s)): chown root:root $LOGIN_PASSWORD_FILE && chmod 0600 $LOGIN_PASSWORD_FILE"
  fi
  check_ancestors "$LOGIN_PASSWORD_FILE" "$LOGIN_PASSWORD_FILE" logical || fail_untouched "$svc" login-probe "$REFUSAL"
  IFS= read -r LOGIN_PW <"$LOGIN_PASSWORD_FILE" || true
  [ -n "$LOGIN_PW" ] || fail_untouched "$svc" login-probe "$LOGIN_PASSWORD_FILE is empty: its first line is the probe account's password"
  add_redactions "$LOGIN_PW"
}

# Collects the cookies a response set (name=value, attributes dropped) into LOGIN_JAR.
login_cookies() { # response-headers-file
  local line
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [[ $line =~ ^[Ss][Ee][Tt]-[Cc][Oo][Oo][Kk][Ii][Ee]:[[:space:]]*([^=;[:space:]]+)=([^;]*) ]]; then
      LOGIN_JAR[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    fi
  done <"$1"
}

# Writes the request headers (Host, Referer, the cookies so far) to a root-only file that curl
# reads with -H @file: cookies are credentials, so they never reach argv.
login_headers() { # url
  local name cookie="" authority=${1#*://}
  authority=${HEALTH_HOST:-${authority%%/*}}
  for name in "${!LOGIN_JAR[@]}"; do cookie="$cookie${cookie:+; }$name=${LOGIN_JAR[$name]}"; done
  {
    if [ -n "$HEALTH_HOST" ]; then printf 'Host: %s\n' "$HEALTH_HOST"; fi
    # Django's CSRF check on https wants a Referer of the same origin.
    printf 'Referer: %s://%s/\n' "${1%%://*}" "$authority"
    if [ -n "$cookie" ]; then printf 'Cookie: %s\n' "$cookie"; fi
  } >"$LOGIN_DIR/headers"
}

# One request; prints the status code (000 when there was no answer).
login_request() { # url response-headers-file body-file [curl args...]
  local url=$1 out=$2 body=$3 args=(-sS -m "$HTTP_TIMEOUT" --proto '=http,https' -w '%{http_code}')
  shift 3
  if [ -n "$HEALTH_CA" ]; then args+=(--cacert "$HEALTH_CA"); fi
  if [ "$HEALTH_INSECURE" = 1 ]; then args+=(-k); fi
  login_headers "$url"
  : >"$out"
  curl "${args[@]}" -H "@$LOGIN_DIR/headers" -D "$out" -o "$body" "$@" -- "$url" 2>/dev/null || true
}

# Logs in as the probe account the way a browser does: GET the login page (its CSRF cookie and
# form token), POST the form (Django answers 302 to a good login, the form again to a bad one),
# then GET a page that needs the session (2xx). Username, password and token go in as files
# (--data-urlencode name@file). Prints "login-probe|detail" on failure, a summary on success.
login_probe() {
  local code token="" page
  declare -A LOGIN_JAR=()
  LOGIN_DIR=$RUN_DIR/login
  rm -rf -- "$LOGIN_DIR"
  if ! mkdir -m 0700 -- "$LOGIN_DIR"; then
    printf 'login-probe|cannot create %s' "$LOGIN_DIR"
    return 1
  fi
  printf '%s' "$LOGIN_PW" >"$LOGIN_DIR/password"
  printf '%s' "$LOGIN_USER" >"$LOGIN_DIR/username"
  code=$(login_request "$LOGIN_URL" "$LOGIN_DIR/get.h" "$LOGIN_DIR/page")
  login_cookies "$LOGIN_DIR/get.h"
  page=$(head -c 200000 -- "$LOGIN_DIR/page" 2>/dev/null || true)
  if [[ $page =~ name=\"csrfmiddlewaretoken\"[[:space:]]+value=\"([^\"]+)\" ]]; then token=${BASH_REMATCH[1]}; fi
  if [ "$code" != 200 ] || [ -z "$token" ]; then
    rm -rf -- "$LOGIN_DIR"
    printf 'login-probe|GET %s answered %s%s (want 200 and a login form with a CSRF token: is it the LoginView?)' \
      "$LOGIN_URL" "${code:-nothing}" "$([ -n "$token" ] || printf ', no csrfmiddlewaretoken in the page')"
    return 1
  fi
  printf '%s' "$token" >"$LOGIN_DIR/token"
  code=$(login_request "$LOGIN_URL" "$LOGIN_DIR/post.h" /dev/null --data-urlencode "csrfmiddlewaretoken@$LOGIN_DIR/token" \
    --data-urlencode "username@$LOGIN_DIR/username" --data-urlencode "password@$LOGIN_DIR/password")
  login_cookies "$LOGIN_DIR/post.h"
  case $code in
    30[1237]) ;;
    200) rm -rf -- "$LOGIN_DIR"; printf 'login-probe|POST %s as %s gave the login form again: wrong password in %s, or the account is inactive or locked' "$LOGIN_URL" "$LOGIN_USER" "$LOGIN_PASSWORD_FILE"; return 1 ;;
    403) rm -rf -- "$LOGIN_DIR"; printf 'login-probe|POST %s was refused with 403 (CSRF: check CSRF_TRUSTED_ORIGINS for %s)' "$LOGIN_URL" "${HEALTH_HOST:-the URL host}"; return 1 ;;
    *) rm -rf -- "$LOGIN_DIR"; printf 'login-probe|POST %s as %s answered %s (want a redirect after a good login)' "$LOGIN_URL" "$LOGIN_USER" "${code:-nothing}"; return 1 ;;
  esac
  code=$(login_request "$LOGIN_CHECK_URL" "$LOGIN_DIR/check.h" /dev/null)
  rm -rf -- "$LOGIN_DIR"
  case $code in
    2??) printf 'login probe: %s logged in at %s and %s answered %s' "$LOGIN_USER" "$LOGIN_URL" "$LOGIN_CHECK_URL" "$code" ;;
    *) printf 'login-probe|%s logged in, but %s answered %s with that session (want 2xx: the session is not accepted)' "$LOGIN_USER" "$LOGIN_CHECK_URL" "${code:-nothing}"; return 1 ;;
  esac
}

# Issue 19: an emergency rotation never rolls back on the login probe alone. The probe account's
# name is public (stack file, preview), so anyone can lock it out where the app throttles failed
# logins, and a rollback would keep the host on the compromised key. Every other check (health
# URLs, stability, the proof in every process) still rolls back; this one is a WARNING line that
# names host, service and check, repeated as the run's last lines. Routine rotations roll back.
emergency_probe_warning() { # service detail
  warn "$1" login-probe "$2; EMERGENCY rotation: NOT rolled back on the login probe alone (its account can be locked out by anyone who knows its name), the new env stays. Log in by hand now; check the probe account (locked out? exempt it from lockout: runbook, Host setup, Login probe)"
}

# --- restart and verify -------------------------------------------------------------------

# Healthy = the unit stays active without systemd restarting it for STABLE_SECONDS (gunicorn
# under Type=simple reports a successful restart and then crash-loops).
verify_stable() { # unit
  local n0 pid0 state n pid deadline
  n0=$(unit_prop "$1" NRestarts)
  pid0=$(unit_prop "$1" MainPID)
  deadline=$((${EPOCHREALTIME/./} + STABLE_SECONDS * 1000000))
  while :; do
    state=$(unit_prop "$1" ActiveState)
    n=$(unit_prop "$1" NRestarts)
    pid=$(unit_prop "$1" MainPID)
    if [ "$state" != active ]; then
      printf 'stability|unit is %s/%s, not active' "$state" "$(unit_prop "$1" SubState)"
      return 1
    fi
    if [ "$n" != "$n0" ] || [ "$pid" != "$pid0" ]; then
      printf 'stability|systemd restarted it within %ss (restart loop)' "$STABLE_SECONDS"
      return 1
    fi
    [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || return 0
    sleep 0.5
  done
}

# Status code (and redirect target) of one URL, the same with curl or python3: no redirect
# followed, the given Host header, the given CA or no verification when asked.
http_status() { # url
  if command -v curl >/dev/null 2>&1; then
    local args=(-sS -o /dev/null -m "$HTTP_TIMEOUT" --proto '=http,https' -w '%{http_code} %{redirect_url}')
    if [ -n "$HEALTH_HOST" ]; then args+=(-H "Host: $HEALTH_HOST"); fi
    if [ -n "$HEALTH_CA" ]; then args+=(--cacert "$HEALTH_CA"); fi
    if [ "$HEALTH_INSECURE" = 1 ]; then args+=(-k); fi
    curl "${args[@]}" -- "$1" 2>/dev/null || true
  elif command -v python3 >/dev/null 2>&1; then
    python3 - "$1" "$HEALTH_HOST" "$HEALTH_CA" "$HEALTH_INSECURE" "$HTTP_TIMEOUT" <<'PY' 2>/dev/null || true
import ssl, sys, urllib.error, urllib.request
url, host, ca, insecure, timeout = sys.argv[1:6]
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None
ctx = ssl.create_default_context(cafile=ca or None)
if insecure == "1":
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
req = urllib.request.Request(url, headers={"Host": host} if host else {})
try:
    r = opener.open(req, timeout=float(timeout))
    print(r.status, "", end="")
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("Location") or "", end="")
PY
  else
    printf '000 no-client'
  fi
}

# Waits for every health URL to answer 2xx. With a unit whose generation restart_services
# recorded, a unit that stops or crash-loops meanwhile fails at once (check=stability), not after
# the whole health timeout.
verify_health() { # [unit]
  local url deadline answer state
  for url in "${HEALTH_URLS[@]}"; do
    deadline=$(($(date +%s) + HEALTH_TIMEOUT))
    while :; do
      answer=$(http_status "$url")
      case $answer in 2??*) break ;; esac
      if [ -n "${1:-}" ]; then
        state=$(unit_prop "$1" ActiveState)
        if [ "$state" != active ] && [ "$state" != activating ]; then
          printf 'stability|unit is %s/%s, not active' "$state" "$(unit_prop "$1" SubState)"
          return 1
        fi
        if [ "$(unit_generation "$1")" != "${GENERATION[$1]}" ] || [ "$(unit_prop "$1" SubState)" = auto-restart ]; then
          printf 'stability|systemd restarted it while its health URLs were checked (restart loop)'
          return 1
        fi
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        case $answer in
          '000 no-client') printf 'health-url|neither curl nor python3 is installed on the host to check %s' "$url" ;;
          3??' '?*) printf 'health-url|%s answered %s redirect to %s (redirects are not followed: check the final URL, or the Host header / https settings)' "$url" "${answer%% *}" "${answer#* }" ;;
          *) printf 'health-url|%s answered %s for %ss%s' "$url" "${answer:-nothing (connection failed)}" "$HEALTH_TIMEOUT" "${HEALTH_HOST:+ (Host: $HEALTH_HOST)}" ;;
        esac
        return 1
      fi
      sleep 1
    done
  done
}

# Explains a failure already found, from this start's own journal (its invocation only): the
# first line that is the guide's SECRET_KEY error. Never decides anything by itself.
journal_hint() { # unit
  local id line
  id=$(unit_prop "$1" InvocationID 2>/dev/null) || return 0
  [ -n "$id" ] || return 0
  line=$(timeout "$SYSTEMCTL_TIMEOUT" journalctl "_SYSTEMD_INVOCATION_ID=$id" -o cat --no-pager -q -n 500 2>/dev/null |
    grep -m 1 -E "$KEY_ERROR_PATTERN" || true)
  if [ -n "$line" ]; then printf '; its log says: %s' "$(redact "$line" | cut -c 1-200)"; fi
}

# Restarts one unit and proves it. Prints "check|detail" on failure. (The rollback's path: one
# unit at a time, each with its own window.)
restart_and_verify() { # unit expected-hash
  local result
  restart_unit "$1" || return 1
  if ! result=$(verify_stable "$1") || ! result=$(prove_env "$1" "$2" && printf '%s' "$PROOF_NOTE"); then
    printf '%s%s' "$result" "$(journal_hint "$1")"
    return 1
  fi
  if is_health_service "$1"; then verify_health || return 1; fi
  printf '%s' "$result"
}

# systemctl restart, bounded. Prints "restart|detail" on failure.
restart_unit() { # unit
  local rc=0
  timeout "$SYSTEMCTL_TIMEOUT" systemctl reset-failed -- "$1.service" 2>/dev/null || true # clears the start limit
  timeout "$RESTART_TIMEOUT" systemctl restart -- "$1.service" 2>/dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf 'restart|systemctl restart exited %s%s' "$rc" "$(journal_hint "$1")"
    return 1
  fi
}

# "NRestarts MainPID" of a unit: what a restart by systemd changes.
unit_generation() { # unit
  printf '%s %s' "$(unit_prop "$1" NRestarts)" "$(unit_prop "$1" MainPID)"
}

# One stability window for every restarted unit (issue 11): each unit's generation was recorded
# right after its own restart, and all are watched together until STABLE_SECONDS after the last
# restart. Same catch as one window per unit (a unit that stops or that systemd restarts within
# the window fails it, and the first unit is watched longer, not shorter), one window of waiting.
# Prints "unit|check|detail" on failure.
watch_stable() { # unit...
  local unit state deadline
  deadline=$((${EPOCHREALTIME/./} + STABLE_SECONDS * 1000000))
  while :; do
    for unit in "$@"; do
      state=$(unit_prop "$unit" ActiveState)
      if [ "$state" != active ]; then
        printf '%s|stability|unit is %s/%s, not active' "$unit" "$state" "$(unit_prop "$unit" SubState)"
        return 1
      fi
      if [ "$(unit_generation "$unit")" != "${GENERATION[$unit]}" ]; then
        printf '%s|stability|systemd restarted it within %ss (restart loop)' "$unit" "$STABLE_SECONDS"
        return 1
      fi
    done
    if [ -n "$SOCKET" ] && [ "$(socket_prop ActiveState)" != active ]; then
      printf '%s|socket|%s is %s after the restart: the port is closed (systemd stops the socket when the service hits its start limit)' \
        "${SERVICES[0]}" "$SOCKET" "$(socket_prop ActiveState)"
      return 1
    fi
    [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || return 0
    sleep 0.5
  done
}

# Restarts the services in order, each one as soon as the one before it serves (the health
# service must answer its URLs, and every unit's processes so far must hold the delivered env,
# before the next unit is touched), then watches them all in one window and proves each one's
# processes hold the delivered env again.
restart_services() {
  local svc result watched=()
  declare -gA GENERATION=()
  for svc in "${SERVICES[@]}"; do
    [ "${ACTION[$svc]}" = restart ] || continue
    log "restart: $svc"
    RESTARTED+=("$svc")
    result=$(restart_unit "$svc") || fail_rolled_back "$svc" "${result%%|*}" "${result#*|}"
    GENERATION[$svc]=$(unit_generation "$svc")
    watched+=("$svc")
    if is_health_service "$svc"; then
      result=$(verify_health "$svc") || fail_rolled_back "$svc" "${result%%|*}" "${result#*|}$(journal_hint "$svc")"
      log "restart: $svc is up and its health URLs answered 2xx"
      if [ -n "$LOGIN_URL" ]; then
        if result=$(login_probe); then
          log "restart: $svc $result"
        elif [ "$EMERGENCY" = 1 ]; then
          emergency_probe_warning "$svc" "${result#*|}"
        else
          fail_rolled_back "$svc" "${result%%|*}" "${result#*|}"
        fi
      fi
    fi
    # The processes it has so far must hold the new env before the next unit is touched (an
    # override or UnsetEnvironment= is caught here, with only this unit to put back); the proof
    # after the window covers the processes started later.
    result=$(prove_env "$svc" "$DELIVERED_HASH") || fail_rolled_back "$svc" "${result%%|*}" "${result#*|}"
    note_old_key_rejected "$svc"
  done
  [ "${#watched[@]}" -gt 0 ] || return 0
  log "restart: watching ${watched[*]} together for ${STABLE_SECONDS}s"
  if ! result=$(watch_stable "${watched[@]}"); then
    svc=${result%%|*}
    result=${result#*|}
    fail_rolled_back "$svc" "${result%%|*}" "${result#*|}$(journal_hint "$svc")"
  fi
  for svc in "${watched[@]}"; do
    result=$(prove_env "$svc" "$DELIVERED_HASH" && printf '%s' "$PROOF_NOTE") ||
      fail_rolled_back "$svc" "${result%%|*}" "${result#*|}"
    log "restart: $svc active and stable for ${STABLE_SECONDS}s, $result"
  done
}

# Emergency rotation: once the new env is proven, no copy of a previous key stays on the host: every
# backup generation of this env file and of every earlier env file of these services (a changed
# app.envFile leaves its backups under the old path's directory). A backup directory is theirs when
# it records one of these services, or (written before directories recorded services) when its env
# file is this one or lies in the app directory. Runs on every run with the flag, a no-op one too.
purge_old_copies() {
  local dir n=0 total=0 dirs=() svc path mine
  [ "$PURGE_OLD" = 1 ] || return 0
  mine=$(backup_dir)
  for dir in "$BACKUP_ROOT"/*/; do
    dir=${dir%/}
    if [ ! -d "$dir" ] || [ -L "$dir" ]; then continue; fi
    path=$(head -n 1 -- "$dir/path" 2>/dev/null || true)
    if [ "$dir" = "$mine" ] || { [ ! -e "$dir/services" ] && [ -n "$path" ] && [[ $path == "$APP_DIR"/* ]]; }; then
      dirs+=("$dir")
      continue
    fi
    for svc in "${SERVICES[@]}"; do
      if grep -q -x -F -e "$svc" -- "$dir/services" 2>/dev/null; then dirs+=("$dir"); break; fi
    done
  done
  for dir in "${dirs[@]+"${dirs[@]}"}"; do
    n=$(find "$dir" -maxdepth 1 -type f -name '*.env' | wc -l)
    find "$dir" -maxdepth 1 -type f -name '*.env' -delete
    total=$((total + n))
    path=$(head -n 1 -- "$dir/path" 2>/dev/null || true)
    if [ "$path" != "$ENV_FILE" ] && [ "$n" -gt 0 ]; then log "purge: removed $n backup generations of the earlier env file $path"; fi
  done
  rm -f -- ./previous
  log "purge: removed $total backup generations holding previous keys, of $ENV_FILE and of every earlier env file of ${SERVICES[*]} (--purge-old-copies)"
}

# --- rollback -----------------------------------------------------------------------------

# Undoes every change, attempting every step whatever fails; prints one sentence for the FAILED line.
rollback() {
  set +e
  local svc problems="" expected=""
  log "rollback: restoring the previous env"
  db_follower_rollback_env || problems="$problems; could not put the new DB_PASSWORD into the previous env for the rollback"
  if [ "$ENV_INSTALLED" = 1 ] && [ "$HAD_PREVIOUS" = 1 ]; then
    mv -f -T -- ./previous "../$ENV_NAME" || problems="$problems; could not put the previous $ENV_FILE back (it is in $(backup_dir))"
  elif [ "$ENV_INSTALLED" = 1 ]; then
    if [ "$(stat -c '%d:%i' -- "../$ENV_NAME" 2>/dev/null)" = "$INSTALLED_ID" ]; then
      rm -f -- "../$ENV_NAME" || problems="$problems; could not remove the new $ENV_FILE"
    else
      problems="$problems; $ENV_FILE was replaced by someone else during the rollout, left as it is"
    fi
  fi
  for svc in "${DROPINS_CHANGED[@]+"${DROPINS_CHANGED[@]}"}"; do
    if [ -f "$RUN_DIR/dropin.$svc" ]; then
      atomic_write "$(dropin_dir "$svc")/$DROPIN_NAME" 0644 <"$RUN_DIR/dropin.$svc" || problems="$problems; could not restore the drop-in of $svc"
    else
      rm -f -- "$(dropin_dir "$svc")/$DROPIN_NAME" || problems="$problems; could not remove the drop-in of $svc"
    fi
  done
  if [ "${#DROPINS_CHANGED[@]}" -gt 0 ]; then
    timeout "$SYSTEMCTL_TIMEOUT" systemctl daemon-reload || problems="$problems; daemon-reload failed"
  fi
  # Before the restarts: the previous env holds the previous DB_PASSWORD.
  restore_db_password || problems="$problems; could not restore the previous password of PostgreSQL role $DB_ROLE (its previous verifier is kept in $STATE_DIR/db-old-verifier.$DB_ROLE)"
  for svc in "${RESTARTED[@]+"${RESTARTED[@]}"}"; do
    if [ "$HAD_PREVIOUS" = 0 ]; then
      # Nothing worked before either: put the unit back as it was, without judging it.
      log "rollback: restarting $svc without an env file, as before the rollout"
      timeout "$SYSTEMCTL_TIMEOUT" systemctl reset-failed -- "$svc.service" 2>/dev/null
      timeout "$RESTART_TIMEOUT" systemctl restart -- "$svc.service" 2>/dev/null
      continue
    fi
    log "rollback: restarting $svc on the previous env"
    if ! result=$(restart_and_verify "$svc" ""); then
      problems="$problems; $svc ${result%%|*}: $(redact "${result#*|}")"
      continue
    fi
    # Every rolled-back unit must run what the first one runs: never two services on different envs.
    local h
    h=$(first_process_hash "$svc")
    if [ -z "$expected" ]; then expected=$h; elif [ "$h" != "$expected" ]; then problems="$problems; $svc does not run the same env as ${RESTARTED[0]}"; fi
  done
  problems="$problems$(db_rollback_login)"
  if [ -n "$problems" ]; then
    printf 'ROLLBACK INCOMPLETE, the host needs attention%s' "$problems"
  elif [ "$HAD_PREVIOUS" = 1 ]; then
    printf 'previous env restored%s and services healthy on it' "$DB_ROLLBACK_NOTE"
  else
    printf 'there was no previous env file: the new one and the drop-ins were removed again, services are as before the rollout'
  fi
  log "rollback: done${problems:+ with problems$problems}"
}

# Hash of the delivered keys as the unit's main process (or first cgroup process) holds them.
first_process_hash() { # unit
  local pid
  pid=$(unit_pids "$1" | head -n 1)
  [ -n "$pid" ] && process_env_hash "$pid" 2>/dev/null || printf 'none'
}

# --- leftovers ----------------------------------------------------------------------------

# Holding the host lock: whatever a killed run left is stale.
sweep_state() {
  local d
  for d in "$RUNS_DIR"/*/; do
    d=${d%/}
    if [ ! -d "$d" ] || [ "$d" = "$RUN_DIR" ]; then continue; fi
    # A run dir is live while its front end or worker holds a shared lock on it.
    if [ -e "$d/lock" ] && flock -n -x "$d/lock" true; then rm -rf -- "$d"
    elif [ ! -e "$d/lock" ] && [ -n "$(find "$d" -maxdepth 0 -mmin +2)" ]; then rm -rf -- "$d"; fi
  done
  # Half-written backups and drop-ins (temp names of atomic_write and backup_previous).
  find "$BACKUP_ROOT" -mindepth 2 -maxdepth 2 -type f -name '.*.env' -delete
  for d in "${SERVICES[@]}"; do
    d=$(dropin_dir "$d")
    if [ -d "$d" ] && [ ! -L "$d" ]; then find "$d" -maxdepth 1 -type f -name '.pms-secrets.*' -user 0 -delete; fi
  done
  # Left by earlier versions of this script.
  find "$STATE_DIR" -mindepth 1 -maxdepth 1 \( -name 'rollout.*' -type d -o -name '*.applied' -type f \) -exec rm -rf -- {} +
}

# In the env directory (working directory): our private dirs of killed runs, and the temp and
# backup files earlier versions left next to the env file. rm never follows a link.
sweep_env_dir() {
  local d
  for d in ./"$PRIVATE_PREFIX"*; do
    if [ ! -d "$d" ] || [ -L "$d" ] || [ "$(stat -c %u -- "$d")" != 0 ]; then continue; fi
    rm -rf -- "$d" && log "sweep: removed $ENV_DIR/${d#./} left by a killed run"
  done
  find . -maxdepth 1 -name '.env.pms-new.*' -type f -user 0 -delete
  if [ -f "./$ENV_NAME.bak.tmp" ] && [ ! -L "./$ENV_NAME.bak.tmp" ]; then rm -f -- "./$ENV_NAME.bak.tmp"; fi
}

# The single .bak earlier versions kept next to the env file (often 0644 next to a 0600 file):
# moved into the root-only backups. Runs in the private dir, like every read of the env dir.
adopt_legacy_backup() {
  local dir
  open_regular "$ENV_NAME.bak" "the old backup" || return 0
  cat <&"$SAFE_FD" >"$RUN_DIR/legacy.env"
  exec {SAFE_FD}<&-
  dir=$(backup_dir)
  mv -f -- "$RUN_DIR/legacy.env" "$dir/00000000T000000Z-legacy-bak.env" && chmod 0600 "$dir/00000000T000000Z-legacy-bak.env" &&
    rm -f -- "../$ENV_NAME.bak" && log "sweep: moved the old $ENV_FILE.bak into $dir (root-only)"
}

# --- worker lifecycle ---------------------------------------------------------------------

# shellcheck disable=SC2317 # invoked by the EXIT trap
worker_exit() {
  local rc=$?
  trap - EXIT TERM INT HUP
  set +e
  if [ "$rc" != 0 ] && [ "$CHANGED" = 1 ] && [ "$ROLLED_BACK" = 0 ]; then
    local outcome
    outcome=$(rollback)
    ROLLED_BACK=1
    failed_line - internal "stopped unexpectedly (${LAST_ERR:-signal})" "$outcome"
  elif [ "$rc" != 0 ] && [ "$FAILED_PRINTED" = 0 ]; then
    failed_line - internal "stopped unexpectedly (${LAST_ERR:-signal})" "nothing on the host was changed"
  fi
  if [ "$rc" != 0 ] && [ "$CHANGED" = 0 ] && [ -n "$MOVED_ID" ] && [ "$(stat -c '%d:%i' -- "../$ENV_NAME" 2>/dev/null)" = "$MOVED_ID" ]; then
    rm -f -- "../$ENV_NAME" # the copy of a move that did not happen: nothing else changed
  fi
  if [ "$rc" = 0 ]; then for w in "${WARNINGS[@]+"${WARNINGS[@]}"}"; do emit E "$w"; done; fi
  rm -f -- ./new ./previous 2>/dev/null
  if [ -n "$PRIVATE_NAME" ] && cd .. 2>/dev/null; then rmdir -- "./$PRIVATE_NAME" 2>/dev/null; fi
  rm -f -- "$RUN_DIR/received.env" "$RUN_DIR/final.env" "$RUN_DIR/previous.env" "$RUN_DIR"/dropin.* "$PID_FILE" "$RUN_DIR/db-new.pgpass" "$RUN_DIR/db-old.verifier" "$RUN_DIR"/db-*.pgpass "$RUN_DIR/db-rollback.env"
  printf '%s\n' "$rc" >"$RUN_DIR/result"
  exit "$rc"
}

# Runs in the transient unit started by start_worker.
worker() {
  IN_WORKER=1
  if ! claim_run worker; then
    printf '%s[%s] the front end gave up waiting for this run (hand-off timeout) and told the caller nothing changed: doing nothing\n' "$PROG" "$HOST" >&2
    exit 0
  fi
  trap worker_exit EXIT
  trap 'exit 143' TERM INT HUP
  set -o errtrace
  trap 'LAST_ERR="line $LINENO: $BASH_COMMAND"' ERR
  exec {RUN_LOCK}>>"$RUN_DIR/lock"
  flock -w "$SYSTEMCTL_TIMEOUT" -s "$RUN_LOCK"
  : >"$RUN_DIR/started"
  take_host_lock
  sweep_state
  check_units
  open_env_dir
  migrate_env_file
  adopt_legacy_backup
  load_delivered "$RUN_DIR/received.env"
  claim_secret_key_fallbacks
  claim_db_user
  compose_env
  compose_secret_key_fallbacks
  compose_db_user
  load_delivered "$RUN_DIR/final.env"
  prove_secret_key_fallbacks
  if already_in_place; then
    log "already in place and proven in the running processes; nothing to do"
    purge_old_copies
    close_pending_db_role
    return 0
  fi
  rotate_db_password
  run_check
  backup_previous
  install_env
  install_dropins
  restart_services
  finish_migration
  purge_old_copies
  close_previous_db_role
  # No hash of the file here: the log reaches CI output, and a plain hash would let whoever holds
  # the previous file test guesses of a weak new value (the program's fingerprint is keyed).
  log "done: $ENV_FILE in place and proven"
}

take_host_lock() {
  exec {HOST_LOCK}>>"$LOCK_FILE"
  flock -w "$LOCK_TIMEOUT" "$HOST_LOCK" ||
    fail_untouched - lock "another rollout (PID $(cat "$PID_FILE" 2>/dev/null || printf '?')) held the host lock for ${LOCK_TIMEOUT}s"
  printf '%s\n' "$$" >"$PID_FILE"
}

# --- front end ----------------------------------------------------------------------------

prepare_state_dir() {
  local d
  for d in "$STATE_DIR" "$RUNS_DIR" "$BACKUP_ROOT"; do
    [ ! -L "$d" ] || fail_untouched - state-dir "$d is a symbolic link; it must be a root-only directory"
    mkdir -p -- "$d"
    [ "$(stat -c %u -- "$d")" = 0 ] || fail_untouched - state-dir "$d is not owned by root"
    chmod 0700 -- "$d"
  done
}

# Writes the worker: the parsed arguments as declarations, every function, then `worker`.
write_worker() {
  {
    printf '#!/bin/bash\n# pms-secrets rollout worker for %s (generated by the front end)\nset -euo pipefail\numask 077\n' "$ENV_FILE"
    declare -p PROG STATE_DIR RUNS_DIR BACKUP_ROOT LOCK_FILE DB_CLOSE_PENDING PID_FILE DROPIN_NAME PRIVATE_PREFIX END_MARKER \
      LOCK_TIMEOUT CHECK_TIMEOUT RESTART_TIMEOUT SYSTEMCTL_TIMEOUT HTTP_TIMEOUT HANDOFF_TIMEOUT DB_BUDGET DB_RESTORE_BUDGET RELAY_MARGIN MAX_ENV_BYTES \
      EXIT_DRIFT MAX_LINE KEY_ERROR_PATTERN \
      HOST ENV_FILE APP_DIR GROUP CHECK HEALTH_URLS HEALTH_HOST HEALTH_CA HEALTH_INSECURE STABLE_SECONDS \
      HEALTH_TIMEOUT REDACT_KEYS SERVICES UNMANAGED BACKUPS PURGE_OLD SK_FALLBACKS EMERGENCY DB_ROTATE DB_ROLES DB_FOLLOW SOCKET LOGIN_URL LOGIN_USER LOGIN_PASSWORD_FILE LOGIN_CHECK_URL PRODUCTION ENV_DIR ENV_NAME RUN_DIR RUN_ID
    declare -p SK_ACCEPT
    printf 'STARTED_AT=%s\nPRIVATE_NAME=""\nHAD_PREVIOUS=0\nENV_INSTALLED=0\nINSTALLED_ID=""\nCHANGED=0\n' "$STARTED_AT"
    printf 'FAILED_PRINTED=0\nROLLED_BACK=0\nLAST_ERR=""\nDELIVERED_HASH=""\nDELIVERED_KEYS=()\nREDACT_VALUES=()\n'
    printf 'UNMANAGED_KEYS=()\nDROPINS_CHANGED=()\nRESTARTED=()\ndeclare -A ACTION=()\ndeclare -A IDLE=()\n'
    printf 'DB_ALTERED=0\nDB_ROLE=""\nDB_HOST_=""\nDB_PORT_=""\nDB_NAME_=""\nDB_SWITCH=0\nDB_PREV_ROLE=""\nDB_FOLLOWED=0\nDB_ROLLBACK_NOTE=""\n'
    printf 'WARNINGS=()\nMIGRATED_FROM=""\nMIGRATED_ID=""\nMOVED_ID=""\n'
    declare -f
    printf 'worker\n'
  } >"$RUN_DIR/worker.sh"
}

# The worker's time budgets, from the arguments (components/rollout-time.ts computes the same
# from the stack config and refuses a config whose worst case exceeds the resource timeout).
# Forward: lock, systemctl calls, check command, PostgreSQL, each unit's restart, the health URLs
# and login probe of the first one, the stability window. RuntimeMaxSec= of the worker.
forward_budget() {
  local t=$((LOCK_TIMEOUT + 8 * SYSTEMCTL_TIMEOUT + STABLE_SECONDS))
  t=$((t + ${#SERVICES[@]} * (RESTART_TIMEOUT + 4 * SYSTEMCTL_TIMEOUT) + ${#HEALTH_URLS[@]} * (HEALTH_TIMEOUT + HTTP_TIMEOUT)))
  if [ -n "$CHECK" ]; then t=$((t + CHECK_TIMEOUT + 30)); fi
  if [ "$DB_ROTATE" = 1 ]; then t=$((t + DB_BUDGET)); fi
  if [ -n "$LOGIN_URL" ]; then t=$((t + 3 * HTTP_TIMEOUT)); fi
  printf '%s' "$t"
}

# Rollback: daemon-reload, the role's previous password, each unit restarted and verified on its
# own window. TimeoutStopSec= of the worker (then systemd kills it).
rollback_budget() {
  local t=$((2 * SYSTEMCTL_TIMEOUT + ${#HEALTH_URLS[@]} * (HEALTH_TIMEOUT + HTTP_TIMEOUT)))
  t=$((t + ${#SERVICES[@]} * (RESTART_TIMEOUT + 4 * SYSTEMCTL_TIMEOUT + STABLE_SECONDS)))
  if [ "$DB_ROTATE" = 1 ]; then t=$((t + DB_RESTORE_BUDGET)); fi
  printf '%s' "$t"
}

# The longest a run can take on the host: start and hand-off, the worker's two budgets, the relay.
worst_case_seconds() {
  printf '%s' $((SYSTEMCTL_TIMEOUT + HANDOFF_TIMEOUT + $(forward_budget) + $(rollback_budget) + RELAY_MARGIN))
}

# Exactly one of the worker and the front end claims the run (an O_EXCL create): the worker before
# it does anything, the front end when it gives up waiting. So a "nothing changed" is true.
claim_run() { # who
  (set -o noclobber; printf '%s\n' "$1" >"$RUN_DIR/claim") 2>/dev/null
}

# The worker did not start in time. If it has not claimed the run, it never will: stop its unit
# and fail untouched. If it has, it runs: return and follow it.
abandon_worker() { # unit reason
  if claim_run front-end; then
    timeout "$SYSTEMCTL_TIMEOUT" systemctl stop -- "$1.service" >/dev/null 2>&1 || true
    fail_untouched - worker "$2; the run is cancelled: $1 will not roll out even if it starts later"
  fi
  log "worker: $1 started after all (slow hand-off); following it"
}

# Starts the worker in its own transient unit: outside this SSH session, so a dropped connection
# does not stop it. SIGTERM (systemctl stop) makes it roll back; KillMode=mixed lets it.
start_worker() {
  local unit=pms-rollout-$RUN_ID out
  write_worker
  # RuntimeMaxSec= bounds the rollout itself: past it systemd sends SIGTERM and the worker rolls
  # back, within TimeoutStopSec= (then SIGKILL). So the whole run is bounded whatever hangs.
  out=$(timeout "$SYSTEMCTL_TIMEOUT" systemd-run --quiet --collect --unit="$unit" --service-type=exec \
    --description="pms-secrets rollout of $ENV_FILE" -p KillMode=mixed -p "RuntimeMaxSec=$(forward_budget)" \
    -p "TimeoutStopSec=$(rollback_budget)" -- /bin/bash "$RUN_DIR/worker.sh" 2>&1) ||
    abandon_worker "$unit" "could not start the rollout unit $unit within ${SYSTEMCTL_TIMEOUT}s: $out"
  local deadline=$(($(date +%s) + HANDOFF_TIMEOUT))
  until [ -e "$RUN_DIR/started" ] || [ -e "$RUN_DIR/result" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      abandon_worker "$unit" "the rollout unit $unit did not start within ${HANDOFF_TIMEOUT}s"
      deadline=$(($(date +%s) + HANDOFF_TIMEOUT))
    fi
    sleep 0.2
  done
  # The front end keeps its shared lock on the run dir until it has read the result, so another
  # run's sweep never deletes a live run's files.
  log "worker: $unit runs the rollout (journalctl -u $unit); it finishes or rolls back even if this session drops"
}

# Relays the worker's log until it ends (bounded), then exits with its result. Polls: tail
# --pid cannot watch a process that is not our child inside some containers.
follow_worker() {
  local unit=pms-rollout-$RUN_ID log=$RUN_DIR/log off=0 size line rc last=0 deadline
  deadline=$(($(date +%s) + $(forward_budget) + $(rollback_budget) + RELAY_MARGIN))
  while :; do
    if [ -e "$RUN_DIR/result" ] || [ "$(unit_prop "$unit" ActiveState 2>/dev/null)" != active ] ||
      [ "$(date +%s)" -ge "$deadline" ]; then last=1; fi
    size=$(stat -c %s -- "$log" 2>/dev/null || printf 0)
    if [ "$size" -gt "$off" ]; then
      # The worker appends whole lines with one write each, so [off, size) holds whole lines.
      while IFS= read -r line; do
        emit "${line%% *}" "${line#? }"
      done < <(tail -c +$((off + 1)) -- "$log" | head -c $((size - off)))
      off=$size
    fi
    [ "$last" = 0 ] || break
    sleep 0.3
  done
  if [ ! -e "$RUN_DIR/result" ]; then
    if [ "$(unit_prop "$unit" ActiveState 2>/dev/null)" = active ]; then
      failed_line - worker "the rollout unit $unit is still running after $(($(forward_budget) + $(rollback_budget)))s (its budget)" "systemd stops it and it rolls back on its own; see journalctl -u $unit"
    else
      failed_line - worker "the rollout unit $unit ended without a result (killed?)" "see journalctl -u $unit; the next run sweeps and converges the host"
    fi
    exit 1
  fi
  rc=$(cat -- "$RUN_DIR/result")
  rm -rf -- "$RUN_DIR"
  exit "$rc"
}

# --- verify-only (drift check) ------------------------------------------------------------

# Compares each service's processes with the host's env file (and with the file on stdin, if
# any). Changes nothing. One line per service; exit 0 in sync, 3 drift.
verify_only() {
  local svc drift=0 result file=$RUN_DIR/received.env host_file=$RUN_DIR/host.env rc=0
  read_env_file_safely "$host_file" || rc=$?
  if [ "$rc" != 0 ]; then
    failed_line - verify "$REFUSAL" "nothing was changed"
    exit 1
  fi
  cat >"$file"
  if [ -s "$file" ]; then
    strip_end_marker "$file"
    # Every line the program would send must be in the host's file (which may also carry kept keys).
    if grep -v '^#' -- "$file" | grep -q -v -x -F -f "$host_file"; then
      log "verify: $ENV_FILE differs from the env file the program would send"
      drift=1
    fi
  else
    grep -E "^[A-Za-z_][A-Za-z0-9_]*='[^'\\\\]*'\$" -- "$host_file" >"$file" || true
  fi
  load_delivered "$file"
  for svc in "${SERVICES[@]}"; do
    result=$(unit_prop "$svc" ActiveState)
    if [ "$result" != active ]; then
      log "verify: $svc is $result: nothing running to compare"
    elif result=$(prove_env "$svc" "$DELIVERED_HASH" && printf '%s' "$PROOF_NOTE"); then
      log "verify: $svc in sync ($result)"
    else
      log "verify: $svc DRIFT: ${result#*|}"
      drift=1
    fi
  done
  rm -rf -- "$RUN_DIR"
  if [ "$drift" = 1 ]; then exit "$EXIT_DRIFT"; fi
}

# --verify-only reads the env file under the rollout's rules: every directory above it root's, the
# file itself a regular file with one link and at most MAX_ENV_BYTES, never read through a link
# (dd iflag=nofollow), a pipe or device swapped in never blocks (iflag=nonblock, a time bound) nor
# streams (a byte bound), and the file must be the same before and after. Copies it to $1.
# Returns 1 when missing, 2 when refused (REFUSAL says why).
read_env_file_safely() { # dest
  local before after
  check_ancestors "$ENV_DIR" "the env directory" logical || return 2
  before=$(stat -c '%d:%i|%h|%F|%s' -- "$ENV_FILE" 2>/dev/null) || { REFUSAL="$ENV_FILE is missing"; return 1; }
  case $before in
    *'|1|regular file|'* | *'|1|regular empty file|'*) ;;
    *) REFUSAL="$ENV_FILE is not a regular file with one link ($(stat -c '%F, %h links' -- "$ENV_FILE" 2>/dev/null)); root does not read it"; return 2 ;;
  esac
  if [ "${before##*|}" -gt "$MAX_ENV_BYTES" ]; then REFUSAL="$ENV_FILE is larger than $MAX_ENV_BYTES bytes: not an env file"; return 2; fi
  if ! timeout 10 dd if="$ENV_FILE" of="$1" iflag=nofollow,nonblock,count_bytes count=$((MAX_ENV_BYTES + 1)) status=none 2>/dev/null; then
    REFUSAL="$ENV_FILE could not be read as a regular file within 10s (replaced by a link or a pipe while it was read?)"
    return 2
  fi
  after=$(stat -c '%d:%i|%h|%F|%s' -- "$ENV_FILE" 2>/dev/null) || true
  if [ "$after" != "$before" ] || [ "$(stat -c %s -- "$1")" != "${before##*|}" ]; then
    REFUSAL="$ENV_FILE changed while it was read (someone is replacing it); run again"
    return 2
  fi
}

main() {
  parse_args "$@"
  prepare_state_dir
  RUN_DIR=$(mktemp -d "$RUNS_DIR/XXXXXXXXXX")
  RUN_ID=${RUN_DIR##*/}
  exec {RUN_LOCK}>>"$RUN_DIR/lock"
  flock -w "$SYSTEMCTL_TIMEOUT" -s "$RUN_LOCK"
  if [ "$VERIFY_ONLY" = 1 ]; then verify_only; exit 0; fi
  receive_env
  start_worker
  follow_worker
}

# Must stay the last line, on one line: stdin after it is the env file.
main "$@"; exit $?
