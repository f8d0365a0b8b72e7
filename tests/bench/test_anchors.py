"""python -m tuner.bench anchors: four engines on the same network, a row per model, a row
saying why for a model that cannot be measured."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_MODEL
from tuner.bench.anchors import AnchorRow, render

pytest.importorskip("onnxruntime")


def test_rows_give_ratios_from_medians_and_say_why_a_figure_is_missing():
    good = AnchorRow("net", 1, {"untuned": [1.0, 3.0, 2.0], "tuned": [10.0, 30.0, 20.0],
                                "onnxruntime": [40.0, 40.0], "openvino": [50.0, 60.0, 40.0]},
                     onnx_rel_error=1e-7, openvino_rel_error=2e-7,
                     tuned_from="the space's default")
    ov_slower = AnchorRow("slow_ov", 1, {"tuned": [30.0], "onnxruntime": [20.0],
                                         "openvino": [10.0]}, notes=["untuned: why"])
    broken = AnchorRow("other", 1, {"untuned": [2.0]},
                       notes=["no ONNX Runtime or OpenVINO figure: why"])
    text = render([good, ov_slower, broken])
    lines = text.splitlines()
    assert lines[0].split()[2:12] == ["untuned", "tuned", "ORT", "OV", "tuned/untuned",
                                      "tuned/ORT", "tuned/best", "tuned/best(rounds)", "ORT",
                                      "err"]
    # rounds: 10/50, 30/60, 20/40 (ONNX Runtime timed two rounds only)
    assert lines[1].split()[2:12] == ["2", "20", "40", "50", "10.0x", "0.50", "0.40", "0.50",
                                      "1.0e-07", "2.0e-07"]
    assert lines[2].split()[2:12] == ["-", "30", "20", "10", "-", "1.50", "1.50", "1.50", "-",
                                      "-"]
    assert "other b1: no ONNX Runtime or OpenVINO figure: why" in text
    assert lines[-3:] == ["median tuned/ORT over 2 rows: 1.00",
                          "median tuned/best over 2 rows: 0.95",
                          "median tuned/best(rounds) over 2 rows: 1.00"]


def test_the_openvino_column_says_when_it_measured_throughput():
    row = AnchorRow("net", 1, {"tuned": [10.0], "openvino": [20.0]}, openvino_hint="throughput")
    assert render([row]).splitlines()[0].split()[4:7] == ["ORT", "OV", "tput"]


def test_the_command_measures_four_engines_on_the_tiny_net_in_turns(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "tuner.bench", "anchors", "--models", TINY_MODEL, "resnet51",
         "--batch", "2", "--image-size", "16", "--rounds", "2", "--max-seconds", "0.5",
         "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "resnet51 b2: cannot build: usage_error: --model resnet51: not a mindcv model" in process.stdout
    (row, missing) = json.loads((tmp_path / "anchors.json").read_text())
    assert {engine: len(figures) for engine, figures in row["images_per_second"].items()} == {
        "untuned": 2, "tuned": 2, "onnxruntime": 2, "openvino": 2}  # a figure per round
    assert row["onnx_rel_error"] < 1e-5 and row["openvino_rel_error"] < 1e-5
    assert row["tuned_from"] == "the space's default" and row["openvino_hint"] == "latency"
    assert not missing["images_per_second"]


def test_a_bad_config_is_one_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    process = subprocess.run([sys.executable, "-m", "tuner.bench", "anchors", "--config", str(bad),
                              "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [f"error: {bad}: line 1: not valid JSON "
                                                   "(Expecting property name enclosed in double quotes)"]


def _anchors(tmp_path, *flags, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tuner.bench", "anchors", "--models", TINY_MODEL, "--batch", "2",
         "--image-size", "16", "--rounds", "1", "--max-seconds", "0.3", *flags,
         "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600,
        env=env)


@pytest.mark.parametrize("engines, hint, ov_column", [(["tuned", "onnxruntime"], "latency", "OV"),
                                                      (["tuned", "openvino"], "throughput",
                                                       "OV tput")])
def test_engines_left_out_are_not_timed(tmp_path, engines, hint, ov_column):
    if "openvino" in engines:
        pytest.importorskip("openvino")
    process = _anchors(tmp_path, "--engines", *engines, "--ov-hint", hint)
    assert process.returncode == 0, process.stderr[-3000:]
    (row,) = json.loads((tmp_path / "anchors.json").read_text())
    assert set(row["images_per_second"]) == set(engines) and row["openvino_hint"] == hint
    header = next(l for l in process.stdout.splitlines() if l.startswith("model"))
    assert f"  {ov_column}  " in header
    line = next(l for l in process.stdout.splitlines() if l.startswith(TINY_MODEL))
    assert line.split()[2] == "-"  # no untuned figure
    assert line.split()[8] != "-"  # tuned over the one other engine timed


def test_an_engine_that_is_not_installed_is_a_note_in_its_row(tmp_path):
    hidden = tmp_path / "hide" / "openvino"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(hidden.parent), str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = _anchors(tmp_path, "--engines", "tuned", "openvino", env=env)
    assert process.returncode == 0, process.stderr[-3000:]
    assert (f"{TINY_MODEL} b2: openvino: usage_error: OpenVINO is not installed "
            '(pip install -e ".[bench]")') in process.stdout
    (row,) = json.loads((tmp_path / "anchors.json").read_text())
    assert set(row["images_per_second"]) == {"tuned"}


@pytest.mark.parametrize("flag, value, reason", [("--rounds", "0", "0 is not a positive integer"),
                                                 ("--max-seconds", "-1", "-1 is not a positive number")])
def test_a_bad_flag_is_one_line_and_exit_code_2(flag, value, reason):
    process = subprocess.run([sys.executable, "-m", "tuner.bench", "anchors", flag, value],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"python -m tuner.bench anchors: error: argument {flag}: {reason} (see --help)"]
