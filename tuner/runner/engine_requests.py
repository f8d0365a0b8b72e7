"""The requests served by other engines than MindSpore, on the study's saved model: exported to
ONNX and checked by ONNX Runtime (``onnx_export``), timed by ONNX Runtime (``onnx_measure``) or
by OpenVINO's CPU plugin (``openvino_measure``)."""
from __future__ import annotations

from tuner.trial.gate import Gate
from tuner.trial.protocol import Phase
from tuner.trial.request import TrialRequest
from tuner.trial.result import Status, TrialResult
from tuner.runner.trial_network import setup
from tuner.runner.trial_outcome import enter


def onnx_export(request: TrialRequest) -> TrialResult:
    """The model in ONNX, checked by ONNX Runtime against the reference (tuner.onnx.onnx_file)."""
    from tuner.onnx.onnx_file import export_onnx

    ms = setup(request.target.device)
    enter(Phase.COMPILE)
    exported = export_onnx(request, ms)
    if not exported.max_rel_error <= request.measure.rel_tolerance:
        return TrialResult(Status.WRONG_RESULT, error=f"ONNX Runtime's output differs from the "
                           f"untuned MindSpore output: max rel error {exported.max_rel_error:.3g}")
    return TrialResult(Status.OK)


def onnx_measure(request: TrialRequest) -> TrialResult:
    from tuner.onnx.runtime import measure_onnx_runtime

    enter(Phase.COMPILE)
    return measure_onnx_runtime(request, Gate(request.gated))


def openvino_measure(request: TrialRequest) -> TrialResult:
    from tuner.onnx.openvino_cpu import measure_openvino

    enter(Phase.COMPILE)
    return measure_openvino(request, Gate(request.gated))
