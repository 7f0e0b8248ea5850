"""report: progress lines, FAILED/WARNING lines, redaction longest first, the line cut."""

import io
import os
import tempfile
import unittest
from typing import Tuple

from pms_agent import report
from pms_agent.constants import MAX_LINE


def reporter() -> Tuple[report.Reporter, io.StringIO, io.StringIO]:
    r = report.Reporter("web1")
    out, err = io.StringIO(), io.StringIO()
    r.out, r.err = out, err
    return r, out, err


class ReportTest(unittest.TestCase):
    def test_redaction_longest_first_short_values_every_occurrence(self) -> None:
        r, _out, _err = reporter()
        r.add_redactions("abc", "abcdef", "", "x")
        self.assertEqual(r.redact("abcdef abc x abcdefabc"), "[redacted] [redacted] [redacted] [redacted][redacted]")

    def test_failed_line_is_redacted_and_names_host_service_check(self) -> None:
        r, _out, err = reporter()
        r.add_redactions("s3cret")
        r.failed_line("pms-backend", "health-url", "got s3cret", "nothing on the host was changed")
        self.assertEqual(
            err.getvalue(),
            "pms-rollout FAILED host=web1 service=pms-backend check=health-url: got [redacted]; nothing on the host was changed\n",
        )
        self.assertTrue(r.failed_printed)

    def test_warnings_repeat_at_the_end(self) -> None:
        r, _out, err = reporter()
        r.warn("-", "env-dir", "w")
        r.repeat_warnings()
        line = "pms-rollout WARNING host=web1 service=- check=env-dir: w\n"
        self.assertEqual(err.getvalue(), line + line)

    def test_log_line_format(self) -> None:
        r, out, _err = reporter()
        r.log("hello")
        self.assertRegex(out.getvalue(), r"^pms-rollout\[web1\] \+\d+\.\d{3}s hello\n$")

    def test_long_lines_are_cut(self) -> None:
        self.assertEqual(report.cut_line("a" * (MAX_LINE + 5)), "a" * MAX_LINE + " [cut: 5 more characters]")
        self.assertEqual(report.cut_line("short"), "short")

    def test_worker_writes_channel_and_line_to_the_run_log(self) -> None:
        r, out, err = reporter()
        with tempfile.TemporaryDirectory() as d:
            r.log_path = os.path.join(d, "log")
            r.emit("E", "one")
            r.emit("O", "two")
            with open(r.log_path, encoding="utf-8") as f:
                self.assertEqual(f.read(), "E one\nO two\n")
            self.assertEqual(out.getvalue(), "")
            self.assertEqual(err.getvalue(), "one\ntwo\n")


if __name__ == "__main__":
    unittest.main()
