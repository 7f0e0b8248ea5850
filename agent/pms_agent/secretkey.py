"""SECRET_KEY_FALLBACKS: the host keeps its previous keys itself (issue 10), and phase 1 of a
fleet's two-phase rotation (--secret-key-accept, issue 20)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from . import envfile

BLANKS = envfile.BLANKS


@dataclass
class Fallbacks:
    final: str
    changed: bool = False  # SECRET_KEY changes on this host
    nothing_to_accept: bool = False  # phase 1 on a host with no current key: change nothing
    redactions: List[str] = field(default_factory=list)
    logs: List[str] = field(default_factory=list)


def host_keys(previous: Optional[str], running: Callable[[], Optional[str]]) -> Tuple[str, str, int]:
    """The host's current SECRET_KEY and its SECRET_KEY_FALLBACKS as the app reads them, and how many
    of the two could not be read exactly (a value neither the file nor the running app gives)."""
    current = ""
    listed = ""
    skipped = 0
    if previous is None:
        # No env file at this path yet, but the app runs with a key from elsewhere: adopted.
        return running() or "", "", 0
    for line in envfile.host_lines(previous):
        key = envfile.line_key(line)
        if key == "SECRET_KEY":
            value = envfile.line_value(line)
            if value is None:
                value = running()
            if value is None:
                current = ""
                skipped += 1
            else:
                current = value
        elif key == "SECRET_KEY_FALLBACKS":
            value = envfile.line_value(line)
            if value is None:
                listed = ""
                skipped += 1
            else:
                listed = value
    return current, listed, skipped


def compose(
    final: str,
    previous: Optional[str],
    new: str,
    limit: int,
    emergency: bool,
    accept: bool,
    env_file: str,
    running: Callable[[], Optional[str]],
) -> Fallbacks:
    """Adds SECRET_KEY_FALLBACKS after SECRET_KEY: the host's current key first (when it changes),
    then its listed ones, newest first, at most limit (0 with emergency)."""
    result = Fallbacks(final)
    current, listed, skipped = host_keys(previous, running)
    if emergency:
        limit = 0
    delivered = new
    kept: List[str] = []
    seen = set()
    candidates: List[str] = []
    if accept and current != new:
        result.redactions.append(current)
        if not current:
            result.nothing_to_accept = True
            result.logs.append(
                "secret key: accept (phase 1 of 2): no current SECRET_KEY on this host to keep signing with; nothing"
                " changed, phase 2 installs the env"
            )
            return result
        result.final = envfile.replace_value(result.final, "SECRET_KEY", current)
        kept.append(new)
        seen.add(new)
        limit += 1
        new = current
    elif current and current != new:
        candidates.append(current)
    candidates += listed.split(",") if listed else []
    for value in candidates:
        result.redactions.append(value)
        value = value.strip(BLANKS)
        if not value or value == new or value in seen:
            continue
        seen.add(value)
        if len(kept) < limit:
            kept.append(value)
    if skipped:
        result.logs.append(
            f"secret key: a SECRET_KEY or SECRET_KEY_FALLBACKS value in {env_file} cannot be read exactly (a quote,"
            " backslash, $, backtick or blank) and the running app's value was not usable either: not kept as a"
            " fallback"
        )
    if kept:
        result.final = envfile.insert_after(result.final, "SECRET_KEY", f"SECRET_KEY_FALLBACKS='{','.join(kept)}'")
    result.changed = bool(current) and current != new
    result.logs.append(outcome(current, new, delivered, accept, emergency, len(kept), limit))
    return result


def outcome(current: str, new: str, delivered: str, accept: bool, emergency: bool, kept: int, limit: int) -> str:
    """The log line that says what this run does with the key (new: the key the host signs with)."""
    if accept and current == new and delivered != new:
        return (
            f"secret key: accept (phase 1 of 2): the delivered key is accepted (first in SECRET_KEY_FALLBACKS,"
            f" {kept} listed); this host still signs with its current key until phase 2"
        )
    if current and current != new and emergency:
        return (
            "secret key: EMERGENCY (--emergency): no fallback kept; the old key is rejected as soon as the services"
            " restart, and backups holding it are deleted once the new env is proven"
        )
    if current and current != new:
        return f"secret key: changes; the host's previous key is kept as a fallback ({kept} kept, at most {limit})"
    return f"secret key: unchanged; {kept} fallback(s) kept (at most {limit})"
