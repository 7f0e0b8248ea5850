"""The front end (the SSH session): arguments, the received env file checked whole, the worker
started as a transient systemd unit, its log relayed until it ends. An SSH drop kills only this."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import List, Sequence

from . import budget, envfile, paths, systemd, verify, worker
from .constants import EXIT_USAGE, HANDOFF_TIMEOUT, RELAY_MARGIN, SYSTEMCTL_TIMEOUT
from .options import Options, host_of, parse_args
from .report import Failure, Reporter, UsageError


def write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class FrontEnd:
    def __init__(self, o: Options, r: Reporter, run_dir: str) -> None:
        self.o = o
        self.r = r
        self.run_dir = run_dir
        self.unit = "pms-rollout-" + os.path.basename(run_dir)

    def path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def fail(self, check: str, detail: str) -> int:
        self.r.failed_line("-", check, detail, "nothing on the host was changed")
        return 1

    def start_worker(self) -> None:
        """The worker runs in its own transient unit: outside this SSH session. RuntimeMaxSec= bounds
        the rollout (then SIGTERM: it rolls back), TimeoutStopSec= the rollback (then SIGKILL)."""
        o = self.o
        write(self.path("options.json"), o.to_json().encode())
        write(self.path("started-ns"), f"{time.time_ns() - (time.monotonic_ns() - self.r.started_ns)}\n".encode())
        entry = os.path.join(self.run_dir, "agent", "main.py")
        argv = ["systemd-run", "--quiet", "--collect", f"--unit={self.unit}", "--service-type=exec"]
        argv += [f"--description=pms-secrets rollout of {o.env_file}", "-p", "KillMode=mixed"]
        argv += ["-p", f"RuntimeMaxSec={budget.forward(o)}", "-p", f"TimeoutStopSec={budget.rollback(o)}"]
        argv += ["--", sys.executable, "-I", entry, "worker", self.run_dir]
        rc, out = systemd.run(argv, SYSTEMCTL_TIMEOUT)
        if rc != 0:
            self.abandon(f"could not start the rollout unit {self.unit} within {SYSTEMCTL_TIMEOUT}s: {out.strip()}")
        deadline = time.monotonic() + HANDOFF_TIMEOUT
        while not os.path.exists(self.path("started")) and not os.path.exists(self.path("result")):
            if time.monotonic() >= deadline:
                self.abandon(f"the rollout unit {self.unit} did not start within {HANDOFF_TIMEOUT}s")
                deadline = time.monotonic() + HANDOFF_TIMEOUT
            time.sleep(0.2)
        self.r.log(
            f"worker: {self.unit} runs the rollout (journalctl -u {self.unit}); it finishes or rolls back even if this"
            " session drops"
        )

    def abandon(self, reason: str) -> None:
        """If the worker has not claimed the run, it never will: stop its unit and fail untouched."""
        if worker.claim_run(self.run_dir, "front-end"):
            systemd.run(["systemctl", "stop", "--", self.unit + ".service"], SYSTEMCTL_TIMEOUT)
            raise Failure(
                "-", "worker", f"{reason}; the run is cancelled: {self.unit} will not roll out even if it starts later"
            )
        self.r.log(f"worker: {self.unit} started after all (slow hand-off); following it")

    def follow(self) -> int:
        """Relays the worker's log until it ends (bounded), then returns its result."""
        o = self.o
        log_path = self.path("log")
        offset = 0
        deadline = time.monotonic() + budget.forward(o) + budget.rollback(o) + RELAY_MARGIN
        while True:
            last = (
                os.path.exists(self.path("result"))
                or systemd.show(self.unit + ".service", "ActiveState") != "active"
                or time.monotonic() >= deadline
            )
            try:
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except OSError:
                data = b""
            # The worker appends whole lines with one write each.
            end = data.rfind(b"\n") + 1
            for line in data[:end].decode("utf-8", "surrogateescape").split("\n")[:-1]:
                self.r.emit(line[:1], line[2:])
            offset += end
            if last:
                break
            time.sleep(0.3)
        if not os.path.exists(self.path("result")):
            if systemd.show(self.unit + ".service", "ActiveState") == "active":
                self.r.failed_line(
                    "-",
                    "worker",
                    f"the rollout unit {self.unit} is still running after {budget.forward(o) + budget.rollback(o)}s (its"
                    " budget)",
                    f"systemd stops it and it rolls back on its own; see journalctl -u {self.unit}",
                )
            else:
                self.r.failed_line(
                    "-",
                    "worker",
                    f"the rollout unit {self.unit} ended without a result (killed?)",
                    f"see journalctl -u {self.unit}; the next run sweeps and converges the host",
                )
            return 1
        rc = int(paths.read_small(self.path("result"), 16).decode().strip() or "1")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return rc


def main(argv: Sequence[str], run_dir: str, received: bytes) -> int:
    """Entry of the front end; received is what followed the agent on stdin (the env file, or nothing)."""
    os.umask(0o077)
    try:
        o = parse_args(argv)
    except UsageError as e:
        Reporter(host_of(argv)).failed_line("-", "arguments", str(e), "nothing on the host was changed")
        return EXIT_USAGE
    r = Reporter(o.host)
    if o.verify_only:
        return verify.main(o, r, run_dir, received)
    front = FrontEnd(o, r, run_dir)
    try:
        body = envfile.check_received(received)
        write(front.path("received.env"), body)
        front.start_worker()
    except Failure as e:
        r.failed_line(e.service, e.check, e.detail, "nothing on the host was changed")
        return 1
    return front.follow()


def entry(args: List[str]) -> int:
    """main.py's dispatch: `front RUN_DIR ARGS...` (stdin payload already in RUN_DIR) or `worker RUN_DIR`."""
    if args[:1] == ["worker"] and len(args) == 2:
        return worker.main(args[1])
    raise SystemExit("usage: main.py worker RUN_DIR")
