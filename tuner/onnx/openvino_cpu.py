"""Inside a trial process (MindSpore not imported): OpenVINO's CPU plugin timed on the exported
model (tuner.onnx.timing), with one of its performance hints (``OPENVINO_HINTS``):

- ``latency``: the LATENCY hint, one synchronous request created once; a run is one inference.
- ``throughput``: the THROUGHPUT hint, an ``AsyncInferQueue`` of the plugin's optimal number
  of requests n (OPTIMAL_NUMBER_OF_INFER_REQUESTS), each on the study's input; a run starts n
  inferences and waits for all of them, and is recorded as its seconds / n (seconds per batch
  when n requests are served at once: what a server keeping n requests in flight gets).

Inference precision is f32 (``INFERENCE_PRECISION_HINT``): on CPUs with bf16 (AVX512_BF16,
AMX) the plugin would otherwise compute in bf16, beyond the tolerance of the comparison with
the untuned float32 output, and the figure would no longer be the same network's.
``compile_seconds`` is ``Core()`` and ``compile_model`` (the ONNX file read included).
"""
from __future__ import annotations

from tuner.onnx.timing import LoadedEngine, measure_onnx_engine
from tuner.trial.gate import Gate
from tuner.trial.result import Status, TrialResult
from tuner.trial.request import TrialRequest

OPENVINO_HINTS = ("latency", "throughput")
NOT_INSTALLED = 'OpenVINO is not installed (pip install -e ".[bench]")'


def _load(path: str, hint: str) -> LoadedEngine:
    import openvino

    compiled = openvino.Core().compile_model(path, "CPU", {"PERFORMANCE_HINT": hint.upper(),
                                                           "INFERENCE_PRECISION_HINT": "f32"})
    if hint == "latency":
        request = compiled.create_infer_request()
        return LoadedEngine(lambda x: request.infer({0: x}, share_inputs=True)[0])
    queue = openvino.AsyncInferQueue(compiled,
                                     compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def infer(x):
        for _ in range(len(queue)):
            queue.start_async({0: x}, share_inputs=True)
        queue.wait_all()
        return queue[0].get_output_tensor(0).data.copy()

    return LoadedEngine(infer, len(queue))


def measure_openvino(request: TrialRequest, gate: Gate) -> TrialResult:
    """``request.openvino_hint`` as the module says; a usage error where OpenVINO is missing or
    the hint unknown."""
    if request.openvino_hint not in OPENVINO_HINTS:
        return TrialResult(Status.USAGE_ERROR, error=f"OpenVINO hint {request.openvino_hint!r}: "
                           f"not one of {', '.join(OPENVINO_HINTS)}")
    try:
        import openvino  # noqa: F401
    except ImportError:
        return TrialResult(Status.USAGE_ERROR, error=NOT_INSTALLED)
    return measure_onnx_engine(request, gate, "OpenVINO",
                               lambda path: _load(path, request.openvino_hint))
