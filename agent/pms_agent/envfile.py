"""The env file: the received file checked whole, hand-written files read as systemd reads them,
the final file composed by the unmanaged-keys policy."""

from __future__ import annotations

import hashlib
import re
from typing import Dict, Iterable, List, Optional, Tuple

from .constants import END_MARKER
from .report import Failure

OUR_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*='[^'\\]*'")
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BLANKS = " \t\n\r\v\f"


def untouched(check: str, detail: str) -> Failure:
    return Failure("-", check, detail)


def strip_end_marker(data: bytes) -> bytes:
    """Checks and strips the `# pms-secrets-end sha256=HEX` line the program ends every env file with."""
    cut = data[:-1].rfind(b"\n") + 1
    body, last = data[:cut], data[cut:-1]
    marker = END_MARKER.encode()
    if not last.startswith(marker):
        raise untouched(
            "env-file",
            "the env file arrived without its end marker line (a transfer cut short, or a program older than this"
            " script); nothing was read from it. Fix: run pulumi up again (the program sends the marker)",
        )
    if hashlib.sha256(body).hexdigest() != last[len(marker) :].decode("ascii", "replace"):
        raise untouched(
            "env-file", "env file does not match its end marker (truncated or damaged transfer); run pulumi up again"
        )
    return body


def check_received(data: bytes) -> bytes:
    """The env file the program sent, whole and in our one form; the marker stripped."""
    if not data:
        raise untouched("env-file", "received an empty env file")
    if not data.endswith(b"\n"):
        raise untouched("env-file", "env file does not end with a newline (truncated transfer?)")
    body = strip_end_marker(data)
    text = body.decode("utf-8", "surrogateescape")
    for line in text.split("\n")[:-1]:
        if not line.startswith("#") and not OUR_LINE.fullmatch(line):
            raise untouched(
                "env-file", "env file has a line that is not KEY='value' (the program never sends one; refusing)"
            )
    if re.search(r"^SECRET_KEY='.+'$", text, re.M) is None:
        raise untouched("env-file", "env file has no SECRET_KEY")
    return body


def parse_ours(text: str) -> Dict[str, str]:
    """KEY -> value of a file of ours (every line KEY='value' or a comment)."""
    values: Dict[str, str] = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition("=")
        value = rest[1:] if rest.startswith("'") else rest
        if value.endswith("'"):
            value = value[:-1]
        values[key] = value
    return values


def delivered_hash(values: Dict[str, str], absent: Iterable[str] = ()) -> str:
    """sha256 over "KEY=value\\n" of every key in C order ("KEY\\n" for a key hashed as absent)."""
    missing = set(absent)
    lines = []
    for key in sorted(values, key=lambda k: k.encode()):
        lines.append(f"{key}\n" if key in missing else f"{key}={values[key]}\n")
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def line_key(line: str) -> str:
    """The key of one line of a hand-written env file as systemd reads it, or ""."""
    stripped = line.lstrip(BLANKS)
    if not stripped or stripped[0] in "#;":
        return ""
    if stripped.startswith("export "):
        stripped = stripped[len("export ") :]
    if "=" not in stripped:
        return ""
    key = stripped.split("=", 1)[0].rstrip(BLANKS)
    return key if KEY.fullmatch(key) else ""


def line_value(line: str) -> Optional[str]:
    """The value when bash, systemd, python-dotenv and django-environ all read it the same; else None."""
    value = line.split("=", 1)[1].strip(BLANKS) if "=" in line else ""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    elif any(c in BLANKS for c in value):
        return None
    if any(c in value for c in "'\"\\$`"):
        return None
    return value


def host_lines(text: str) -> List[str]:
    """Lines as `read -r` sees them (a last line without a newline counts)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def host_value(text: str, key: str) -> str:
    """The value of key in a hand-written file ("" when absent or not exactly readable); the last wins."""
    value = ""
    for line in host_lines(text):
        if line_key(line) == key:
            value = line_value(line) or ""
    return value


def compose(
    received: str,
    previous: Optional[str],
    delivered: Dict[str, str],
    redact_keys: List[str],
    policy: str,
    env_file: str,
) -> Tuple[str, List[str], List[str], List[str]]:
    """(final text, unmanaged keys, values to redact, log lines) by the unmanaged-keys policy."""
    if previous is None:
        return received, [], [], []
    redactions: List[str] = []
    carried: List[str] = []
    unmanaged: List[str] = []
    for line in host_lines(previous):
        key = line_key(line)
        if not key:
            continue
        if key in delivered:
            value = line_value(line)
            if key in redact_keys and value is not None:
                redactions.append(value)
            continue
        value = line_value(line)
        if value is None:
            raise untouched(
                "unmanaged-keys",
                f"{key} in {env_file} has a value that cannot be carried over exactly (a quote, backslash, $, backtick,"
                f" blank or line break in it); add {key} to the stack config",
            )
        redactions.append(value)
        carried.append(f"{key}='{value}'")
        if key not in unmanaged:
            unmanaged.append(key)
    if not unmanaged:
        return received, [], redactions, []
    names = ", ".join(unmanaged)
    if policy == "refuse":
        raise Failure(
            "-",
            "unmanaged-keys",
            f"{env_file} has keys the config does not manage: {names}. Fix: add them to the stack config (env or"
            " secrets), or set app.unmanagedKeys to keep (carried over on the host, values never leave it) or drop"
            " (left out; the old file stays in the root-only backups)",
        )
    if policy == "keep":
        final = (
            received
            + "# Carried over from the previous file on this host (app.unmanagedKeys: keep); not managed by pms-secrets.\n"
            + "".join(c + "\n" for c in carried)
        )
        return final, unmanaged, redactions, [f"env: carried over from the host's file (unmanagedKeys=keep): {names}"]
    return received, unmanaged, redactions, [f"env: left out (unmanagedKeys=drop; kept in the backup): {names}"]


def insert_after(text: str, key: str, new_line: str) -> str:
    """Adds new_line after every line of key (our form) in text."""
    out = []
    for line in host_lines(text):
        out.append(line + "\n")
        if line.split("=", 1)[0] == key:
            out.append(new_line + "\n")
    return "".join(out)


def replace_value(text: str, key: str, value: str) -> str:
    out = []
    for line in host_lines(text):
        out.append(f"{key}='{value}'\n" if line.split("=", 1)[0] == key else line + "\n")
    return "".join(out)
