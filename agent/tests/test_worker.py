"""worker: the steps a unit test can reach without systemd (the host suite covers the rest)."""

import io
import os
import shutil
import tempfile
import unittest

from pms_agent import options, report, worker
from pms_agent.report import Failure
from tests.test_verify import root_scratch


def rollout(*extra: str) -> worker.Rollout:
    o = options.parse_args(
        ["--host", "web1", "--env-file", "/etc/pms-backend/.env", "--service", "pms-backend", *extra]
    )
    r = report.Reporter("web1")
    r.out, r.err = io.StringIO(), io.StringIO()
    return worker.Rollout(o, r, tempfile.gettempdir())


PROBE = ["--health-url", "http://127.0.0.1:8000/health/", "--login-url", "http://127.0.0.1:8000/accounts/login/"]
PROBE += ["--login-user", "probe", "--login-check-url", "http://127.0.0.1:8000/me/"]


class LoginPasswordFileTest(unittest.TestCase):
    """Issue 19 b: a password file under a linked directory is resolved, or refused with a message."""

    def setUp(self) -> None:
        self.dir = root_scratch()
        os.mkdir(os.path.join(self.dir, "real"), 0o700)
        with open(os.path.join(self.dir, "real", "pw"), "w", encoding="utf-8") as f:
            f.write("probe-password-1\n")
        os.chmod(os.path.join(self.dir, "real", "pw"), 0o600)
        os.symlink(os.path.join(self.dir, "real"), os.path.join(self.dir, "link"))
        os.mkdir(os.path.join(self.dir, "open"))
        os.chmod(os.path.join(self.dir, "open"), 0o777)  # noqa: S103 - the unsafe directory under test
        with open(os.path.join(self.dir, "open", "pw"), "w", encoding="utf-8") as f:
            f.write("probe-password-2\n")
        os.chmod(os.path.join(self.dir, "open", "pw"), 0o600)
        os.symlink(os.path.join(self.dir, "open"), os.path.join(self.dir, "link-open"))

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_through_a_root_owned_link_the_password_is_read_and_redacted(self) -> None:
        run = rollout(*PROBE, "--login-password-file", os.path.join(self.dir, "link", "pw"))
        run.check_login_probe()
        self.assertEqual(run.login_password, "probe-password-1")
        self.assertEqual(run.r.redact("x probe-password-1"), "x [redacted]")

    def test_through_a_link_to_a_directory_anyone_can_write_refused(self) -> None:
        run = rollout(*PROBE, "--login-password-file", os.path.join(self.dir, "link-open", "pw"))
        with self.assertRaises(Failure) as cm:
            run.check_login_probe()
        self.assertEqual((cm.exception.service, cm.exception.check), ("pms-backend", "login-probe"))
        self.assertRegex(
            cm.exception.detail, f"^{self.dir}/open is writable by group or others .*chmod go-w {self.dir}/open$"
        )

    def test_a_readable_file_is_refused_with_the_fix(self) -> None:
        path = os.path.join(self.dir, "real", "pw")
        os.chmod(path, 0o644)
        run = rollout(*PROBE, "--login-password-file", path)
        with self.assertRaises(Failure) as cm:
            run.check_login_probe()
        self.assertIn(
            f"must be root's alone (it is uid 0, mode 644, 1 link(s)): chown root:root {path}", cm.exception.detail
        )


class ClaimTest(unittest.TestCase):
    def test_exactly_one_of_worker_and_front_end_claims_the_run(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            self.assertTrue(worker.claim_run(d, "front-end"))
            self.assertFalse(worker.claim_run(d, "worker"))

    def test_failed_before_any_change_says_nothing_changed(self) -> None:
        run = rollout()
        err = io.StringIO()
        run.r.err = err
        worker.finish_failed(run, "-", "env-dir", "refused")
        self.assertEqual(
            err.getvalue(),
            "pms-rollout FAILED host=web1 service=- check=env-dir: refused; nothing on the host was changed\n",
        )


if __name__ == "__main__":
    unittest.main()
