"""Compiling one kernel variant (a C++ source plus -D defines) into a cached shared object.

The cache key is the sha256 of everything that changes the binary: the source text and the
text of the local headers it includes, the sorted defines, ``g++ --version``, the flags and the
CPU's ISA flags. Builds write a temporary file and ``os.replace`` it into place, so concurrent
builds of the same variant are safe. A failed build is a ``BuildResult(ok=False)`` carrying the
compiler's message, never an exception.

A cached library is loaded into the process (``dlopen``), so the cache is checked before it is
used: the directory is created with mode 0700 and refused (a failed build saying why, in one
line) when it is not owned by this user or group or others can write to it (a library planted
there would run); each library has a sidecar ``<library>.sha256`` (JSON: size and sha256,
written atomically after the build) and is rebuilt when it is missing, its owner is another
user, or its size or hash differ (a truncated library kills the process that maps it with a
bus error).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from tuner import cpuinfo
from tuner.errors import UsageError
from tuner.files import atomic_write_text

COMPILER = "g++"
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17",
         "-D_GLIBCXX_USE_CXX11_ABI=0")
CACHE_ENV = "TUNER_KERNEL_CACHE"
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    library: Path | None
    error: str
    seconds: float
    cached: bool


def cache_dir() -> Path:
    """``$TUNER_KERNEL_CACHE`` or ``~/.cache/tuner/kernels``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tuner" / "kernels")


class UnsafeCacheError(UsageError):
    """A kernel cache directory that others could have written libraries into."""


def checked_cache_directory(directory: Path) -> Path:
    """``directory``, created with mode 0700 if missing; UnsafeCacheError (one line) when it
    is not a directory of this user's that only this user can write to."""
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.stat()
    except OSError as error:
        raise UnsafeCacheError(f"kernel cache {directory}: cannot create "
                               f"({error.strerror or error})") from None
    if status.st_uid != os.getuid():
        raise UnsafeCacheError(f"kernel cache {directory}: owned by user {status.st_uid}, not "
                               f"this user ({os.getuid()}): refused (set ${CACHE_ENV})")
    if status.st_mode & 0o022:
        raise UnsafeCacheError(f"kernel cache {directory}: writable by group or others (mode "
                               f"{status.st_mode & 0o777:o}): refused (chmod go-w it or set "
                               f"${CACHE_ENV})")
    return directory


def _digest(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _sidecar(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def is_intact(library: Path) -> bool:
    """Whether the cached ``library`` is this user's and matches its sidecar's size and hash."""
    try:
        if library.stat().st_uid != os.getuid():
            return False
        recorded = json.loads(_sidecar(library).read_text())
        return isinstance(recorded, dict) and recorded == _digest(library)
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=None)
def compiler_version() -> str:
    try:
        return subprocess.run([COMPILER, "--version"], capture_output=True, text=True).stdout
    except OSError as error:
        return f"unavailable: {error}"


def _source_texts(source: Path, seen: set[Path] | None = None) -> list[str]:
    """The source's text followed by those of the local headers it includes (recursively)."""
    seen = set() if seen is None else seen
    source = source.resolve()
    if source in seen:
        return []
    seen.add(source)
    text = source.read_text()
    texts = [f"// {source.name}\n{text}"]
    for header in _INCLUDE.findall(text):
        path = source.parent / header
        if path.exists():
            texts.extend(_source_texts(path, seen))
    return texts


def variant_key(source: Path, defines: Mapping[str, str], link: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256()
    for part in (
        *_source_texts(source),
        repr(sorted((str(k), str(v)) for k, v in defines.items())),
        compiler_version(),
        repr(FLAGS),
        repr(link),
        " ".join(sorted(cpuinfo.flags())),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def build_variant(source: Path, defines: Mapping[str, str], directory: Path | None = None,
                  link: tuple[str, ...] = ()) -> BuildResult:
    """Compile ``source`` with ``-D<k>=<v>`` for each define into the cache (or reuse it);
    ``link`` are the linker arguments placed after the source (libraries)."""
    started = time.perf_counter()
    source = Path(source)
    if not source.exists():
        return BuildResult(False, None, f"source not found: {source}", 0.0, False)
    try:
        directory = checked_cache_directory(directory if directory is not None else cache_dir())
    except UnsafeCacheError as error:
        return BuildResult(False, None, str(error), 0.0, False)
    library = directory / f"{source.stem}-{variant_key(source, defines, link)[:24]}.so"
    if is_intact(library):
        return BuildResult(True, library, "", time.perf_counter() - started, True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{library.stem}.", suffix=".so")
    os.close(handle)
    command = [COMPILER, *FLAGS, *(f"-D{k}={v}" for k, v in sorted(defines.items())),
               str(source), *link, "-o", temporary]
    try:
        completed = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        os.unlink(temporary)
        return BuildResult(False, None, f"cannot run {COMPILER}: {error}",
                           time.perf_counter() - started, False)
    if completed.returncode != 0:
        os.unlink(temporary)
        message = completed.stderr.strip() or f"{COMPILER} exited with {completed.returncode}"
        return BuildResult(False, None, message, time.perf_counter() - started, False)
    os.chmod(temporary, 0o700)
    digest = _digest(Path(temporary))
    os.replace(temporary, library)
    atomic_write_text(_sidecar(library), json.dumps(digest), mode=0o600)
    return BuildResult(True, library, "", time.perf_counter() - started, False)
