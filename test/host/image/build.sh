#!/usr/bin/env bash
# Builds (or restores from cache) the root filesystem of the disposable test hosts:
# Debian 13 "trixie" with systemd, sshd, PostgreSQL, Redis and the stand-in pms-backend app.
#
# Usage: build.sh [--base-only] [--force]
#   prints progress on stderr and, on success, the image directory as the last line of stdout.
#
# Two cache levels under ${PMS_TESTHOST_CACHE:-/var/cache/pms-secrets-testhost}:
#   base-<hash>.tar.zst   debootstrap + distro packages; <hash> covers only the package recipe,
#                         so editing the app fixture does not re-run debootstrap.
#   image-<hash>.tar.zst  the finished rootfs; <hash> covers this script, app/ and units/.
#   image-<hash>/         the extracted finished rootfs (the overlay lower dir of every host).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOST_DIR="$(dirname "$HERE")"
APP_DIR="$HOST_DIR/app"
UNITS_DIR="$HOST_DIR/units"
CACHE="${PMS_TESTHOST_CACHE:-/var/cache/pms-secrets-testhost}"
MIRROR="${PMS_TESTHOST_MIRROR:-http://deb.debian.org/debian}"
SUITE="trixie"
INCLUDE="systemd,systemd-sysv,dbus,openssh-server,iproute2,procps,ca-certificates,sudo,curl"
APP_PACKAGES="python3-django gunicorn celery python3-redis python3-psycopg2 python3-dotenv python3-django-environ postgresql redis-server"
# Tools this machine needs to build and to run hosts (host.sh uses the same list).
HOST_TOOLS_PACKAGES="debootstrap systemd-container socat zstd iproute2 openssh-client util-linux"

DB_NAME="poultry_db"
DB_USER="pms"
DB_PASSWORD="pms-db-test-password"

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
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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
  printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "$APP_PACKAGES" "base-recipe-v2" | sha256sum | cut -c1-16
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

stage_app() { # stage_app DIR
  local dir="$1"
  log "installing the stand-in app, units and accounts"
  rm -rf "$dir/srv/pms-backend"
  mkdir -p "$dir/srv/pms-backend"
  cp -a "$APP_DIR/." "$dir/srv/pms-backend/"
  find "$dir/srv/pms-backend" -name '__pycache__' -prune -exec rm -rf {} +
  install -m 0644 "$UNITS_DIR"/*.service "$dir/etc/systemd/system/"
  in_root "$dir" "
    groupadd --system pms
    useradd --system --gid pms --home-dir /srv/pms-backend --no-create-home --shell /usr/sbin/nologin pms
    chown -R root:root /srv/pms-backend
    chmod -R u=rwX,go=rX /srv/pms-backend

    # A non-root login user with passwordless sudo, the way the rollout reaches real hosts.
    useradd --create-home --shell /bin/bash deploy
    usermod -p '*' deploy   # no password, but not 'locked' (sshd refuses locked accounts)
    echo 'deploy ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/deploy
    chmod 0440 /etc/sudoers.d/deploy

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

    # Database: role + database owned by it, then the app's migrations.
    PGVER=\$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster \"\$PGVER\" main start
    runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
SQL
    cd /srv/pms-backend
    runuser -u pms -- env SECRET_KEY=image-build-only-not-a-real-key-0123456789abcdefghijklmnop \
      DB_NAME=$DB_NAME DB_USER=$DB_USER DB_PASSWORD=$DB_PASSWORD DB_HOST=127.0.0.1 DB_PORT=5432 \
      python3 manage.py migrate --noinput -v 0
    pg_ctlcluster \"\$PGVER\" main stop
    find /srv/pms-backend -name '__pycache__' -prune -exec rm -rf {} +

    systemctl enable ssh.service postgresql.service redis-server.service pms-backend.service celery-pms.service >/dev/null 2>&1
  "
  rm -f "$dir/etc/resolv.conf"
  printf 'nameserver 127.0.0.1\n' >"$dir/etc/resolv.conf"
  log "app staged"
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
    rm -f "$base_tar" "$image_tar"
    rm -rf "$image"
  fi

  if [ "$BASE_ONLY" = 0 ] && [ -f "$image/.pms-testhost-image" ]; then
    log "image $ihash ready at $image"
    echo "$image"
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
    echo "$image"
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

  # Old images: drop tarballs and unused extracted dirs of other hashes (a dir still used as an
  # overlay lower dir by a running host is kept).
  local old
  for old in "$CACHE"/image-*; do
    case "$old" in "$image"|"$image_tar") continue ;; esac
    if [ -d "$old" ] && grep -qF "lowerdir=$old" /proc/mounts; then continue; fi
    rm -rf "$old"
  done
  for old in "$CACHE"/base-*.tar.zst; do
    [ "$old" = "$base_tar" ] || rm -f "$old"
  done

  log "image $ihash built at $image"
  echo "$image"
}

main
