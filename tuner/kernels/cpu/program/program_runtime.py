"""Building and loading the program runtime (kernels/cpu/program/program.cpp).

It links against the oneDNN that MindSpore's wheel ships (``mindspore/lib/libdnnl.so.3``, the
library MindSpore itself loads), so nothing is installed besides MindSpore; ``unavailable_reason``
says in one line why the runtime cannot be used here (no such library, another ABI).
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from tuner.kernels.build import BuildResult, build_variant
from tuner.paths import REPO_ROOT

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
    return runtime_problem(result.library)


def runtime_problem(library: Path) -> str | None:
    """Why the built runtime ``library`` cannot run here (its oneDNN ABI check, its engine), or
    None."""
    check = ctypes.CDLL(str(library)).ProgramRuntimeCheck
    check.restype = ctypes.c_char_p
    return check().decode() or None


def last_error(library: Path) -> str:
    """Why the last failed program call failed ("" if none has)."""
    function = ctypes.CDLL(str(library)).ProgramLastError
    function.restype = ctypes.c_char_p
    return function().decode()


@dataclass(frozen=True)
class ActionTime:
    """One primitive (or external kernel call) of a program: its step, whether it is the
    step's own work or a layout conversion for it (``label``: step | reorder), the
    implementation, and its calls and total time since the last reset."""

    step: int
    label: str
    implementation: str
    calls: int
    total_us: float


@dataclass(frozen=True)
class ProgramTimes:
    calls: int
    total_us: float
    actions: tuple[ActionTime, ...]


def timings(library: Path, spec, reset: bool = False) -> ProgramTimes | None:
    """What a program that has run spends its time on (None if it never ran); ``reset``
    starts the counts again."""
    function = ctypes.CDLL(str(library)).ProgramTimings
    function.restype = ctypes.c_char_p
    words = spec.astype("int64")
    text = function(words.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
                    ctypes.c_int64(len(words)), ctypes.c_int(int(reset))).decode()
    if not text:
        return None
    head, *lines = text.strip().splitlines()
    calls, total = head.split("\t")
    actions = []
    for line in lines:
        step, label, implementation, count, micros = line.split("\t")
        actions.append(ActionTime(int(step), label, implementation, int(count), float(micros)))
    return ProgramTimes(int(calls), float(total), tuple(actions))


class DirectProgram:
    """A program called directly through ctypes with MindSpore's AOT calling convention: no
    graph, no framework in between. ``call()`` runs it on the arrays given at construction and
    returns the status (0: success); ``output`` holds the result. ``run(*arrays)`` runs it on
    other arrays of the same shapes (C-contiguous float32: the input, the constants, the
    output), as a program cell called from Python does (ProgramCell.call_directly)."""

    def __init__(self, library: Path, spec, arrays: list, output_shape: tuple[int, ...]):
        import numpy as np

        self._function = getattr(ctypes.CDLL(str(library)), ENTRY_POINT)
        self.output = np.zeros(output_shape, dtype=np.float32)
        arrays = [np.ascontiguousarray(spec, dtype=np.int64),
                  *(np.ascontiguousarray(a, dtype=np.float32) for a in arrays), self.output]
        self._arrays = arrays  # kept alive
        count = len(arrays)
        self._shapes = [(ctypes.c_int64 * max(1, a.ndim))(*(a.shape or (1,))) for a in arrays]
        names = {np.dtype(np.float32): b"float32", np.dtype(np.int64): b"int64"}
        self._args = (
            count,
            (ctypes.c_void_p * count)(*[a.ctypes.data for a in arrays]),
            (ctypes.c_int * count)(*[max(1, a.ndim) for a in arrays]),
            (ctypes.POINTER(ctypes.c_int64) * count)(
                *[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in self._shapes]),
            (ctypes.c_char_p * count)(*[names[a.dtype] for a in arrays]),
            None, None)

    def __call__(self) -> int:
        return self.run(*self._arrays[1:])

    def run(self, *arrays) -> int:
        pointers = self._args[1]
        for slot, array in enumerate(arrays, start=1):
            pointers[slot] = array.ctypes.data
        return self._function(*self._args)
