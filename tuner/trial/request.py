"""What the study asks a trial process to do, as JSON between the two processes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.config import TuningConfig
from tuner.models import TuningTarget
from tuner.trial.measurement import MeasureSettings
from tuner.trial.protocol import RequestKind

__all__ = ["RequestKind", "TrialRequest"]

WEIGHTS_FILE = "weights.ckpt"
INPUT_FILE = "input.npy"
REFERENCE_FILE = "reference.npy"
MODEL_INFO_FILE = "model.json"


@dataclass(frozen=True)
class TrialRequest:
    """``kind`` is ``prepare`` (create the model with ``seed``, its BatchNorm statistics random
    (tuner.models.randomize_normalization), save its weights, the fixed input,
    the untuned reference output and model.json into ``assets_dir``) or ``measure`` (apply
    ``config`` to the saved model, compile, time, compare with the reference) or ``profile``
    (apply and compile as ``measure`` does, then profile ``profile_runs`` inferences with
    MindSpore's profiler, see tuner.profiling.trace_capture), ``onnx_export`` (the saved model in ONNX,
    checked by ONNX Runtime, tuner.onnx.onnx_file) or ``onnx_measure`` (ONNX Runtime timed on it,
    tuner.onnx.runtime) or ``openvino_measure`` (OpenVINO's CPU plugin timed on it with the
    performance hint ``openvino_hint``, tuner.onnx.openvino_cpu) or ``references`` (the
    untuned outputs of the regions ``config``'s programs replace, kept in the assets for their
    verification; asked by a measuring trial, in a process without its settings). A ``gated`` measurement waits after compiling until
    the study releases it (tuner.runner.isolate)."""

    kind: RequestKind
    target: TuningTarget
    assets_dir: str
    config: TuningConfig = TuningConfig()
    measure: MeasureSettings = MeasureSettings()
    seed: int = 0
    dump_graph: bool = False
    gated: bool = False
    profile_runs: int = 10
    kernel_space: str = ""   # the kernel parameter file the search space names ("": default)
    openvino_hint: str = "latency"  # openvino_measure: tuner.onnx.openvino_cpu.OPENVINO_HINTS

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RequestKind(self.kind))
        if self.assets_dir:  # read by processes working in other directories
            object.__setattr__(self, "assets_dir", str(Path(self.assets_dir).absolute()))

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind.value, "target": self.target.to_dict(),
                           "assets_dir": self.assets_dir, "config": self.config.to_dict(),
                           "measure": self.measure.to_dict(), "seed": self.seed,
                           "dump_graph": self.dump_graph, "gated": self.gated,
                           "profile_runs": self.profile_runs, "kernel_space": self.kernel_space,
                           "openvino_hint": self.openvino_hint})

    @classmethod
    def from_json(cls, text: str) -> "TrialRequest":
        data: dict[str, Any] = json.loads(text)
        return cls(kind=data["kind"], target=TuningTarget(**data["target"]),
                   assets_dir=data["assets_dir"], config=TuningConfig.from_dict(data["config"]),
                   measure=MeasureSettings(**data["measure"]), seed=data["seed"],
                   dump_graph=data["dump_graph"], gated=data.get("gated", False),
                   profile_runs=data.get("profile_runs", 10),
                   kernel_space=data.get("kernel_space", ""),
                   openvino_hint=data.get("openvino_hint", "latency"))

    def asset(self, name: str) -> Path:
        return Path(self.assets_dir) / name
