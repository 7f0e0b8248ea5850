"""frontend: the relay of the worker's log and its result; usage errors exit 2."""

import io
import os
import tempfile
import unittest
from unittest import mock

from pms_agent import frontend, options, report, systemd


class FrontEndTest(unittest.TestCase):
    def test_relays_each_line_on_its_channel_and_returns_the_result(self) -> None:
        o = options.parse_args(["--host", "web1", "--env-file", "/e/.env", "--service", "pms-backend"])
        r = report.Reporter("web1")
        out, err = io.StringIO(), io.StringIO()
        r.out, r.err = out, err
        run_dir = tempfile.mkdtemp()
        with open(os.path.join(run_dir, "log"), "w", encoding="utf-8") as f:
            f.write("O pms-rollout[web1] +0.001s step\nE pms-rollout FAILED host=web1 service=- check=x: y; z\nO half")
        with open(os.path.join(run_dir, "result"), "w", encoding="ascii") as f:
            f.write("1\n")
        with mock.patch.object(systemd, "show", lambda unit, name: "inactive"):
            self.assertEqual(frontend.FrontEnd(o, r, run_dir).follow(), 1)
        self.assertEqual(out.getvalue(), "pms-rollout[web1] +0.001s step\n")
        self.assertEqual(err.getvalue(), "pms-rollout FAILED host=web1 service=- check=x: y; z\n")
        self.assertFalse(os.path.exists(run_dir), "the run dir is removed once the result is read")

    def test_no_result_is_a_failed_worker(self) -> None:
        o = options.parse_args(["--host", "web1", "--env-file", "/e/.env", "--service", "pms-backend"])
        r = report.Reporter("web1")
        err = io.StringIO()
        r.out, r.err = io.StringIO(), err
        with tempfile.TemporaryDirectory() as run_dir, mock.patch.object(systemd, "show", lambda unit, name: "failed"):
            self.assertEqual(frontend.FrontEnd(o, r, run_dir).follow(), 1)
        self.assertRegex(
            err.getvalue(), r"check=worker: the rollout unit pms-rollout-\S+ ended without a result \(killed\?\)"
        )

    def test_usage_error(self) -> None:
        with mock.patch("sys.stderr", new_callable=io.StringIO) as err:
            self.assertEqual(frontend.main(["--host", "h", "--nope"], "/nonexistent", b""), 2)
        self.assertIn("check=arguments: unknown argument --nope", err.getvalue())


if __name__ == "__main__":
    unittest.main()
