"""The worker: the rollout itself, in a transient systemd unit that survives an SSH drop.

Steps (Rollout.run reads like this list): take the host lock, sweep what killed runs left, check
every unit, open the env directory safely, read the current env file, compose the new one, stop
when everything is in place and proven, set a changed DB_PASSWORD in PostgreSQL, run the check
command as the first unit runs, back up, install the file and the drop-ins, restart the services in
order, watch them in one stability window, prove each one's processes hold the new env, close the
DB role the app left (emergency), purge old copies if asked. Any failure after the first change
rolls back every step and ends with one `pms-rollout FAILED host= service= check=` line."""

from __future__ import annotations

import datetime
import errno
import fcntl
import os
import re
import shutil
import signal
import stat
import time
from typing import Callable, Dict, List, Optional, Set, Tuple

from . import dbpass, envfile, health, paths, proof, secretkey, systemd
from .constants import (
    BACKUP_ROOT,
    CHECK_TIMEOUT,
    DB_CLOSE_PENDING,
    DROPIN_NAME,
    KEY_ERROR_PATTERN,
    LOCK_FILE,
    LOCK_TIMEOUT,
    PID_FILE,
    PRIVATE_PREFIX,
    PROG,
    RUNS_DIR,
    STATE_DIR,
    SYSTEMCTL_TIMEOUT,
)
from .dbpass import FinalFailure
from .options import Options
from .report import Failure, Reporter
from .transaction import Transaction


class Stopped(Exception):
    """SIGTERM (RuntimeMaxSec=, systemctl stop), SIGINT or SIGHUP: roll back."""


class NothingToDo(Exception):
    """Phase 1 on a host with no current key, or the no-op path: exit 0 without a change."""


def untouched(check: str, detail: str, service: str = "-") -> Failure:
    return Failure(service, check, detail)


