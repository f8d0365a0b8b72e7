"""The GPU backend (CUDA). Reachable through --device GPU; refused cleanly without a GPU."""
import os
import shutil

from tuner.backends.base import Backend, register_backend


@register_backend
class GpuBackend(Backend):
    kernels_missing = "needs CUDA kernels"
    name = "GPU"

    def unavailable_reason(self) -> str | None:
        if not (shutil.which("nvidia-smi") or os.path.exists("/dev/nvidia0")):
            return "no NVIDIA GPU or driver on this machine (no nvidia-smi, no /dev/nvidia0)"
        return None

    def profiler_activities(self, ms) -> list:
        return [ms.profiler.ProfilerActivity.CPU, ms.profiler.ProfilerActivity.GPU]
