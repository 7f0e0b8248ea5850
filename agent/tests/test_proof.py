"""proof: the env hash of a process as the delivered keys, scrubbed children not judged."""

import hashlib
import unittest
from typing import ClassVar, List
from unittest import mock

from pms_agent import proof, systemd


def environ(*entries: str) -> List[bytes]:
    return [e.encode() for e in entries] + [b""]


class ProofTest(unittest.TestCase):
    keys: ClassVar[List[str]] = ["A", "SECRET_KEY", "SECRET_KEY_FALLBACKS"]

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


if __name__ == "__main__":
    unittest.main()
