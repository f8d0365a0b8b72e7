"""The CPU backend: always available, the one that is complete and tested here."""
from tuner.backends.base import Backend, register_backend


@register_backend
class CpuBackend(Backend):
    name = "CPU"

    def unavailable_reason(self) -> str | None:
        return None
