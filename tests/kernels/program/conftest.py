"""The program runtime, built once per test module into the session's kernel cache."""
import pytest

from tuner.kernels.cpu.program import program_runtime


@pytest.fixture(scope="module")
def program_library(kernel_cache):
    result = program_runtime.build(kernel_cache)
    assert result.ok, result.error
    return result.library
