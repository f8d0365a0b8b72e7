"""Inside a trial process (MindSpore not imported): ONNX Runtime timed on the exported model with
the same protocol and the same metrics as a MindSpore trial (tuner.runner.measurement)."""
from __future__ import annotations

import os
import time

import numpy as np

from tuner.onnx.export import ONNX_FILE
from tuner.runner.record import Metrics, Status, TrialResult
from tuner.runner.request import INPUT_FILE, REFERENCE_FILE, TrialRequest


def measure_onnx_runtime(request: TrialRequest) -> TrialResult:
    """Default session options, CPU execution provider: what a user of ONNX Runtime gets.
    ``compile_seconds`` is the session's creation (graph optimisation included)."""
    import onnxruntime

    from tuner.runner.measurement import (latency_summary, output_error, read_hwm_mb,
                                          reset_hwm, time_runs)

    started = time.perf_counter()
    session = onnxruntime.InferenceSession(str(request.asset(ONNX_FILE)),
                                           providers=["CPUExecutionProvider"])
    compile_seconds = time.perf_counter() - started
    feed = {session.get_inputs()[0].name: np.load(request.asset(INPUT_FILE))}
    compile_peak = read_hwm_mb()
    reset_hwm()
    outputs = []

    def run_once() -> None:
        outputs.append(session.run(None, feed)[0])
        del outputs[:-1]

    times = os.times()
    cpu_before, wall_before = times.user + times.system, time.perf_counter()
    durations = time_runs(run_once, request.measure)
    times = os.times()
    cpu_utilization = (times.user + times.system - cpu_before) / (time.perf_counter() - wall_before)
    abs_error, rel_error = output_error(outputs[-1], np.load(request.asset(REFERENCE_FILE)))
    metrics = Metrics(compile_seconds=compile_seconds,
                      **latency_summary(durations, request.target.batch_size),
                      peak_memory_mb=read_hwm_mb(), compile_peak_memory_mb=compile_peak,
                      cpu_utilization=cpu_utilization,
                      os_threads=len(os.listdir("/proc/self/task")),
                      max_abs_error=abs_error, max_rel_error=rel_error)
    if not rel_error <= request.measure.rel_tolerance:
        return TrialResult(Status.WRONG_RESULT, metrics,
                           f"ONNX Runtime's output differs from the untuned MindSpore output: "
                           f"max rel error {rel_error:.3g}")
    return TrialResult(Status.OK, metrics)
