#!/usr/bin/env bash
# Boots and tears down one disposable test host: systemd-nspawn --boot on an overlay of the
# image built by image/build.sh, in a private network namespace, with sshd and the app's HTTP
# port forwarded to 127.0.0.1.
#
# Usage:
#   host.sh boot ID RUNDIR --image DIR --ssh-port PORT --http-port PORT --client-key KEYFILE
#               [--hostname NAME] [--timeout SECONDS] [--variant NAME[,NAME...]]
#   host.sh teardown ID RUNDIR
#   host.sh ssh ID RUNDIR [--user USER] [--] COMMAND...     (debugging aid)
#
# ID names the netns (th-ID), the cgroups (testhost-ID) and the nspawn machine; RUNDIR holds the
# overlay, saved PIDs and logs of this host and nothing else. Teardown only acts on what RUNDIR
# records (saved PIDs, the cgroups and netns it created), is idempotent and safe after a failed
# boot. Needs root.
#
# Variants (--variant, comma-separated; applied to the host's overlay before it boots, so the host
# comes up as if it had always been that way; files from the image's /usr/local/share/pms-testhost,
# i.e. units/variants/; testhost.ts HOST_VARIANTS says the same):
#   plain                 units as shipped, no EnvironmentFile=, no env file (the default): the
#                         app exits for lack of SECRET_KEY until a first deploy
#   envfile               EnvironmentFile=/srv/pms-backend/.env.production in both unit files and
#                         that file (0600 root, preset key): the app is up at boot
#   legacy-env            a years-old hand-written .env.production: 0644, `export ` prefixes, double
#                         quotes, keys the program does not know. systemd rejects `export` lines, so
#                         the units source it in a bash ExecStart= (no EnvironmentFile=); a file the
#                         app user cannot read is skipped. The app is up at boot
#   envfile-other         EnvironmentFile=-/etc/default/pms-backend (tuning keys) in both unit files
#   override-envfile      pms-backend.service.d/override.conf with EnvironmentFile= of another
#                         SECRET_KEY: wins over any 50-*.conf drop-in
#   override-environment  the same override.conf with Environment="SECRET_KEY=..." (loses to any
#                         EnvironmentFile= value)
#   template              celery-pms@.service, celery-pms@default.service enabled, no celery-pms.service
#   notify                pms-backend Type=notify (gunicorn's sd_notify)
#   forking               celery-pms Type=forking (`celery multi`, PIDFile=)
#   oneshot               celery-pms Type=oneshot + RemainAfterExit=yes around `celery multi`
#                         (active/exited, MainPID=0)
#   stopped               the Celery unit stopped and disabled by the operator
#   app-root-owned        /srv/pms-backend owned by root instead of the app user pms
#   pg-trust              pg_hba.conf trusts 127.0.0.1/32 and ::1/128 (method trust), as initdb
#                         writes without -A: any password logs in over TCP on loopback
set -euo pipefail

