#!/usr/bin/env bash
# Builds (or restores from cache) the root filesystem of the disposable test hosts:
# Debian 13 "trixie" with systemd, sshd, PostgreSQL, Redis and the stand-in pms-backend app,
# laid out like a production server: the app user `pms` owns /srv/pms-backend, the app runs from
# a venv there (/srv/pms-backend/venv), the units use systemd's default start limits, and a
# hostile local user `mallory` exists. Unit and env-file variants (units/variants/) are shipped
# in the image under /usr/local/share/pms-testhost and switched on per host at boot by host.sh.
#
# Usage: build.sh [--base-only] [--force]
#   prints progress on stderr and, on success, the image directory as the last line of stdout.
#
# Two cache levels under ${PMS_TESTHOST_CACHE:-/var/cache/pms-secrets-testhost}:
#   base-<hash>.tar.zst   debootstrap + distro packages; <hash> covers only the package recipe,
#                         so editing the app fixture does not re-run debootstrap.
#   image-<hash>.tar.zst  the finished rootfs; <hash> covers this script, app/ and units/.
#   image-<hash>/         the extracted finished rootfs (the overlay lower dir of every host).
#   image-<hash>.used     touched whenever this script hands the image out.
# Images of other hashes are kept: another checkout or test run may be booting from one right
# now. Only those unused for PRUNE_DAYS and not mounted as an overlay lower dir are removed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOST_DIR="$(dirname "$HERE")"
APP_DIR="$HOST_DIR/app"
UNITS_DIR="$HOST_DIR/units"
CACHE="${PMS_TESTHOST_CACHE:-/var/cache/pms-secrets-testhost}"
MIRROR="${PMS_TESTHOST_MIRROR:-http://deb.debian.org/debian}"
SUITE="trixie"
INCLUDE="systemd,systemd-sysv,dbus,openssh-server,iproute2,procps,ca-certificates,sudo,curl"
APP_PACKAGES="python3-django gunicorn celery python3-redis python3-psycopg2 python3-dotenv python3-django-environ python3-venv postgresql redis-server"
# Tools this machine needs to build and to run hosts (host.sh uses the same list).
HOST_TOOLS_PACKAGES="debootstrap systemd-container socat zstd iproute2 openssh-client util-linux"

DB_NAME="poultry_db"
DB_USER="pms"
DB_PASSWORD="pms-db-test-password"
# A Redis ACL user, so a broker URL with a password (as old env files have) really authenticates.
REDIS_USER="pms"
REDIS_PASSWORD="pms-redis-test-password"
APP_ROOT="/srv/pms-backend"
VENV="$APP_ROOT/venv"
# The deploy user's sudo rule: exactly the line docs/RUNBOOK.md "Host setup" tells operators to
# install (test/runbook-sudoers.test.ts checks both say the same), so the hosts prove that line is
# enough for a real rollout and allows nothing but the rollout's command form (smoke.test.ts).
DEPLOY_SUDOERS_LINE='deploy ALL=(root) NOPASSWD: /bin/bash -s -- *'
# ... preceded by the runbook's Defaults line: no sudo I/O log of the deploy user (stdin = secrets).
DEPLOY_SUDOERS_DEFAULTS='Defaults:deploy !log_input, !log_output'
DEPLOY_SUDOERS_FILE="/etc/sudoers.d/pms-rollout"
# Where the variant files live inside the image (root-only: they hold fixture secrets).
SHARE="/usr/local/share/pms-testhost"
PRUNE_DAYS=2

START_US=${EPOCHREALTIME/./}
log() {
  local ms=$(((${EPOCHREALTIME/./} - START_US) / 1000))
  printf '[build %4d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
die() { log "ERROR: $*"; exit 1; }

BASE_ONLY=0
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --base-only) BASE_ONLY=1 ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d'; exit 0 ;;
    *) die "unknown argument: $arg (expected --base-only or --force)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, systemd-nspawn and mounts need it)"
[ "$(uname -s)" = Linux ] || die "needs Linux"

