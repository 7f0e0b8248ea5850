"""Arguments: parsed from the one options table (agent/options.json), then checked together."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Union

from .report import UsageError

Value = Union[str, int, bool, List[str]]
TABLE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "options.json")


def load_table(path: str = TABLE_PATH) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        table = json.load(f)
    if not isinstance(table, list):
        raise ValueError(f"{path}: not a JSON array")
    return [dict(row) for row in table]


def attr_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def is_count(text: str, low: int, high: int) -> bool:
    """A plain decimal of at most 4 digits within [low, high] (as the bash agent's is_count)."""
    return re.fullmatch(r"[0-9]{1,4}", text) is not None and low <= int(text) <= high


def parse_table(argv: Sequence[str], table: List[Dict[str, Any]]) -> Dict[str, Value]:
    """argv by the table: every flag known, a value where one is needed, ints in range."""
    rows = {str(r["flag"]): r for r in table}
    values: Dict[str, Value] = {}
    for row in table:
        default = row.get("default")
        if isinstance(default, list):
            values[attr_name(row["flag"])] = [str(v) for v in default]
        elif isinstance(default, (str, int, bool)):
            values[attr_name(row["flag"])] = default
        elif default is None and row["type"] == "string":
            values[attr_name(row["flag"])] = ""
        else:
            raise ValueError(f"options.json: {row['flag']} has no default")
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag not in rows:
            raise UsageError(f"unknown argument {flag}")
        row = rows[flag]
        kind = row["type"]
        name = attr_name(flag)
        if kind == "bool":
            values[name] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            raise UsageError(f"{flag} needs a value")
        text = argv[i + 1]
        i += 2
        if kind == "list":
            current = values[name]
            if not isinstance(current, list):
                raise ValueError(f"options.json: the default of {flag} is not a list")
            current.append(text)
        elif kind == "int":
            low, high = int(row["min"]), int(row["max"])
            if not is_count(text, low, high):
                raise UsageError(f"{flag} must be {low}..{high}")
            values[name] = int(text)
        elif kind == "enum":
            allowed = [str(v) for v in row["values"]]
            if text not in allowed:
                raise UsageError(f"{flag} must be {', '.join(allowed[:-1])} or {allowed[-1]}")
            values[name] = text
        else:
            values[name] = text
    return values


@dataclass
class Options:
    host: str = ""
    env_file: str = ""
    app_dir: str = ""
    services: List[str] = field(default_factory=list)
    production: bool = False
    group: str = ""
    check: str = ""
    health_urls: List[str] = field(default_factory=list)
    health_host: str = ""
    health_ca: str = ""
    health_insecure: bool = False
    socket: str = ""
    login_url: str = ""
    login_user: str = ""
    login_password_file: str = ""
    login_check_url: str = ""
    unmanaged_keys: str = "refuse"
    backups: int = 3
    purge_old_copies: bool = False
    secret_key_fallbacks: int = 1
    emergency: bool = False
    secret_key_accept: bool = False
    rotate_db_password: bool = False
    db_roles: List[str] = field(default_factory=list)
    db_follow: str = ""
    stable_seconds: int = 5
    health_timeout: int = 30
    redact: List[str] = field(default_factory=list)
    verify_only: bool = False
    python: str = "/usr/bin/python3"

    @property
    def env_dir(self) -> str:
        return os.path.dirname(self.env_file) or "/"

    @property
    def env_name(self) -> str:
        return os.path.basename(self.env_file)

    def is_health_service(self, service: str) -> bool:
        return bool(self.services) and service == self.services[0] and bool(self.health_urls)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Options:
        return cls(**json.loads(text))


def host_of(argv: Sequence[str]) -> str:
    """The --host value, for the FAILED line of a usage error found before it was parsed."""
    for i, word in enumerate(argv[:-1]):
        if word == "--host":
            return argv[i + 1]
    return ""


def _str(raw: Dict[str, Value], name: str) -> str:
    value = raw[name]
    return value if isinstance(value, str) else str(value)


def _int(raw: Dict[str, Value], name: str) -> int:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"options.json: the default of {name} is not an int")
    return value


def _list(raw: Dict[str, Value], name: str) -> List[str]:
    value = raw[name]
    if not isinstance(value, list):
        raise ValueError(f"options.json: {name} is not a list")
    return list(value)


