"""Shared fixtures: one CPU kernel library per test session, building into a temporary cache
(so variants are compiled once per run), in graph mode."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.cpu import CpuKernelLibrary


@pytest.fixture(scope="session", autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)  # the CPU is MindSpore's default device


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("kernel_cache")


@pytest.fixture(scope="session")
def library(kernel_cache) -> CpuKernelLibrary:
    return CpuKernelLibrary(cache_dir=kernel_cache)


@pytest.fixture(scope="session")
def every_kernel_library(kernel_cache) -> CpuKernelLibrary:
    """A library on a CPU that has every flag the kernels require (whatever this one has), for
    tests of which kernels are offered and refused; it cannot run the kernels this CPU lacks."""
    return CpuKernelLibrary(cache_dir=kernel_cache, flags=cpu_flags() | {"avx512f"})


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))
