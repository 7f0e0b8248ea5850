"""verify: --verify-only reads the env file once, safely (issue 19 f): never through a link, never
blocking on a FIFO, a huge file refused unread; services compared with the file."""

import io
import os
import shutil
import tempfile
import unittest
from unittest import mock

from pms_agent import options, report, systemd, verify
from pms_agent.report import Failure

ENV = "ALLOWED_HOSTS='api.example.com'\nSECRET_KEY='k-0123456789'\n"


def root_scratch() -> str:
    """A directory whose ancestors are root's and not group/other-writable (/run), or skip."""
    if os.geteuid() != 0 or not os.path.isdir("/run") or os.stat("/run").st_uid != 0:
        raise unittest.SkipTest("needs root and a root-owned /run")
    d = tempfile.mkdtemp(dir="/run", prefix="pms-agent-test-")
    os.chmod(d, 0o755)  # noqa: S103 - root's, like /etc/pms-backend
    return d


class VerifyTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = root_scratch()
        self.env = os.path.join(self.dir, ".env.production")
        self.o = options.parse_args(
            ["--host", "web1", "--env-file", self.env, "--service", "pms-backend", "--verify-only"]
        )

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def refusal(self) -> str:
        with self.assertRaises(Failure) as cm:
            verify.read_env_file_safely(self.o)
        self.assertEqual(cm.exception.check, "verify")
        return cm.exception.detail

    def test_reads_a_regular_file(self) -> None:
        with open(self.env, "w", encoding="utf-8") as f:
            f.write(ENV)
        self.assertEqual(verify.read_env_file_safely(self.o), ENV.encode())

    def test_fifo_link_huge_and_missing_refused_without_blocking(self) -> None:
        self.assertIn("is missing", self.refusal())
        os.mkfifo(self.env)
        self.assertIn("is not a regular file with one link (fifo", self.refusal())
        os.unlink(self.env)
        os.symlink("/etc/shadow", self.env)
        self.assertIn("is not a regular file with one link (symbolic link", self.refusal())
        os.unlink(self.env)
        with open(self.env, "w", encoding="utf-8") as f:
            f.write("SECRET_KEY='" + "x" * (2 * 1024 * 1024) + "'\n")
        self.assertIn("is larger than 1048576 bytes", self.refusal())

    def test_inactive_service_and_exit_codes(self) -> None:
        with open(self.env, "w", encoding="utf-8") as f:
            f.write(ENV)
        r = report.Reporter("web1")
        out = io.StringIO()
        r.out = out
        run_dir = tempfile.mkdtemp()
        with mock.patch.object(systemd, "prop", lambda svc, name: "inactive"):
            self.assertEqual(verify.main(self.o, r, run_dir, b""), 0)
        self.assertIn("verify: pms-backend is inactive: nothing running to compare", out.getvalue())
        self.assertFalse(os.path.exists(run_dir))


if __name__ == "__main__":
    unittest.main()
