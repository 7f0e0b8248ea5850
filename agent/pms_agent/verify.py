"""--verify-only: changes nothing; compares each service's processes with the host's env file (and
with the file on stdin, if any). Exit 0 in sync, 3 drift, 1 error."""

from __future__ import annotations

import os
import shutil
import stat

from . import envfile, paths, proof, systemd
from .constants import EXIT_DRIFT, MAX_ENV_BYTES
from .options import Options
from .report import Failure, Reporter


def read_env_file_safely(o: Options) -> bytes:
    """The env file under the rollout's rules: ancestors root's, a regular file with one link, at most
    MAX_ENV_BYTES, never through a link, never blocking, the same before and after."""
    try:
        paths.check_ancestors(o.env_dir, "the env directory")
    except paths.Refusal as e:
        raise Failure("-", "verify", str(e)) from None
    try:
        before = os.lstat(o.env_file)
    except OSError:
        raise Failure("-", "verify", f"{o.env_file} is missing") from None
    if not stat.S_ISREG(before.st_mode) or before.st_nlink != 1:
        raise Failure(
            "-",
            "verify",
            f"{o.env_file} is not a regular file with one link ({paths.kind_of(before)}, {before.st_nlink} links); root"
            " does not read it",
        )
    if before.st_size > MAX_ENV_BYTES:
        raise Failure("-", "verify", f"{o.env_file} is larger than {MAX_ENV_BYTES} bytes: not an env file")
    try:
        fd = os.open(o.env_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fst = os.fstat(fd)
            data = os.read(fd, MAX_ENV_BYTES + 1) if stat.S_ISREG(fst.st_mode) else b""
        finally:
            os.close(fd)
    except OSError:
        raise Failure(
            "-",
            "verify",
            f"{o.env_file} could not be read as a regular file within 10s (replaced by a link or a pipe while it was"
            " read?)",
        ) from None
    try:
        after = os.lstat(o.env_file)
    except OSError:
        after = None
    if (
        after is None
        or paths.file_id(after) != paths.file_id(before)
        or paths.file_id(fst) != paths.file_id(before)
        or after.st_size != before.st_size
        or len(data) != before.st_size
    ):
        raise Failure("-", "verify", f"{o.env_file} changed while it was read (someone is replacing it); run again")
    return data


def main(o: Options, r: Reporter, run_dir: str, received: bytes) -> int:
    try:
        host_text = read_env_file_safely(o).decode("utf-8", "surrogateescape")
        drift = False
        if received:
            sent = envfile.strip_end_marker(received).decode("utf-8", "surrogateescape")
            host_lines = set(envfile.host_lines(host_text))
            # Every line the program would send must be in the host's file (which may also carry kept keys).
            if any(line not in host_lines for line in envfile.host_lines(sent) if not line.startswith("#")):
                r.log(f"verify: {o.env_file} differs from the env file the program would send")
                drift = True
        else:
            sent = "".join(line + "\n" for line in envfile.host_lines(host_text) if envfile.OUR_LINE.fullmatch(line))
    except Failure as e:
        outcome = "nothing was changed" if e.check == "verify" else "nothing on the host was changed"
        r.failed_line(e.service, e.check, e.detail, outcome)
        shutil.rmtree(run_dir, ignore_errors=True)
        return 1
    values = envfile.parse_ours(sent)
    for key, value in values.items():
        if key in o.redact:
            r.add_redactions(value)
    keys = sorted(values, key=lambda k: k.encode())
    expected = envfile.delivered_hash(values)
    for svc in o.services:
        state = systemd.prop(svc, "ActiveState")
        if state != "active":
            r.log(f"verify: {svc} is {state}: nothing running to compare")
            continue
        ok, detail = proof.prove_env(svc, keys, expected, o.env_file)
        if ok:
            r.log(f"verify: {svc} in sync ({detail})")
        else:
            r.log(f"verify: {svc} DRIFT: {detail}")
            drift = True
    shutil.rmtree(run_dir, ignore_errors=True)
    return EXIT_DRIFT if drift else 0
