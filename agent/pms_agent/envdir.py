"""The env directory: opened safely (a fresh root-only private directory inside it), swept, and an
env file at an earlier path moved to the configured one (issue 19)."""

from __future__ import annotations

import os
import shutil
import stat

from . import paths, systemd
from .constants import PRIVATE_PREFIX
from .state import RunState, backup_dir_of, untouched


class EnvDirSteps(RunState):
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
