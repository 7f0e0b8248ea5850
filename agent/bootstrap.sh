#!/bin/bash
# pms-secrets host agent bootstrap.
#
# Runs as root on the target host (through `sudo -n` for a non-root login: the sudoers line
# `/bin/bash -s -- *` is unchanged) as
#   bash -s -- --host NAME --env-file PATH --service UNIT [...] (agent/options.json lists every option)
# with stdin = this script, then the agent's files (`# pms-agent-file NAME BYTES` + the bytes each,
# then `# pms-agent-end`), then the env file with its end marker line `# pms-secrets-end sha256=HEX`.
# bash reads a script on a pipe one byte at a time, so when `main` runs the rest of stdin is
# exactly the agent and the env file: no secret in argv, environment or log.
#
# It receives all of that into a fresh root-only run dir under /var/lib/pms-secrets/runs, refuses
# unless the interpreter (/usr/bin/python3, or --python PATH) and every directory above it (given
# and physical path) are root-owned and not writable by group or others (never the app's venv: its
# user owns it), and runs the agent isolated (python3 -I). The agent (agent/pms_agent) does the rest.
# shellcheck disable=SC2317 # the last line's exit is reached when main returns
set -euo pipefail
umask 077

readonly PROG=pms-rollout
readonly STATE_DIR=/var/lib/pms-secrets
readonly RUNS_DIR=$STATE_DIR/runs
readonly BACKUP_ROOT=$STATE_DIR/backups
readonly SYSTEMCTL_TIMEOUT=15
HOST=""
PYTHON=/usr/bin/python3
RUN_DIR=""
CREATED=() # the state directories this run made, parents first

# A refusal leaves the host as it found it: no run dir, and no state directory this run made.
forget_created() {
  local i
  for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do rmdir -- "${CREATED[i]}" 2>/dev/null || true; done
}

refuse() { # check detail
  if [ -n "$RUN_DIR" ]; then rm -rf -- "$RUN_DIR"; fi
  forget_created
  printf '%s FAILED host=%s service=- check=%s: %s; nothing on the host was changed\n' "$PROG" "${HOST:-?}" "$1" "$2" >&2
  exit 1
}

# Only what the bootstrap itself needs; the agent parses and checks every argument.
scan_args() {
  while [ $# -gt 1 ]; do
    case $1 in
      --host) HOST=$2 ;;
      --python) PYTHON=$2 ;;
    esac
    shift
  done
}

prepare_state_dir() {
  local d
  for d in "$STATE_DIR" "$RUNS_DIR" "$BACKUP_ROOT"; do
    [ ! -L "$d" ] || refuse state-dir "$d is a symbolic link; it must be a root-only directory"
    if [ ! -d "$d" ]; then
      mkdir -- "$d" || refuse state-dir "cannot create $d (disk full? read-only file system?)"
      CREATED+=("$d")
    fi
    [ "$(stat -c %u -- "$d")" = 0 ] || refuse state-dir "$d is not owned by root"
    chmod 0700 -- "$d"
  done
}

