"""paths: ancestors root-owned, files read only when regular with one link, never through a link."""

import os
import tempfile
import unittest

from pms_agent import paths
from pms_agent.constants import MAX_ENV_BYTES


class OpenRegularTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)

    def tearDown(self) -> None:
        os.close(self.fd)
        self.tmp.cleanup()

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_missing_and_regular(self) -> None:
        self.assertIsNone(paths.open_regular(self.fd, "nope", "the env file", "/x"))
        self.write("env", b"A='1'\n")
        got = paths.open_regular(self.fd, "env", "the env file", "/x")
        self.assertIsNotNone(got)
        assert got is not None
        self.assertEqual(got[0], b"A='1'\n")

    def test_link_refused_with_the_fix(self) -> None:
        target = self.write("target", b"x")
        os.symlink(target, os.path.join(self.dir, "env"))
        with self.assertRaisesRegex(paths.Refusal, "is a symbolic link; root does not read"):
            paths.open_regular(self.fd, "env", "the env file", "/d/env")

    def test_hard_link_fifo_and_huge_refused(self) -> None:
        self.write("a", b"x")
        os.link(os.path.join(self.dir, "a"), os.path.join(self.dir, "b"))
        with self.assertRaisesRegex(paths.Refusal, "other hard links"):
            paths.open_regular(self.fd, "a", "the env file", "/d/a")
        os.mkfifo(os.path.join(self.dir, "fifo"))
        with self.assertRaisesRegex(paths.Refusal, "is a fifo, not a regular file"):
            paths.open_regular(self.fd, "fifo", "the env file", "/d/fifo")
        self.write("huge", b"x" * (MAX_ENV_BYTES + 1))
        with self.assertRaisesRegex(paths.Refusal, "larger than"):
            paths.open_regular(self.fd, "huge", "the env file", "/d/huge")

    def test_write_file_never_through_a_link_and_atomic_write(self) -> None:
        os.symlink("/etc/passwd", os.path.join(self.dir, "planted"))
        with self.assertRaises(FileExistsError):
            paths.write_file(self.fd, "planted", b"x", 0o600)
        path = os.path.join(self.dir, "state")
        paths.atomic_write(path, b"one", 0o600)
        paths.atomic_write(path, b"two", 0o644)
        self.assertEqual(paths.read_small(path), b"two")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
        self.assertEqual(sorted(os.listdir(self.dir)), ["planted", "state"])


class AncestorsTest(unittest.TestCase):
    def test_a_directory_of_another_user_is_refused_with_the_fix(self) -> None:
        # Under a parent only root can write, wherever the checkout is (/tmp would be refused first):
        # as root a directory in /run handed to nobody, otherwise one in this user's own home.
        parent = "/run" if os.geteuid() == 0 else os.path.expanduser("~")
        with tempfile.TemporaryDirectory(dir=parent) as d:
            if os.geteuid() == 0:
                os.chown(d, 65534, 65534)
            with self.assertRaisesRegex(paths.Refusal, r"belongs to uid \d+"):
                paths.check_ancestors(os.path.join(d, "sub", "file"), "the env directory")

    def test_group_writable_directory_refused(self) -> None:
        st = os.stat("/tmp")
        if st.st_uid != 0:
            self.skipTest("/tmp is not root's here")
        with self.assertRaisesRegex(
            paths.Refusal, r"/tmp is writable by group or others \(mode 1777\).*chmod go-w /tmp"
        ):
            paths.check_ancestors("/tmp/x/y", "the env directory")

    def test_root_paths_pass(self) -> None:
        paths.check_ancestors("/etc/pms-backend/.env.production", "the env directory")
        paths.check_owner_root("/nonexistent/path", "x")  # missing: the next step says so

    def test_kind_names_as_stat(self) -> None:
        self.assertEqual(paths.kind_of(os.stat("/")), "directory")
        self.assertEqual(paths.kind_of(os.lstat("/dev/null")), "character special file")


if __name__ == "__main__":
    unittest.main()
