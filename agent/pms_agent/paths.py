"""Safe paths: root never writes through, or reads as root from, a path another user controls."""

from __future__ import annotations

import os
import stat
from typing import Optional, Tuple

from .constants import MAX_ENV_BYTES


class Refusal(Exception):
    """A path is not safe to use; the message says why and how to fix it."""


def check_owner_root(path: str, what: str) -> None:
    """path must be root-owned and, if a directory, not group/other-writable (missing: fine)."""
    try:
        st = os.lstat(path)
    except OSError:
        return  # missing: the next step says so
    if st.st_uid != 0:
        raise Refusal(
            f"{path} belongs to uid {st.st_uid}, so that user could swap {what}; make every directory above it root-owned"
        )
    if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022:
        raise Refusal(
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}), so they could swap {what}; chmod go-w {path}"
        )


def check_ancestors(path: str, what: str, physical: bool = False) -> None:
    """Every ancestor of path (not path itself) root-owned and not group/other-writable; a path
    through a (root-owned) link is checked again as its physical path."""
    check_owner_root("/", what)
    parts = [p for p in path.split("/") if p][:-1]
    current = ""
    for part in parts:
        current += "/" + part
        check_owner_root(current, what)
    if not os.path.exists(path):
        return
    real = os.path.realpath(path)
    if real != path and not physical:
        check_ancestors(real, f"{what} (physical path {real})", physical=True)


def mode_of(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):o}"


def kind_of(st: os.stat_result) -> str:
    """The file type as stat(1) %F names it."""
    m = st.st_mode
    if stat.S_ISREG(m):
        return "regular empty file" if st.st_size == 0 else "regular file"
    names = {
        stat.S_IFDIR: "directory",
        stat.S_IFLNK: "symbolic link",
        stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket",
        stat.S_IFCHR: "character special file",
        stat.S_IFBLK: "block special file",
    }
    return names.get(stat.S_IFMT(m), "weird file")


def file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def open_regular(dir_fd: int, name: str, what: str, shown: str) -> Optional[Tuple[bytes, os.stat_result]]:
    """Reads name (relative to dir_fd) when it is a regular file with one link, checked on the
    descriptor itself, never through a link. None when missing; Refusal when unsafe."""
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    kind = kind_of(st)
    if stat.S_ISLNK(st.st_mode):
        raise Refusal(
            f"{what} {shown} is a symbolic link; root does not read or replace a file through a link another user may"
            f' have planted: put the real file there (e.g. cp --remove-destination "$(readlink -f {shown})" {shown})'
        )
    if not stat.S_ISREG(st.st_mode):
        raise Refusal(f"{what} {shown} is a {kind}, not a regular file")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        fst = os.fstat(fd)
        if file_id(fst) != file_id(st) or fst.st_nlink != 1 or not stat.S_ISREG(fst.st_mode):
            raise Refusal(
                f"{what} {shown} changed while it was opened or has other hard links ({file_id(fst)} {fst.st_nlink}"
                f" {kind_of(fst)}); refusing to read it as root"
            )
        if fst.st_size > MAX_ENV_BYTES:
            raise Refusal(
                f"{what} {shown} is larger than {MAX_ENV_BYTES} bytes: not an env file; refusing to read it as root"
            )
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_ENV_BYTES:
                raise Refusal(f"{what} {shown} grew past {MAX_ENV_BYTES} bytes while it was read; refusing it")
            chunks.append(chunk)
        return b"".join(chunks), fst
    finally:
        os.close(fd)


def write_file(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Creates name (O_EXCL, never through a link) in dir_fd with data, synced."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int) -> None:
    """Writes path (in a root-owned directory) by a temp file and rename."""
    directory = os.path.dirname(path)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    tmp = f".pms-secrets.{os.urandom(6).hex()}"
    try:
        try:
            write_file(dfd, tmp, data, mode)
            os.rename(tmp, os.path.basename(path), src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
    finally:
        os.close(dfd)


def read_small(path: str, limit: int = MAX_ENV_BYTES) -> bytes:
    """A root-owned state file (no link followed), at most limit bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
