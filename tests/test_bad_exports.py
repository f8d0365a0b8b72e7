"""Bad input: every command and API that reads an exported configuration (or a search space)
refuses a bad file in one line naming the file and the field, with exit code 2, before any
model is built or anything compiled.

The cases start from a real export (ExportedConfig.to_dict of a configuration with kernel
choices, as tuner.export writes it) and break one thing each: the file itself, its JSON, its
keys, the types, ranges and names of its values.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import REPO, TINY_MODEL
from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.errors import ConfigError, UsageError
from tuner.exported_config import (ExportedConfig, ExportError, check_for_model, read_export,
                                 write_export)
from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.param_space import KernelParam, load_kernel_space
from tuner.kernels.workload import ConvWorkload, WorkloadGroup
from tuner.models import TuningTarget
from tuner.space import SpaceError, load_space

SPACES = load_kernel_space()
DENSE = "dense_n2_c8_h16_w16_o8_k3x3_s1_p1"
MATMUL = "matmul_m2_k8_n10"
DELETE = object()


def valid_export(fingerprint: str = "0123456789abcdef") -> ExportedConfig:
    """An export of the tiny net as the search writes one: programs on, a hand-written kernel
    on one workload, oneDNN on another, measured and validated."""
    dense = KernelChoice(DENSE, "conv2d_dense",
                         tuple(sorted(SPACES["conv2d_dense"].defaults().items())))
    matmul = KernelChoice(MATMUL, "onednn", (("impl", 1),))
    config = TuningConfig.from_knobs({"programs.granularity": "network",
                                      "runtime.omp_num_threads": 2},
                                     kernels=(dense, matmul))
    metrics = {"throughput_ips": 900.5, "latency_p50_ms": 2.2, "median_rel_precision": float("inf"),
               "timed_runs": 40, "speedup": 1.7}
    return ExportedConfig(TuningTarget(TINY_MODEL, 2, 16), config, fingerprint, "2.10.0",
                          metrics=metrics, baseline_metrics={**metrics, "speedup": None},
                          validation={"speedup": 1.6, "spread": [1.4, 1.8], "rounds": 3},
                          study={"name": "tiny", "trial": 4, "rank": 1, "weights_seed": 0})


VALID = valid_export().to_dict()
VALID_TEXT = json.dumps(VALID, indent=2)


def edit(**changes: Any) -> Callable[[Path], None]:
    """Write the valid export with ``changes`` (``config__kernels__0__kernel="x"``: the value
    at that path; DELETE removes the key)."""
    def write(path: Path) -> None:
        data = copy.deepcopy(VALID)
        for dotted, value in changes.items():
            *parents, last = [int(k) if k.isdigit() else k for k in dotted.split("__")]
            target = data
            for key in parents:
                target = target[key]
            if value is DELETE:
                del target[last]
            else:
                target[last] = value
        path.write_text(json.dumps(data))  # NaN and Infinity as the literals json writes
    return write


def text(content: str | bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return write


def _directory(path: Path) -> None:
    path.mkdir()


def _under_a_file(path: Path) -> Path:
    path.parent.joinpath("plain").write_text("{}")
    return path.parent / "plain" / "best.json"


def _unreadable(path: Path) -> None:
    path.write_text(VALID_TEXT)
    path.chmod(0)


KP = "config__kernels__0__params__"   # the hand-written kernel's parameters
CASES: dict[str, tuple[Callable[[Path], Any] | None, str]] = {
    # the file
    "missing file": (None, "cannot read (No such file or directory)"),
    "directory": (_directory, "cannot read (Is a directory)"),
    "under a file": (_under_a_file, "cannot read (Not a directory)"),
    "binary": (text(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"), "not a text file (byte 0 is not UTF-8)"),
    # its JSON
    "not json": (text("best configuration: resnet50"), "line 1: not valid JSON"),
    "empty": (text(""), "line 1: not valid JSON (Expecting value)"),
    "truncated": (text(VALID_TEXT[:len(VALID_TEXT) // 2]), "not valid JSON"),
    "top level list": (text("[1, 2]"), "expected a JSON object, got a list"),
    "top level null": (text("null"), "expected a JSON object, got null"),
    "5000 digits": (text('{"schema_version": ' + "9" * 5000 + "}"), "not valid JSON here"),
    "nested deeply": (text("[" * 100_000 + "]" * 100_000), "not valid JSON here (nested too deeply)"),
    # keys
    "other version": (edit(schema_version=2), "schema_version 2 is not supported (this tuner reads 1)"),
    "version as string": (edit(schema_version="1"), "schema_version '1' is not supported"),
    "no version": (edit(schema_version=DELETE), "schema_version None is not supported"),
    "missing config": (edit(config=DELETE), "missing key 'config'"),
    "missing fingerprint": (edit(fingerprint=DELETE), "missing key 'fingerprint'"),
    "unknown key": (edit(comment="tuned on monday"), "'comment': unknown key (known: schema_version"),
    "unknown section": (edit(config__fusion={}), "config: unknown section 'fusion'"),
    "unknown field": (edit(config__graph_kernel__opt_levl=2),
                      "config.graph_kernel: unknown key 'opt_levl'"),
    "unknown choice key": (edit(config__kernels__0__tile=4),
                           "config.kernels[0]: unknown key 'tile'"),
    "choice without params": (edit(config__kernels__1__params=DELETE),
                              "config.kernels[1].params: missing"),
    # types
    "string for bool": (edit(config__graph_kernel__enabled="yes"),
                        "config.graph_kernel.enabled: 'yes' is not true/false"),
    "string for int": (edit(config__graph_kernel__opt_level="2"),
                       "config.graph_kernel.opt_level: '2' is not an integer"),
    "bool for int": (edit(config__runtime__omp_num_threads=True),
                     "config.runtime.omp_num_threads: True is not an integer"),
    "null for int": (edit(config__graph_kernel__opt_level=None),
                     "config.graph_kernel.opt_level: None is not an integer"),
    "list for object": (edit(config__rewrites=["all"]),
                        "config.rewrites: expected an object, got ['all']"),
    "string for list": (edit(config__programs__excluded_modules="stage1"),
                        "config.programs.excluded_modules: expected a list of names, got 'stage1'"),
    "object for kernels": (edit(config__kernels={DENSE: "conv2d_dense"}),
                           "config.kernels: expected a list of kernel choices"),
    "string for choice": (edit(config__kernels__1="onednn"),
                          "config.kernels[1]: expected an object with workload, kernel, params"),
    "list for params": (edit(config__kernels__1__params=[["impl", 1]]),
                        "config.kernels[1].params: expected an object of parameter -> value"),
    "number for workload": (edit(config__kernels__0__workload=5),
                            "config.kernels[0].workload: 5 is not a name"),
    "null for kernel": (edit(config__kernels__0__kernel=None),
                        "config.kernels[0].kernel: None is not a name"),
    "string for param": (edit(**{KP + "unroll": "4"}),
                         "config.kernels[0].params.unroll: '4' is not one of [1, 2, 4, 8]"),
    "bool for param": (edit(**{KP + "unroll": True}),
                       "config.kernels[0].params.unroll: True is not one of [1, 2, 4, 8]"),
    "float for param": (edit(**{KP + "unroll": 4.0}),
                        "config.kernels[0].params.unroll: 4.0 is not one of [1, 2, 4, 8]"),
    "int for bool param": (edit(**{KP + "direct_output": 1}),
                           "config.kernels[0].params.direct_output: 1 is not true/false"),
    "list for param": (edit(**{KP + "unroll": [4]}),
                       "config.kernels[0].params.unroll: [4] is not a number, name or true/false"),
    "string for shape": (edit(input_shape="2x3x16x16"),
                         "input_shape: '2x3x16x16' is not [batch, 3, size, size] (integers)"),
    "float in shape": (edit(input_shape=[2.0, 3, 16, 16]), "input_shape: [2.0, 3, 16, 16] is not"),
    "number for model": (edit(model=5), "model: 5 is not a name"),
    "malformed factory": (edit(model="os.path:join; rm"),
                          "model: 'os.path:join; rm' is neither a mindcv name nor "
                          "package.module:factory"),
    "list for metrics": (edit(metrics=[1]), "metrics: expected an object, got a list"),
    "string metric": (edit(metrics__throughput_ips="fast"),
                      "metrics.throughput_ips: 'fast' is not a number or null"),
    "string spread": (edit(validation__spread="wide"), "validation.spread: 'wide' is not [low, high]"),
    "string seed": (edit(study__weights_seed="0"), "study.weights_seed: '0' is not an integer"),
    "number in environment": (edit(environment__OMP_NUM_THREADS=2),
                              "environment.OMP_NUM_THREADS: 2 is not a string"),
    # ranges, huge, negative and non-finite numbers
    "knob out of range": (edit(config__graph_kernel__opt_level=7),
                          "config.graph_kernel.opt_level: 7 is out of range [0, 3]"),
    "negative knob": (edit(config__runtime__omp_num_threads=-4),
                      "config.runtime.omp_num_threads: -4 is out of range [1, 1024]"),
    "2**70 knob": (edit(config__runtime__omp_num_threads=2 ** 70),
                   f"config.runtime.omp_num_threads: {2 ** 70} is out of range [1, 1024]"),
    "1e308 knob": (edit(config__graph_kernel__opt_level=1e308),
                   "config.graph_kernel.opt_level: 1e+308 is not an integer"),
    "NaN knob": (edit(config__graph_kernel__opt_level=float("nan")),
                 "config.graph_kernel.opt_level: nan is not an integer"),
    "param above range": (edit(**{KP + "spatial_vectors": 5}),
                          "config.kernels[0].params.spatial_vectors: 5 is not in [1, 4] "
                          f"(conv2d_dense for workload '{DENSE}')"),
    "negative param": (edit(**{KP + "spatial_vectors": -1}),
                       "config.kernels[0].params.spatial_vectors: -1 is not in [1, 4]"),
    "2**70 param": (edit(**{KP + "spatial_vectors": 2 ** 70}),
                    f"config.kernels[0].params.spatial_vectors: {2 ** 70} is not in [1, 4]"),
    "1e308 param": (edit(**{KP + "spatial_vectors": 1e308}),
                    "config.kernels[0].params.spatial_vectors: 1e+308 is not an integer"),
    "NaN param": (edit(**{KP + "spatial_vectors": float("nan")}),
                  "config.kernels[0].params.spatial_vectors: nan is not an integer"),
    "-Infinity param": (edit(**{KP + "spatial_vectors": float("-inf")}),
                        "config.kernels[0].params.spatial_vectors: -inf is not an integer"),
    "param not a choice": (edit(**{KP + "unroll": 3}),
                           "config.kernels[0].params.unroll: 3 is not one of [1, 2, 4, 8]"),
    "runtime param out of range": (edit(config__kernels__1__params__impl=3),
                                   "config.kernels[1].params.impl: 3 is not in [0, 2]"),
    "restriction broken": (edit(**{KP + "oc_register_block": 14, KP + "spatial_vectors": 4}),
                           "config.kernels[0].params: restriction 'oc_register_block * "
                           "spatial_vectors <= 28' fails for oc_register_block=14, "
                           "spatial_vectors=4"),
    "huge batch": (edit(input_shape=[2 ** 70, 3, 16, 16]),
                   f"input_shape[0]: {2 ** 70} is not a batch size in [1, 4096]"),
    "zero batch": (edit(input_shape=[0, 3, 16, 16]), "input_shape[0]: 0 is not a batch size in"),
    "huge image": (edit(input_shape=[1, 3, 8192, 8192]), "input_shape[2]: 8192 is above 4096 pixels"),
    "huge input": (edit(input_shape=[4096, 3, 4096, 4096]),
                   "input_shape: [4096, 3, 4096, 4096] is more than 1073741824 input values"),
    "negative seed": (edit(study__weights_seed=-1), "study.weights_seed: -1 is not an integer in"),
    # names
    "unknown kernel": (edit(config__kernels__0__kernel="conv2d_fancy"),
                       "config.kernels[0].kernel: 'conv2d_fancy' is not a kernel of "
                       "cpu_kernels.yaml (kernels: onednn, conv2d_dense"),
    "unknown param": (edit(**{KP + "tile_size": 4}),
                      "config.kernels[0].params.tile_size: unknown parameter (parameters: "),
    "same workload twice": (edit(config__kernels__1__workload=DENSE),
                            f"config.kernels[1].workload: '{DENSE}' has a choice already "
                            "(kernels[0])"),
    "unknown granularity": (edit(config__programs__granularity="huge"),
                            "config.programs.granularity: 'huge' is not one of ['off', 'layer'"),
    "unknown layout": (edit(config__programs__layout="nchw"),
                       "config.programs.layout: 'nchw' is not one of ['any', 'nhwc', 'blocked']"),
    "unknown policy": (edit(config__runtime__omp_wait_policy="SPIN"),
                       "config.runtime.omp_wait_policy: 'SPIN' is not one of"),
    "kernels without programs": (edit(config__programs__granularity="off"),
                                 "config.kernels: kernel choices given but programs.granularity "
                                 "is 'off'"),
    "unknown device": (edit(device="TPU"), "device: 'TPU' is not one of"),
    "device without kernels": (edit(device="GPU"),
                               "config.programs.granularity: 'network' needs custom kernels, "
                               "which device GPU does not have (needs CUDA kernels)"),
}
# a subset for the other commands (they read exports with the same function): each kind
SUBSET = ["directory", "truncated", "other version", "unknown key", "bool for param",
          "2**70 param", "NaN param", "unknown kernel", "unknown granularity"]


def write_case(tmp_path: Path, name: str) -> Path:
    writer, _ = CASES[name]
    path = tmp_path / "best.json"
    if writer is not None:
        path = writer(path) or path
    return path


def assert_refused_in_one_line(process: subprocess.CompletedProcess, path: Path, expected: str):
    assert process.returncode == 2, process.stderr[-2000:]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in process.stderr, process.stderr[-2000:]
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert expected in lines[0], lines[0]
    assert process.stdout == ""   # nothing was measured, explained or benchmarked


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_the_valid_export_reads_back_as_written(tmp_path):
    exported = valid_export()
    path = write_export(exported, tmp_path / "best.json")
    again = read_export(path)
    assert (again.config, again.target, again.metrics, again.study) == (
        exported.config, exported.target, exported.metrics, exported.study)
    assert again.metrics["median_rel_precision"] == float("inf")  # Infinity is kept in records


@pytest.mark.parametrize("name", CASES)
def test_measure_refuses_in_one_line(tmp_path, name):
    path = write_case(tmp_path, name)
    assert_refused_in_one_line(run("tuner.measure", path), path, CASES[name][1])


@pytest.mark.parametrize("name", CASES)
def test_read_export_raises_one_export_error(tmp_path, name):
    path = write_case(tmp_path, name)
    with pytest.raises(ExportError) as error:
        read_export(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert CASES[name][1] in message
    assert isinstance(error.value, UsageError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "best.json"
    _unreadable(path)
    assert_refused_in_one_line(run("tuner.measure", path), path, "cannot read (Permission denied)")


@pytest.mark.parametrize("command", [("tuner.explain",),
                                     ("tuner.bench", "anchors", "--models", "none", "--config")])
@pytest.mark.parametrize("name", SUBSET)
def test_explain_and_bench_anchors_refuse_in_one_line(tmp_path, command, name):
    path = write_case(tmp_path, name)
    process = run(*command, path, *(["--runs-dir", tmp_path] if "tuner.bench" in command else []))
    assert_refused_in_one_line(process, path, CASES[name][1])


@pytest.mark.parametrize("name", ["missing file", "binary", "top level list", *SUBSET])
def test_load_and_apply_raise_before_building_anything(tmp_path, name):
    import tuner

    path = write_case(tmp_path, name)
    for call in (lambda: tuner.load(path), lambda: tuner.apply(object(), path)):
        with pytest.raises(ExportError, match=f"^{re.escape(str(path))}: ") as error:
            call()    # apply never looks at the network: the file is refused first
        assert CASES[name][1] in str(error.value)


def test_apply_checks_a_tuning_config_too():
    import tuner

    bad = TuningConfig(programs=ProgramConfig("network"),
                       kernels=(KernelChoice(DENSE, "conv2d_dense", (("unroll", 3),)),))
    with pytest.raises(ConfigError, match=r"^config.kernels\[0\].params.unroll: 3 is not one of"):
        tuner.apply(object(), bad)


def test_a_failed_write_keeps_the_previous_export(tmp_path, monkeypatch):
    import tuner.files

    path = write_export(valid_export(), tmp_path / "best.json")
    before = path.read_text()

    def disk_full(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tuner.files.os, "fsync", disk_full)
    with pytest.raises(OSError):
        write_export(valid_export("fedcba9876543210"), path)
    assert path.read_text() == before and read_export(path).fingerprint == "0123456789abcdef"


def test_measure_refuses_a_workload_the_model_does_not_have(tmp_path):
    """The one check that needs the model: after it is built (seconds), before any trial."""
    path = tmp_path / "best.json"
    edit(fingerprint="", config__kernels__0__workload="dense_n2_c8_h16_w16_o999_k3x3_s1_p1")(path)
    assert_refused_in_one_line(run("tuner.measure", path, "--trust-model-code"), path,
                               "config.kernels[0].workload: 'dense_n2_c8_h16_w16_o999_k3x3_s1_p1' "
                               "is not a workload of this model (")


def test_measure_of_a_configuration_that_fails_to_compile_is_one_line_naming_why(tmp_path):
    path = tmp_path / "best.json"
    edit(fingerprint="", config__kernels=[], config__programs__granularity="off",
         config__graph_kernel__enabled=True,
         config__graph_kernel__enable_cluster_ops=["BatchNorm"])(path)
    process = run("tuner.measure", path, "--trust-model-code", "--min-runs", "2",
                  "--min-seconds", "0")
    assert process.returncode == 1, process.stderr[-2000:]
    (line,) = process.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: the tuned configuration: compile_error: "
                           "AkgCompileError: graph-kernel fusion (AKG) could not compile "
                           "Fused_BatchNorm_"), line
    assert "(BatchNorm of stage" in line and process.stdout == ""


def test_explain_takes_an_exports_choices_for_the_networks_workloads_only(tmp_path):
    good = write_export(valid_export(""), tmp_path / "good.json")
    process = run("tuner.explain", good, "--trust-model-code")
    if "avx512f" not in cpu_flags():  # the export's hand-written kernel cannot run here
        assert_refused_in_one_line(process, good, "config.kernels[0].kernel: conv2d_dense needs "
                                   "the CPU flag avx512f, which this CPU lacks (kernels that can "
                                   f"run {DENSE} here: onednn")
    else:
        assert process.returncode == 0, process.stderr[-2000:]
        assert f"[conv2d_dense {DENSE}]" in process.stdout and f"[onednn {MATMUL}]" in process.stdout
    path = tmp_path / "best.json"
    edit(config__kernels__0__workload="matmul_m2_k8_n11")(path)
    assert_refused_in_one_line(run("tuner.explain", path, "--trust-model-code"), path,
                               "config.kernels[0].workload: 'matmul_m2_k8_n11' is not a workload "
                               "of this model (3 workloads: ")


def test_choices_are_checked_against_the_models_workloads():
    exported = ExportedConfig.from_dict(VALID, "best.json")
    dense = WorkloadGroup(ConvWorkload(2, 8, 8, 16, 16, (3, 3), (1, 1), (1, 1, 1, 1)), ("stage1",),
                          ("onednn", "conv2d_dense", "conv2d_winograd"))
    assert dense.key == DENSE
    with pytest.raises(ExportError, match=rf"^best.json: config.kernels\[1\].workload: "
                                          rf"'{MATMUL}' is not a workload of this model \(1 "):
        check_for_model(exported, [dense])
    only_onednn = WorkloadGroup(dense.workload, ("stage1",), ("onednn",))
    why = (rf"cannot run workload {DENSE} \(kernels that can: onednn\)"
           if "avx512f" in cpu_flags() else
           rf"needs the CPU flag avx512f, which this CPU lacks \(kernels that can run {DENSE} "
           r"here: onednn\)")
    with pytest.raises(ExportError, match=rf"kernels\[0\].kernel: conv2d_dense {why}"):
        check_for_model(exported, [only_onednn])


def test_a_step_is_part_of_an_int_parameters_range():
    param = KernelParam("block", "int", 8, "BLOCK", low=4, high=32, step=4)
    assert param.check(12) is None
    assert param.check(10) == "10 is not in [4, 32] in steps of 4 from 4"
    assert param.check(36) == "36 is not in [4, 32] in steps of 4 from 4"


SPACE_HEADER = "version: 1\ndevice: CPU\nknobs:\n"
SPACE_CASES = {
    "binary": (b"\xff\xfe\x00", "not a text file (byte 0 is not UTF-8)"),
    "truncated": (SPACE_HEADER + "  programs.granularity: {type: categorical, choices: [",
                  "not valid YAML"),
    "unknown enum": (SPACE_HEADER + '  programs.granularity: {type: categorical, choices: '
                     '["off", huge], default: "off"}\n',
                     "knobs.programs.granularity: out of the knob's domain: 'huge' is not one of"),
    "huge number": (SPACE_HEADER + f"  graph_kernel.opt_level: {{type: int, low: 1, high: {2 ** 70}, "
                    "default: 1}\n", f"knobs.graph_kernel.opt_level: out of the knob's domain: "
                    f"{2 ** 70} is out of range [0, 3]"),
    "unquoted off": (SPACE_HEADER + "  programs.granularity: {type: categorical, choices: [off, "
                     "layer], default: layer}\n", "takes str, not False (YAML reads unquoted "
                     "off/on/yes/no as false/true: quote it)"),
    "list for type": (SPACE_HEADER + "  graph_kernel.opt_level: {type: [int], low: 1, high: 2, "
                      "default: 1}\n", "knobs.graph_kernel.opt_level.type: ['int'] is not one of"),
    "NaN bound": (SPACE_HEADER + "  graph_kernel.opt_level: {type: int, low: .nan, high: 2, "
                  "default: 1}\n", "knobs.graph_kernel.opt_level.low: expected an integer"),
    "bool version": ("version: true\ndevice: CPU\nknobs: {}\n", "version: expected 1, got True"),
    "mixed top-level keys": (SPACE_HEADER.replace("knobs:\n", "knobs: {}\n") + "1: x\nz: y\n",
                             "1: unknown top-level key"),
}


@pytest.mark.parametrize("name", SPACE_CASES)
def test_load_space_refuses_a_malformed_space_in_one_line(tmp_path, name):
    content, expected = SPACE_CASES[name]
    path = tmp_path / "space.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SpaceError) as error:
        load_space(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    assert expected in str(error.value)


@pytest.mark.parametrize("name", ["binary", "unknown enum"])  # the rest: load_space above
def test_search_refuses_a_malformed_space_before_anything_runs(tmp_path, name):
    path = tmp_path / "space.yaml"
    content, expected = SPACE_CASES[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    process = run("tuner.search", "--model", TINY_MODEL, "--space", path, "--runs-dir", tmp_path)
    assert_refused_in_one_line(process, path, expected)
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("kernels, expected", [
    ("k: {source: k.cpp, params: {p: {type: int, low: 1, high: 8, step: 0, default: 1, define: P}}}",
     "k.p: int parameter needs integers low <= high (and a positive step)"),
    ("k: {source: k.cpp, params: {p: {type: int, low: 1, high: 8, default: 1, define: P}}, "
     "restrictions: ['p >']}", "k: params: restriction 'p >' cannot be evaluated (SyntaxError"),
    ("k: {source: k.cpp, params: 5}", "kernel 'k' needs 'source' and 'params' (a mapping)"),
])
def test_a_malformed_kernel_parameter_file_is_refused_in_one_line(tmp_path, kernels, expected):
    (tmp_path / "kernels.yaml").write_text(kernels + "\n")
    path = tmp_path / "space.yaml"
    path.write_text(SPACE_HEADER + "  programs.granularity: {type: categorical, choices: "
                    '["off", network], default: network}\ncustom_kernels: {params: kernels.yaml}\n')
    with pytest.raises(SpaceError) as error:
        load_space(path)
    message = str(error.value)
    assert message.startswith(f"{path}: custom_kernels.params: ") and "\n" not in message
    assert expected in message


def test_a_directory_is_not_a_search_space(tmp_path):
    with pytest.raises(SpaceError, match=rf"^{re.escape(str(tmp_path))}: cannot read search space "
                                         r"\(Is a directory\)$"):
        load_space(tmp_path)


# Model code: an export naming package.module:factory is code that building it would run
PLANTED = '''
import pathlib
pathlib.Path(__file__).with_name("imported").write_text("evilmod was imported")


def factory():
    pathlib.Path(__file__).with_name("called").write_text("evilmod.factory was called")
'''


@pytest.fixture
def planted(tmp_path, monkeypatch) -> Path:
    """An export naming ``evilmod:factory``, with an evilmod.py in the working directory that is
    importable (as in an interactive session) and leaves a file when imported or called."""
    (tmp_path / "evilmod.py").write_text(PLANTED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "best.json"
    edit(model="evilmod:factory")(path)
    return path


def assert_refused_as_code(message: str, path: Path, model: str):
    assert message.startswith(f"{path}: model: {model!r} is code (package.module:factory)"), message
    assert "trust_model_code=True" in message and "--trust-model-code" in message
    assert "\n" not in message


def test_load_refuses_model_code_before_importing_it(planted):
    import tuner

    with pytest.raises(ExportError) as error:
        tuner.load(planted)
    assert_refused_as_code(str(error.value), planted, "evilmod:factory")
    assert "evilmod" not in sys.modules and not (planted.parent / "imported").exists()


def test_load_refuses_a_standard_library_factory_before_calling_it(tmp_path, monkeypatch):
    import tempfile

    import tuner

    calls = []
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: calls.append(a) or str(tmp_path))
    path = tmp_path / "best.json"
    edit(model="tempfile:mkdtemp")(path)
    with pytest.raises(ExportError) as error:
        tuner.load(path)
    assert_refused_as_code(str(error.value), path, "tempfile:mkdtemp")
    assert calls == []


@pytest.mark.parametrize("command", ["tuner.measure", "tuner.profile", "tuner.explain"])
def test_commands_refuse_model_code_in_one_line_before_importing_it(planted, command):
    """Run from the export's directory: ``python -m`` puts it on the command's path."""
    process = subprocess.run([sys.executable, "-m", command, str(planted)], cwd=planted.parent,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 2, process.stderr[-2000:]
    (line,) = process.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert_refused_as_code(line[len("error: "):], planted, "evilmod:factory")
    assert not (planted.parent / "imported").exists()


def test_trusted_model_code_runs_but_must_return_a_cell(planted):
    import tuner

    with pytest.raises(UsageError, match=r"^--model evilmod:factory: the factory returned "
                                         r"NoneType, not a MindSpore Cell$"):
        tuner.load(planted, trust_model_code=True)
    assert (planted.parent / "called").exists()


def test_mindcv_names_need_no_trust(tmp_path):
    path = tmp_path / "best.json"
    edit(model="resnet18", config__kernels=[], config__programs__granularity="off")(path)
    from tuner.exported_config import check_model

    check_model(read_export(path))  # no ExportError