ensure_host_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
  command -v socat >/dev/null || missing+=(socat)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v flock >/dev/null || missing+=(util-linux)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing missing host tools: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $HOST_TOOLS_PACKAGES >&2
  fi
}

# Hash of the files that define the finished image, in a stable order.
inputs_hash() {
  {
    printf 'build.sh\n'
    cat "$HERE/build.sh"
    (cd "$HOST_DIR" && find app units -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z |
      while IFS= read -r -d '' f; do printf '%s\n' "$f"; cat "$f"; done)
  } | sha256sum | cut -c1-16
}

base_hash() {
  printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "$APP_PACKAGES" "base-recipe-v3" | sha256sum | cut -c1-16
}

pack() { # pack DIR TARBALL
  local dir="$1" out="$2"
  tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$dir" -cf - . |
    zstd -q -T0 -3 -o "$out.part"
  mv -f "$out.part" "$out"
}

unpack() { # unpack TARBALL DIR
  mkdir -p "$2"
  zstd -q -d -c "$1" | tar --numeric-owner --xattrs --xattrs-include='*' --acls -C "$2" -xpf -
}

in_root() { # in_root DIR SCRIPT  -- run a shell script inside the rootfs, no boot
  local dir="$1" script="$2"
  SYSTEMD_NSPAWN_TMPFS_TMP=0 systemd-nspawn --quiet --pipe --register=no --keep-unit \
    --resolv-conf=off --timezone=off --link-journal=no \
    -D "$dir" /bin/bash -euo pipefail -c "$script" </dev/null >>"$CACHE/build.log" 2>&1 ||
    { tail -n 40 "$CACHE/build.log" >&2; die "step inside the rootfs failed (full log: $CACHE/build.log)"; }
}

build_base() { # build_base DIR
  local dir="$1"
  log "debootstrap $SUITE (minbase) into $dir"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (full log: $CACHE/debootstrap.log)"; }
  log "debootstrap done; installing app packages"
  # nspawn wants a resolv.conf we control; the image gets the host's for apt only.
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
  # Documentation and translations are never read on a test host: keep them out of the image
  # (also for packages a test might install later).
  printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
    'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
    >"$dir/etc/dpkg/dpkg.cfg.d/01-pms-testhost-slim"
  in_root "$dir" "
    find /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale -mindepth 1 \\
      ! -name copyright ! -type d -delete 2>/dev/null || true
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $APP_PACKAGES
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  "
  log "app packages installed"
}

# What pip writes into venv/bin for a package's console_scripts entry point.
write_console_script() { # write_console_script FILE MODULE FUNCTION
  mkdir -p "$(dirname "$1")"
  cat >"$1" <<EOF
#!$VENV/bin/python3
import re
import sys
from $2 import $3
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?\$", "", sys.argv[0])
    sys.exit($3())
EOF
}

