"""Inside a trial process (MindSpore not imported): an engine that runs the exported ONNX file,
timed with the same protocol and the same metrics as a MindSpore trial
(tuner.trial.measurement). ONNX Runtime (tuner.onnx.runtime) and OpenVINO
(tuner.onnx.openvino_cpu) differ only in how they load the file and run it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tuner.onnx.conventions import ONNX_FILE
from tuner.trial.gate import Gate
from tuner.trial.result import TrialResult
from tuner.trial.request import INPUT_FILE, REFERENCE_FILE, TrialRequest


@dataclass(frozen=True)
class LoadedEngine:
    """``infer(x)``: one timed call on the input, returning the output of (the last of) its
    inferences as a host array; a call runs ``batches_per_call`` inferences of the batch."""

    infer: Callable[[np.ndarray], np.ndarray]
    batches_per_call: int = 1


def measure_onnx_engine(request: TrialRequest, gate: Gate, engine: str,
                        load: Callable[[str], LoadedEngine]) -> TrialResult:
    """``load`` the exported model (``compile_seconds``: its time, graph optimisation
    included), then, once ``gate`` lets it go, time it in its slots if it has them and compare
    its output with the untuned MindSpore reference. ``engine`` names it in a wrong result."""
    from tuner.trial.measurement import measured_result, read_hwm_mb, reset_hwm

    started = time.perf_counter()
    loaded = load(str(request.asset(ONNX_FILE)))
    compile_seconds = time.perf_counter() - started
    x = np.load(request.asset(INPUT_FILE))
    compile_peak = read_hwm_mb()
    reset_hwm()
    reference = np.load(request.asset(REFERENCE_FILE))
    gate.release()
    return measured_result(lambda: loaded.infer(x), request.measure, request.target.batch_size,
                           reference, compile_seconds, compile_peak, engine=engine, gate=gate,
                           batches_per_call=loaded.batches_per_call)
