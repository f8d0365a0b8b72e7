"""The Ascend backend (CANN). Reachable through --device Ascend; refused cleanly without one."""
import glob
import os

from tuner.backends.base import Backend, register_backend


@register_backend
class AscendBackend(Backend):
    kernels_missing = "needs Ascend C kernels"
    name = "Ascend"

    def unavailable_reason(self) -> str | None:
        toolkit = os.environ.get("ASCEND_HOME_PATH") or "/usr/local/Ascend"
        if not os.path.isdir(toolkit):
            return f"no Ascend CANN toolkit ({toolkit} missing; set ASCEND_HOME_PATH)"
        if not glob.glob("/dev/davinci[0-9]*"):
            return "no Ascend NPU device (/dev/davinci*) on this machine"
        return None

    def profiler_activities(self, ms) -> list:
        return [ms.profiler.ProfilerActivity.CPU, ms.profiler.ProfilerActivity.NPU]
