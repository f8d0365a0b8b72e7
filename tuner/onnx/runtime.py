"""Inside a trial process (MindSpore not imported): ONNX Runtime timed on the exported model
(tuner.onnx.timing)."""
from __future__ import annotations

from tuner.onnx.conventions import session_options
from tuner.onnx.timing import LoadedEngine, measure_onnx_engine
from tuner.trial.gate import Gate
from tuner.trial.result import TrialResult
from tuner.trial.request import TrialRequest


def _load(path: str) -> LoadedEngine:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, session_options(),
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return LoadedEngine(lambda x: session.run(None, {name: x})[0])


def measure_onnx_runtime(request: TrialRequest, gate: Gate) -> TrialResult:
    """CPU execution provider, default session options (conventions.session_options);
    ``compile_seconds`` is the session's creation."""
    return measure_onnx_engine(request, gate, "ONNX Runtime", _load)
