"""Devices MindSpore can target, registered by name behind one interface."""
from tuner.backends.base import Backend, backend_names, get_backend, register_backend
from tuner.backends import ascend, cpu, gpu  # noqa: F401  (registration)

__all__ = ["Backend", "backend_names", "get_backend", "register_backend"]