stage_app() { # stage_app DIR
  local dir="$1"
  log "installing the stand-in app, venv, units, variants and accounts"
  rm -rf "$dir$APP_ROOT"
  mkdir -p "$dir$APP_ROOT"
  cp -a "$APP_DIR/." "$dir$APP_ROOT/"
  find "$dir$APP_ROOT" -name '__pycache__' -prune -exec rm -rf {} +
  install -m 0644 "$UNITS_DIR"/*.service "$dir/etc/systemd/system/"
  rm -rf "$dir$SHARE"
  install -d -m 0700 "$dir$SHARE" "$dir$SHARE/units" "$dir$SHARE/env"
  install -m 0644 "$UNITS_DIR"/variants/*.service "$dir$SHARE/units/"
  install -m 0644 "$UNITS_DIR"/variants/*.socket "$dir$SHARE/units/"
  install -m 0600 "$UNITS_DIR"/variants/env/* "$dir$SHARE/env/"
  write_console_script "$dir/tmp/pms-console-scripts/gunicorn" gunicorn.app.wsgiapp run
  write_console_script "$dir/tmp/pms-console-scripts/celery" celery.__main__ main
  in_root "$dir" "
    groupadd --system pms
    useradd --system --gid pms --home-dir $APP_ROOT --no-create-home --shell /usr/sbin/nologin pms

    # The app's own venv over Debian's packages, the way the guide's commands expect it
    # (source venv/bin/activate; venv/bin/python manage.py ...). The console scripts are what pip
    # writes for gunicorn's and celery's entry points, so the units run venv/bin/gunicorn|celery.
    python3 -m venv --system-site-packages $VENV
    install -m 0755 /tmp/pms-console-scripts/* $VENV/bin/
    rm -rf /tmp/pms-console-scripts
    $VENV/bin/python -c 'import django, gunicorn, celery, psycopg2, redis'
    $VENV/bin/pip --version >/dev/null

    # The common case on real servers: the app user owns the app directory (and could plant links
    # in it); the env file the program writes there is root's.
    chown -R pms:pms $APP_ROOT
    chmod -R u=rwX,go=rX $APP_ROOT

    # A non-root login user whose sudo allows only the rollout's command form (the runbook's line),
    # the way the rollout reaches real hosts; visudo refuses the build if the line does not parse.
    useradd --create-home --shell /bin/bash deploy
    usermod -p '*' deploy   # no password, but not 'locked' (sshd refuses locked accounts)
    printf '%s\n' '$DEPLOY_SUDOERS_DEFAULTS' '$DEPLOY_SUDOERS_LINE' >$DEPLOY_SUDOERS_FILE
    chmod 0440 $DEPLOY_SUDOERS_FILE
    visudo -c -q -f $DEPLOY_SUDOERS_FILE
    visudo -c -q

    # A hostile local user: shell login, no sudo, member of nothing but its own group.
    useradd --create-home --shell /bin/bash mallory
    usermod -p '*' mallory

    # Key-only sshd; per-host keys are made at boot time by host.sh, so none ship in the image.
    mkdir -p /etc/ssh/sshd_config.d
    printf '%s\n' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
      'PermitRootLogin prohibit-password' 'PubkeyAuthentication yes' 'UseDNS no' \
      >/etc/ssh/sshd_config.d/10-testhost.conf
    rm -f /etc/ssh/ssh_host_*

    # Nothing listens on a console in a test host; an empty machine-id is filled per host.
    systemctl mask console-getty.service getty@.service getty.target systemd-firstboot.service >/dev/null 2>&1 || true
    : >/etc/machine-id
    rm -f /var/lib/dbus/machine-id

    # Redis: the default user stays password-less (CELERY_BROKER_URL without credentials works);
    # an ACL user takes the password an old env file's broker URL carries.
    echo 'user $REDIS_USER on >$REDIS_PASSWORD ~* &* +@all' >>/etc/redis/redis.conf

    # Database: role + database owned by it, then the app's migrations, run from the venv as pms.
    PGVER=\$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster \"\$PGVER\" main start
    runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
SQL
    cd $APP_ROOT
    runuser -u pms -- env SECRET_KEY=image-build-only-not-a-real-key-0123456789abcdefghijklmnop \
      DB_NAME=$DB_NAME DB_USER=$DB_USER DB_PASSWORD=$DB_PASSWORD DB_HOST=127.0.0.1 DB_PORT=5432 \
      $VENV/bin/python manage.py migrate --noinput -v 0
    # The guide's check passes on the preset env file, warnings included: the image is production-like.
    ( set -a && . $SHARE/env/env.production.preset && set +a &&
      runuser -u pms -- bash -c 'source venv/bin/activate && python manage.py check --deploy --fail-level WARNING' ) </dev/null ||
      { echo 'manage.py check --deploy failed on the preset env' >&2; exit 1; }
    pg_ctlcluster \"\$PGVER\" main stop
    find $APP_ROOT -name '__pycache__' -prune -exec rm -rf {} +

    systemctl enable ssh.service postgresql.service redis-server.service pms-backend.service celery-pms.service >/dev/null 2>&1
  "
  rm -f "$dir/etc/resolv.conf"
  printf 'nameserver 127.0.0.1\n' >"$dir/etc/resolv.conf"
  log "app staged"
}

# Removes images of other hashes that nobody handed out for PRUNE_DAYS and that no host uses as
# its overlay lower dir. Runs under the build lock, so no build of this script races it.
prune_old_images() { # prune_old_images CURRENT_HASH
  local keep="$1" entry hash dir stamp
  for entry in "$CACHE"/image-*; do
    [ -e "$entry" ] || continue
    hash="${entry##*/image-}"
    hash="${hash%%.*}"
    [ "$hash" = "$keep" ] && continue
    dir="$CACHE/image-$hash"
    # Last hand-out time; images made before stamps existed count from their own mtime.
    stamp="$dir.used"
    [ -e "$stamp" ] || stamp="$entry"
    [ -n "$(find "$stamp" -maxdepth 0 -mtime +"$PRUNE_DAYS")" ] || continue
    if grep -qF "lowerdir=$dir" /proc/mounts; then continue; fi
    log "pruning image $hash (unused for more than $PRUNE_DAYS days)"
    rm -rf "$dir" "$dir.tar.zst" "$dir.used"
  done
}