# The path and every directory above it: root-owned, not writable by group or others (a link on
# the way must be root's too; its target is checked as the physical path).
check_root_path() { # path
  local p="" part uid mode type parts=()
  IFS=/ read -r -a parts <<<"${1#/}"
  for part in / "${parts[@]}"; do
    if [ "$part" = / ]; then p=/; else p=${p%/}/$part; fi
    read -r uid mode type < <(stat -c '%u %a %F' -- "$p" 2>/dev/null) ||
      refuse interpreter "$p does not exist. Fix: install python3 (apt-get install python3) or set the interpreter path"
    if [ "$uid" != 0 ]; then
      refuse interpreter "$p belongs to uid $uid, not root, so that user could replace the interpreter root runs the agent with (an app's venv is never used). Fix: use /usr/bin/python3 or another root-owned interpreter"
    fi
    if [ "$type" != "symbolic link" ] && (((8#$mode & 8#022) != 0)); then
      refuse interpreter "$p is writable by group or others (mode $mode), so another user could replace the interpreter root runs the agent with. Fix: chmod go-w $p, or use /usr/bin/python3"
    fi
  done
}

check_interpreter() {
  local real
  case $PYTHON in /?*) ;; *) refuse interpreter "--python $PYTHON must be an absolute path" ;; esac
  check_root_path "$PYTHON"
  real=$(realpath -e -- "$PYTHON" 2>/dev/null) || refuse interpreter "$PYTHON does not exist. Fix: install python3 (apt-get install python3)"
  if [ "$real" != "$PYTHON" ]; then check_root_path "$real"; fi
  if [ ! -f "$real" ] || [ ! -x "$real" ]; then refuse interpreter "$real is not an executable file"; fi
}

# Unpacks the agent from the received stdin into the run dir and runs its front end.
write_loader() { # file
  cat >"$1" <<'PY'
import os, re, shutil, sys

run_dir = sys.argv[1]
stdin_path = os.path.join(run_dir, "stdin")
with open(stdin_path, "rb") as f:
    data = f.read()
os.unlink(stdin_path)
agent = os.path.join(run_dir, "agent")
os.mkdir(agent, 0o700)
pos = 0
ok = False
while True:
    nl = data.find(b"\n", pos)
    if nl < 0:
        break
    header = data[pos:nl].decode("ascii", "replace").split(" ")
    pos = nl + 1
    if header == ["#", "pms-agent-end"]:
        ok = True
        break
    if len(header) != 4 or header[:2] != ["#", "pms-agent-file"] or not header[3].isdigit():
        break
    name, size = header[2], int(header[3])
    if not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*\.(py|json)", name) or pos + size > len(data):
        break
    path = os.path.join(agent, name)
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data[pos : pos + size])
    pos += size
host = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv[2:-1] else "?"


def read_lines(name):
    try:
        with open(os.path.join(run_dir, name), encoding="utf-8") as f:
            return f.read().split()
    except OSError:
        return []


def finish(rc):
    # What the worker did not take over (a refusal before it started) leaves nothing behind: not
    # the run dir, not a state directory this run made (the bootstrap's list, parents first).
    if read_lines("claim") != ["worker"]:
        created = read_lines("created")
        shutil.rmtree(run_dir, ignore_errors=True)
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass
    sys.exit(rc)


if not ok:
    sys.stderr.write(
        "pms-rollout FAILED host=%s service=- check=agent: the agent arrived incomplete (a transfer cut short);"
        " nothing on the host was changed\n" % host
    )
    finish(1)
if sys.version_info < (3, 9):
    sys.stderr.write(
        "pms-rollout FAILED host=%s service=- check=interpreter: %s is Python %d.%d; the agent needs 3.9 or later;"
        " nothing on the host was changed\n" % (host, sys.executable, sys.version_info[0], sys.version_info[1])
    )
    finish(1)
received = data[pos:]
del data
sys.path.insert(0, agent)
from pms_agent import frontend

finish(frontend.main(sys.argv[2:], run_dir, received))
PY
}

main() {
  scan_args "$@"
  prepare_state_dir
  RUN_DIR=$(mktemp -d "$RUNS_DIR/XXXXXXXXXX") || refuse state-dir "cannot create a run directory in $RUNS_DIR (disk full?)"
  # The loader removes them too when the agent refuses before its worker takes over.
  if [ ${#CREATED[@]} -gt 0 ]; then
    printf '%s\n' "${CREATED[@]}" >"$RUN_DIR/created" || refuse state-dir "cannot write in $RUN_DIR (disk full?)"
  fi
  # A run dir is live while its front end or worker holds a shared lock on it (another run's sweep).
  exec {RUN_LOCK}>>"$RUN_DIR/lock"
  flock -w "$SYSTEMCTL_TIMEOUT" -s "$RUN_LOCK"
  # A full disk: refuse() removes the partial copy (it holds the secrets) with the run dir.
  cat >"$RUN_DIR/stdin" 2>/dev/null || refuse state-dir "cannot store the transfer in $RUN_DIR (disk full?)"
  check_interpreter
  write_loader "$RUN_DIR/load.py"
  # The front end replaces this shell (same PID, same SSH session): killing or freezing the
  # session's process is killing or freezing the front end. It keeps the run dir's lock.
  exec "$PYTHON" -I "$RUN_DIR/load.py" "$RUN_DIR" "$@"
}

# Must stay the last line, on one line: stdin after it is the agent and the env file.
main "$@"; exit $?