START_US=${EPOCHREALTIME/./}
ID="" RUNDIR=""
log() {
  local ms=$(((${EPOCHREALTIME/./} - START_US) / 1000))
  printf '[host %s %3d.%01ds] %s\n' "$ID" $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
die() { log "ERROR: $*"; exit 1; }

usage() { sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d' >&2; exit 2; }

[ $# -ge 3 ] || usage
CMD="$1" ID="$2" RUNDIR="$3"
shift 3
case "$ID" in
  *[!A-Za-z0-9_-]* | "") die "host id '$ID' may only contain letters, digits, '-' and '_'" ;;
esac
[ "${#ID}" -le 40 ] || die "host id '$ID' is longer than 40 characters"
case "$RUNDIR" in /*) ;; *) die "RUNDIR must be an absolute path, got '$RUNDIR'" ;; esac

NETNS="th-$ID"
ROOT="$RUNDIR/root"
PIDS="$RUNDIR/pids"
# The name the app answers to (ALLOWED_HOSTS of the preset env files); requests for any other
# Host get 400, as in production.
readonly PUBLIC_HOST="api.pms.example.com"
# Applied in this order whatever order they are given in: unit shapes first, then what refers to
# the units' files, then the operator's state.
readonly VARIANT_ORDER="plain notify socket forking oneshot template envfile-other envfile legacy-env override-envfile override-environment stopped app-root-owned pg-trust"
APP_UP=0
CELERY_UNIT="celery-pms.service"
CELERY_ENABLED=1

ssh_opts() { # ssh_opts PORT KEY KNOWN_HOSTS
  printf '%s\n' -F /dev/null -p "$1" -i "$2" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$3" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=5 -o LogLevel=ERROR
}

# cgroup directories for this host: one per hierarchy that nspawn and the container's systemd use.
cgroup_dirs() {
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    echo "/sys/fs/cgroup/testhost-$ID"
  elif [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup/unified)" = cgroup2fs ]; then
    echo "/sys/fs/cgroup/unified/testhost-$ID"
    echo "/sys/fs/cgroup/systemd/testhost-$ID"
  else
    die "no cgroup v2 hierarchy: the trixie systemd in the test host needs cgroup v2 (pure or hybrid)"
  fi
}

pid_alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ]; }

# Reads a saved PID and prints it only if that process still runs the expected program, so a
# recycled PID is never signalled.
saved_pid() { # saved_pid NAME EXPECTED_SUBSTRING_OF_CMDLINE
  local file="$PIDS/$1.pid" pid cmdline
  [ -f "$file" ] || file="$file.tmp" # boot was interrupted between writing and renaming
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  pid_alive "$pid" || return 0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  case "$cmdline" in *"$2"*) echo "$pid" ;; esac
}

wait_gone() { # wait_gone PID TIMEOUT_TENTHS
  local i=0
  while pid_alive "$1" && [ "$i" -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
  ! pid_alive "$1"
}

start_forward() { # start_forward NAME OUTER_PORT INNER_PORT
  local name="$1" outer="$2" inner="$3"
  # Each connection to 127.0.0.1:OUTER runs a socat inside the netns that connects to the
  # host's own 127.0.0.1:INNER. setsid: the forwarder and its per-connection children form one
  # process group that teardown signals as a whole.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && exec socat "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr,fork" "EXEC:ip netns exec $3 socat STDIO TCP\:127.0.0.1\:$4"' \
    _ "$PIDS/$name.pid" "$outer" "$NETNS" "$inner" </dev/null >>"$RUNDIR/$name.log" 2>&1 &
}

# --- variants: edit the host's overlay before it boots ----------------------------------------

unit_dir() { echo "$ROOT/etc/systemd/system"; }
share() { echo "$ROOT/usr/local/share/pms-testhost/$1"; }

# Adds EnvironmentFile=SPEC to every app unit, after any it already has (before ExecStart=).
add_environment_file() { # add_environment_file SPEC
  local unit
  for unit in pms-backend.service celery-pms.service celery-pms@.service; do
    [ -f "$(unit_dir)/$unit" ] || continue
    sed -i "/^ExecStart=/i EnvironmentFile=$1" "$(unit_dir)/$unit"
  done
}

install_override() { # install_override SHARED_CONF
  [ ! -e "$(unit_dir)/pms-backend.service.d/override.conf" ] ||
    die "variants override-envfile and override-environment exclude each other"
  install -d -m 0755 "$(unit_dir)/pms-backend.service.d"
  install -m 0644 "$(share "env/$1")" "$(unit_dir)/pms-backend.service.d/override.conf"
}

install_app_env() { # install_app_env SHARED_FILE MODE
  [ ! -e "$ROOT/srv/pms-backend/.env.production" ] ||
    die "variants envfile and legacy-env exclude each other"
  install -m "$2" -o 0 -g 0 "$(share "env/$1")" "$ROOT/srv/pms-backend/.env.production"
  APP_UP=1
}

# Rewrites every app unit's ExecStart= to source the env file in a shell first. `;` rather than
# `&&`: when the file is unreadable for the app user the service still starts on what systemd
# gave it (the bash error lands in the journal).
source_env_in_exec_start() { # source_env_in_exec_start FILE
  local unit
  for unit in pms-backend.service celery-pms.service celery-pms@.service; do
    [ -f "$(unit_dir)/$unit" ] || continue
    sed -i -E "s|^ExecStart=(.*)$|ExecStart=/bin/bash -c 'set -a; . $1; set +a; exec \\1'|" "$(unit_dir)/$unit"
  done
}

apply_variant() { # apply_variant NAME
  local wants
  wants="$(unit_dir)/multi-user.target.wants"
  case "$1" in
    plain) ;;
    notify) install -m 0644 "$(share units/pms-backend-notify.service)" "$(unit_dir)/pms-backend.service" ;;
    socket)
      grep -q '^Type=notify' "$(unit_dir)/pms-backend.service" && die "variants notify and socket exclude each other"
      install -m 0644 "$(share units/pms-backend-socket.service)" "$(unit_dir)/pms-backend.service"
      install -m 0644 "$(share units/pms-backend.socket)" "$(unit_dir)/pms-backend.socket"
      install -d -m 0755 "$(unit_dir)/sockets.target.wants"
      ln -sf /etc/systemd/system/pms-backend.socket "$(unit_dir)/sockets.target.wants/pms-backend.socket"
      ;;
    forking) install -m 0644 "$(share units/celery-pms-forking.service)" "$(unit_dir)/celery-pms.service" ;;
    oneshot)
      grep -q '^Type=forking' "$(unit_dir)/celery-pms.service" && die "variants forking and oneshot exclude each other"
      install -m 0644 "$(share units/celery-pms-oneshot.service)" "$(unit_dir)/celery-pms.service"
      ;;
    template)
      [ "$CELERY_UNIT" = celery-pms.service ] || die "variant template applied twice"
      grep -qE '^Type=(forking|oneshot)' "$(unit_dir)/celery-pms.service" &&
        die "variant template excludes forking and oneshot"
      rm -f "$(unit_dir)/celery-pms.service" "$wants/celery-pms.service"
      install -m 0644 "$(share units/celery-pms@.service)" "$(unit_dir)/celery-pms@.service"
      ln -s /etc/systemd/system/celery-pms@.service "$wants/celery-pms@default.service"
      CELERY_UNIT="celery-pms@default.service"
      ;;
    envfile-other)
      install -m 0644 -o 0 -g 0 "$(share env/default-pms-backend)" "$ROOT/etc/default/pms-backend"
      add_environment_file -/etc/default/pms-backend
      ;;
    envfile)
      install_app_env env.production.preset 0600
      add_environment_file /srv/pms-backend/.env.production
      ;;
    legacy-env)
      install_app_env env.production.legacy 0644
      source_env_in_exec_start /srv/pms-backend/.env.production
      ;;
    override-envfile)
      install_override override-envfile.conf
      install -d -m 0755 -o 0 -g 0 "$ROOT/etc/pms-backend"
      install -m 0600 -o 0 -g 0 "$(share env/secret-key.env)" "$ROOT/etc/pms-backend/secret-key.env"
      ;;
    override-environment) install_override override-environment.conf ;;
    stopped)
      rm -f "$wants/$CELERY_UNIT"
      CELERY_ENABLED=0
      ;;
    app-root-owned)
      chown -R 0:0 "$ROOT/srv/pms-backend"
      chmod -R go-w "$ROOT/srv/pms-backend"
      ;;
    pg-trust)
      local hba
      for hba in "$ROOT"/etc/postgresql/*/main/pg_hba.conf; do
        [ -f "$hba" ] || die "variant pg-trust: no pg_hba.conf in the image"
        sed -i -E 's,^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[a-z0-9-]+,\1trust,' "$hba"
        [ "$(grep -cE '^host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+trust' "$hba")" = 2 ] ||
          die "variant pg-trust: $hba has no host lines for 127.0.0.1/32 and ::1/128 to turn into trust"
      done
      ;;
    *) die "unknown variant '$1' (known: $VARIANT_ORDER)" ;;
  esac
}

