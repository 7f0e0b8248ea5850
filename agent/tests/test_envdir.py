"""envdir: the drop-ins' env file found for a move; leftovers of killed runs swept, never through a link."""

import os
import tempfile
import unittest
from unittest import mock

from pms_agent import paths
from tests.test_worker import rollout


class EnvDirTest(unittest.TestCase):
    def test_the_env_file_the_drop_ins_name_when_it_is_another(self) -> None:
        run = rollout()
        texts = {"pms-backend": b"[Service]\nEnvironmentFile=/srv/pms-backend/.env.production\n"}

        def read(path: str, limit: int = 0) -> bytes:
            for svc, text in texts.items():
                if f"/{svc}.service.d/" in path:
                    return text
            raise FileNotFoundError(path)

        with mock.patch.object(paths, "read_small", read):
            self.assertEqual(run.dropin_env_file(), "/srv/pms-backend/.env.production")
            texts["pms-backend"] = b"EnvironmentFile=/etc/pms-backend/.env\n"
            self.assertEqual(run.dropin_env_file(), "", "the configured path is no move")

    @unittest.skipIf(os.geteuid() != 0, "the sweep only removes root's leftovers")
    def test_sweep_removes_killed_runs_private_dirs_but_not_links_or_others(self) -> None:
        run = rollout()
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, ".pms-secrets.killedrun1"))
            with open(os.path.join(d, ".pms-secrets.killedrun1", "new"), "w", encoding="ascii") as f:
                f.write("x")
            victim = tempfile.mkdtemp()
            os.symlink(victim, os.path.join(d, ".pms-secrets.planted"))
            with open(os.path.join(d, ".env.bak.tmp"), "w", encoding="ascii") as f:
                f.write("x")
            run.o.env_file = os.path.join(d, ".env")
            cwd = os.getcwd()
            os.chdir(d)
            run.env_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                run.sweep_env_dir()
            finally:
                os.close(run.env_fd)
                os.chdir(cwd)
            self.assertEqual(sorted(os.listdir(d)), [".pms-secrets.planted"])
            self.assertTrue(os.path.isdir(victim))
            os.rmdir(victim)


if __name__ == "__main__":
    unittest.main()
