"""bootstrap.sh: the interpreter must be root's all the way up; the loader unpacks the agent and
hands the rest of stdin (the env file) to the front end, never through argv."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import List, Tuple

AGENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP = os.path.join(AGENT, "bootstrap.sh")


def functions() -> str:
    with open(BOOTSTRAP, encoding="utf-8") as f:
        text = f.read()
    return text[: text.rindex('main "$@"; exit $?')]


def bundle_files() -> List[str]:
    pkg = sorted(f for f in os.listdir(os.path.join(AGENT, "pms_agent")) if f.endswith(".py"))
    return ["main.py", "options.json", *(f"pms_agent/{f}" for f in pkg)]


def payload(env: bytes) -> bytes:
    """What follows the bootstrap on stdin (components/host-rollout.ts agentBundle builds the same)."""
    out = b""
    for name in bundle_files():
        with open(os.path.join(AGENT, name), "rb") as f:
            data = f.read()
        out += f"# pms-agent-file {name} {len(data)}\n".encode() + data
    return out + b"# pms-agent-end\n" + env


def check(python: str) -> Tuple[int, str]:
    script = functions() + f"\nPYTHON={python}\nHOST=web1\ncheck_interpreter\necho ok\n"
    p = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return p.returncode, p.stdout.decode()


class InterpreterTest(unittest.TestCase):
    def test_the_system_python_passes(self) -> None:
        if os.stat("/usr/bin/python3").st_uid != 0:
            self.skipTest("no root-owned /usr/bin/python3 here")
        self.assertEqual(check("/usr/bin/python3"), (0, "ok\n"))

    def test_a_python_under_a_world_writable_directory_is_refused(self) -> None:
        if os.stat("/tmp").st_uid != 0:
            self.skipTest("/tmp is not root's here")
        with tempfile.TemporaryDirectory(dir="/tmp") as d:
            os.chmod(d, 0o777)  # noqa: S103 - the unsafe directory under test
            py = os.path.join(d, "python3")
            shutil.copy(sys.executable, py)
            rc, out = check(py)
        self.assertEqual(rc, 1)
        self.assertIn(
            "pms-rollout FAILED host=web1 service=- check=interpreter: /tmp is writable by group or others", out
        )
        self.assertIn("nothing on the host was changed", out)

    def test_a_venv_the_app_user_owns_is_refused(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("needs root to hand a directory to another user")
        parents = [d for d in ("/var/cache", "/root", "/run") if os.path.isdir(d) and os.stat(d).st_mode & 0o022 == 0]
        if not parents:
            self.skipTest("no root-only parent directory for the fake venv")
        with tempfile.TemporaryDirectory(dir=parents[0]) as base:
            os.chmod(base, 0o755)  # noqa: S103 - a root-only parent, readable
            venv = os.path.join(base, "venv", "bin")
            os.makedirs(venv, 0o755)
            os.chown(os.path.join(base, "venv"), 65534, 65534)
            py = os.path.join(venv, "python3")
            shutil.copy(sys.executable, py)
            rc, out = check(py)
        self.assertEqual(rc, 1)
        self.assertIn("belongs to uid 65534, not root", out)

    def test_a_relative_path_is_refused(self) -> None:
        rc, out = check("python3")
        self.assertEqual(rc, 1)
        self.assertIn("must be an absolute path", out)


class LoaderTest(unittest.TestCase):
    def run_loader(self, stdin: bytes, *args: str) -> Tuple[int, str, bool]:
        run_dir = tempfile.mkdtemp()
        try:
            with open(os.path.join(run_dir, "stdin"), "wb") as f:
                f.write(stdin)
            script = functions() + f"\nwrite_loader {run_dir}/load.py\n"
            subprocess.run(["bash", "-c", script], check=True)
            p = subprocess.run(
                [sys.executable, "-I", os.path.join(run_dir, "load.py"), run_dir, *args],
                capture_output=True,
                check=False,
            )
            return p.returncode, p.stderr.decode(), os.path.exists(run_dir)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def test_unpacks_the_agent_and_runs_its_front_end(self) -> None:
        rc, err, left = self.run_loader(payload(b"SECRET_KEY='x'\n"), "--host", "web1", "--bogus")
        self.assertEqual(rc, 2)
        self.assertEqual(
            err,
            "pms-rollout FAILED host=web1 service=- check=arguments: unknown argument --bogus; nothing on the host was changed\n",
        )
        self.assertFalse(left, "a refusal before the worker started leaves no run dir (nor the env file in it)")

    def test_a_cut_transfer_is_refused(self) -> None:
        cut = payload(b"")[:-200]
        rc, err, _ = self.run_loader(cut, "--host", "web1")
        self.assertEqual(rc, 1)
        self.assertIn("check=agent: the agent arrived incomplete", err)

    def test_a_file_name_outside_the_agent_is_refused(self) -> None:
        rc, err, _ = self.run_loader(b"# pms-agent-file ../x.py 1\nx# pms-agent-end\n", "--host", "web1")
        self.assertEqual(rc, 1)
        self.assertIn("arrived incomplete", err)

    def test_a_transfer_that_does_not_fit_on_the_disk_is_refused_and_leaves_nothing(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("the state directory must be root's: run as root")
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(__file__))) as d:
            state = os.path.join(d, "state")
            text = functions().replace("readonly STATE_DIR=/var/lib/pms-secrets", f"readonly STATE_DIR={state}")
            self.assertNotEqual(text, functions(), "the bootstrap names its state directory")
            # A file size limit of 4 KiB stands in for a full /var: the transfer (agent + env file) is larger.
            script = text + '\nulimit -f 4\nmain "$@"\n'
            p = subprocess.run(
                ["bash", "-c", script, "bootstrap", "--host", "web1", "--env-file", "/etc/x/.env", "--service", "x"],
                input=payload(b"SECRET_KEY='s3cret-value'\n# pms-secrets-end sha256=00\n"),
                capture_output=True,
                check=False,
            )
            leftover = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(state, "runs")) for f in fs]
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(
            p.stderr.decode(),
            r"pms-rollout FAILED host=web1 service=- check=state-dir: cannot store the transfer in \S+ \(disk full\?\);"
            r" nothing on the host was changed\n$",
        )
        self.assertEqual(leftover, [], "no partial copy of the transfer (it holds the secrets) is left behind")

    def bootstrap_in(self, state: str, *args: str) -> "subprocess.CompletedProcess[bytes]":
        """The whole bootstrap with its state directory at state, the agent and an env file on stdin."""
        text = functions().replace("readonly STATE_DIR=/var/lib/pms-secrets", f"readonly STATE_DIR={state}")
        self.assertNotEqual(text, functions(), "the bootstrap names its state directory")
        return subprocess.run(
            ["bash", "-c", text + '\nmain "$@"\n', "bootstrap", *args],
            input=payload(b"SECRET_KEY='s3cret-value'\n# pms-secrets-end sha256=00\n"),
            capture_output=True,
            check=False,
        )

    def test_a_refused_first_run_leaves_no_state_directory(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("the state directory must be root's: run as root")
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(__file__))) as d:
            state = os.path.join(d, "state")
            p = self.bootstrap_in(state, "--host", "web1", "--bogus")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(b"unknown argument --bogus; nothing on the host was changed", p.stderr)
            self.assertFalse(os.path.exists(state), "the message says nothing was changed: no new /var/lib/pms-secrets")
            # A state directory that was there before stays, with what it holds.
            os.makedirs(os.path.join(state, "backups"), 0o700)
            os.makedirs(os.path.join(state, "runs"), 0o700)
            p = self.bootstrap_in(state, "--host", "web1", "--bogus")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(sorted(os.listdir(state)), ["backups", "runs"])
            self.assertEqual(os.listdir(os.path.join(state, "runs")), [])
            # And a refusal in the bootstrap itself (a relative interpreter) on a fresh host.
            shutil.rmtree(state)
            p = self.bootstrap_in(state, "--host", "web1", "--python", "python3")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"check=interpreter: --python python3 must be an absolute path", p.stderr)
            self.assertFalse(os.path.exists(state))

    def test_the_bootstrap_ends_on_the_line_that_runs_main(self) -> None:
        with open(BOOTSTRAP, encoding="utf-8") as f:
            self.assertTrue(f.read().endswith('main "$@"; exit $?\n'))


if __name__ == "__main__":
    unittest.main()