apply_variants() { # apply_variants COMMA_SEPARATED_NAMES
  local given=() name known
  IFS=, read -r -a given <<<"$1"
  for name in "${given[@]}"; do
    case " $VARIANT_ORDER " in *" $name "*) ;; *) die "unknown variant '$name' (known: $VARIANT_ORDER)" ;; esac
  done
  for known in $VARIANT_ORDER; do
    for name in "${given[@]}"; do
      if [ "$name" = "$known" ]; then
        apply_variant "$name"
        break
      fi
    done
  done
  printf '%s\n' "${1:-plain}" >"$RUNDIR/variants"
}

# The remote part of the readiness probe: base services, and the app when a variant starts it.
ready_probe() {
  local probe
  # shellcheck disable=SC2016 # expanded on the test host
  probe='state=$(systemctl is-system-running --wait 2>/dev/null || true)
    systemctl is-active --quiet ssh postgresql redis-server &&
    pg_isready -q -h 127.0.0.1 -p 5432 &&
    [ "$(redis-cli -h 127.0.0.1 ping 2>/dev/null)" = PONG ]'
  if [ "$APP_UP" = 1 ]; then
    probe+=" && systemctl is-active --quiet pms-backend.service"
    [ "$CELERY_ENABLED" = 1 ] && probe+=" && systemctl is-active --quiet $CELERY_UNIT"
    probe+=" && [ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: $PUBLIC_HOST' http://127.0.0.1:8000/health/)\" = 200 ]"
  fi
  # shellcheck disable=SC2016 # expanded on the test host
  probe+=' && echo "ready:$state"'
  printf '%s\n' "$probe"
}

