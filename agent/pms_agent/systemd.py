"""systemd: unit properties, env files, drop-ins, pids, restarts; every call bounded."""

from __future__ import annotations

import os
import re
import subprocess
from typing import List, Optional, Sequence, Tuple

from .constants import DROPIN_NAME, RESTART_TIMEOUT, SYSTEMCTL_TIMEOUT


def run(argv: Sequence[str], timeout: float, stdin: Optional[bytes] = None) -> Tuple[int, str]:
    """Runs a command (never with a secret in argv), bounded; (exit code, stdout+stderr)."""
    try:
        p = subprocess.run(
            list(argv),
            input=stdin if stdin is not None else b"",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, ""
    except OSError as e:
        return 127, str(e)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def show(unit: str, prop: str) -> Optional[str]:
    """systemctl show -p PROP --value UNIT; None when systemctl did not answer."""
    rc, out = run(["systemctl", "show", "-p", prop, "--value", "--", unit], SYSTEMCTL_TIMEOUT)
    if rc != 0:
        return None
    return out.rstrip("\n")


def prop(service: str, name: str) -> str:
    return show(service + ".service", name) or ""


def dropin_dir(service: str) -> str:
    return f"/etc/systemd/system/{service}.service.d"


def dropin_path(service: str) -> str:
    return f"{dropin_dir(service)}/{DROPIN_NAME}"


def dropin_content(env_file: str) -> str:
    return (
        "# Managed by pms-secrets: the service reads its secrets from this file.\n"
        "# Do not edit; the next rollout rewrites it.\n"
        f"[Service]\nEnvironmentFile={env_file}\n"
    )


def env_files(service: str) -> List[str]:
    """The unit's env files in load order ("-" prefix when errors are ignored)."""
    files = []
    for line in prop(service, "EnvironmentFiles").split("\n"):
        if not line:
            continue
        if line.endswith(" (ignore_errors=yes)"):
            files.append("-" + line[: -len(" (ignore_errors=yes)")])
        elif line.endswith(" (ignore_errors=no)"):
            files.append(line[: -len(" (ignore_errors=no)")])
        else:
            files.append(line)
    return files


def ours_loads_last(service: str, env_file: str) -> bool:
    files = env_files(service)
    return bool(files) and files[-1] == env_file


def later_dropins(service: str) -> str:
    """The drop-ins sorting after ours that set environment: what beats our EnvironmentFile=."""
    found = ""
    pattern = re.compile(r"^[ \t]*(EnvironmentFile|UnsetEnvironment)[ \t]*=", re.M)
    for path in prop(service, "DropInPaths").split():
        if not os.path.basename(path) > DROPIN_NAME:
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                if pattern.search(f.read()):
                    found += path + " "
        except OSError:
            continue
    return found


def cgroup_procs(cgroup: str) -> List[str]:
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"):
        path = f"{base}{cgroup}/cgroup.procs"
        if os.access(path, os.R_OK):
            try:
                with open(path, encoding="ascii") as f:
                    return [p for p in f.read().split() if p]
            except OSError:
                return []
    return []


def unit_pids(service: str) -> List[str]:
    """The main process, then every other process in the unit's cgroup."""
    main = prop(service, "MainPID")
    pids = [main] if main and main != "0" else []
    cgroup = prop(service, "ControlGroup")
    if cgroup:
        pids += [p for p in cgroup_procs(cgroup) if p != main]
    return pids


def generation(service: str) -> str:
    """ "NRestarts MainPID": what a restart by systemd changes."""
    return f"{prop(service, 'NRestarts')} {prop(service, 'MainPID')}"


def daemon_reload() -> bool:
    return run(["systemctl", "daemon-reload"], SYSTEMCTL_TIMEOUT)[0] == 0


def restart(service: str) -> int:
    run(["systemctl", "reset-failed", "--", service + ".service"], SYSTEMCTL_TIMEOUT)  # clears the start limit
    return run(["systemctl", "restart", "--", service + ".service"], RESTART_TIMEOUT)[0]


def journal_line(service: str, pattern: str) -> str:
    """The first line of this start's own journal matching pattern ("" when none)."""
    invocation = prop(service, "InvocationID")
    if not invocation:
        return ""
    _, out = run(
        ["journalctl", f"_SYSTEMD_INVOCATION_ID={invocation}", "-o", "cat", "--no-pager", "-q", "-n", "500"],
        SYSTEMCTL_TIMEOUT,
    )
    regex = re.compile(pattern)
    for line in out.split("\n"):
        if regex.search(line):
            return line
    return ""
