"""The files a user gives and keeps. Read (exports, search spaces): their text, or one line
naming the file and what is wrong. Written (exports, reports, tables, records): all or nothing.

The content goes to a temporary file in the target's own directory, is flushed to disk, then
renamed over the target (``os.replace``, atomic within a file system): a failure mid-write (a
full disk, a kill) leaves the previous file as it was, never a truncated one. The new file gets
the mode a plain ``open(path, "w")`` would give it (the umask's), or the one asked for.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def read_user_text(path: Path, error: type[Exception], what: str = "") -> str:
    """The UTF-8 text of ``path``; ``error`` with one line naming it (``what`` it should have
    been, after "cannot read") where it cannot be read or is not text."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read{f' {what}' if what else ''} "
                    f"({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:  # read without changing it (threads)
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Replace ``path``'s content with ``data`` atomically (see module); its directory is
    created if missing. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask() if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)
