"""Proof: each restarted service's processes hold exactly the delivered values (/proc/PID/environ)."""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Dict, List, Optional, Set, Tuple

from . import systemd

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_environ(pid: str) -> Optional[List[bytes]]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def env_hash(entries: List[bytes], keys: List[str]) -> str:
    """sha256 over "KEY=value\\n" of the delivered keys as a process sees them ("KEY\\n" when unset);
    the first occurrence of a key counts."""
    wanted: Set[str] = set(keys)
    seen: Dict[str, str] = {}
    for raw in entries:
        entry = raw.decode("utf-8", "surrogateescape")
        key, sep, value = entry.partition("=")
        if not sep or not NAME.fullmatch(key) or key not in wanted or key in seen:
            continue
        seen[key] = value
    text = "".join(f"{k}={seen[k]}\n" if k in seen else f"{k}\n" for k in keys)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def inherits_unit_env(entries: List[bytes], keys: List[str]) -> bool:
    """systemd gives every process it starts INVOCATION_ID, and the unit's env carries the delivered
    keys; a child started with a scrubbed environment has neither and is not judged."""
    wanted = set(keys)
    for raw in entries:
        key = raw.split(b"=", 1)[0].decode("utf-8", "surrogateescape")
        if key == "INVOCATION_ID" or key in wanted:
            return True
    return False


def comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read(40).decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return "?"


def exe(pid: str) -> str:
    """The binary a process runs ("" when gone), without the " (deleted)" of an upgraded file."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
    return path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path


def before_exec(pid: str) -> bool:
    """A process systemd forked for the unit that has not exec'd the unit's command yet: it still
    runs systemd's own binary (systemd-executor since v255, PID 1's binary before) and holds
    systemd's environment, not the unit's. A Type=simple unit's restart returns at that point."""
    path = exe(pid)
    return path != "" and (os.path.basename(path) == "systemd-executor" or path == exe("1"))


def wait_main_exec(service: str, timeout: float) -> Tuple[str, bool]:
    """(MainPID, True) once the unit's main process runs the unit's command (a Type=simple restart
    returns as soon as systemd has forked it), (MainPID, False) when it still does not after
    timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        main = systemd.prop(service, "MainPID")
        if main in ("", "0") or not before_exec(main):
            return main, True
        if time.monotonic() >= deadline:
            return main, False
        time.sleep(0.05)


def prove_env(service: str, keys: List[str], expected: str, env_file: str, exec_timeout: float = 0) -> Tuple[bool, str]:
    """(True, note) when the main process and every cgroup process that inherited the unit's env
    hold the delivered values; (False, detail) otherwise. expected "": all agree with the first.
    Right after a restart (exec_timeout > 0) a main process systemd has forked but not yet exec'd
    is waited for; systemd's own helpers in the cgroup (a PAM session's (sd-pam)) run no app code
    and are not judged."""
    main, started = wait_main_exec(service, exec_timeout)
    if not started:
        when = f"{exec_timeout:g}s after its restart" if exec_timeout else "(systemd started it again?)"
        return False, (
            f"main process {main}({comm(main)}) still runs systemd's executor, not the unit's command, {when}"
            " (a PAM session or a User= lookup that hangs?)"
        )
    n = 0
    scrubbed = 0
    helpers = 0
    bad = ""
    for pid in systemd.unit_pids(service):
        entries = read_environ(pid)
        if entries is None:
            continue  # exited meanwhile
        if pid != main and before_exec(pid):
            helpers += 1
            continue
        if pid != main and not inherits_unit_env(entries, keys):
            scrubbed += 1
            continue
        digest = env_hash(entries, keys)
        n += 1
        expected = expected or digest
        if digest != expected:
            bad += f" {pid}({comm(pid)})"
    if bad:
        return False, (
            f"processes{bad} do not hold the delivered env (an override, a wrapper or UnsetEnvironment= wins over"
            f" {env_file}, or a process left from before the restart)"
        )
    if n == 0:
        note = "no running process to read (MainPID=0, empty cgroup): state checked only"
    else:
        note = f"{n} processes hold the delivered env"
    if scrubbed:
        note += (
            f" ({scrubbed} child process(es) with a scrubbed environment, no unit env and no delivered key, not judged)"
        )
    if helpers:
        note += f" ({helpers} systemd helper process(es), e.g. a PAM session's (sd-pam), not judged)"
    return True, note


def first_process_hash(service: str, keys: List[str]) -> str:
    pids = systemd.unit_pids(service)
    if not pids:
        return "none"
    entries = read_environ(pids[0])
    return "none" if entries is None else env_hash(entries, keys)


def running_value(service: str, key: str) -> Optional[str]:
    """A value from the environment of the first service's running main process, when this agent
    can write it back exactly (no quote, backslash, comma, `${`, leading `$`, control character)."""
    if systemd.prop(service, "ActiveState") != "active":
        return None
    pid = systemd.prop(service, "MainPID")
    if not pid or pid == "0":
        return None
    entries = read_environ(pid)
    if entries is None:
        return None
    value = ""
    for raw in entries:
        k, sep, v = raw.decode("utf-8", "surrogateescape").partition("=")
        if sep and k == key:
            value = v
            break
    if not value or any(c in value for c in "'\\,") or "${" in value or value.startswith("$"):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value
