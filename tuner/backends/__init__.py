"""Devices MindSpore can target, registered by name behind one interface."""
from pathlib import Path

from tuner.backends.base import Backend, backend_names, get_backend, register_backend
from tuner.backends import ascend, cpu, gpu  # noqa: F401  (registration)


def kernel_library(device: str, params_file: Path | str | None = None):
    """The kernel library of ``device``'s backend; UnsupportedDeviceError if it has none."""
    return get_backend(device).kernel_library(params_file)


__all__ = ["Backend", "backend_names", "get_backend", "kernel_library", "register_backend"]
