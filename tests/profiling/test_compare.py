"""Profiles side by side: per-inference figures, overhead, tables and the merged trace."""
import csv
import io
import json

import pytest

from tuner.profiling.compare import compare, profiler_note, render_csv, render_markdown, render_text
from tuner.profiling.operator_times import OperatorTime, Profile
from tuner.profiling.trace import merged_trace

WORKLOAD = "dense_n1_c8_h16_w16_o8_k3x3_s1_p1"
WORKLOAD_FLOPS = 2 * 8 * 8 * 9 * 16 * 16


@pytest.fixture
def pair():
    baseline = Profile("baseline", 2, wall_ms=10.0, unprofiled_ms=9.5, operators=(
        OperatorTime("Conv2D", "stage1.conv1", "Default/network-Net/stage1-Block/conv1-Conv2d/Conv2D-op0", 2, 16.0),
        OperatorTime("BatchNorm", "stage1.bn1", "Default/network-Net/stage1-Block/bn1-BatchNorm2d/BatchNorm-op0", 2, 2.0)))
    tuned = Profile("tuned", 2, wall_ms=2.0, unprofiled_ms=1.5, operators=(
        OperatorTime("Custom:conv2d_dense", "stage1.conv1", "Default/network-Net/stage1-Block/conv1-CustomConv2d/Custom-op0",
                     2, 2.0, "conv2d_dense", WORKLOAD, WORKLOAD_FLOPS),))
    return baseline, tuned


def test_per_inference_figures_and_overhead(pair):
    baseline, tuned = pair
    assert baseline.per_inference("op_type") == {"Conv2D": (1.0, 8.0), "BatchNorm": (1.0, 1.0)}
    assert baseline.operator_ms == 9.0 and baseline.overhead_ms == pytest.approx(1.0)
    assert tuned.overhead_share == pytest.approx(0.5)
    assert tuned.profiler_slowdown == pytest.approx(2.0 / 1.5)
    assert Profile.from_dict(json.loads(json.dumps(tuned.to_dict()))) == tuned


def test_rows_align_layers_and_name_custom_kernels_by_workload(pair):
    rows = compare(*pair)
    conv = next(r for r in rows if r.section == "layer" and r.key == "stage1.conv1")
    assert conv.what == ("Conv2D", f"conv2d_dense {WORKLOAD}")
    assert conv.ms == (8.0, 1.0) and conv.share == (0.8, 0.5)
    folded = next(r for r in rows if r.key == "stage1.bn1")
    assert folded.ms == (1.0, None)
    overhead = next(r for r in rows if r.key.startswith("framework overhead"))
    assert overhead.ms == pytest.approx((1.0, 1.0))
    text = render_text(rows)
    assert WORKLOAD in text and "Custom-op" not in text
    assert "Custom:conv2d_dense" in text and "framework overhead" in text
    table = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert {r["section"] for r in table} == {"type", "layer", "total"}
    assert float(next(r for r in table if r["key"] == "Conv2D")["baseline_ms"]) == 8.0


def test_rates_are_the_known_work_over_each_rows_time(pair):
    baseline, tuned = pair
    assert tuned.flops_per_inference("layer") == {"stage1.conv1": WORKLOAD_FLOPS}
    assert baseline.flops_per_inference() == {}
    rows = {(r.section, r.key): r for r in compare(*pair)}
    per_ms = WORKLOAD_FLOPS / 1e6  # GFLOP/s of one inference's work done in 1 ms
    assert rows["layer", "stage1.conv1"].gflops == (None, pytest.approx(per_ms / 1.0))
    assert rows["type", "Custom:conv2d_dense"].gflops == (None, pytest.approx(per_ms / 1.0))
    assert rows["total", "wall per inference, unprofiled"].gflops == (
        None, pytest.approx(per_ms / 1.5))
    assert rows["total", "framework overhead (wall - operators)"].gflops == (None, None)
    table = list(csv.DictReader(io.StringIO(render_csv(list(rows.values())))))
    conv = next(r for r in table if r["key"] == "stage1.conv1")
    assert float(conv["tuned_gflops"]) == pytest.approx(per_ms) and conv["baseline_gflops"] == ""
    text = render_text(list(rows.values()))
    assert "tuned GFLOP/s" in text and f"{per_ms:.1f}" in text


def test_a_profiler_slowdown_beyond_15_percent_is_stated(pair):
    baseline, tuned = pair
    assert profiler_note(baseline) == ""  # 10.0 vs 9.5 ms: within 15 %
    assert "slowed an inference by 33%" in profiler_note(tuned)
    assert "slowed an inference by 33%" in render_markdown(compare(*pair), *pair)


def test_merged_trace_has_one_track_per_run_from_time_zero(pair, tmp_path):
    baseline, tuned = pair
    events = []
    for i, (profile, op) in enumerate(((baseline, baseline.operators[0]), (tuned, tuned.operators[0]))):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps([{"ph": "M", "name": "process_name", "pid": 9, "args": {}},
                                    {"ph": "X", "name": op.scope, "pid": 9, "tid": 0,
                                     "ts": str(1000.0 + 50 * i), "dur": "3.5"},
                                    {"ph": "X", "name": op.scope, "pid": 9, "tid": 0,
                                     "ts": str(1010.0 + 50 * i), "dur": "2"}]))
        events.append(path)
    baseline = Profile(**{**baseline.__dict__, "trace_file": str(events[0])})
    tuned = Profile(**{**tuned.__dict__, "trace_file": str(events[1])})
    trace = merged_trace((baseline, tuned))["traceEvents"]
    spans = [e for e in trace if e["ph"] == "X"]
    assert {e["pid"] for e in spans} == {1, 2}
    assert [e["ts"] for e in spans] == [0.0, 10.0, 0.0, 10.0]
    assert spans[2]["name"] == f"conv2d_dense {WORKLOAD}"
    names = {e["pid"]: e["args"]["name"] for e in trace if e["name"] == "process_name"}
    assert names == {1: "baseline", 2: "tuned"}