def flock(fd: int, mode: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def claim_run(run_dir: str, who: str) -> bool:
    """Exactly one of the worker and the front end claims the run (an O_EXCL create)."""
    try:
        fd = os.open(os.path.join(run_dir, "claim"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return False
    os.write(fd, (who + "\n").encode())
    os.close(fd)
    return True


def backup_dir_of(env_file: str) -> str:
    import hashlib

    return os.path.join(BACKUP_ROOT, hashlib.sha256(env_file.encode()).hexdigest()[:16])


def utc_stamp() -> str:
    now = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


class Rollout:
    def __init__(self, o: Options, r: Reporter, run_dir: str) -> None:
        self.o = o
        self.r = r
        self.run_dir = run_dir
        self.run_id = os.path.basename(run_dir)
        self.tx = Transaction()
        self.env_fd = -1
        self.priv_fd = -1
        self.private_name = ""
        self.previous: Optional[str] = None
        self.previous_id = ""
        self.received = ""
        self.final = ""
        self.delivered: Dict[str, str] = {}
        self.keys: List[str] = []
        self.hash = ""
        self.action: Dict[str, str] = {}
        self.idle: Set[str] = set()
        self.restarted: List[str] = []
        self.generation: Dict[str, str] = {}
        self.env_installed = False
        self.installed_id = ""
        self.dropins_changed: Dict[str, Optional[bytes]] = {}
        self.sk_changed = False
        self.migrated_from = ""
        self.migrated_id = ""
        self.moved_id = ""
        self.login_password = ""
        self.db = dbpass.Db(run_dir)
        self.db_altered = False
        self.db_old_verifier = ""
        self.db_switch = False
        self.db_prev_role = ""
        self.db_followed = False
        self.db_rollback_note = ""

    # --- helpers -------------------------------------------------------------------------

    def log(self, message: str) -> None:
        self.r.log(message)

    def run_path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def env_stat(self) -> Optional[os.stat_result]:
        try:
            return os.lstat(self.o.env_name, dir_fd=self.env_fd)
        except OSError:
            return None

    def desired_mode_owner(self) -> str:
        return f"640 root:{self.o.group}" if self.o.group else "600 root:root"

    def set_delivered(self, text: str, absent: Tuple[str, ...] = ()) -> None:
        self.delivered = envfile.parse_ours(text)
        for key in absent:
            self.delivered.setdefault(key, "")
        self.keys = sorted(self.delivered, key=lambda k: k.encode())
        missing = [k for k in absent if k not in envfile.parse_ours(text)]
        self.hash = envfile.delivered_hash(self.delivered, missing)
        for key, value in self.delivered.items():
            if key in self.o.redact:
                self.r.add_redactions(value)

    # --- the steps -----------------------------------------------------------------------

    def run(self) -> None:
        self.take_host_lock()
        self.sweep_state()
        self.check_units()
        self.open_env_dir()
        self.migrate_env_file()
        self.adopt_legacy_backup()
        self.received = paths.read_small(self.run_path("received.env")).decode("utf-8", "surrogateescape")
        self.set_delivered(self.received)
        self.claim_keys()
        self.compose_env()
        self.compose_secret_key_fallbacks()
        self.compose_db_user()
        # The proof covers the list too: with none kept, a process that still holds
        # SECRET_KEY_FALLBACKS must not pass, so the key is hashed as "absent".
        self.set_delivered(self.final, absent=("SECRET_KEY_FALLBACKS",))
        if self.already_in_place():
            self.log("already in place and proven in the running processes; nothing to do")
            self.purge_old_copies()
            self.close_pending_db_role()
            return
        self.rotate_db_password()
        self.run_check()
        self.backup_previous()
        self.install_env()
        self.install_dropins()
        self.restart_services()
        self.finish_migration()
        self.purge_old_copies()
        self.close_previous_db_role()
        # No hash of the file here: the log reaches CI output (the program's fingerprint is keyed).
        self.log(f"done: {self.o.env_file} in place and proven")

    def take_host_lock(self) -> None:
        fd = os.open(LOCK_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        if not flock(fd, fcntl.LOCK_EX, LOCK_TIMEOUT):
            try:
                holder = paths.read_small(PID_FILE, 64).decode().strip() or "?"
            except OSError:
                holder = "?"
            raise untouched("lock", f"another rollout (PID {holder}) held the host lock for {LOCK_TIMEOUT}s")
        self.host_lock_fd = fd
        with open(PID_FILE, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")

    def sweep_state(self) -> None:
        """Holding the host lock: whatever a killed run left is stale."""
        try:
            names = os.listdir(RUNS_DIR)
        except OSError:
            names = []
        for name in names:
            d = os.path.join(RUNS_DIR, name)
            if d == self.run_dir or os.path.islink(d) or not os.path.isdir(d):
                continue
            lock = os.path.join(d, "lock")
            if os.path.exists(lock):
                try:
                    fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    free = flock(fd, fcntl.LOCK_EX, 0)
                finally:
                    os.close(fd)
                if free:
                    shutil.rmtree(d, ignore_errors=True)
            elif time.time() - os.lstat(d).st_mtime > 120:
                shutil.rmtree(d, ignore_errors=True)
        # Half-written backups and drop-ins (temp names of atomic writes).
        for sub in self.listdir(BACKUP_ROOT):
            d = os.path.join(BACKUP_ROOT, sub)
            if os.path.isdir(d) and not os.path.islink(d):
                for f in self.listdir(d):
                    p = os.path.join(d, f)
                    if f.startswith(".") and f.endswith(".env") and stat.S_ISREG(os.lstat(p).st_mode):
                        os.unlink(p)
        for svc in self.o.services:
            d = systemd.dropin_dir(svc)
            if os.path.isdir(d) and not os.path.islink(d):
                for f in self.listdir(d):
                    p = os.path.join(d, f)
                    st = os.lstat(p)
                    if f.startswith(".pms-secrets.") and stat.S_ISREG(st.st_mode) and st.st_uid == 0:
                        os.unlink(p)
        # Left by earlier versions of the agent.
        for f in self.listdir(STATE_DIR):
            p = os.path.join(STATE_DIR, f)
            st = os.lstat(p)
            if f.startswith("rollout.") and stat.S_ISDIR(st.st_mode):
                shutil.rmtree(p, ignore_errors=True)
            elif f.endswith(".applied") and stat.S_ISREG(st.st_mode):
                os.unlink(p)

    @staticmethod
    def listdir(path: str) -> List[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def check_units(self) -> None:
        """Decides per unit: restart (running, crash-looping or failed) or leave (deliberately stopped)."""
        for svc in self.o.services:
            load = systemd.show(svc + ".service", "LoadState")
            if load is None:
                raise Failure(svc, "unit", f"systemctl show {svc}.service did not answer within {SYSTEMCTL_TIMEOUT}s")
            if load != "loaded":
                raise Failure(
                    svc, "unit", f"systemd has no loaded unit {svc}.service (LoadState={load}): is app.services right?"
                )
            d = systemd.dropin_dir(svc)
            if os.path.lexists(d):
                if os.path.islink(d) or not os.path.isdir(d):
                    raise Failure(svc, "drop-in", f"{d} is not a directory")
                try:
                    paths.check_owner_root(d, "the drop-in")
                except paths.Refusal as e:
                    raise Failure(svc, "drop-in", str(e)) from None
            active = systemd.prop(svc, "ActiveState")
            enabled = systemd.prop(svc, "UnitFileState")
            if active in ("inactive", "deactivating"):
                listening, sockets = self.socket_listening_for(svc)
                if listening:
                    self.action[svc] = "restart"
                    self.idle.add(svc)
                    self.log(
                        f"unit: {svc} is idle ({active}) but {sockets} listens for it (socket activation): started now,"
                        " so the new env is checked and proven before the rollout reports success"
                    )
                else:
                    self.action[svc] = "leave"
                    also = f" and so is {sockets}" if sockets else ""
                    self.log(
                        f"unit: {svc} is stopped ({active}, {enabled}){also}: left stopped; it reads the new env when next"
                        " started"
                    )
            else:
                self.action[svc] = "restart"
                if enabled == "disabled":
                    self.log(f"unit: {svc} is disabled but {active}: restarted, left disabled")
        self.check_socket()
        self.check_login_probe()

    def socket_listening_for(self, svc: str) -> Tuple[bool, str]:
        """Whether a socket unit that activates the (inactive) unit listens; and its socket units."""
        if systemd.prop(svc, "UnitFileState") == "masked":
            return False, ""
        sockets = [u for u in systemd.prop(svc, "TriggeredBy").split() if u.endswith(".socket")]
        listening = any(systemd.show(u, "ActiveState") == "active" for u in sockets)
        return listening, " ".join(sockets)

    def check_socket(self) -> None:
        """--socket: the first service must really be socket-activated by that unit."""
        sock = self.o.socket
        if not sock:
            return
        svc = self.o.services[0]
        fix = f"install and enable {sock} as docs/ZERO-DOWNTIME.md shows, or remove app.socketUnit"
        load = systemd.show(sock, "LoadState")
        if load is None:
            raise Failure(svc, "socket", f"systemctl show {sock} did not answer within {SYSTEMCTL_TIMEOUT}s")
        if load != "loaded":
            raise Failure(svc, "socket", f"systemd has no loaded unit {sock} (LoadState={load}): {fix}")
        active = systemd.show(sock, "ActiveState") or ""
        if active != "active":
            raise Failure(svc, "socket", f"{sock} is {active}, not listening: start it (systemctl enable --now {sock})")
        triggered = systemd.prop(svc, "TriggeredBy")
        if sock not in triggered.split():
            raise Failure(
                svc,
                "socket",
                f"{svc}.service is not activated by {sock} (its TriggeredBy is {triggered or 'empty'}): gunicorn binds"
                f" its own port and a restart refuses connections; {fix}",
            )
        listen = (systemd.show(sock, "Listen") or "").split("\n")[0]
        self.log(f"socket: {svc}.service is activated by {sock} ({listen}): connections queue during its restart")

    def check_login_probe(self) -> None:
        """The probe's password file must be root's alone; read once, kept in memory, redacted."""
        o = self.o
        if not o.login_url:
            return
        svc = o.services[0]
        f = o.login_password_file
        try:
            st = os.lstat(f)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise Failure(
                svc,
                "login-probe",
                f"{f} is missing or not a regular file: write the probe account's password there, root-only (runbook,"
                " Host setup)",
            )
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != 0 or st.st_nlink != 1 or mode & 0o077:
            raise Failure(
                svc,
                "login-probe",
                f"{f} must be root's alone (it is uid {st.st_uid}, mode {mode:o}, {st.st_nlink} link(s)): chown"
                f" root:root {f} && chmod 0600 {f}",
            )
        try:
            paths.check_ancestors(f, f)
        except paths.Refusal as e:
            raise Failure(svc, "login-probe", str(e)) from None
        data = paths.read_small(f, 65536).decode("utf-8", "surrogateescape")
        self.login_password = data.split("\n", 1)[0]
        if not self.login_password:
            raise Failure(svc, "login-probe", f"{f} is empty: its first line is the probe account's password")
        self.r.add_redactions(self.login_password)

    # --- the env directory ---------------------------------------------------------------

    def open_env_dir(self) -> None:
        """Working directory = a fresh root-only directory inside the env directory."""
        o = self.o
        env_dir = o.env_dir
        try:
            paths.check_ancestors(env_dir, "the env directory")
        except paths.Refusal as e:
            raise untouched("env-dir", str(e)) from None
        parent = os.path.dirname(env_dir) or "/"
        if not os.path.lexists(env_dir) and os.path.isdir(parent):
            try:
                os.mkdir(env_dir, 0o755)
                os.chmod(env_dir, 0o755)  # noqa: S103 - root's, and a group that may read the file must reach it
            except OSError:
                raise untouched("env-dir", f"cannot create {env_dir}") from None
            self.log(f"env: created {env_dir} (root 0755)")
        if not os.path.isdir(env_dir):
            raise untouched("env-dir", f"directory {env_dir} does not exist (is app.dir / app.envFile right?)")
        self.check_env_dir_root_only()
        try:
            os.chdir(env_dir)
            self.env_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise untouched("env-dir", f"cannot enter {env_dir}") from None
        env_id = paths.file_id(os.fstat(self.env_fd))
        self.sweep_env_dir()
        name = ""
        for _ in range(20):
            candidate = PRIVATE_PREFIX + os.urandom(8).hex()[:10]
            try:
                os.mkdir(candidate, 0o700, dir_fd=self.env_fd)
                name = candidate
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise untouched("env-dir", f"cannot create a private directory in {env_dir} ({e.strerror})") from None
        if not name:
            raise untouched("env-dir", f"cannot create a private directory in {env_dir}")
        self.private_name = name
        try:
            self.priv_fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.env_fd
            )
            os.fchdir(self.priv_fd)
        except OSError:
            raise untouched("env-dir", f"cannot enter our private directory in {env_dir}") from None
        st = os.fstat(self.priv_fd)
        # Swapped for someone else's directory or a link between mkdir and open: refuse.
        if (
            st.st_uid != 0
            or stat.S_IMODE(st.st_mode) != 0o700
            or st.st_nlink != 2
            or paths.file_id(os.stat("..")) != env_id
            or os.listdir(".")
        ):
            raise untouched(
                "env-dir", f"the private directory {env_dir}/{name} changed under us (another user races this rollout)"
            )

    def check_env_dir_root_only(self) -> None:
        """Issue 19: where a user other than root can write the env directory, that user can replace
        the env file with a link to any root-only file between rollouts."""
        o = self.o
        try:
            st = os.stat(o.env_dir)
        except OSError:
            return
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == 0 and not mode & 0o022:
            return
        fix = (
            "Fix: put the env file in a directory only root can write: remove app.envFile for the default"
            " /etc/pms-backend/.env.production (the rollout moves the file there once), or chown root"
            f" {o.env_dir} && chmod go-w {o.env_dir}"
        )
        if st.st_uid != 0:
            try:
                import pwd

                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                owner = "?"
            who = f"uid {st.st_uid} ({owner}), its owner"
        else:
            who = f"group or others (mode {mode:o})"
        refusal = (
            f"{o.env_dir} (the env file's directory) is writable by {who}: that user can replace {o.env_name} with a"
            " link to any root-only file between rollouts, and systemd, reading EnvironmentFile= as root, would hand"
            " its KEY=VALUE lines to the services"
        )
        if o.production:
            raise untouched("env-dir", f"{refusal} (refused on a production stack). {fix}")
        self.r.warn("-", "env-dir", f"{refusal}. {fix}")

    def sweep_env_dir(self) -> None:
        """Our private dirs of killed runs, and temp files earlier versions left; never through a link."""
        for name in self.listdir("."):
            try:
                st = os.lstat(name, dir_fd=self.env_fd)
            except OSError:
                continue
            if name.startswith(PRIVATE_PREFIX) and stat.S_ISDIR(st.st_mode) and st.st_uid == 0:
                shutil.rmtree(os.path.join(self.o.env_dir, name), ignore_errors=True)
                self.log(f"sweep: removed {self.o.env_dir}/{name} left by a killed run")
            elif (name.startswith(".env.pms-new.") and stat.S_ISREG(st.st_mode) and st.st_uid == 0) or (
                name == self.o.env_name + ".bak.tmp" and stat.S_ISREG(st.st_mode)
            ):
                os.unlink(name, dir_fd=self.env_fd)

    def read_env(self, name: str, what: str) -> Optional[Tuple[bytes, os.stat_result]]:
        return paths.open_regular(self.env_fd, name, what, f"{self.o.env_dir}/{name}")

    # --- moving the env file to its configured path (issue 19) ---------------------------

    def dropin_env_file(self) -> str:
        for svc in self.o.services:
            try:
                text = paths.read_small(systemd.dropin_path(svc), 65536).decode("utf-8", "replace")
            except OSError:
                continue
            found = [
                line[len("EnvironmentFile=") :] for line in text.split("\n") if line.startswith("EnvironmentFile=")
            ]
            f = found[-1] if found else ""
            if f and f != self.o.env_file and f.startswith("/"):
                return f
        return ""

    def migrate_env_file(self) -> None:
        old = self.dropin_env_file()
        if not old:
            return
        o = self.o
        self.migrated_from = old
        if self.env_stat() is not None:
            self.log(f"env: the drop-ins name {old}; {o.env_file} exists already and is the env file from now on")
            return
        try:
            paths.check_ancestors(os.path.dirname(old) or "/", "the previous env file")
        except paths.Refusal as e:
            raise untouched("env-move", str(e)) from None
        try:
            st = os.lstat(old)
        except OSError:
            self.log(f"env: the drop-ins name {old}, which does not exist: nothing to move")
            return
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise untouched(
                "env-move",
                f"{old} (named by the drop-ins) is not a regular file with one link ({paths.kind_of(st)}"
                f" {st.st_nlink}); root does not read it: put the real file there or remove it, then run again",
            )
        try:
            fd = os.open(old, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise untouched("env-move", f"cannot read {old}") from None
        try:
            fst = os.fstat(fd)
            if paths.file_id(fst) != paths.file_id(st) or fst.st_nlink != 1:
                raise untouched("env-move", f"{old} changed while it was opened; refusing to read it as root")
            data = os.read(fd, fst.st_size + 1)
        finally:
            os.close(fd)
        self.migrated_id = paths.file_id(st)
        try:
            paths.write_file(self.priv_fd, "moved", data, 0o600)
        except OSError:
            self.unlink_private("moved")
            raise untouched("env-move", f"cannot copy {old} to {o.env_dir} (disk full?)") from None
        if o.group:
            try:
                shutil.chown(f"/proc/self/fd/{self.priv_fd}/moved", group=o.group)
                os.chmod("moved", 0o640, dir_fd=self.priv_fd)
            except (OSError, LookupError):
                pass
        self.moved_id = paths.file_id(os.lstat("moved", dir_fd=self.priv_fd))
        os.rename("moved", o.env_name, src_dir_fd=self.priv_fd, dst_dir_fd=self.env_fd)
        self.log(
            f"env: moving {old} to {o.env_file}: a copy is in place; the drop-ins follow in this rollout, the old copy"
            " is removed once the services are proven on it"
        )

    def unlink_private(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.priv_fd)
        except OSError:
            pass

    def move_backups(self, old: str) -> None:
        src = backup_dir_of(old)
        if not os.path.isdir(src) or os.path.islink(src):
            return
        dst = self.backup_dir()
        moved = 0
        for f in self.listdir(src):
            p = os.path.join(src, f)
            if f.endswith(".env") and stat.S_ISREG(os.lstat(p).st_mode):
                os.replace(p, os.path.join(dst, f))
                moved += 1
        shutil.rmtree(src, ignore_errors=True)
        self.prune_backups(dst)
        if moved:
            self.log(f"env: {moved} backup generation(s) of {old} moved to {dst}")

    def finish_migration(self) -> None:
        old = self.migrated_from
        if not old:
            return
        self.move_backups(old)
        for svc in self.o.services:
            files = systemd.env_files(svc)
            if old in files or "-" + old in files:
                self.r.warn(
                    svc,
                    "env-move",
                    f"{svc}.service still loads {old} (an EnvironmentFile= outside our drop-in), so it was left in place:"
                    f" remove that line from the unit, then delete {old}",
                )
                return
        try:
            current = paths.file_id(os.lstat(old))
        except OSError:
            current = ""
        if self.migrated_id and current != self.migrated_id:
            self.r.warn(
                "-", "env-move", f"{old} was replaced during the rollout; left as it is: check it and delete it"
            )
            return
        if os.path.lexists(old):
            os.unlink(old)
            self.log(f"env: removed the old copy {old}; the env file is {self.o.env_file} now (the drop-ins name it)")

    def adopt_legacy_backup(self) -> None:
        """The single .bak earlier versions kept next to the env file: moved into the root-only backups."""
        name = self.o.env_name + ".bak"
        try:
            got = self.read_env(name, "the old backup")
        except paths.Refusal:
            return
        if got is None:
            return
        d = self.backup_dir()
        target = os.path.join(d, "00000000T000000Z-legacy-bak.env")
        paths.atomic_write(target, got[0], 0o600)
        os.unlink(name, dir_fd=self.env_fd)
        self.log(f"sweep: moved the old {self.o.env_file}.bak into {d} (root-only)")

    # --- composing -----------------------------------------------------------------------

    def claim_keys(self) -> None:
        """SECRET_KEY_FALLBACKS (and DB_USER with --db-roles) are the host's to write."""
        if "SECRET_KEY_FALLBACKS" in self.delivered:
            raise untouched(
                "secret-key-fallbacks",
                "the delivered env file sets SECRET_KEY_FALLBACKS; the host keeps that list itself (remove it from the"
                " stack config; set secretKeyFallbacks instead)",
            )
        self.delivered["SECRET_KEY_FALLBACKS"] = ""
        if self.o.db_roles:
            if "DB_USER" in self.delivered:
                raise untouched(
                    "db-password",
                    "the delivered env file sets DB_USER, but with --db-roles the host writes it (remove env.DB_USER"
                    " from the stack config)",
                )
            self.delivered["DB_USER"] = ""

    def compose_env(self) -> None:
        try:
            got = self.read_env(self.o.env_name, "the env file")
        except paths.Refusal as e:
            raise untouched("env-file", str(e)) from None
        if got is None:
            self.final = self.received
            return
        data, st = got
        self.previous = data.decode("utf-8", "surrogateescape")
        self.previous_id = paths.file_id(st)
        fd = os.open(self.run_path("previous.env"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        final, _, redactions, logs = envfile.compose(
            self.received, self.previous, self.delivered, self.o.redact, self.o.unmanaged_keys, self.o.env_file
        )
        self.r.add_redactions(*redactions)
        self.final = final
        for line in logs:
            self.log(line)

    def compose_secret_key_fallbacks(self) -> None:
        o = self.o
        result = secretkey.compose(
            self.final,
            self.previous,
            self.delivered.get("SECRET_KEY", ""),
            o.secret_key_fallbacks,
            o.emergency,
            o.secret_key_accept,
            o.env_file,
            lambda: proof.running_value(o.services[0], "SECRET_KEY"),
        )
        self.r.add_redactions(*result.redactions)
        for line in result.logs:
            self.log(line)
        if result.nothing_to_accept:
            raise NothingToDo()
        self.final = result.final
        self.sk_changed = result.changed

    def note_old_key_rejected(self, svc: str) -> None:
        """An emergency's proof of closure, timed; the program reads this line into secretKeyEmergency."""
        if self.o.emergency and self.sk_changed and svc == self.o.services[0]:
            now = datetime.datetime.now(datetime.timezone.utc)
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
            self.log(f"secret key: the old key is rejected by {svc} since {stamp} (emergency)")

    # --- DB_PASSWORD ---------------------------------------------------------------------

    def new_db_password(self) -> str:
        new = self.delivered.get("DB_PASSWORD", "")
        if not new:
            raise untouched("db-password", "--rotate-db-password needs DB_PASSWORD in the delivered env file")
        return new

    def db_target(self) -> None:
        d = self.delivered
        self.db.host = d.get("DB_HOST", "")
        self.db.port = d.get("DB_PORT", "") or "5432"
        self.db.name = d.get("DB_NAME", "")

    def compose_db_user(self) -> None:
        """With --db-roles: DB_USER after DB_PASSWORD, and whether that role's password must be set."""
        roles = self.o.db_roles
        if not roles:
            return
        new = self.new_db_password()
        current = old = ""
        if self.previous is not None:
            current = envfile.host_value(self.previous, "DB_USER")
            old = envfile.host_value(self.previous, "DB_PASSWORD")
        if current in roles:
            if old == new:
                target = current
                self.log(f"db roles: DB_PASSWORD unchanged; the app stays on {current}")
            else:
                target = roles[1] if current == roles[0] else roles[0]
                self.db_switch = True
                self.db_prev_role = current
                self.log(
                    f"db roles: DB_PASSWORD changes; it goes to {target}, the role the app does not use ({current} keeps"
                    " its password until the next rotation)"
                )
        else:
            target = roles[0]
            self.db_switch = True
            keeps = f" ({current} keeps its password)" if current else ""
            self.log(
                f"db roles: the host's DB_USER is {current or 'not set'}, neither of {roles[0]}, {roles[1]}: moving to"
                f" {target}{keeps}"
            )
        if self.o.db_follow and self.db_switch:
            self.follow_db_role(target)
            target = self.db.role
            self.log(
                f"db roles: following {self.o.db_follow} (the database's admin host): the new password logs in as"
                f" {target}, so the app moves to {target}; no change in PostgreSQL from this host"
            )
        if re.search(r"^DB_PASSWORD=", self.final, re.M):
            self.final = envfile.insert_after(self.final, "DB_PASSWORD", f"DB_USER='{target}'")

    def follow_db_role(self, role: str) -> None:
        """Shared database: the admin host changed the password; this host proves it logs in."""
        new = self.new_db_password()
        self.db_target()
        if not dbpass.port_ok(self.db.port):
            raise untouched("db-password", f"DB_PORT '{self.db.port}' is not a port number")
        if not dbpass.which("psql"):
            raise untouched(
                "db-password",
                "psql is needed on this host to prove the new DB_PASSWORD logs in before the env file moves",
            )
        pgpass = self.db.write_pgpass("db-new.pgpass", new)
        for candidate in [role, *self.o.db_roles]:
            self.db.role = candidate
            if candidate and self.db.login_works(pgpass):
                if not self.db.wrong_password_refused():
                    raise untouched(
                        "db-password",
                        dbpass.trust_refusal(
                            self.db.host,
                            self.db.port,
                            self.db.role,
                            f"on {self.o.db_follow} (the database's admin host)",
                        ),
                    )
                return
        self.db.role = ""
        shown = role or "DB_USER"
        if self.o.db_roles:
            shown = f"{self.o.db_roles[0]} nor as {self.o.db_roles[1]}"
        raise untouched(
            "db-password",
            f"the new DB_PASSWORD does not log in to {self.db.host}:{self.db.port} as {shown}; the database's admin host"
            f" {self.o.db_follow} changes it first in this run. Fix: check that the rollout of {self.o.db_follow}"
            " succeeded (its db password step) and that PostgreSQL there accepts this host (listen_addresses, a"
            " pg_hba.conf host line with scram-sha-256), then run again",
        )

    def rotate_db_password(self) -> None:
        o = self.o
        if not o.rotate_db_password:
            return
        new = self.new_db_password()
        old = ""
        if o.db_roles:
            if not self.db_switch:
                return
        else:
            if self.previous is not None:
                old = envfile.host_value(self.previous, "DB_PASSWORD")
            if old == new:
                return
        if o.db_follow:
            if not o.db_roles:
                self.follow_db_role(self.delivered.get("DB_USER", ""))
            self.db_followed = True
            self.log(
                f"db password: following {o.db_follow} (the database's admin host): the new password logs in to"
                f" {self.db.host}:{self.db.port} as {self.db.role}; no change in PostgreSQL from this host (a wrong"
                " password is refused on that route, so the login proves it)"
            )
            return
        self.db_target()
        db = self.db
        db.role = self.delivered.get("DB_USER", "")
        if not dbpass.ROLE.fullmatch(db.role):
            raise untouched(
                "db-password",
                f"DB_USER '{db.role}' is not a plain lower-case role name; Fix: use such a role or supply DB_PASSWORD"
                " (secrets.DB_PASSWORD) and change it in PostgreSQL yourself",
            )
        if db.host not in ("127.0.0.1", "localhost", "::1") and not db.host_is_here():
            raise untouched(
                "db-password",
                f"DB_HOST '{db.host}' is not this host: the password is changed through the local postgres superuser."
                " Fix: run the rotation on the database host (generated.DB_PASSWORD.adminHost names it), or supply"
                " DB_PASSWORD (secrets.DB_PASSWORD) and change it in PostgreSQL yourself",
            )
        if not dbpass.port_ok(db.port):
            raise untouched("db-password", f"DB_PORT '{db.port}' is not a port number")
        if re.fullmatch(r"[\x21-\x7e]+", new) is None:
            raise untouched(
                "db-password",
                "the new DB_PASSWORD has characters other than printable ASCII (a SCRAM verifier would not match"
                " PostgreSQL's SASLprep)",
            )
        try:
            import pwd

            pwd.getpwnam("postgres")
            has_postgres = True
        except KeyError:
            has_postgres = False
        if not dbpass.which("psql") or not has_postgres:
            raise untouched(
                "db-password",
                "psql, python3 and the postgres user are needed on this host to change DB_PASSWORD in PostgreSQL",
            )
        pgpass = db.write_pgpass("db-new.pgpass", new)
        stored = self.db_stored(db.role)
        if dbpass.stored_matches(stored, db.role, new.encode()):
            self.log(
                f"db password: {db.role}@{db.host}:{db.port} already accepts the new password (its stored verifier"
                " matches it, checked without a login: changed by an earlier host of this run); no change in PostgreSQL"
            )
            return
        if not db.wrong_password_refused():
            raise untouched("db-password", dbpass.trust_refusal(db.host, db.port, db.role, "on this host"))
        self.db_old_verifier = stored
        paths.write_file(os.open(self.run_dir, os.O_RDONLY | os.O_DIRECTORY), "db-old.verifier", stored.encode(), 0o600)
        verifier = dbpass.scram_verifier(new.encode())
        self.db_altered = True
        self.tx.push("db password", self.restore_db_password)
        rc, out = db.admin(f"ALTER ROLE {db.role} PASSWORD '{verifier}';\n")
        if rc != 0:
            raise untouched("db-password", f"ALTER ROLE {db.role} failed: {self.r.redact(out.split(chr(10))[-1])}")
        if not db.login_works(pgpass):
            raise untouched(
                "db-password",
                f"the new password does not log in to {db.host}:{db.port} as {db.role} (pg_hba.conf? password_encryption?)",
            )
        if not db.wrong_password_refused():
            raise untouched("db-password", dbpass.trust_refusal(db.host, db.port, db.role, "on this host"))
        if old and db.login_works(db.write_pgpass("db-old.pgpass", old)):
            raise untouched(
                "db-password",
                f"the previous DB_PASSWORD still logs in to {db.host}:{db.port} as {db.role} after ALTER ROLE (another"
                " pg_hba.conf line or role?)",
            )
        also = ", the previous one too" if old else ""
        self.log(
            f"db password: changed for {db.role} in PostgreSQL (SCRAM-SHA-256 verifier, statement not logged) and"
            f" proven by a login to {db.host}:{db.port} (a wrong password refused there{also}); the previous verifier is"
            " kept for a rollback"
        )

    def db_stored(self, role: str) -> str:
        rc, out = self.db.stored(role)
        if rc != 0:
            last = out.split("\n")[-1]
            raise untouched(
                "db-password",
                f"cannot read the role {role} through the local postgres superuser: {self.r.redact(last)}",
            )
        if not out.startswith("v:"):
            raise untouched("db-password", f"PostgreSQL has no role {role} (DB_USER)")
        if "'" in out:
            raise untouched("db-password", f"the stored password of {role} has an unexpected form")
        return out[2:]

    def restore_db_password(self) -> Optional[str]:
        """Puts the role's previous verifier back; on failure keeps it in the state dir."""
        db = self.db
        old = self.db_old_verifier
        sql = f"ALTER ROLE {db.role} PASSWORD NULL;" if not old else f"ALTER ROLE {db.role} PASSWORD '{old}';"
        if db.admin(sql + "\n")[0] == 0 and db.stored(db.role) == (0, f"v:{old}"):
            self.db_altered = False
            self.log(f"rollback: PostgreSQL role {db.role} has its previous password again (verifier restored)")
            return None
        keep = os.path.join(STATE_DIR, f"db-old-verifier.{db.role}")
        try:
            paths.atomic_write(keep, old.encode(), 0o600)
        except OSError:
            pass
        return (
            f"could not restore the previous password of PostgreSQL role {db.role} (its previous verifier is kept in"
            f" {keep})"
        )

    def close_previous_db_role(self) -> None:
        """Emergency with alternating roles: the role the app left gets a password nobody knows."""
        o = self.o
        if o.emergency and self.db_altered and self.db_prev_role and self.db_prev_role != self.db.role:
            old = envfile.host_value(self.previous or "", "DB_PASSWORD")
            self.close_db_role(self.db_prev_role, old)

    def close_pending_db_role(self) -> None:
        """The no-op path: a role an earlier emergency run could not close."""
        o = self.o
        if not os.path.isfile(DB_CLOSE_PENDING) or not o.rotate_db_password or o.db_follow:
            return
        role = paths.read_small(DB_CLOSE_PENDING, 256).decode("utf-8", "replace").split("\n")[0]
        if not dbpass.ROLE.fullmatch(role):
            os.unlink(DB_CLOSE_PENDING)
            return
        self.db_target()
        self.db.role = self.delivered.get("DB_USER", "")
        if role == self.db.role:
            os.unlink(DB_CLOSE_PENDING)  # the app runs on it again: a later rotation gave it a new password
            return
        self.log(f"db password: {role} was left open by an earlier emergency run ({DB_CLOSE_PENDING}); closing it now")
        self.close_db_role(role, "")

    def close_db_role(self, role: str, old: str) -> None:
        db = self.db
        fix = (
            f"the new env is in place and proven on {db.role}, but {role} may still accept the previous DB_PASSWORD; the"
            f" next run tries again. Fix: give {role} a password nobody keeps and end its sessions as docs/RUNBOOK.md"
            " section 4 step 3 shows (as root on the database host)"
        )
        # From here a failure keeps the new env (no rollback): the previous one holds the leak.
        self.tx.forget()
        paths.atomic_write(DB_CLOSE_PENDING, f"{role}\n".encode(), 0o600)
        rc, before = db.stored(role)
        if rc != 0:
            before = ""
        verifier = dbpass.random_verifier()
        rc, out = db.admin(
            f"ALTER ROLE {role} PASSWORD '{verifier}';\n"
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename ="
            f" '{role}' AND pid <> pg_backend_pid();\n"
        )
        if rc != 0:
            raise FinalFailure(
                "db-emergency", f"ALTER ROLE {role} failed: {self.r.redact(out.split(chr(10))[-1])}", fix
            )
        rc, after = db.stored(role)
        if rc != 0 or after != f"v:{verifier}" or after == before:
            raise FinalFailure(
                "db-emergency", f"PostgreSQL does not hold the new verifier for {role} after ALTER ROLE", fix
            )
        if old and db.login_works(db.write_pgpass("db-old.pgpass", old), role=role):
            raise FinalFailure(
                "db-emergency",
                f"the previous DB_PASSWORD still logs in to {db.host}:{db.port} as {role} after ALTER ROLE",
                fix,
            )
        os.unlink(DB_CLOSE_PENDING)
        refused = "; the previous DB_PASSWORD is refused for it" if old else ""
        self.log(
            f"db password: EMERGENCY (--emergency): {role}, the role the app used before, got a random password nobody"
            f" knows (stored nowhere) and its {out or 0} open session(s) were ended{refused}. The next routine rotation"
            " gives it a new password and moves the app back to it"
        )

    def db_follower_rollback_env(self) -> Optional[str]:
        """A follower's rollback restores the previous env with the new DB_PASSWORD (the admin host changed it)."""
        o = self.o
        if not (self.db_followed and self.env_installed and self.previous is not None):
            return None
        user = ""
        if o.db_roles:
            if not o.emergency:
                return None
            user = self.db.role
        new = self.delivered.get("DB_PASSWORD", "")
        out: List[str] = []
        written = False
        for line in envfile.host_lines(self.previous):
            key = envfile.line_key(line)
            if key == "DB_PASSWORD" or (user and key == "DB_USER"):
                if not written:
                    out.append(f"DB_PASSWORD='{new}'\n")
                    if user:
                        out.append(f"DB_USER='{user}'\n")
                written = True
            else:
                out.append(line + "\n")
        if not written:
            out.append(f"DB_PASSWORD='{new}'\n")
            if user:
                out.append(f"DB_USER='{user}'\n")
        try:
            st = os.lstat("previous", dir_fd=self.priv_fd)
            self.unlink_private("previous.db")
            paths.write_file(self.priv_fd, "previous.db", "".join(out).encode("utf-8", "surrogateescape"), 0o600)
            os.chown("previous.db", st.st_uid, st.st_gid, dir_fd=self.priv_fd, follow_symlinks=False)
            os.chmod("previous.db", stat.S_IMODE(st.st_mode), dir_fd=self.priv_fd)
            os.rename("previous.db", "previous", src_dir_fd=self.priv_fd, dst_dir_fd=self.priv_fd)
        except OSError:
            return "could not put the new DB_PASSWORD into the previous env for the rollback"
        also = f" and DB_USER {user}" if user else ""
        self.db_rollback_note = (
            f" (with the new DB_PASSWORD{also} from {o.db_follow}: PostgreSQL no longer accepts the previous one)"
        )
        # Units not restarted yet hold the dead password too: the rollback restarts every running unit.
        self.restarted = [s for s in o.services if self.action.get(s) == "restart"]
        self.log(
            f"rollback: the previous env goes back with the new DB_PASSWORD, which {o.db_follow} set in the shared database"
        )
        return None

    def db_rollback_login(self) -> str:
        """The restored env's DB_USER and DB_PASSWORD log in to its DB_HOST, as the app connects."""
        o = self.o
        if not (o.rotate_db_password and self.previous is not None and self.env_installed):
            return ""
        try:
            got = self.read_env(o.env_name, "the env file")
        except paths.Refusal:
            got = None
        text = got[0].decode("utf-8", "surrogateescape") if got else ""
        user, password = envfile.host_value(text, "DB_USER"), envfile.host_value(text, "DB_PASSWORD")
        host, port = envfile.host_value(text, "DB_HOST"), envfile.host_value(text, "DB_PORT") or "5432"
        name = envfile.host_value(text, "DB_NAME")
        if not user or not password or not host:
            return (
                f"; the restored {o.env_file} has no DB_USER, DB_PASSWORD or DB_HOST that can be read exactly: the"
                " database login was not checked"
            )
        db = dbpass.Db(self.run_dir, host, port, name, user)
        if not db.login_works(db.write_pgpass("db-rollback.pgpass", password)):
            return (
                f"; the restored DB_PASSWORD does not log in to {host}:{port} as {user} (database check after the"
                f" rollback): the app cannot reach its database. Fix: find the password PostgreSQL has for {user} (the"
                f" rollout log above says who changed it), put it in {o.env_file} or run the rotation again"
            )
        self.log(f"rollback: the restored DB_PASSWORD logs in to {host}:{port} as {user} (database check)")
        return ""

    # --- the no-op path ------------------------------------------------------------------

    def already_in_place(self) -> bool:
        if self.previous is None or self.final != self.previous:
            return False
        st = self.env_stat()
        if st is None or self.mode_owner(st) != self.desired_mode_owner():
            return False
        content = systemd.dropin_content(self.o.env_file)
        for svc in self.o.services:
            try:
                current = paths.read_small(systemd.dropin_path(svc), 65536).decode("utf-8", "replace")
            except OSError:
                return False
            if current.rstrip("\n") != content.rstrip("\n") or not systemd.ours_loads_last(svc, self.o.env_file):
                return False
            if self.action.get(svc) == "restart" and svc not in self.idle:
                if systemd.prop(svc, "ActiveState") != "active":
                    return False
                if not proof.prove_env(svc, self.keys, self.hash, self.o.env_file)[0]:
                    return False
        return True

    @staticmethod
    def mode_owner(st: os.stat_result) -> str:
        import grp
        import pwd

        try:
            user = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            user = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        return f"{stat.S_IMODE(st.st_mode):o} {user}:{group}"

    # --- the check command ---------------------------------------------------------------

    def run_check(self) -> None:
        """The check command as the first unit runs: its Environment=, every EnvironmentFile= in
        order with the new file last (in place of ours), User=, Group=, WorkingDirectory=."""
        o = self.o
        if not o.check:
            return
        svc = o.services[0]
        props: List[str] = []
        for name in ("User", "Group", "SupplementaryGroups"):
            value = systemd.prop(svc, name)
            if value:
                props += ["-p", f"{name}={value}"]
        wd = systemd.prop(svc, "WorkingDirectory")
        if not wd or wd == "!":
            wd = o.app_dir
        props += ["-p", f"WorkingDirectory={wd}"]
        for assignment in self.split_environment(systemd.prop(svc, "Environment")):
            escaped = assignment.replace("\\", "\\\\").replace('"', '\\"')
            props += ["-p", f'Environment="{escaped}"']
        for f in systemd.env_files(svc):
            if f not in (o.env_file, "-" + o.env_file):
                props += ["-p", f"EnvironmentFile={f}"]
        final_path = self.run_path("final.env")
        self.write_run_file("final.env", self.final)
        props += ["-p", f"EnvironmentFile={final_path}"]
        self.log(f"check: running the check command as {svc} runs, under the new env")
        argv = ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec"]
        argv += ["-p", f"RuntimeMaxSec={CHECK_TIMEOUT}", *props, "--", "/bin/bash", "-s"]
        # The command goes on stdin, so systemd never expands $VARS or %specifiers in it.
        rc, out = systemd.run(argv, CHECK_TIMEOUT + 30, stdin=(o.check + "\n").encode())
        if rc != 0:
            for line in out.rstrip("\n").split("\n")[-20:]:
                self.log(f"check output: {self.r.redact(line)}")
            raise Failure(
                svc,
                "check-command",
                f"the check command exited {rc} under the new env (its last lines are above, redacted)",
            )
        self.log("check: passed")

    @staticmethod
    def split_environment(text: str) -> List[str]:
        """systemctl show's Environment= value: assignments separated by blanks, quoted when they hold one."""
        import shlex

        try:
            return shlex.split(text)
        except ValueError:
            return text.split()

    def write_run_file(self, name: str, text: str) -> None:
        fd = os.open(self.run_path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))

    # --- changes -------------------------------------------------------------------------

    def backup_dir(self) -> str:
        d = backup_dir_of(self.o.env_file)
        os.makedirs(d, 0o700, exist_ok=True)
        os.chmod(d, 0o700)
        paths.atomic_write(os.path.join(d, "path"), (self.o.env_file + "\n").encode(), 0o600)
        # The services this env file served, so an emergency finds its backups after app.envFile changed.
        try:
            known = paths.read_small(os.path.join(d, "services"), 65536).decode().split("\n")
        except OSError:
            known = []
        services = sorted({s for s in known + self.o.services if s}, key=lambda s: s.encode())
        paths.atomic_write(os.path.join(d, "services"), "".join(s + "\n" for s in services).encode(), 0o600)
        return d

    def prune_backups(self, d: str) -> None:
        names = sorted(
            (f for f in self.listdir(d) if f.endswith(".env") and not f.startswith(".")),
            key=lambda f: f.encode(),
            reverse=True,
        )
        for f in names[self.o.backups :]:
            p = os.path.join(d, f)
            if stat.S_ISREG(os.lstat(p).st_mode):
                os.unlink(p)

    def backup_previous(self) -> None:
        if self.previous is None:
            self.log(f"env: no previous {self.o.env_file} (first deploy)")
            return
        try:
            d = self.backup_dir()
            name = f"{utc_stamp()}-{self.run_id}.env"
            paths.atomic_write(os.path.join(d, name), self.previous.encode("utf-8", "surrogateescape"), 0o600)
        except OSError:
            raise untouched(
                "backup", f"cannot write the backup to {backup_dir_of(self.o.env_file)} (disk full?)"
            ) from None
        self.prune_backups(d)
        self.log(f"env: previous file backed up as {d}/{name} (root-only; newest {self.o.backups} kept)")

    def install_env(self) -> None:
        """Keeps the current file as a hard link in our private dir (the rollback renames it back),
        then renames the new file over the env file name."""
        o = self.o
        if self.previous is not None:
            try:
                os.link(o.env_name, "previous", src_dir_fd=self.env_fd, dst_dir_fd=self.priv_fd, follow_symlinks=False)
            except OSError:
                try:
                    paths.write_file(self.priv_fd, "previous", self.previous.encode("utf-8", "surrogateescape"), 0o600)
                except OSError:
                    raise untouched(
                        "env-file", f"cannot keep the current file for a rollback in {o.env_dir} (disk full?)"
                    ) from None
            kept = os.lstat("previous", dir_fd=self.priv_fd)
            if paths.file_id(kept) != self.previous_id:
                same = paths.read_small(f"/proc/self/fd/{self.priv_fd}/previous") == self.previous.encode(
                    "utf-8", "surrogateescape"
                )
                if not same:
                    raise untouched("env-file", f"{o.env_file} changed during the rollout (someone else is writing it)")
        try:
            paths.write_file(self.priv_fd, "new", self.final.encode("utf-8", "surrogateescape"), 0o600)
        except OSError:
            self.unlink_private("new")
            raise untouched("env-file", f"cannot write the new env file in {o.env_dir} (disk full?)") from None
        if o.group:
            import grp

            try:
                gid = grp.getgrnam(o.group).gr_gid
            except KeyError:
                raise untouched("env-file", f"group {o.group} does not exist on the host (app.envFileGroup)") from None
            os.chown("new", 0, gid, dir_fd=self.priv_fd, follow_symlinks=False)
            os.chmod("new", 0o640, dir_fd=self.priv_fd)
        self.installed_id = paths.file_id(os.lstat("new", dir_fd=self.priv_fd))
        self.tx.push("env file", self.restore_env)
        os.rename("new", o.env_name, src_dir_fd=self.priv_fd, dst_dir_fd=self.env_fd)
        self.env_installed = True
        os.fsync(self.env_fd)
        st = self.env_stat()
        self.log(f"env: new {o.env_file} in place ({self.mode_owner(st) if st else '?'})")

    def restore_env(self) -> Optional[str]:
        o = self.o
        problems = []
        follower = self.db_follower_rollback_env()
        if follower:
            problems.append(follower)
        if not self.env_installed:
            return "; ".join(problems) or None
        if self.previous is not None:
            try:
                os.rename("previous", o.env_name, src_dir_fd=self.priv_fd, dst_dir_fd=self.env_fd)
            except OSError:
                problems.append(f"could not put the previous {o.env_file} back (it is in {backup_dir_of(o.env_file)})")
        else:
            st = self.env_stat()
            if st is not None and paths.file_id(st) == self.installed_id:
                try:
                    os.unlink(o.env_name, dir_fd=self.env_fd)
                except OSError:
                    problems.append(f"could not remove the new {o.env_file}")
            else:
                problems.append(f"{o.env_file} was replaced by someone else during the rollout, left as it is")
        return "; ".join(problems) or None

    def install_dropins(self) -> None:
        o = self.o
        content = systemd.dropin_content(o.env_file)
        for svc in o.services:
            path = systemd.dropin_path(svc)
            try:
                current: Optional[bytes] = paths.read_small(path, 65536)
            except OSError:
                current = None
            if current is not None and current.decode("utf-8", "replace").rstrip("\n") == content.rstrip("\n"):
                continue
            if not self.dropins_changed:
                self.tx.push("drop-ins", self.restore_dropins)
            self.dropins_changed[svc] = current
            try:
                os.makedirs(systemd.dropin_dir(svc), 0o755, exist_ok=True)
                paths.atomic_write(path, content.encode(), 0o644)
            except OSError:
                raise Failure(svc, "drop-in", f"cannot write {path} (disk full?)") from None
            self.log(f"drop-in: wrote {path}")
        if self.dropins_changed:
            if not systemd.daemon_reload():
                raise untouched("daemon-reload", "systemctl daemon-reload failed")
            self.log("systemd: daemon-reload")
        for svc in o.services:
            if not systemd.ours_loads_last(svc, o.env_file):
                raise Failure(
                    svc,
                    "drop-in",
                    f"{o.env_file} is not the last env file {svc}.service loads; drop-ins sorting after {DROPIN_NAME}"
                    f" override it: {systemd.later_dropins(svc)}(move their EnvironmentFile=/UnsetEnvironment= into the"
                    f" unit or rename them to sort before {DROPIN_NAME})",
                )

    def restore_dropins(self) -> Optional[str]:
        problems = []
        for svc, before in self.dropins_changed.items():
            path = systemd.dropin_path(svc)
            try:
                if before is not None:
                    paths.atomic_write(path, before, 0o644)
                elif os.path.lexists(path):
                    os.unlink(path)
            except OSError:
                verb = "restore" if before is not None else "remove"
                problems.append(f"could not {verb} the drop-in of {svc}")
        if not systemd.daemon_reload():
            problems.append("daemon-reload failed")
        return "; ".join(problems) or None

    # --- restart and verify --------------------------------------------------------------

    def journal_hint(self, svc: str) -> str:
        line = systemd.journal_line(svc, KEY_ERROR_PATTERN)
        return f"; its log says: {self.r.redact(line)[:200]}" if line else ""

    def unit_failure(self, svc: str) -> Optional[Tuple[str, str]]:
        """A unit that stopped or that systemd restarted since its own restart (during the health wait)."""
        state = systemd.prop(svc, "ActiveState")
        if state not in ("active", "activating"):
            return "stability", f"unit is {state}/{systemd.prop(svc, 'SubState')}, not active"
        if systemd.generation(svc) != self.generation.get(svc) or systemd.prop(svc, "SubState") == "auto-restart":
            return "stability", "systemd restarted it while its health URLs were checked (restart loop)"
        return None

    def unit_watch(self, svc: str) -> Callable[[], Optional[Tuple[str, str]]]:
        return lambda: self.unit_failure(svc)

    def http(self) -> health.HttpSettings:
        return health.HttpSettings(self.o.health_host, self.o.health_ca, self.o.health_insecure)

    def restart_services(self) -> None:
        """In order, each one as soon as the one before serves; then one stability window for all,
        and each one's processes proven again."""
        o = self.o
        watched: List[str] = []
        for svc in o.services:
            if self.action.get(svc) != "restart":
                continue
            self.log(f"restart: {svc}")
            self.restarted.append(svc)
            rc = systemd.restart(svc)
            if rc != 0:
                raise Failure(svc, "restart", f"systemctl restart exited {rc}{self.journal_hint(svc)}")
            self.generation[svc] = systemd.generation(svc)
            watched.append(svc)
            if o.is_health_service(svc):
                problem = health.wait_healthy(o.health_urls, self.http(), o.health_timeout, self.unit_watch(svc))
                if problem is not None:
                    raise Failure(svc, problem[0], problem[1] + self.journal_hint(svc))
                self.log(f"restart: {svc} is up and its health URLs answered 2xx")
                if o.login_url:
                    probe = health.LoginProbe(
                        o.login_url,
                        o.login_user,
                        self.login_password,
                        o.login_password_file,
                        o.login_check_url,
                        self.http(),
                    )
                    ok, detail = probe.run()
                    if ok:
                        self.log(f"restart: {svc} {detail}")
                    elif o.emergency:
                        self.r.warn(
                            svc,
                            "login-probe",
                            f"{detail}; EMERGENCY rotation: NOT rolled back on the login probe alone (its account can be"
                            " locked out by anyone who knows its name), the new env stays. Log in by hand now; check the"
                            " probe account (locked out? exempt it from lockout: runbook, Host setup, Login probe)",
                        )
                    else:
                        raise Failure(svc, "login-probe", detail)
            ok, detail = proof.prove_env(svc, self.keys, self.hash, o.env_file)
            if not ok:
                raise Failure(svc, "proof", detail)
            self.note_old_key_rejected(svc)
        if not watched:
            return
        self.log(f"restart: watching {' '.join(watched)} together for {o.stable_seconds}s")
        stopped = self.watch_stable(watched)
        if stopped is not None:
            svc, check, detail = stopped
            raise Failure(svc, check, detail + self.journal_hint(svc))
        for svc in watched:
            ok, detail = proof.prove_env(svc, self.keys, self.hash, o.env_file)
            if not ok:
                raise Failure(svc, "proof", detail)
            self.log(f"restart: {svc} active and stable for {o.stable_seconds}s, {detail}")

    def watch_stable(self, units: List[str]) -> Optional[Tuple[str, str, str]]:
        deadline = time.monotonic() + self.o.stable_seconds
        while True:
            for unit in units:
                state = systemd.prop(unit, "ActiveState")
                if state != "active":
                    return unit, "stability", f"unit is {state}/{systemd.prop(unit, 'SubState')}, not active"
                if systemd.generation(unit) != self.generation[unit]:
                    return unit, "stability", f"systemd restarted it within {self.o.stable_seconds}s (restart loop)"
            sock = self.o.socket
            if sock:
                state = systemd.show(sock, "ActiveState") or ""
                if state != "active":
                    return (
                        self.o.services[0],
                        "socket",
                        f"{sock} is {state} after the restart: the port is closed (systemd stops the socket when the"
                        " service hits its start limit)",
                    )
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    def verify_stable(self, svc: str) -> Optional[Tuple[str, str]]:
        """The rollback's own window for one unit."""
        n0, pid0 = systemd.prop(svc, "NRestarts"), systemd.prop(svc, "MainPID")
        deadline = time.monotonic() + self.o.stable_seconds
        while True:
            state = systemd.prop(svc, "ActiveState")
            if state != "active":
                return "stability", f"unit is {state}/{systemd.prop(svc, 'SubState')}, not active"
            if systemd.prop(svc, "NRestarts") != n0 or systemd.prop(svc, "MainPID") != pid0:
                return "stability", f"systemd restarted it within {self.o.stable_seconds}s (restart loop)"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    def restart_and_verify(self, svc: str) -> Optional[Tuple[str, str]]:
        """The rollback's path: one unit at a time, each with its own window; all processes agree."""
        rc = systemd.restart(svc)
        if rc != 0:
            return "restart", f"systemctl restart exited {rc}{self.journal_hint(svc)}"
        problem = self.verify_stable(svc)
        if problem is None:
            ok, detail = proof.prove_env(svc, self.keys, "", self.o.env_file)
            if not ok:
                problem = ("proof", detail)
        if problem is not None:
            return problem[0], problem[1] + self.journal_hint(svc)
        if self.o.is_health_service(svc):
            return health.wait_healthy(self.o.health_urls, self.http(), self.o.health_timeout)
        return None

    # --- emergency purge -----------------------------------------------------------------

    def purge_old_copies(self) -> None:
        """Once the new env is proven, no backup of this env file or of an earlier env file of these
        services stays (an emergency)."""
        o = self.o
        if not o.purge_old_copies:
            return
        mine = self.backup_dir()
        dirs = []
        for name in self.listdir(BACKUP_ROOT):
            d = os.path.join(BACKUP_ROOT, name)
            if os.path.islink(d) or not os.path.isdir(d):
                continue
            path = self.first_line(os.path.join(d, "path"))
            has_services = os.path.lexists(os.path.join(d, "services"))
            if d == mine or (not has_services and path and path.startswith(o.app_dir + "/")):
                dirs.append(d)
                continue
            listed = self.first_line(os.path.join(d, "services"), all_lines=True).split("\n")
            if any(s in listed for s in o.services):
                dirs.append(d)
        total = 0
        for d in dirs:
            n = 0
            for f in self.listdir(d):
                p = os.path.join(d, f)
                if f.endswith(".env") and stat.S_ISREG(os.lstat(p).st_mode):
                    os.unlink(p)
                    n += 1
            total += n
            path = self.first_line(os.path.join(d, "path"))
            if path != o.env_file and n > 0:
                self.log(f"purge: removed {n} backup generations of the earlier env file {path}")
        self.unlink_private("previous")
        self.log(
            f"purge: removed {total} backup generations holding previous keys, of {o.env_file} and of every earlier"
            f" env file of {' '.join(o.services)} (--purge-old-copies)"
        )

    @staticmethod
    def first_line(path: str, all_lines: bool = False) -> str:
        try:
            text = paths.read_small(path, 65536).decode("utf-8", "replace")
        except OSError:
            return ""
        return text.rstrip("\n") if all_lines else text.split("\n")[0]

    # --- rollback ------------------------------------------------------------------------

    def rollback(self) -> str:
        """Undoes every change, attempting every step whatever fails; one sentence for the FAILED line."""
        self.log("rollback: restoring the previous env")
        problems = self.tx.rollback()
        expected = ""
        for svc in self.restarted:
            if self.previous is None:
                # Nothing worked before either: put the unit back as it was, without judging it.
                self.log(f"rollback: restarting {svc} without an env file, as before the rollout")
                systemd.restart(svc)
                continue
            self.log(f"rollback: restarting {svc} on the previous env")
            problem = self.restart_and_verify(svc)
            if problem is not None:
                problems.append(f"{svc} {problem[0]}: {self.r.redact(problem[1])}")
                continue
            # Every rolled-back unit must run what the first one runs: never two services on different envs.
            h = proof.first_process_hash(svc, self.keys)
            if not expected:
                expected = h
            elif h != expected:
                problems.append(f"{svc} does not run the same env as {self.restarted[0]}")
        text = "".join(f"; {p}" for p in problems) + self.db_rollback_login()
        if text:
            outcome = f"ROLLBACK INCOMPLETE, the host needs attention{text}"
        elif self.previous is not None:
            outcome = f"previous env restored{self.db_rollback_note} and services healthy on it"
        else:
            outcome = (
                "there was no previous env file: the new one and the drop-ins were removed again, services are as"
                " before the rollout"
            )
        self.log("rollback: done" + (f" with problems{text}" if text else ""))
        return outcome

    # --- the end -------------------------------------------------------------------------

    def cleanup(self, rc: int) -> None:
        if rc != 0 and not self.tx.changed and self.moved_id and self.env_fd >= 0:
            st = self.env_stat()
            if st is not None and paths.file_id(st) == self.moved_id:
                os.unlink(self.o.env_name, dir_fd=self.env_fd)  # the copy of a move that did not happen
        if self.priv_fd >= 0:
            for name in ("new", "previous", "previous.db", "moved"):
                self.unlink_private(name)
            try:
                os.rmdir(self.private_name, dir_fd=self.env_fd)
            except OSError:
                pass
        for name in self.listdir(self.run_dir):
            if name.endswith((".env", ".pgpass", ".verifier")):
                try:
                    os.unlink(self.run_path(name))
                except OSError:
                    pass
        try:
            os.unlink(PID_FILE)
        except OSError:
            pass


def main(run_dir: str) -> int:
    """The worker's entry: claims the run, runs it, writes the result; the exit code is the result."""
    from .options import Options

    o = Options.from_json(paths.read_small(os.path.join(run_dir, "options.json")).decode())
    r = Reporter(o.host)
    r.log_path = os.path.join(run_dir, "log")
    started = paths.read_small(os.path.join(run_dir, "started-ns")).decode().strip()
    r.started_ns = time.monotonic_ns() - (time.time_ns() - int(started))
    if not claim_run(run_dir, "worker"):
        r.err.write(
            f"{PROG}[{o.host}] the front end gave up waiting for this run (hand-off timeout) and told the caller nothing"
            " changed: doing nothing\n"
        )
        return 0
    os.umask(0o077)
    lock_fd = os.open(
        os.path.join(run_dir, "lock"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    flock(lock_fd, fcntl.LOCK_SH, SYSTEMCTL_TIMEOUT)
    with open(os.path.join(run_dir, "started"), "w", encoding="ascii"):
        pass

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    run = Rollout(o, r, run_dir)
    rc = 0
    try:
        run.run()
    except NothingToDo:
        rc = 0
    except Failure as e:
        rc = 1
        finish_failed(run, e.service, e.check, e.detail)
    except FinalFailure as e:
        rc = 1
        r.failed_line("-", e.check, e.detail, e.outcome)
    except (Stopped, Exception) as e:  # noqa: BLE001 - any stop rolls back what changed
        rc = 1
        reason = f"signal {e}" if isinstance(e, Stopped) else f"{type(e).__name__}: {e}"
        finish_failed(run, "-", "internal", f"stopped unexpectedly ({reason})")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        run.cleanup(rc)
    finally:
        if rc == 0:
            r.repeat_warnings()
        with open(os.path.join(run_dir, "result"), "w", encoding="ascii") as f:
            f.write(f"{rc}\n")
    return rc


def finish_failed(run: Rollout, service: str, check: str, detail: str) -> None:
    """One FAILED line: after a rollback when anything changed, else "nothing on the host was changed"."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if run.tx.changed and not run.tx.rolled_back:
        try:
            outcome = run.rollback()
        except Exception as e:  # noqa: BLE001 - the FAILED line is printed whatever the rollback did
            outcome = f"ROLLBACK INCOMPLETE, the host needs attention; the rollback stopped: {type(e).__name__}: {e}"
        run.r.failed_line(service, check, detail, outcome)
    else:
        run.r.failed_line(service, check, detail, "nothing on the host was changed")
