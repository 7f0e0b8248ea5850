"""The worker: the rollout itself, in a transient systemd unit that survives an SSH drop.

Steps (Rollout.run reads like this list): take the host lock, sweep what killed runs left, check
every unit, open the env directory safely, read the current env file, compose the new one, stop
when everything is in place and proven, set a changed DB_PASSWORD in PostgreSQL, run the check
command as the first unit runs, back up, install the file and the drop-ins, restart the services in
order, watch them in one stability window, prove each one's processes hold the new env, close the
DB role the app left (emergency), purge old copies if asked. Any failure after the first change
rolls back every step and ends with one `pms-rollout FAILED host= service= check=` line."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import stat
import time
from typing import List, Optional, Tuple

from . import envfile, paths, proof, secretkey, systemd
from .constants import (
    BACKUP_ROOT,
    CHECK_TIMEOUT,
    DROPIN_NAME,
    LOCK_FILE,
    LOCK_TIMEOUT,
    PID_FILE,
    PROG,
    RUNS_DIR,
    STATE_DIR,
    SYSTEMCTL_TIMEOUT,
)
from .dbpass import FinalFailure
from .dbsteps import DbSteps
from .envdir import EnvDirSteps
from .options import Options
from .report import Failure, Reporter
from .restart import RestartSteps
from .state import backup_dir_of, untouched, utc_stamp


class Stopped(Exception):
    """SIGTERM (RuntimeMaxSec=, systemctl stop), SIGINT or SIGHUP: roll back."""


class NothingToDo(Exception):
    """Phase 1 on a host with no current key, or the no-op path: exit 0 without a change."""


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


class Rollout(EnvDirSteps, DbSteps, RestartSteps):
    """One run of the worker: the steps in order (run), the rollback, the cleanup."""

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
