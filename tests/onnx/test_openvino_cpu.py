"""OpenVINO's CPU plugin timed on the exported model (tuner.onnx.openvino_cpu): both hints
reproduce the untuned MindSpore output; a missing OpenVINO or an unknown hint is a record."""
import sys

import pytest

pytest.importorskip("onnxruntime")

from tuner.onnx.openvino_cpu import NOT_INSTALLED, measure_openvino  # noqa: E402
from tuner.trial.gate import Gate  # noqa: E402
from tuner.runner.isolate import run_isolated  # noqa: E402
from tuner.trial.measurement import MeasureSettings  # noqa: E402
from tuner.trial.result import Status  # noqa: E402
from tuner.trial.request import TrialRequest  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_target, tiny_assets, tmp_path_factory):
    result = run_isolated(TrialRequest("onnx_export", tiny_target, str(tiny_assets)),
                          tmp_path_factory.mktemp("export"), 120)
    assert result.ok, result.error
    return tiny_assets


@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_openvino_reproduces_the_untuned_output_with_either_hint(tiny_target, exported, tmp_path,
                                                                  hint):
    pytest.importorskip("openvino")
    request = TrialRequest("openvino_measure", tiny_target, str(exported), openvino_hint=hint,
                           measure=MeasureSettings(max_seconds=1.0, slots=2))
    from tuner.runner.interleave import run_interleaved

    (measured,) = run_interleaved([(request, tmp_path / "ov")], 120)
    assert measured.result.ok, measured.result.error
    assert len(measured.slot_medians_s) == 2
    metrics = measured.result.metrics
    assert metrics.throughput_ips > 0 and metrics.max_rel_error < 1e-5


@pytest.mark.parametrize("hint, missing, error", [
    ("latency", True, NOT_INSTALLED),
    ("fastest", False, "OpenVINO hint 'fastest': not one of latency, throughput")])
def test_no_openvino_or_an_unknown_hint_is_a_usage_error(tiny_target, monkeypatch, hint, missing,
                                                         error):
    if missing:
        monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    request = TrialRequest("openvino_measure", tiny_target, "", openvino_hint=hint)
    result = measure_openvino(request, Gate(False))
    assert (result.status, result.error) == (Status.USAGE_ERROR, error)
