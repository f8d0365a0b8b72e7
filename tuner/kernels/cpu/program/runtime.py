"""Building and loading the program runtime (kernels/cpu/program/program.cpp).

It links against the oneDNN that MindSpore's wheel ships (``mindspore/lib/libdnnl.so.3``, the
library MindSpore itself loads), so nothing is installed besides MindSpore; ``unavailable_reason``
says in one line why the runtime cannot be used here (no such library, another ABI).
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
from pathlib import Path

from tuner.kernels.build import BuildResult, build_variant
from tuner.kernels.space import REPO_ROOT

SOURCE = REPO_ROOT / "kernels" / "cpu" / "program" / "program.cpp"
ENTRY_POINT = "RunProgram"
ONEDNN = "libdnnl.so.3"


def mindspore_lib_dir() -> Path | None:
    spec = importlib.util.find_spec("mindspore")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "lib"


def link_arguments() -> tuple[str, ...]:
    lib = mindspore_lib_dir()
    if lib is None:
        return ()
    return (f"-L{lib}", f"-l:{ONEDNN}", f"-Wl,-rpath,{lib}")


def build(cache_dir: Path | None = None) -> BuildResult:
    lib = mindspore_lib_dir()
    if lib is None or not (lib / ONEDNN).exists():
        return BuildResult(False, None, f"MindSpore's {ONEDNN} was not found", 0.0, False)
    return build_variant(SOURCE, {}, cache_dir, link_arguments())


@functools.lru_cache(maxsize=None)
def unavailable_reason(cache_dir: Path | None = None) -> str | None:
    """None when programs can run in this environment, else why not (one line)."""
    result = build(cache_dir)
    if not result.ok:
        return f"the program runtime does not build: {result.error.strip().splitlines()[-1]}"
    check = ctypes.CDLL(str(result.library)).ProgramRuntimeCheck
    check.restype = ctypes.c_char_p
    message = check().decode()
    return message or None


def describe(library: Path, spec) -> str:
    """The implementation oneDNN chose for each primitive of a program that has run
    (``<step>\\t<implementation>`` lines)."""
    handle = ctypes.CDLL(str(library))
    function = handle.ProgramDescription
    function.restype = ctypes.c_char_p
    words = spec.astype("int64")
    return function(words.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
                    ctypes.c_int64(len(words))).decode()
