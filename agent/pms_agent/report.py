"""Output: progress lines, the FAILED and WARNING lines, redaction of every secret value."""

from __future__ import annotations

import os
import sys
import time
from typing import List, Optional

from .constants import MAX_LINE, PROG


class Failure(Exception):
    """A check failed: names the service, the check and what was wrong (not yet redacted)."""

    def __init__(self, service: str, check: str, detail: str) -> None:
        super().__init__(f"{service} {check}: {detail}")
        self.service = service
        self.check = check
        self.detail = detail


class UsageError(Exception):
    """Bad arguments: nothing on the host was changed, exit 2."""


def cut_line(line: str) -> str:
    """A relayed line longer than MAX_LINE characters is cut (pulumi-command's 64 KiB line limit)."""
    if len(line) > MAX_LINE:
        return f"{line[:MAX_LINE]} [cut: {len(line) - MAX_LINE} more characters]"
    return line


class Reporter:
    """Writes progress lines; in the worker to the run log (relayed by the front end) and stderr."""

    def __init__(self, host: str, started_ns: Optional[int] = None) -> None:
        self.host = host or "?"
        self.started_ns = time.monotonic_ns() if started_ns is None else started_ns
        self.log_path: Optional[str] = None
        self.values: List[str] = []
        self.warnings: List[str] = []
        self.failed_printed = False
        self.out = sys.stdout
        self.err = sys.stderr

    def redact(self, text: str) -> str:
        """Every collected value replaced by [redacted], longest first."""
        for value in self.values:
            text = text.replace(value, "[redacted]")
        return text

    def add_redactions(self, *values: str) -> None:
        for value in values:
            if value and value not in self.values:
                self.values.append(value)
        self.values.sort(key=len, reverse=True)

    def emit(self, channel: str, line: str) -> None:
        """channel O = stdout, E = stderr; in the worker both go to the run log and stderr."""
        line = cut_line(line)
        if self.log_path is not None:
            data = f"{channel} {line}\n".encode("utf-8", "surrogateescape")
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, data)  # one write: the relay reads whole lines
            finally:
                os.close(fd)
            self.err.write(line + "\n")
            self.err.flush()
            return
        stream = self.err if channel == "E" else self.out
        stream.write(line + "\n")
        stream.flush()

    def log(self, message: str) -> None:
        ms = (time.monotonic_ns() - self.started_ns) // 1_000_000
        self.emit("O", f"{PROG}[{self.host}] +{ms // 1000}.{ms % 1000:03d}s {message}")

    def failed_line(self, service: str, check: str, detail: str, outcome: str) -> None:
        self.failed_printed = True
        text = f"{PROG} FAILED host={self.host} service={service} check={check}: {self.redact(detail)}; {outcome}"
        self.emit("E", text)

    def warn(self, service: str, check: str, detail: str) -> None:
        """A problem that does not stop the run: logged now and repeated as the run's last lines."""
        line = f"{PROG} WARNING host={self.host} service={service} check={check}: {self.redact(detail)}"
        self.warnings.append(line)
        self.emit("E", line)

    def repeat_warnings(self) -> None:
        for line in self.warnings:
            self.emit("E", line)
