"""Compiling one kernel variant (a C++ source plus -D defines) into a cached shared object.

The cache key is the sha256 of everything that changes the binary: the source text and the
text of the local headers it includes, the sorted defines, ``g++ --version``, the flags and the
CPU's ISA flags. Builds write a temporary file and ``os.replace`` it into place, so concurrent
builds of the same variant are safe. A failed build is a ``BuildResult(ok=False)`` carrying the
compiler's message, never an exception.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from tuner import cpuinfo

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
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / f"{source.stem}-{variant_key(source, defines, link)[:24]}.so"
    if library.exists():
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
    os.replace(temporary, library)
    return BuildResult(True, library, "", time.perf_counter() - started, False)
