"""The state of one run, shared by the worker's steps, and their small helpers."""

from __future__ import annotations

import os
import stat
import time
from typing import Dict, List, Optional, Set, Tuple

from . import dbpass, envfile, paths
from .constants import BACKUP_ROOT
from .options import Options
from .report import Failure, Reporter
from .transaction import Transaction


def untouched(check: str, detail: str, service: str = "-") -> Failure:
    return Failure(service, check, detail)


def backup_dir_of(env_file: str) -> str:
    import hashlib

    return os.path.join(BACKUP_ROOT, hashlib.sha256(env_file.encode()).hexdigest()[:16])


def utc_stamp() -> str:
    now = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


class RunState:
    """What one run knows: the options, the output, the transaction, and what each step found."""

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

    @staticmethod
    def listdir(path: str) -> List[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def read_env(self, name: str, what: str) -> Optional[Tuple[bytes, os.stat_result]]:
        return paths.open_regular(self.env_fd, name, what, f"{self.o.env_dir}/{name}")

    def unlink_private(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.priv_fd)
        except OSError:
            pass

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

    def write_run_file(self, name: str, text: str) -> None:
        fd = os.open(self.run_path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))

    @staticmethod
    def first_line(path: str, all_lines: bool = False) -> str:
        try:
            text = paths.read_small(path, 65536).decode("utf-8", "replace")
        except OSError:
            return ""
        return text.rstrip("\n") if all_lines else text.split("\n")[0]
