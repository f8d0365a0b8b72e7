"""The commands as a user runs them: search, resume, MLflow runs, export, measure, bad input."""
import json
import re

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_MODEL, tuner


def _study(runs):
    storage = f"sqlite:///{runs / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def test_search_leaves_a_study_with_the_baseline_first_and_resumes(searched):
    runs, first, second = searched
    study = _study(runs)
    assert study.study_name == "tests.fixtures.tiny_models.tiny_net_2x3x16x16_CPU_throughput"
    trials = study.get_trials()
    assert len(trials) == 5
    assert trials[0].user_attrs["baseline"] is True
    assert trials[0].user_attrs["result"]["status"] == "ok"
    assert all("speedup" in t.user_attrs for t in trials if t.state.name == "COMPLETE")
    space_default = trials[1]  # enqueued after the baseline: custom kernels, default tiling
    assert space_default.user_attrs["config"]["kernels"]
    assert space_default.user_attrs["result"]["status"] == "ok"
    for output in (first.stdout, second.stdout):
        assert "baseline" in output and "speedup" in output and "best configuration:" in output
        assert "validated in 2 interleaved rounds against the baseline" in output
        assert ("the winner is the space's default configuration" in output
                or re.search(r"the winner against the space's default \(trial 1\) in the same "
                             r"rounds: [\d.]+x CI \[[\d.]+, [\d.inf]+\]", output))


def test_mlflow_has_one_parent_run_with_a_nested_run_per_trial(searched):
    runs, _, _ = searched
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tuner")
    all_runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 5
    parent = parents[0]
    assert parent.data.params["model"] == TINY_MODEL
    assert parent.data.params["mindspore_version"].startswith("2.")
    assert parent.data.metrics["best_throughput_ips"] > 0 and "best_trial" in parent.data.tags
    assert parent.data.metrics["validated_speedup"] > 0
    assert parent.data.metrics["validated_over_default"] > 0  # the space's default was validated
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    ok = [c for c in children if c.data.tags["status"] == "ok"]
    assert ok
    child = ok[0]
    for metric in ("throughput_ips", "latency_p50_ms", "latency_p99_ms", "peak_memory_mb",
                   "compile_seconds", "max_rel_error", "speedup"):
        assert metric in child.data.metrics
    assert "graph_kernel.enabled" in child.data.params
    assert "rewrites.fold_batchnorm" in child.data.params
    config = mlflow.artifacts.load_dict(f"{child.info.artifact_uri}/config.json")
    assert set(config) >= {"graph_kernel", "rewrites", "runtime"}


def test_the_winner_and_baseline_are_profiled_into_the_parent_run(searched):
    runs, first, _ = searched
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tuner")
    all_runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in all_runs if "mlflow.parentRunId" not in r.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "profile")}
    assert {f"profile/{name}" for name in ("table.md", "table.json", "table.csv",
                                           "trace.json", "raw")} <= artifacts
    assert 0 <= parent.data.metrics["profile.overhead_share"] <= 1
    assert any(k.startswith("profile.share.program_conv") for k in parent.data.metrics)
    assert "where the winner's time goes:" in first.stdout
    # profiling ran after the trials and did not touch what they measured
    study = _study(runs)
    for child in all_runs:
        if child.data.tags.get("status") == "ok":
            number = int(child.data.tags["trial_number"])
            stored = study.trials[number].user_attrs["result"]["metrics"]["throughput_ips"]
            assert child.data.metrics["throughput_ips"] == pytest.approx(stored)
            assert not any(k.startswith("profile.") for k in child.data.metrics)


def test_profile_of_a_study_trial_and_of_an_unknown_one(searched, tmp_path):
    runs, _, _ = searched
    process = tuner("profile", "--trial", "1", "--runs", "3", "--out", tmp_path / "p", runs_dir=runs)
    assert "-- by operator type --" in process.stdout and (tmp_path / "p" / "trace.json").exists()
    process = tuner("profile", "--trial", "99", runs_dir=runs, check=False)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "error: --trial 99: study tests.fixtures.tiny_models.tiny_net_2x3x16x16_CPU_throughput "
        "has trials 0..4"]


