"""Restart and verify: the services in order, health URLs and login probe, one stability window,
the proof in every process; the rollback's own restart of one unit."""

from __future__ import annotations

import datetime
import time
from typing import Callable, List, Optional, Tuple

from . import health, proof, systemd
from .constants import EXEC_TIMEOUT, KEY_ERROR_PATTERN
from .report import Failure
from .state import RunState


class RestartSteps(RunState):
    def note_old_key_rejected(self, svc: str) -> None:
        """An emergency's proof of closure, timed; the program reads this line into secretKeyEmergency."""
        if self.o.emergency and self.sk_changed and svc == self.o.services[0]:
            now = datetime.datetime.now(datetime.timezone.utc)
            stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
            self.log(f"secret key: the old key is rejected by {svc} since {stamp} (emergency)")

    def journal_hint(self, svc: str) -> str:
        line = systemd.journal_line(svc, KEY_ERROR_PATTERN)
        return f"; its log says: {self.r.redact(line)[:200]}" if line else ""

    def unit_failure(self, svc: str) -> Optional[Tuple[str, str]]:
        """A unit that stopped or that systemd restarted since its own restart (during the health wait)."""
        state = systemd.prop(svc, "ActiveState")
        if state not in ("active", "activating"):
            return "stability", f"unit is {state}/{systemd.prop(svc, 'SubState')}, not active"
        if systemd.generation(svc) != self.generation.get(svc) or systemd.prop(svc, "SubState") == "auto-restart":
            return "stability", "systemd restarted it while its health URLs were checked (restart loop)"
        return None

    def unit_watch(self, svc: str) -> Callable[[], Optional[Tuple[str, str]]]:
        return lambda: self.unit_failure(svc)

    def http(self) -> health.HttpSettings:
        return health.HttpSettings(self.o.health_host, self.o.health_ca, self.o.health_insecure)

    def restart_services(self) -> None:
        """In order, each one as soon as the one before serves; then one stability window for all,
        and each one's processes proven again."""
        o = self.o
        watched: List[str] = []
        for svc in o.services:
            if self.action.get(svc) != "restart":
                continue
            self.log(f"restart: {svc}")
            self.restarted.append(svc)
            rc = systemd.restart(svc)
            if rc != 0:
                raise Failure(svc, "restart", f"systemctl restart exited {rc}{self.journal_hint(svc)}")
            self.generation[svc] = systemd.generation(svc)
            watched.append(svc)
            if o.is_health_service(svc):
                problem = health.wait_healthy(o.health_urls, self.http(), o.health_timeout, self.unit_watch(svc))
                if problem is not None:
                    raise Failure(svc, problem[0], problem[1] + self.journal_hint(svc))
                self.log(f"restart: {svc} is up and its health URLs answered 2xx")
                if o.login_url:
                    probe = health.LoginProbe(
                        o.login_url,
                        o.login_user,
                        self.login_password,
                        o.login_password_file,
                        o.login_check_url,
                        self.http(),
                    )
                    ok, detail = probe.run()
                    if ok:
                        self.log(f"restart: {svc} {detail}")
                    elif o.emergency:
                        self.r.warn(
                            svc,
                            "login-probe",
                            f"{detail}; EMERGENCY rotation: NOT rolled back on the login probe alone (its account can be"
                            " locked out by anyone who knows its name), the new env stays. Log in by hand now; check the"
                            " probe account (locked out? exempt it from lockout: runbook, Host setup, Login probe)",
                        )
                    else:
                        raise Failure(svc, "login-probe", detail)
            ok, detail = proof.prove_env(svc, self.keys, self.hash, o.env_file, EXEC_TIMEOUT)
            if not ok:
                raise Failure(svc, "proof", detail)
            self.note_old_key_rejected(svc)
        if not watched:
            return
        self.log(f"restart: watching {' '.join(watched)} together for {o.stable_seconds}s")
        stopped = self.watch_stable(watched)
        if stopped is not None:
            svc, check, detail = stopped
            raise Failure(svc, check, detail + self.journal_hint(svc))
        for svc in watched:
            ok, detail = proof.prove_env(svc, self.keys, self.hash, o.env_file)
            if not ok:
                raise Failure(svc, "proof", detail)
            self.log(f"restart: {svc} active and stable for {o.stable_seconds}s, {detail}")

    def watch_stable(self, units: List[str]) -> Optional[Tuple[str, str, str]]:
        deadline = time.monotonic() + self.o.stable_seconds
        while True:
            for unit in units:
                state = systemd.prop(unit, "ActiveState")
                if state != "active":
                    return unit, "stability", f"unit is {state}/{systemd.prop(unit, 'SubState')}, not active"
                if systemd.generation(unit) != self.generation[unit]:
                    return unit, "stability", f"systemd restarted it within {self.o.stable_seconds}s (restart loop)"
            sock = self.o.socket
            if sock:
                state = systemd.show(sock, "ActiveState") or ""
                if state != "active":
                    return (
                        self.o.services[0],
                        "socket",
                        f"{sock} is {state} after the restart: the port is closed (systemd stops the socket when the"
                        " service hits its start limit)",
                    )
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    def verify_stable(self, svc: str) -> Optional[Tuple[str, str]]:
        """The rollback's own window for one unit."""
        n0, pid0 = systemd.prop(svc, "NRestarts"), systemd.prop(svc, "MainPID")
        deadline = time.monotonic() + self.o.stable_seconds
        while True:
            state = systemd.prop(svc, "ActiveState")
            if state != "active":
                return "stability", f"unit is {state}/{systemd.prop(svc, 'SubState')}, not active"
            if systemd.prop(svc, "NRestarts") != n0 or systemd.prop(svc, "MainPID") != pid0:
                return "stability", f"systemd restarted it within {self.o.stable_seconds}s (restart loop)"
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    def restart_and_verify(self, svc: str) -> Optional[Tuple[str, str]]:
        """The rollback's path: one unit at a time, each with its own window; all processes agree."""
        rc = systemd.restart(svc)
        if rc != 0:
            return "restart", f"systemctl restart exited {rc}{self.journal_hint(svc)}"
        problem = self.verify_stable(svc)
        if problem is None:
            ok, detail = proof.prove_env(svc, self.keys, "", self.o.env_file, EXEC_TIMEOUT)
            if not ok:
                problem = ("proof", detail)
        if problem is not None:
            return problem[0], problem[1] + self.journal_hint(svc)
        if self.o.is_health_service(svc):
            return health.wait_healthy(self.o.health_urls, self.http(), self.o.health_timeout)
        return None
