"""Every knob of the CPU space changes the compiled graph or the runtime, not just a parameter."""
import pytest

from tuner.config import TuningConfig
from tuner.models import TuningTarget
from tuner.runner.isolate import trial_environment
from tuner.trial.request import TrialRequest

FUSION = {"graph_kernel.enabled": True}


@pytest.fixture(scope="module")
def graphs():
    return {}


def _ops(measure_tiny, graphs, name, knobs):
    if name not in graphs:
        result = measure_tiny(TuningConfig.from_knobs(knobs), dump_graph=True)
        assert result.ok, result.error
        assert result.graph_ops, "the compiled graph was not dumped"
        graphs[name] = result.graph_ops
    return graphs[name]


def fused(ops):
    return {name: n for name, n in ops.items() if name.startswith("Fused_")}


def test_fusion_on_creates_fused_kernels(measure_tiny, graphs):
    baseline = _ops(measure_tiny, graphs, "baseline", {})
    on = _ops(measure_tiny, graphs, "fusion", FUSION)
    assert not fused(baseline)
    assert fused(on) and "ReLU" not in on and baseline["ReLU"] == 7


def test_opt_level_zero_turns_fusion_off(measure_tiny, graphs):
    off = _ops(measure_tiny, graphs, "opt0", {**FUSION, "graph_kernel.opt_level": 0})
    assert off == _ops(measure_tiny, graphs, "baseline", {})


@pytest.mark.parametrize("knobs, check", [
    ({"graph_kernel.disable_expand_ops": ["ReLU"]},
     lambda ops: ops.get("ReLU") == 7 and "Fused_ReLU" not in ops),
    ({"graph_kernel.enable_expand_ops_only": ["Add"]},
     lambda ops: set(fused(ops)) == {"Fused_Add"} and ops.get("ReLU") == 7),
    ({"graph_kernel.disable_cluster_ops": ["Add"]},
     lambda ops: ops.get("Add") == 3 and "Fused_Add_ReLU" not in ops),
    ({"graph_kernel.disable_pass": ["cluster.graph_kernel_expander"]},
     lambda ops: ops.get("ReLU") == 7 and "Fused_ReLU" not in ops),
    ({"graph_kernel.excluded_modules": ["stage1", "stage2"]},
     lambda ops: ops.get("ReLU") == 4 and ops.get("Fused_Add_ReLU") == 1),
], ids=["disable_expand_ops", "enable_expand_ops_only", "disable_cluster_ops", "disable_pass",
        "excluded_modules"])
def test_fusion_knob_changes_the_fused_graph(measure_tiny, graphs, knobs, check):
    ops = _ops(measure_tiny, graphs, str(knobs), {**FUSION, **knobs})
    assert ops != _ops(measure_tiny, graphs, "fusion", FUSION)
    assert check(ops), ops


@pytest.mark.parametrize("knobs, batchnorms", [
    ({"rewrites.fold_batchnorm": "all"}, 0),
    ({"rewrites.fold_batchnorm": "modules", "rewrites.fold_batchnorm_modules": ["stage1"]}, 5),
])
def test_batchnorm_folding_removes_batchnorms(measure_tiny, graphs, knobs, batchnorms):
    ops = _ops(measure_tiny, graphs, str(knobs), knobs)
    assert ops.get("BatchNorm", 0) == batchnorms
    assert ops["Conv2D"] == 7


def test_omp_threads_change_the_process_threads(measure_tiny):
    # Programs run on OpenMP threads (oneDNN), in a fresh trial process and a forked one alike.
    one = measure_tiny(TuningConfig.from_knobs({"runtime.omp_num_threads": 1,
                                                "programs.granularity": "network"}))
    four = measure_tiny(TuningConfig.from_knobs({"runtime.omp_num_threads": 4,
                                                 "programs.granularity": "network"}))
    assert one.ok and four.ok
    assert four.metrics.os_threads > one.metrics.os_threads


def test_wait_policy_reaches_the_trial_process_and_nothing_leaks_in(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the study's own setting must not leak in
    target = TuningTarget("x")
    passive = TuningConfig.from_knobs({"runtime.omp_wait_policy": "PASSIVE"})
    env = trial_environment(TrialRequest("measure", target, "/tmp", config=passive), tmp_path)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in trial_environment(TrialRequest("measure", target, "/tmp"),
                                                      tmp_path)


@pytest.mark.parametrize("granularity,programs", [("network", 1), ("layer", None)])
def test_programs_replace_mindspores_operators(measure_tiny, tiny_assets, graphs, granularity,
                                               programs):
    import json

    from tuner.config import KernelChoice, ProgramConfig
    from tuner.space import load_space
    from tuner.backends import get_backend

    workloads = json.loads((tiny_assets / "model.json").read_text())["workloads"]
    assert workloads, "the tiny net's convolutions and dense layer are workloads"
    spaces = load_space(get_backend("CPU").default_space_path()).kernels.spaces
    choices = tuple(KernelChoice(w["key"], w["kernels"][0],
                                 tuple(sorted(spaces[w["kernels"][0]].defaults().items())))
                    for w in workloads)
    config = TuningConfig(programs=ProgramConfig(granularity), kernels=choices)
    result = measure_tiny(config, dump_graph=True)
    assert result.ok, result.error
    baseline = _ops(measure_tiny, graphs, "baseline", {})
    custom = result.graph_ops.get("Custom", 0)
    assert custom == (programs or baseline["Conv2D"] + baseline.get("MatMul", 0))
    assert "Conv2D" not in result.graph_ops and "BatchNorm" not in result.graph_ops
    assert result.metrics.max_rel_error < 1e-4
    # the programs' own counters: the time of every workload, per inference
    assert set(result.workload_ms) == {w["key"] for w in workloads}
    assert all(0 < ms < result.metrics.latency_p90_ms * 10 for ms in result.workload_ms.values())