def parse_args(argv: Sequence[str], table: Union[List[Dict[str, Any]], None] = None) -> Options:
    """Options from argv by the table, then the rules between them (UsageError: exit 2)."""
    raw = parse_table(argv, load_table() if table is None else table)
    o = Options()
    o.host = _str(raw, "host")
    o.env_file = _str(raw, "env_file")
    o.app_dir = _str(raw, "app_dir")
    o.services = [s[: -len(".service")] if s.endswith(".service") else s for s in _list(raw, "service")]
    o.production = bool(raw["production"])
    o.group = _str(raw, "group")
    o.check = _str(raw, "check")
    o.health_urls = _list(raw, "health_url")
    o.health_host = _str(raw, "health_host")
    o.health_ca = _str(raw, "health_ca")
    o.health_insecure = bool(raw["health_insecure"])
    o.socket = _str(raw, "socket")
    o.login_url = _str(raw, "login_url")
    o.login_user = _str(raw, "login_user")
    o.login_password_file = _str(raw, "login_password_file")
    o.login_check_url = _str(raw, "login_check_url")
    o.unmanaged_keys = _str(raw, "unmanaged_keys")
    o.backups = _int(raw, "backups")
    o.emergency = bool(raw["emergency"])
    o.purge_old_copies = bool(raw["purge_old_copies"]) or o.emergency
    o.secret_key_fallbacks = _int(raw, "secret_key_fallbacks")
    o.secret_key_accept = bool(raw["secret_key_accept"])
    o.rotate_db_password = bool(raw["rotate_db_password"])
    roles = _str(raw, "db_roles")
    o.db_roles = roles.split(",") if roles else []
    o.db_follow = _str(raw, "db_follow")
    o.stable_seconds = _int(raw, "stable_seconds")
    o.health_timeout = _int(raw, "health_timeout")
    o.redact = _list(raw, "redact")
    o.verify_only = bool(raw["verify_only"])
    o.python = _str(raw, "python")
    check_together(o)
    if not o.app_dir:
        o.app_dir = o.env_dir
    return o


def check_together(o: Options) -> None:
    """The rules between options (each a usage error, nothing changed)."""
    if not o.host:
        raise UsageError("--host is required")
    path = o.env_file
    if path.endswith("/") or "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        raise UsageError(f"--env-file {path} must be a plain absolute file path")
    if not path.startswith("/") or len(path) < 2:
        raise UsageError("--env-file must be an absolute path")
    if not o.services:
        raise UsageError("at least one --service is required")
    for svc in o.services:
        if svc == "" or svc.endswith("@") or "/" in svc or svc.startswith("-"):
            raise UsageError(f"--service '{svc}' is not a unit name (a template needs an instance: name@instance)")
    probe = [o.login_url, o.login_user, o.login_password_file, o.login_check_url]
    if any(probe):
        if not o.login_url or not o.login_user or not o.login_check_url or not o.health_urls:
            raise UsageError(
                "--login-url, --login-user, --login-password-file and --login-check-url go together, with --health-url"
            )
        if not o.login_password_file.startswith("/") or len(o.login_password_file) < 2:
            raise UsageError("--login-password-file must be an absolute path")
    if o.socket and re.fullmatch(r"[A-Za-z0-9_].*\.socket", o.socket, re.S) is None:
        raise UsageError(f"--socket '{o.socket}' is not a socket unit name (e.g. pms-backend.socket)")
    if o.secret_key_accept and o.emergency:
        raise UsageError("--secret-key-accept and --emergency exclude each other (an emergency is one phase)")
    if o.health_ca and o.health_insecure:
        raise UsageError("--health-ca and --health-insecure exclude each other")
    if not o.python.startswith("/"):
        raise UsageError("--python must be an absolute path")
    if o.db_follow and not o.rotate_db_password:
        raise UsageError("--db-follow needs --rotate-db-password")
    if o.db_roles:
        if not o.rotate_db_password:
            raise UsageError("--db-roles needs --rotate-db-password")
        plain = re.compile(r"[a-z_][a-z0-9_]*")
        if len(o.db_roles) != 2 or not all(plain.fullmatch(r) for r in o.db_roles) or o.db_roles[0] == o.db_roles[1]:
            raise UsageError("--db-roles must be two different plain role names, A,B")
