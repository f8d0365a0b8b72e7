"""python -m tuner.explain: what the programs make of a network, as a user runs it."""
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_MODEL


def explain(*args):
    return subprocess.run([sys.executable, "-m", "tuner.explain", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_every_layer_of_a_users_network_is_explained():
    process = explain("--model", TINY_MODEL, "--batch-size", "2", "--image-size", "16")
    assert process.returncode == 0, process.stderr[-2000:]
    lines = process.stdout.splitlines()
    assert lines[0].startswith("program <network>: ")
    assert any("stem.0: conv(+batchnorm) -> relu" in line for line in lines)
    assert any("stage1.conv2: conv(+batchnorm) -> add -> relu" in line for line in lines)
    assert any(line.strip().startswith("head: matmul(+bias)") for line in lines)


def test_layer_granularity_and_exclusions_say_what_stays_builtin():
    process = explain("--model", TINY_MODEL, "--batch-size", "2", "--image-size", "16",
                      "--granularity", "layer", "--exclude", "stage2")
    assert process.returncode == 0, process.stderr[-2000:]
    out = process.stdout
    assert "overlaps the excluded module stage2" in out
    assert "builtin stage1.relu: reads 2 values from outside (needs exactly 1)" in out
    assert "program stage1.conv1..bn1" in out and "program stage2" not in out


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet5o"], "--model resnet5o: not a mindcv model"),
    (["--granularity", "huge"], "argument --granularity: invalid choice"),
    (["{bad}"], "not valid JSON"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    (tmp_path / "bad.json").write_text("{")
    args = [tmp_path / "bad.json" if a == "{bad}" else a for a in args]
    process = explain(*args)
    assert process.returncode == 2
    assert message in process.stderr and len(process.stderr.strip().splitlines()) == 1
