"""systemd: properties read as systemctl show prints them (commands faked)."""

import os
import tempfile
import unittest
from typing import Dict, Optional, Sequence, Tuple
from unittest import mock

from pms_agent import systemd


def fake(props: Dict[str, str]):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str], timeout: float, stdin: Optional[bytes] = None) -> Tuple[int, str]:
        if argv[:2] == ["systemctl", "show"]:
            return 0, props.get(argv[3], "") + "\n"
        return 0, ""

    return mock.patch.object(systemd, "run", run)


class SystemdTest(unittest.TestCase):
    def test_env_files_in_load_order_with_ignore_prefix(self) -> None:
        props = {
            "EnvironmentFiles": "/etc/default/pms (ignore_errors=yes)\n/etc/pms-backend/.env.production (ignore_errors=no)"
        }
        with fake(props):
            self.assertEqual(
                systemd.env_files("pms-backend"), ["-/etc/default/pms", "/etc/pms-backend/.env.production"]
            )
            self.assertTrue(systemd.ours_loads_last("pms-backend", "/etc/pms-backend/.env.production"))
            self.assertFalse(systemd.ours_loads_last("pms-backend", "/etc/default/pms"))

    def test_later_dropins_that_set_environment(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            early, late, harmless = (os.path.join(d, n) for n in ("10-a.conf", "override.conf", "90-b.conf"))
            for path, text in (
                (early, "EnvironmentFile=/x\n"),
                (late, "[Service]\n UnsetEnvironment=SECRET_KEY\n"),
                (harmless, "Nice=5\n"),
            ):
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            with fake({"DropInPaths": f"{early} {late} {harmless}"}):
                self.assertEqual(systemd.later_dropins("pms-backend"), late + " ")

    def test_dropin_content_and_paths(self) -> None:
        self.assertEqual(
            systemd.dropin_path("celery-pms@default"),
            "/etc/systemd/system/celery-pms@default.service.d/50-pms-secrets.conf",
        )
        self.assertTrue(systemd.dropin_content("/e/.env").endswith("[Service]\nEnvironmentFile=/e/.env\n"))

    def test_unit_pids_main_first(self) -> None:
        with (
            fake({"MainPID": "42", "ControlGroup": "/system.slice/x.service"}),
            mock.patch.object(systemd, "cgroup_procs", lambda cg: ["7", "42", "8"]),
        ):
            self.assertEqual(systemd.unit_pids("x"), ["42", "7", "8"])
        with fake({"MainPID": "0", "ControlGroup": ""}):
            self.assertEqual(systemd.unit_pids("x"), [])

    def test_a_command_that_hangs_is_bounded(self) -> None:
        self.assertEqual(systemd.run(["sleep", "5"], 0.2), (124, ""))
        self.assertEqual(systemd.run(["/nonexistent/cmd"], 1)[0], 127)


if __name__ == "__main__":
    unittest.main()
