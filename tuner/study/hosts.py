"""The machine a worker runs on, and whether its measurements compare with a study's.

Rules:

- A host is its name, CPU model and usable cores. Its ``key`` (all three) identifies whose
  untuned baseline a trial's speedup is relative to: every host measures its own.
- Two hosts are *comparable* when CPU model and cores are equal (the names may differ): their
  throughputs are the same kind of figure. A worker on an incomparable host is refused unless
  ``--allow-heterogeneous``; it then tells Optuna its speed objectives normalised by its own
  baseline (``normalised``), so that every value in the study is in the study host's units.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from tuner import cpuinfo
from tuner.errors import UsageError
from tuner.storages.mlflow_names import HOST_CORES_TAG, HOST_CPU_TAG, HOST_TAG


@dataclass(frozen=True)
class Host:
    name: str
    cpu_model: str
    cores: int

    @property
    def key(self) -> str:
        return f"{self.name}|{self.cpu_model}|{self.cores}"

    def comparable(self, other: "Host") -> bool:
        return (self.cpu_model, self.cores) == (other.cpu_model, other.cores)

    def describe(self) -> str:
        return f"{self.name} ({self.cpu_model}, {self.cores} cores)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Host":
        return cls(str(data["name"]), str(data["cpu_model"]), int(data["cores"]))

    def tags(self) -> dict[str, str]:
        """MLflow tags of a run made on this host."""
        return {HOST_TAG: self.name, HOST_CPU_TAG: self.cpu_model, HOST_CORES_TAG: str(self.cores)}


def this_host() -> Host:
    """This machine; ``TUNER_HOST_NAME`` overrides the name (several simulated hosts on one
    machine, e.g. in tests)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    name = os.environ.get("TUNER_HOST_NAME") or socket.gethostname()
    return Host(name, os.environ.get("TUNER_HOST_CPU") or cpuinfo.model_name(), int(cores or 1))


def worker_id(host: Host) -> str:
    """``host:pid:start`` of this process: who ran a trial."""
    return f"{host.name}:{os.getpid()}:{int(time.time())}"


def check_joins(host: Host, study_host: Host | None, allow_heterogeneous: bool) -> None:
    """Refuse (one line) a worker whose CPU model or cores differ from the study's host."""
    if study_host is None or host.comparable(study_host) or allow_heterogeneous:
        return
    raise UsageError(f"host {host.describe()} differs from the study's host "
                     f"{study_host.describe()}: its timings are not comparable; pass "
                     f"--allow-heterogeneous to join with objectives normalised by its own "
                     f"baseline")