# Hands the image out: marks it used now and prints its directory (last stdout line).
hand_out() { # hand_out HASH DIR
  touch "$CACHE/image-$1.used"
  echo "$2"
}

main() {
  ensure_host_tools
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  # Builds are serialized by the lock, so any work dir here is from a build that was killed.
  rm -rf "$CACHE"/work-*

  local bhash ihash image base_tar image_tar
  bhash=$(base_hash)
  ihash=$(inputs_hash)
  image="$CACHE/image-$ihash"
  base_tar="$CACHE/base-$bhash.tar.zst"
  image_tar="$CACHE/image-$ihash.tar.zst"

  if [ "$FORCE" = 1 ]; then
    if grep -qF "lowerdir=$image" /proc/mounts; then
      die "--force: image $ihash is in use by a running host ($image); tear it down first"
    fi
    rm -f "$base_tar" "$image_tar"
    rm -rf "$image"
  fi

  if [ "$BASE_ONLY" = 0 ] && [ -f "$image/.pms-testhost-image" ]; then
    log "image $ihash ready at $image"
    hand_out "$ihash" "$image"
    return
  fi

  WORK="$CACHE/work-$$"
  local work="$WORK"
  rm -rf "$work"
  trap 'rm -rf "$WORK"' EXIT

  if [ "$BASE_ONLY" = 0 ] && [ -f "$image_tar" ]; then
    log "restoring image $ihash from $image_tar"
    unpack "$image_tar" "$work"
    rm -rf "$image"
    mv "$work" "$image"
    log "image $ihash restored at $image"
    hand_out "$ihash" "$image"
    return
  fi

  : >"$CACHE/build.log"
  if [ -f "$base_tar" ]; then
    log "restoring base $bhash from $base_tar"
    unpack "$base_tar" "$work"
  else
    log "building base $bhash (no cache at $base_tar)"
    build_base "$work"
    log "packing base to $base_tar"
    pack "$work" "$base_tar"
  fi
  if [ "$BASE_ONLY" = 1 ]; then
    log "base $bhash ready"
    return
  fi

  stage_app "$work"
  date -u +%FT%TZ >"$work/.pms-testhost-image"
  log "packing image to $image_tar"
  pack "$work" "$image_tar"
  rm -rf "$image"
  mv "$work" "$image"

  # Bases of other recipes are only build inputs (no host boots from them); images are kept.
  local old
  for old in "$CACHE"/base-*.tar.zst; do
    [ "$old" = "$base_tar" ] || [ ! -e "$old" ] || [ -z "$(find "$old" -mtime +"$PRUNE_DAYS")" ] || rm -f "$old"
  done
  prune_old_images "$ihash"

  log "image $ihash built at $image"
  hand_out "$ihash" "$image"
}

# One line: bash has read it whole before main runs, so editing this file during a build cannot
# make bash read on from a shifted offset.
main; exit
