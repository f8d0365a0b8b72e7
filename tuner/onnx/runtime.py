"""Inside a trial process (MindSpore not imported): ONNX Runtime timed on the exported model with
the same protocol and the same metrics as a MindSpore trial (tuner.runner.measurement)."""
from __future__ import annotations

import time

import numpy as np

from tuner.onnx.export import ONNX_FILE
from tuner.runner.gate import Gate
from tuner.runner.record import TrialResult
from tuner.runner.request import INPUT_FILE, REFERENCE_FILE, TrialRequest


def measure_onnx_runtime(request: TrialRequest, gate: Gate) -> TrialResult:
    """Default session options, CPU execution provider: what a user of ONNX Runtime gets.
    ``compile_seconds`` is the session's creation (graph optimisation included). Timed once
    ``gate`` lets it go, in its slots if it has them."""
    import onnxruntime

    from tuner.runner.measurement import measured_result, read_hwm_mb, reset_hwm

    started = time.perf_counter()
    session = onnxruntime.InferenceSession(str(request.asset(ONNX_FILE)),
                                           providers=["CPUExecutionProvider"])
    compile_seconds = time.perf_counter() - started
    feed = {session.get_inputs()[0].name: np.load(request.asset(INPUT_FILE))}
    compile_peak = read_hwm_mb()
    reset_hwm()
    reference = np.load(request.asset(REFERENCE_FILE))
    gate.release()
    return measured_result(lambda: session.run(None, feed)[0], request.measure,
                           request.target.batch_size, reference, compile_seconds, compile_peak,
                           engine="ONNX Runtime", gate=gate)
