"""python -m tuner.profile on an exported configuration of the tiny net, as a user runs it."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tuner.profiling.compare import profiler_note
from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.exported_config import ExportedConfig, write_export
from tuner.profiling.operator_times import Profile
from tuner.runner.profile_runs import BASELINE_RUNS

RUNS = 10


def profile_cli(*args):
    return subprocess.run([sys.executable, "-m", "tuner.profile", "--trust-model-code",
                           *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def workloads(tiny_assets):
    return json.loads((tiny_assets / "model.json").read_text())


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, tiny_target, workloads):
    """An export running the network as programs, every convolution on its default kernel,
    profiled by the CLI."""
    from tuner.backends import get_backend
    from tuner.space import load_space

    work = tmp_path_factory.mktemp("profile")
    spaces = load_space(get_backend("CPU").default_space_path()).kernels.spaces
    choices = tuple(KernelChoice(w["key"], w["kernels"][0],
                                 tuple(sorted(spaces[w["kernels"][0]].defaults().items())))
                    for w in workloads["workloads"])
    config = work / "tiny.json"
    write_export(ExportedConfig(tiny_target, TuningConfig(programs=ProgramConfig("network"),
                                                          kernels=choices),
                                workloads["fingerprint"], workloads["mindspore_version"]), config)
    # --top 0: every row printed, so that each workload's presence does not depend on timing
    process = profile_cli(config, "--runs", RUNS, "--top", 0, "--out", work / "out")
    assert process.returncode == 0, process.stderr[-3000:]
    return work / "out", process.stdout


def test_table_has_both_runs_and_the_programs_steps_named_by_workload(profiled, workloads):
    out, stdout = profiled
    table = json.loads((out / "table.json").read_text())
    baseline, tuned = Profile.from_dict(table["baseline"]), Profile.from_dict(table["tuned"])
    assert {"Conv2D", "BatchNorm"} <= {o.op_type for o in baseline.operators}
    assert (baseline.runs, tuned.runs) == (BASELINE_RUNS, RUNS)  # the slow baseline: a few runs
    heavy = [o for o in tuned.operators if o.workload and o.op_type != "program:overhead"]
    assert heavy and {o.op_type for o in heavy} <= {"program:conv", "program:matmul"}
    assert all(o.kernel.startswith("onednn:") for o in heavy)
    keys = {w["key"] for w in workloads["workloads"]}
    layers = {layer for w in workloads["workloads"] for layer in w["layers"]}
    assert {o.workload for o in heavy} == keys
    assert {o.layer for o in heavy} == layers  # attributed to the layers they compute
    flops = {w["key"]: w["flops"] for w in workloads["workloads"]}
    assert all(o.flops == flops[o.workload] for o in heavy)  # per call: the rates' work
    assert "tuned GFLOP/s" in stdout
    assert "program:overhead" in {o.op_type for o in tuned.operators}
    assert "Conv2D" not in {o.op_type for o in tuned.operators}
    assert all(o.calls % profile.runs == 0 for profile in (baseline, tuned)
               for o in profile.operators)
    for key in keys:
        assert key in stdout
    assert "Custom-op" not in stdout
    assert "-- by operator type --" in stdout and "-- by layer --" in stdout
    assert "framework overhead (wall - operators)" in stdout
    assert {r["section"] for r in table["rows"]} == {"type", "layer", "total"}


def test_profiled_wall_time_is_close_to_unprofiled_or_the_table_says_how_far(profiled):
    out, stdout = profiled
    table = json.loads((out / "table.json").read_text())
    for side in ("baseline", "tuned"):
        profile = Profile.from_dict(table[side])
        assert profile.operator_ms > 0 and profile.wall_ms >= profile.operator_ms * 0.9
        if abs(profile.profiler_slowdown - 1) > 0.15:
            note = profiler_note(profile)
            assert note and note in stdout and note in (out / "table.md").read_text()
        else:
            assert profiler_note(profile) == ""


def test_files_raw_output_tables_and_one_trace_with_both_runs(profiled):
    out, _ = profiled
    for name in ("table.csv", "table.json", "table.md", "trace.json"):
        assert (out / name).stat().st_size > 0
    assert list((out / "raw" / "baseline").glob("*/FRAMEWORK/cpu_op_detail_info_0.csv"))
    # the tuned network is one program called without MindSpore's graph: the profiler saw no
    # operator, the trace has a span a call, timed from Python
    assert not list((out / "raw" / "tuned").glob("*/FRAMEWORK/cpu_op_detail_info_0.csv"))
    assert (out / "raw" / "tuned" / "program_calls.json").exists()
    trace = json.loads((out / "trace.json").read_text())["traceEvents"]
    spans = [e for e in trace if e["ph"] == "X"]
    assert {e["pid"] for e in spans} == {1, 2}
    tuned = [e for e in spans if e["pid"] == 2]
    assert len(tuned) == RUNS and all(e["name"] == "program network" for e in tuned)
    assert min(e["ts"] for e in tuned) == 0 and all(e["dur"] > 0 for e in tuned)


@pytest.mark.parametrize("args, message", [
    ([], "give an exported CONFIG.json or --trial N"),
    (["{bad}"], "line 1: not valid JSON"),
    (["--runs", "0", "x.json"], "argument --runs: 0 is not a positive integer"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    args = [tmp_path / "bad.json" if a == "{bad}" else a for a in args]
    (tmp_path / "bad.json").write_text("{bad")
    process = profile_cli(*args)
    assert process.returncode == 2, process.stderr[-2000:]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], process.stderr