def test_export_writes_a_loadable_best_configuration(searched, tmp_path):
    runs, _, _ = searched
    out = tmp_path / "best.json"
    tuner("export", "--out", out, runs_dir=runs)
    exported = json.loads(out.read_text())
    assert exported["schema_version"] == 1 and exported["model"] == TINY_MODEL
    assert exported["input_shape"] == [2, 3, 16, 16] and exported["device"] == "CPU"
    assert exported["metrics"]["throughput_ips"] > 0
    assert exported["baseline_metrics"]["throughput_ips"] > 0
    study = _study(runs)
    validation = study.user_attrs["validation"]
    assert exported["study"]["trial"] == validation["winner"]
    assert (f"knobs of the validated winner (trial {validation['winner']}, the one exported)"
            in searched[2].stdout)
    assert exported["validation"]["rounds"] == 2
    low, high = exported["validation"]["spread"]
    assert low <= exported["validation"]["speedup"] <= high
    second = tmp_path / "second.json"
    tuner("export", "--rank", "2", "--out", second, runs_dir=runs)
    assert json.loads(second.read_text())["metrics"]["throughput_ips"] <= \
        exported["metrics"]["throughput_ips"]
    measured = tuner("measure", out, "--trust-model-code", "--min-runs", "2", "--min-seconds",
                     "0", "--max-seconds", "3")
    assert "speedup now:" in measured.stdout and "tuned now" in measured.stdout
    assert "validated speedup:" in measured.stdout


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet51", "--trials", "1"], "--model resnet51: not a mindcv model; close names: resnet50"),
    (["--model", "nosuchpackage.mod:make", "--trials", "1"], "cannot import module 'nosuchpackage.mod'"),
    (["--device", "GPU"], "--device GPU: not available here:"),
    (["--device", "Ascend"], "--device Ascend: not available here:"),
    (["--device", "TPU"], "--device TPU: unknown device"),
    (["--trials", "0"], "argument --trials: 0 is not a positive integer"),
    (["--validation-rounds", "1"], "--validation-rounds 1: must be at least 2"),
    (["--objective", "speed"], "--objective speed: unknown"),
    (["--sampler", "cmaes", "--objective", "throughput", "memory"], "single objective only"),
    (["--space", "/nonexistent.yaml"], "/nonexistent.yaml: cannot read search space"),
    (["--storage", "nosuchdb://x"], "--storage nosuchdb://x: cannot open"),
    (["--model", TINY_MODEL, "--image-size", "16", "--tracking-uri", "http://127.0.0.1:9"],
     "--tracking-uri http://127.0.0.1:9: cannot use it"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    process = tuner("search", *args, "--no-progress", runs_dir=tmp_path, check=False)
    assert process.returncode == 2, process.stderr[-2000:]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], process.stderr


def test_a_space_without_the_untuned_baseline_is_one_line_and_exit_code_2(tmp_path):
    space = tmp_path / "network_only.yaml"
    space.write_text("version: 1\ndevice: CPU\nknobs:\n  programs.granularity:\n"
                     "    {type: categorical, choices: [network], default: network}\n")
    process = tuner("search", "--model", TINY_MODEL, "--image-size", "16", "--space", space,
                    "--no-progress", runs_dir=tmp_path, check=False)
    assert process.returncode == 2, process.stderr[-2000:]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "knob programs.granularity: 'off' is not one of" in lines[0]
    assert "untuned baseline" in lines[0]


def test_bad_export_requests_are_one_line(tmp_path):
    process = tuner("export", "--out", tmp_path / "x.json", runs_dir=tmp_path, check=False)
    assert process.returncode == 2 and "no study in the storage" in process.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    process = tuner("measure", bad, check=False)
    assert process.returncode == 2
    assert process.stderr.strip() == f"error: {bad}: line 1: not valid JSON (Expecting property name enclosed in double quotes)"
