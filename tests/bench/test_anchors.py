"""python -m tuner.bench anchors: three engines on the same network, a row per model, a row
saying why for a model that cannot be measured."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_MODEL
from tuner.bench.anchors import AnchorRow, render

pytest.importorskip("onnxruntime")


def test_rows_give_ratios_from_medians_and_say_why_a_figure_is_missing():
    good = AnchorRow("net", 1, {"untuned": [1.0, 3.0, 2.0], "tuned": [10.0, 30.0, 20.0],
                                "onnxruntime": [40.0, 40.0]}, onnx_rel_error=1e-7,
                     tuned_from="the space's default")
    broken = AnchorRow("other", 1, {"untuned": [2.0]}, notes=["no ONNX Runtime figure: why"])
    text = render([good, broken])
    line = next(l for l in text.splitlines() if l.startswith("net "))
    assert line.split()[2:7] == ["2", "20", "40", "10.0x", "0.50"]
    assert "other b1: no ONNX Runtime figure: why" in text
    assert "median tuned/ORT over 1 rows: 0.50" in text


def test_the_command_measures_three_engines_on_the_tiny_net_in_turns(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "tuner.bench", "anchors", "--models", TINY_MODEL, "resnet51",
         "--batch", "2", "--image-size", "16", "--rounds", "2", "--max-seconds", "0.5",
         "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "resnet51 b2: cannot build: usage_error: --model resnet51: not a mindcv model" in process.stdout
    (row, missing) = json.loads((tmp_path / "anchors.json").read_text())
    assert {engine: len(figures) for engine, figures in row["images_per_second"].items()} == {
        "untuned": 2, "tuned": 2, "onnxruntime": 2}  # a figure per round
    assert row["onnx_rel_error"] < 1e-5 and row["tuned_from"] == "the space's default"
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


def test_engines_left_out_are_not_timed(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "tuner.bench", "anchors", "--models", TINY_MODEL, "--batch", "2",
         "--image-size", "16", "--rounds", "1", "--max-seconds", "0.3", "--engines", "tuned",
         "onnxruntime", "--runs-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    (row,) = json.loads((tmp_path / "anchors.json").read_text())
    assert set(row["images_per_second"]) == {"tuned", "onnxruntime"}
    line = next(l for l in process.stdout.splitlines() if l.startswith(TINY_MODEL))
    assert line.split()[2] == "-"  # no untuned figure


@pytest.mark.parametrize("flag, value, reason", [("--rounds", "0", "0 is not a positive integer"),
                                                 ("--max-seconds", "-1", "-1 is not a positive number")])
def test_a_bad_flag_is_one_line_and_exit_code_2(flag, value, reason):
    process = subprocess.run([sys.executable, "-m", "tuner.bench", "anchors", flag, value],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        f"python -m tuner.bench anchors: error: argument {flag}: {reason} (see --help)"]
