"""This machine's CPU as ``/proc/cpuinfo`` describes it: its name, its instruction-set flags and
a one-line description for figures. The one reader of that file for every part of the tuner
that names the CPU or compiles for it."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=None)
def _first_processor() -> dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo`` (empty where it cannot be read)."""
    fields: dict[str, str] = {}
    try:
        text = CPUINFO.read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def model_name() -> str:
    """The CPU's model name (``Intel(R) Xeon(R) Processor``), else what Python knows of it."""
    return _first_processor().get("model name") or platform.processor() or platform.machine()


def flags() -> frozenset[str]:
    """The instruction-set flags as ``/proc/cpuinfo`` names them (``avx2``, ``avx512f``); empty
    where it cannot be read. ``-march=native`` compiles for the same set."""
    return frozenset(_first_processor().get("flags", "").split())


def vector_isa(cpu_flags: frozenset[str]) -> str:
    """The widest float vector instructions among ``cpu_flags``: AVX-512, AVX2+FMA, ... ."""
    if "avx512f" in cpu_flags:
        return "AVX-512"
    if {"avx2", "fma"} <= cpu_flags:
        return "AVX2+FMA"
    if "avx" in cpu_flags:
        return "AVX"
    return "no AVX"


def description() -> str:
    """What a figure's CPU was, in one line: model name, family and model numbers (the name alone
    is the same for many virtual CPUs) and the widest vector instructions, e.g.
    ``Intel(R) Xeon(R) Processor (family 6 model 167, AVX-512)``."""
    fields = _first_processor()
    details = [vector_isa(flags())]
    if "cpu family" in fields and "model" in fields:
        details.insert(0, f"family {fields['cpu family']} model {fields['model']}")
    return f"{model_name()} ({', '.join(details)})"