boot() {
  local image="" ssh_port="" http_port="" client_key="" hostname="" timeout=120 variants=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --image) image="$2"; shift 2 ;;
      --ssh-port) ssh_port="$2"; shift 2 ;;
      --http-port) http_port="$2"; shift 2 ;;
      --client-key) client_key="$2"; shift 2 ;;
      --hostname) hostname="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      --variant) variants="$2"; shift 2 ;;
      *) die "boot: unknown option '$1'" ;;
    esac
  done
  [ -f "$image/.pms-testhost-image" ] || die "--image '$image' is not a finished image (run image/build.sh)"
  if [ -z "$ssh_port" ] || [ -z "$http_port" ]; then die "--ssh-port and --http-port are required"; fi
  if [ ! -f "$client_key" ] || [ ! -f "$client_key.pub" ]; then
    die "--client-key '$client_key' (and .pub) must exist"
  fi
  hostname="${hostname:-$ID}"
  [ "$(id -u)" = 0 ] || die "must run as root"
  for tool in systemd-nspawn socat ip ssh ssh-keygen setsid mount; do
    command -v "$tool" >/dev/null || die "missing tool '$tool' (image/build.sh installs the host tools)"
  done
  [ ! -e "/run/netns/$NETNS" ] || die "netns $NETNS already exists: another host with id '$ID' is running?"
  if [ -e "$RUNDIR/state" ]; then die "RUNDIR $RUNDIR was already used; tear it down first"; fi

  mkdir -p "$RUNDIR/upper" "$RUNDIR/work" "$ROOT" "$PIDS"
  echo booting >"$RUNDIR/state"
  printf '%s\n' "$ID" >"$RUNDIR/id"

  log "overlay on $image"
  mount -t overlay overlay -o "lowerdir=$image,upperdir=$RUNDIR/upper,workdir=$RUNDIR/work" "$ROOT"

  # Per-host identity: host keys, machine id, hostname.
  ssh-keygen -A -f "$ROOT" >/dev/null
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$ROOT/etc/machine-id"
  echo >>"$ROOT/etc/machine-id"
  echo "$hostname" >"$ROOT/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$hostname" >"$ROOT/etc/hosts"

  local pub user uid gid home
  pub=$(cat "$client_key.pub")
  echo "$client_key" >"$RUNDIR/client_key"
  install -d -m 0700 -o 0 -g 0 "$ROOT/root/.ssh"
  printf '%s\n' "$pub" >"$ROOT/root/.ssh/authorized_keys"
  chmod 0600 "$ROOT/root/.ssh/authorized_keys"
  # deploy (the rollout's sudo login) and mallory (the hostile local user) log in with the same key.
  for user in deploy mallory; do
    IFS=: read -r _ _ uid gid _ home _ < <(grep "^$user:" "$ROOT/etc/passwd") ||
      die "user $user is missing from the image (rebuild it: image/build.sh)"
    install -d -m 0700 -o "$uid" -g "$gid" "$ROOT$home/.ssh"
    printf '%s\n' "$pub" >"$ROOT$home/.ssh/authorized_keys"
    chown "$uid:$gid" "$ROOT$home/.ssh/authorized_keys"
    chmod 0600 "$ROOT$home/.ssh/authorized_keys"
  done

  log "variants: ${variants:-plain}"
  apply_variants "$variants"

  local hostkey
  hostkey=$(cut -d' ' -f1,2 "$ROOT/etc/ssh/ssh_host_ed25519_key.pub")
  echo "$hostkey" >"$RUNDIR/host_ed25519.pub"
  echo "[127.0.0.1]:$ssh_port $hostkey" >"$RUNDIR/known_hosts"

  log "netns $NETNS"
  # Record before acting, so a boot interrupted right here is still torn down completely.
  echo "$NETNS" >"$RUNDIR/netns"
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up

  local cgs=() cg
  mapfile -t cgs < <(cgroup_dirs)
  : >"$RUNDIR/cgroups"
  for cg in "${cgs[@]}"; do
    echo "$cg" >>"$RUNDIR/cgroups"
    mkdir -p "$cg"
  done

  log "systemd-nspawn --boot"
  # The launcher moves itself into this host's own cgroups before exec: with --keep-unit nspawn
  # builds payload/ and supervisor/ inside the launcher's cgroup, which must not be shared.
  # SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: trixie's systemd refuses cgroup v1, and on a hybrid host
  # nspawn would otherwise hand the container the legacy layout.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '
    pidfile="$1"; shift
    while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs"; shift; done; shift
    echo $$ >"$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
    exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 "$@"' _ "$PIDS/nspawn.pid" "${cgs[@]}" -- \
    systemd-nspawn --boot --directory="$ROOT" --machine="$ID" --hostname="$hostname" \
    --register=no --keep-unit --link-journal=no --resolv-conf=off --timezone=off \
    --console=pipe --network-namespace-path="/run/netns/$NETNS" \
    </dev/null >"$RUNDIR/console.log" 2>&1 &

  start_forward socat-ssh "$ssh_port" 22
  start_forward socat-http "$http_port" 8000

  # Ready = sshd answers with the pinned key, the boot finished, and PostgreSQL + Redis serve;
  # with a variant that ships an env file, also the app units and /health/ for the public name.
  # (Otherwise the app is not expected to run before the first deploy gives it a SECRET_KEY.)
  local opts=() deadline state out probe
  probe=$(ready_probe)
  mapfile -t opts < <(ssh_opts "$ssh_port" "$client_key" "$RUNDIR/known_hosts")
  deadline=$((SECONDS + timeout))
  while :; do
    for name in nspawn socat-ssh socat-http; do
      # PID files are written with a rename, so one that exists is complete.
      [ -f "$PIDS/$name.pid" ] || continue # not written yet
      if ! pid_alive "$(cat "$PIDS/$name.pid")"; then
        tail -n 20 "$RUNDIR/console.log" "$RUNDIR/$name.log" >&2 2>/dev/null || true
        die "$name exited during boot (logs in $RUNDIR)"
      fi
    done
    # shellcheck disable=SC2029 # the probe is built for the remote side on purpose
    if out=$(ssh "${opts[@]}" root@127.0.0.1 "$probe" 2>>"$RUNDIR/boot-ssh.log"); then
      case "$out" in ready:*) state="${out#ready:}"; break ;; esac
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$RUNDIR/console.log" >&2 || true
      ssh "${opts[@]}" root@127.0.0.1 'systemctl --failed --no-pager; systemctl is-system-running; journalctl -u pms-backend -u "celery-pms*" -n 20 --no-pager' >&2 2>&1 || true
      die "not ready after ${timeout}s (console log: $RUNDIR/console.log)"
    fi
    sleep 0.3
  done
  echo ready >"$RUNDIR/state"
  log "ready (system state: $state)"
}

