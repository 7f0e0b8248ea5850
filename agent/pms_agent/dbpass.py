"""DB_PASSWORD rotation in the local PostgreSQL (issue 10), alternating login roles, a shared
database's followers (--db-follow), the emergency closing of the role the app left (issue 19).

Only a SCRAM-SHA-256 verifier computed here travels to the server, on psql's stdin, in a session
with statement logging off; a password is only ever in this process's memory and in root-only
pgpass files of the run dir, never in argv or an environment."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from typing import Optional, Tuple

from .report import Failure

ROLE = re.compile(r"[a-z_][a-z0-9_]*")
SCRAM_ITERATIONS = 4096


class FinalFailure(Exception):
    """A failure after which the new env stays (rolling back would bring a leak back)."""

    def __init__(self, check: str, detail: str, outcome: str) -> None:
        super().__init__(detail)
        self.check = check
        self.detail = detail
        self.outcome = outcome


def scram_verifier(password: bytes, salt: Optional[bytes] = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677)."""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(x: bytes) -> str:
        return base64.b64encode(x).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client).digest())}:{b64(server)}"


def random_verifier() -> str:
    """A verifier of a random password made here and forgotten (a role closed for good)."""
    return scram_verifier(os.urandom(32).hex().encode())


def stored_matches(stored: str, role: str, password: bytes) -> bool:
    """Whether pg_authid.rolpassword (SCRAM-SHA-256 or md5) is the verifier of password: recomputed
    with its own salt and iterations, so a trusting pg_hba.conf cannot fake "already changed"."""
    if stored.startswith("md5"):
        return hmac.compare_digest(stored[3:], hashlib.md5(password + role.encode()).hexdigest())  # noqa: S324 - PostgreSQL's md5 form
    if not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        head, keys = stored[len("SCRAM-SHA-256$") :].split("$", 1)
        n, salt = head.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        salted = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(salt, validate=True), int(n))
        want_stored, want_server = base64.b64decode(stored_key), base64.b64decode(server_key)
    except (ValueError, binascii.Error):
        return False
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client).digest(), want_stored) and hmac.compare_digest(
        server, want_server
    )


def pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def port_ok(text: str) -> bool:
    """A TCP port number, 1..65535."""
    return re.fullmatch(r"[0-9]{1,5}", text) is not None and 1 <= int(text) <= 65535


def trust_refusal(host: str, port: str, role: str, where: str) -> str:
    return (
        f"PostgreSQL at {host}:{port} let {role} in with a deliberately wrong password (pg_hba.conf trusts this"
        " connection, as initdb writes for 127.0.0.1 without -A), so no login can prove a DB_PASSWORD and an old"
        f" one may stay valid wherever a password is asked. Fix: {where}, in pg_hba.conf (runuser -u postgres --"
        f" psql -At -c 'SHOW hba_file') set the method of the line matching host {host} / user {role} to"
        " scram-sha-256, then runuser -u postgres -- psql -c 'SELECT pg_reload_conf()', and run again"
    )


def which(name: str) -> bool:
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        if d and os.access(os.path.join(d, name), os.X_OK):
            return True
    return False


@dataclass
class Db:
    """Where the app connects (from the delivered env) and the run dir for root-only pgpass files."""

    run_dir: str
    host: str = ""
    port: str = "5432"
    name: str = ""
    role: str = ""

    def admin(self, sql: str) -> Tuple[int, str]:
        """The local superuser's psql, SQL on stdin; statements of this session are never logged."""
        script = (
            "SET log_statement = 'none';\nSET log_min_duration_statement = -1;\n"
            "SET log_min_error_statement = 'panic';\n" + sql
        )
        argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        argv += ["-p", self.port, "-d", "postgres"]
        try:
            p = subprocess.run(
                argv, input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=False
            )
        except (subprocess.TimeoutExpired, OSError) as e:
            return 124, str(e)
        return p.returncode, p.stdout.decode("utf-8", "replace").rstrip("\n")

    def stored(self, role: str) -> Tuple[int, str]:
        if not ROLE.fullmatch(role):
            return 1, f"{role!r} is not a plain lower-case role name"
        sql = f"SELECT 'v:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{role}';\n"  # noqa: S608 - a plain name
        return self.admin(sql)

    def write_pgpass(self, name: str, password: str) -> str:
        path = os.path.join(self.run_dir, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"*:*:*:*:{pgpass_escape(password)}\n")
        return path

    def login_works(self, pgpass: str, role: Optional[str] = None, host: Optional[str] = None) -> bool:
        """Whether the password in pgpass logs in over TCP as the app does."""
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env.update(PGPASSFILE=pgpass, PGCONNECT_TIMEOUT="10")
        argv = ["psql", "-X", "-q", "-w", "-At", "-h", host if host is not None else self.host, "-p", self.port]
        argv += ["-U", role if role is not None else self.role, "-d", self.name, "-c", "SELECT 1"]
        try:
            p = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=30,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError):
            return False
        return p.returncode == 0

    def wrong_password_refused(self, role: Optional[str] = None) -> bool:
        """A login proves a password only where a deliberately wrong one is refused on the same route."""
        wrong = "pms-secrets-wrong-" + os.urandom(18).hex()
        return not self.login_works(self.write_pgpass("db-wrong.pgpass", wrong), role)

    def host_is_here(self) -> bool:
        """Whether DB_HOST is an address of this host (a shared database's admin host)."""
        try:
            out = subprocess.run(
                ["ip", "-o", "addr", "show"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10, check=False
            ).stdout.decode()
        except (subprocess.TimeoutExpired, OSError):
            return False
        here = {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}
        try:
            there = {str(ai[4][0]) for ai in socket.getaddrinfo(self.host, None)}
        except OSError:
            return False
        return bool(here & there)


def untouched(detail: str) -> Failure:
    return Failure("-", "db-password", detail)
