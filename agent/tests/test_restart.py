"""restart: the shared stability window and the unit checks during the health wait (systemd faked)."""

import io
import unittest
from typing import Dict
from unittest import mock

from pms_agent import systemd
from tests.test_worker import rollout


def props(values: Dict[str, str]):  # type: ignore[no-untyped-def]
    return mock.patch.object(systemd, "prop", lambda svc, name: values.get(name, ""))


class WindowTest(unittest.TestCase):
    def test_a_stable_unit_passes_and_a_restarted_one_fails(self) -> None:
        run = rollout("--stable-seconds", "1")
        with props({"ActiveState": "active", "NRestarts": "0", "MainPID": "42"}):
            run.generation["pms-backend"] = systemd.generation("pms-backend")
            self.assertIsNone(run.watch_stable(["pms-backend"]))
        with props({"ActiveState": "active", "NRestarts": "1", "MainPID": "43"}):
            self.assertEqual(
                run.watch_stable(["pms-backend"]),
                ("pms-backend", "stability", "systemd restarted it within 1s (restart loop)"),
            )
        with props({"ActiveState": "failed", "SubState": "failed"}):
            self.assertEqual(
                run.watch_stable(["pms-backend"]), ("pms-backend", "stability", "unit is failed/failed, not active")
            )

    def test_unit_failure_during_the_health_wait(self) -> None:
        run = rollout()
        with props({"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "0", "MainPID": "0"}):
            run.generation["pms-backend"] = systemd.generation("pms-backend")
            self.assertEqual(
                run.unit_failure("pms-backend"),
                ("stability", "systemd restarted it while its health URLs were checked (restart loop)"),
            )

    def test_the_old_key_line_only_in_an_emergency_for_the_first_service(self) -> None:
        run = rollout("--emergency")
        buffer = io.StringIO()
        run.r.out = buffer
        run.sk_changed = True
        run.note_old_key_rejected("pms-backend")
        out = buffer.getvalue()
        self.assertRegex(
            out,
            r"secret key: the old key is rejected by pms-backend since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(emergency\)",
        )


if __name__ == "__main__":
    unittest.main()
