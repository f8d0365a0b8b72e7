"""The device interface and its registry.

A backend is a MindSpore ``device_target``. Rules for implementations:

- ``name`` is the exact MindSpore device target (``CPU``, ``GPU``, ``Ascend``).
- ``unavailable_reason()`` is cheap, never raises and never imports MindSpore: it returns None
  when the device may be used, else one sentence saying what is missing.
- ``plugin_problem(ms)`` runs inside a trial process, after ``import mindspore``: None when
  MindSpore can run on the device in this process, else one sentence saying why not (its plugin
  does not load). CPU is built into MindSpore; other devices ask ``ms.hal.is_available``.
- ``configure_context(ms)`` runs inside a trial process, after ``import mindspore``, before any
  network is built; it selects graph mode and the device.
- ``profiler_activities(ms)`` lists the ``mindspore.profiler.ProfilerActivity`` values that
  profile this device's operators (the host's CPU activity always included).
- The device's default search space is ``search_spaces/<name lower>.yaml``.
- ``kernel_library(params_file)`` returns the device's own kernel library (tuner.kernels.base)
  with the kernel parameter file the search space names (None: the default one), or raises
  ``UnsupportedDeviceError`` saying in one line what the device would need;
  ``kernels_missing`` is that line (None when there is a library). The library module is
  imported on first use (it imports MindSpore; the study's process never does).
- ``trial_kernel_library(params_file)`` is what a trial process runs through: the device's own
  library, or for a device without one, tuner.kernels.no_kernels.NoKernelLibrary (whose trial
  hooks do nothing and whose ``unavailable_reason`` is ``kernels_missing``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from tuner.errors import UnsupportedDeviceError, UsageError
from tuner.paths import default_space_path

_REGISTRY: dict[str, type["Backend"]] = {}


class Backend(ABC):
    name: ClassVar[str]
    kernels_missing: ClassVar[str | None] = "no kernel library for this device"

    def kernel_library(self, params_file: Path | str | None = None):
        raise UnsupportedDeviceError(
            f"custom kernels are not implemented for device {self.name} ({self.kernels_missing})")

    def trial_kernel_library(self, params_file: Path | str | None = None):
        """The kernel library a trial runs through (see the module's rules)."""
        if not self.has_kernels:
            from tuner.kernels.no_kernels import NoKernelLibrary

            return NoKernelLibrary(self.name, self.kernels_missing)
        return self.kernel_library(params_file)

    @property
    def has_kernels(self) -> bool:
        return self.kernels_missing is None

    @abstractmethod
    def unavailable_reason(self) -> str | None: ...

    def plugin_problem(self, ms) -> str | None:
        """Why MindSpore cannot run on this device in this process, or None (module rules)."""
        if ms.hal.is_available(self.name):
            return None
        return f"MindSpore {ms.__version__} cannot load its {self.name} plugin on this machine"

    def configure_context(self, ms) -> None:
        ms.set_context(mode=ms.GRAPH_MODE, device_target=self.name)

    def profiler_activities(self, ms) -> list:
        return [ms.profiler.ProfilerActivity.CPU]

    def default_space_path(self) -> Path:
        return default_space_path(self.name)

    def require_available(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise UsageError(f"--device {self.name}: not available here: {reason}")


def register_backend(cls: type[Backend]) -> type[Backend]:
    _REGISTRY[cls.name.lower()] = cls
    return cls


def backend_names() -> list[str]:
    return [cls.name for cls in _REGISTRY.values()]


def get_backend(name: str) -> Backend:
    cls = _REGISTRY.get(name.lower())
    if cls is None:
        raise UsageError(f"--device {name}: unknown device (choose from {', '.join(backend_names())})")
    return cls()
