"""The DB_PASSWORD steps of a run: alternating roles, a shared database's followers, the change in
PostgreSQL and its undo, the emergency closing of the role the app left (dbpass.py holds the pieces)."""

from __future__ import annotations

import os
import re
import stat
from typing import List, Optional

from . import dbpass, envfile, paths
from .constants import (
    DB_CLOSE_PENDING,
    STATE_DIR,
)
from .dbpass import FinalFailure
from .state import RunState, untouched


class DbSteps(RunState):
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
        self.refuse_unchangeable(new)
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
        self.write_run_file("db-old.verifier", stored)
        verifier = dbpass.scram_verifier(new.encode())
        self.db_altered = True
        self.tx.push("db password", self.restore_db_password)
        rc, out = db.admin(f"ALTER ROLE {db.role} PASSWORD '{verifier}';\n")
        if rc != 0:
            raise untouched("db-password", f"ALTER ROLE {db.role} failed: {self.r.redact(out.split(chr(10))[-1])}")
        self.prove_changed(pgpass, old)
        also = ", the previous one too" if old else ""
        self.log(
            f"db password: changed for {db.role} in PostgreSQL (SCRAM-SHA-256 verifier, statement not logged) and"
            f" proven by a login to {db.host}:{db.port} (a wrong password refused there{also}); the previous verifier is"
            " kept for a rollback"
        )

    def refuse_unchangeable(self, new: str) -> None:
        """What makes this host unable to change the password in PostgreSQL, before anything changes."""
        db = self.db
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

    def prove_changed(self, pgpass: str, old: str) -> None:
        """After ALTER ROLE: the new password logs in, a wrong one and the previous one are refused."""
        db = self.db
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