teardown() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  [ -d "$RUNDIR" ] || { log "nothing to tear down ($RUNDIR is gone)"; return 0; }
  local id_saved
  id_saved=$(cat "$RUNDIR/id" 2>/dev/null || echo "$ID")
  [ "$id_saved" = "$ID" ] || die "RUNDIR $RUNDIR belongs to host '$id_saved', not '$ID'"
  echo stopping >"$RUNDIR/state" 2>/dev/null || true

  local pid name
  for name in socat-ssh socat-http; do
    pid=$(saved_pid "$name" socat)
    # The forwarder was started with setsid: its PID is also its process group id.
    if [ -n "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
  done

  pid=$(saved_pid nspawn "$ROOT")
  if [ -n "$pid" ]; then
    log "stopping nspawn $pid (clean halt)"
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 150 || log "nspawn $pid did not halt in 15s; killing the host's cgroups"
  fi

  # Whatever is left in this host's cgroups (nspawn included, if it hung) is killed, then the
  # cgroups are removed deepest first.
  local cg cgs=() pass procs
  [ -f "$RUNDIR/cgroups" ] && mapfile -t cgs <"$RUNDIR/cgroups"
  for pass in $(seq 1 50); do
    procs=""
    for cg in "${cgs[@]}"; do
      [ -d "$cg" ] || continue
      procs+=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')
    done
    [ -z "${procs// /}" ] && break
    [ "$pass" = 1 ] && log "killing leftover processes: $procs"
    # shellcheck disable=SC2086 # one PID per word
    kill -KILL $procs 2>/dev/null || true
    sleep 0.1
  done
  for cg in "${cgs[@]}"; do
    [ -d "$cg" ] || continue
    for pass in $(seq 1 30); do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] || break
      sleep 0.1
    done
    [ ! -d "$cg" ] || log "WARNING: could not remove cgroup $cg"
  done

  # Forwarders that did not die on TERM.
  for name in socat-ssh socat-http; do
    pid=$(saved_pid "$name" socat)
    if [ -n "$pid" ] && ! wait_gone "$pid" 20; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  done

  if [ -f "$RUNDIR/netns" ] && [ -e "/run/netns/$NETNS" ]; then
    for pass in $(seq 1 50); do
      ip netns del "$NETNS" 2>/dev/null && break
      sleep 0.1
    done
    [ ! -e "/run/netns/$NETNS" ] || log "WARNING: could not delete netns $NETNS"
  fi

  if mountpoint -q "$ROOT" 2>/dev/null; then
    for pass in $(seq 1 50); do
      umount "$ROOT" 2>/dev/null && break
      sleep 0.1
    done
    mountpoint -q "$ROOT" && die "overlay $ROOT is still mounted (busy); not removing $RUNDIR"
  fi
  # Never recurse into a mount point: stay on this file system.
  if grep -qF " $RUNDIR/" /proc/self/mounts; then die "mounts remain under $RUNDIR; not removing it"; fi
  rm -rf --one-file-system "$RUNDIR"
  log "torn down"
}

ssh_cmd() {
  local user=root
  if [ "${1:-}" = --user ]; then user="$2"; shift 2; fi
  [ "${1:-}" = -- ] && shift
  local port key opts=()
  port=$(cut -d' ' -f1 "$RUNDIR/known_hosts" | sed 's/^\[127.0.0.1\]://')
  key=$(cat "$RUNDIR/client_key")
  mapfile -t opts < <(ssh_opts "$port" "$key" "$RUNDIR/known_hosts")
  exec ssh "${opts[@]}" "$user@127.0.0.1" "$@"
}

main() {
  case "$CMD" in
    boot) boot "$@" ;;
    teardown) teardown ;;
    ssh) ssh_cmd "$@" ;;
    *) usage ;;
  esac
}

# One line: bash has read it whole before main runs, so editing this file while a boot or
# teardown is running cannot make bash read on from a shifted offset.
main "$@"; exit
