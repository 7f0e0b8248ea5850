"""proof: the env hash of a process as the delivered keys, scrubbed children not judged."""

import hashlib
import time
import unittest
from typing import ClassVar, List
from unittest import mock

from pms_agent import proof, systemd


def environ(*entries: str) -> List[bytes]:
    return [e.encode() for e in entries] + [b""]


class ProofTest(unittest.TestCase):
    keys: ClassVar[List[str]] = ["A", "SECRET_KEY", "SECRET_KEY_FALLBACKS"]

    def setUp(self) -> None:
        # Every process of these tests runs its own command unless a test says otherwise: this
        # machine's real /proc is never read.
        patcher = mock.patch.object(
            proof, "exe", lambda pid: "/usr/lib/systemd/systemd" if pid == "1" else "/usr/bin/python3"
        )
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_hash_of_the_delivered_keys_only_first_occurrence_absent_as_key(self) -> None:
        env = environ("A=1", "A=2", "OTHER=x", "SECRET_KEY=k", "BAD-NAME=y")
        want = hashlib.sha256(b"A=1\nSECRET_KEY=k\nSECRET_KEY_FALLBACKS\n").hexdigest()
        self.assertEqual(proof.env_hash(env, self.keys), want)
        self.assertNotEqual(proof.env_hash(environ("A=1", "SECRET_KEY=k", "SECRET_KEY_FALLBACKS="), self.keys), want)

    def test_inherits_unit_env(self) -> None:
        self.assertTrue(proof.inherits_unit_env(environ("INVOCATION_ID=abc", "PATH=/bin"), self.keys))
        self.assertTrue(proof.inherits_unit_env(environ("SECRET_KEY=old"), self.keys))
        self.assertFalse(proof.inherits_unit_env(environ("PATH=/bin", "HOME=/"), self.keys))

    def test_prove_env_judges_main_and_inheriting_processes(self) -> None:
        good = environ("INVOCATION_ID=1", "A=1", "SECRET_KEY=new")
        stale = environ("INVOCATION_ID=0", "A=1", "SECRET_KEY=old")
        scrubbed = environ("PATH=/bin")
        expected = proof.env_hash(good, self.keys)
        table = {"10": good, "11": good, "12": scrubbed, "13": stale}
        props = {"MainPID": "10"}
        with (
            mock.patch.object(systemd, "prop", lambda svc, name: props[name]),
            mock.patch.object(systemd, "unit_pids", lambda svc: ["10", "11", "12"]),
            mock.patch.object(proof, "read_environ", lambda pid: table[pid]),
        ):
            ok, note = proof.prove_env("pms-backend", self.keys, expected, "/e/.env")
            self.assertTrue(ok)
            self.assertEqual(
                note,
                "2 processes hold the delivered env (1 child process(es) with a scrubbed environment, no unit env and no delivered key, not judged)",
            )
        with (
            mock.patch.object(systemd, "prop", lambda svc, name: props[name]),
            mock.patch.object(systemd, "unit_pids", lambda svc: ["10", "13"]),
            mock.patch.object(proof, "read_environ", lambda pid: table[pid]),
            mock.patch.object(proof, "comm", lambda pid: "celery"),
        ):
            ok, detail = proof.prove_env("pms-backend", self.keys, expected, "/e/.env")
            self.assertFalse(ok)
            self.assertTrue(detail.startswith("processes 13(celery) do not hold the delivered env"), detail)

    def test_prove_env_waits_for_a_process_systemd_has_not_exec_d_yet(self) -> None:
        """A Type=simple unit's restart returns while its new main process is still systemd's
        executor, holding systemd's environment: the proof waits for the exec, then judges."""
        good = environ("INVOCATION_ID=1", "A=1", "SECRET_KEY=new")
        executor_env = environ("PATH=/usr/bin", "LANG=C.UTF-8")
        expected = proof.env_hash(good, self.keys)
        polls = {"n": 0}

        def exe(pid: str) -> str:
            if pid == "1":
                return "/usr/lib/systemd/systemd"
            polls["n"] += 1
            return "/usr/lib/systemd/systemd-executor" if polls["n"] <= 3 else "/usr/bin/python3.13"

        def read_environ(pid: str) -> List[bytes]:
            return executor_env if proof.before_exec(pid) else good

        with (
            mock.patch.object(systemd, "prop", lambda svc, name: {"MainPID": "20"}[name]),
            mock.patch.object(systemd, "unit_pids", lambda svc: ["20"]),
            mock.patch.object(proof, "exe", exe),
            mock.patch.object(proof, "read_environ", read_environ),
            mock.patch.object(proof, "comm", lambda pid: "8"),
            mock.patch.object(time, "sleep", lambda s: None),
        ):
            ok, note = proof.prove_env("celery-pms", self.keys, expected, "/e/.env", 10)
        self.assertTrue(ok, note)
        self.assertEqual(note, "1 processes hold the delivered env")

    def test_prove_env_fails_on_a_main_process_that_never_execs(self) -> None:
        clock = {"t": 0.0}

        def sleep(s: float) -> None:
            clock["t"] += s

        with (
            mock.patch.object(systemd, "prop", lambda svc, name: {"MainPID": "20"}[name]),
            mock.patch.object(systemd, "unit_pids", lambda svc: ["20"]),
            mock.patch.object(proof, "exe", lambda pid: "/usr/lib/systemd/systemd-executor"),
            mock.patch.object(proof, "comm", lambda pid: "(celery)"),
            mock.patch.object(time, "sleep", sleep),
            mock.patch.object(time, "monotonic", lambda: clock["t"]),
        ):
            ok, detail = proof.prove_env("celery-pms", self.keys, "x", "/e/.env", 10)
            self.assertFalse(ok)
            self.assertIn(
                "main process 20((celery)) still runs systemd's executor, not the unit's command, 10s after", detail
            )
            self.assertGreaterEqual(clock["t"], 10)
            # Without a restart just before (the proof after the stability window, --verify-only), no wait.
            clock["t"] = 0.0
            ok, detail = proof.prove_env("celery-pms", self.keys, "x", "/e/.env")
            self.assertFalse(ok)
            self.assertIn("(systemd started it again?)", detail)
            self.assertEqual(clock["t"], 0.0)

    def test_a_pam_session_helper_is_not_judged(self) -> None:
        """With PAMName= the cgroup keeps an (sd-pam) process: systemd's executor, systemd's env."""
        good = environ("INVOCATION_ID=1", "A=1", "SECRET_KEY=new")
        table = {"20": good, "21": environ("PATH=/usr/bin"), "22": good}
        binaries = {
            "1": "/usr/lib/systemd/systemd",
            "20": "/usr/bin/python3",
            "21": "/usr/lib/systemd/systemd-executor",
        }
        with (
            mock.patch.object(systemd, "prop", lambda svc, name: {"MainPID": "20"}[name]),
            mock.patch.object(systemd, "unit_pids", lambda svc: ["20", "21", "22"]),
            mock.patch.object(proof, "exe", lambda pid: binaries.get(pid, "/usr/bin/python3")),
            mock.patch.object(proof, "read_environ", lambda pid: table[pid]),
        ):
            ok, note = proof.prove_env("celery-pms", self.keys, proof.env_hash(good, self.keys), "/e/.env")
        self.assertTrue(ok, note)
        self.assertEqual(
            note,
            "2 processes hold the delivered env (1 systemd helper process(es), e.g. a PAM session's (sd-pam), not judged)",
        )

    def test_before_exec_is_systemd_s_own_binary(self) -> None:
        table = {"1": "/usr/lib/systemd/systemd", "5": "/usr/lib/systemd/systemd", "6": "/usr/bin/python3.13"}
        with mock.patch.object(proof, "exe", lambda pid: table.get(pid, "")):
            self.assertTrue(proof.before_exec("5"))  # systemd < 255: PID 1's fork, not exec'd yet
            self.assertFalse(proof.before_exec("6"))
            self.assertFalse(proof.before_exec("7"))  # gone


if __name__ == "__main__":
    unittest.main()
