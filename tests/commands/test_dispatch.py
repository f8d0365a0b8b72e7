"""The ``tuner`` command ([project.scripts]): every command reachable through it, with the same
main, help and exit codes as ``python -m tuner.<command>``; an unknown command is one line."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tuner.commands import dispatch
from tuner.errors import UsageError

ENTRY_MODULES = {"search": "tuner.search", "validate": "tuner.validate",
                 "export": "tuner.export", "measure": "tuner.measure",
                 "profile": "tuner.profile", "explain": "tuner.explain",
                 "report": "tuner.report", "sync-mlflow": "tuner.sync_mlflow",
                 "cluster": "tuner.cluster", "bench": "tuner.bench.__main__"}
PROGS = {**{name: f"python -m {module}" for name, module in ENTRY_MODULES.items()},
         "bench": "python -m tuner.bench"}


def dispatched(argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``tuner argv`` run in this process, up to its exit."""
    with pytest.raises(SystemExit) as exited:
        dispatch.main(argv)
    output = capsys.readouterr()
    return exited.value.code, output.out, output.err


def test_every_command_of_python_m_tuner_is_a_tuner_command():
    assert set(dispatch.COMMANDS) == set(ENTRY_MODULES)


@pytest.mark.parametrize("name", sorted(ENTRY_MODULES))
def test_a_tuner_command_runs_the_main_of_python_m_tuner_command(name):
    entry = importlib.import_module(ENTRY_MODULES[name])
    assert importlib.import_module(dispatch.COMMANDS[name].module).main is entry.main


@pytest.mark.parametrize("name", sorted(ENTRY_MODULES))
def test_every_command_is_reachable_with_its_own_help(name, capsys):
    code, out, err = dispatched([name, "--help"], capsys)
    assert code == 0 and not err
    assert out.startswith(f"usage: {PROGS[name]} ")


def test_tuner_help_lists_the_commands_with_one_line_each(capsys):
    code, out, _ = dispatched(["--help"], capsys)
    assert code == 0 and out.startswith("usage: tuner ")
    lines = out.splitlines()
    for name, command in dispatch.COMMANDS.items():
        assert any(line.split() == [name, *command.summary.split()] for line in lines), name


@pytest.mark.parametrize("argv, message", [(["serch", "--trials", "3"], "invalid choice: 'serch'"),
                                           ([], "required: COMMAND"),
                                           (["--trials", "3"], "required: COMMAND")])
def test_an_unknown_or_missing_command_is_one_line_and_exit_code_2(argv, message, capsys):
    code, out, err = dispatched(argv, capsys)
    assert code == 2 and not out
    assert err.startswith("tuner: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_the_script_exits_2_on_an_unknown_command():
    script = "from tuner.commands.dispatch import run; run()"
    process = subprocess.run([sys.executable, "-c", script, "serch"], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2 and not process.stdout
    assert len(process.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'serch'" in process.stderr


def test_tuner_search_help_is_python_m_tuner_search_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    _, out, _ = dispatched(["search", "--help"], capsys)
    process = subprocess.run([sys.executable, "-m", "tuner.search", "--help"], cwd=REPO,
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "COLUMNS": "100"})
    assert process.returncode == 0
    assert out == process.stdout


def test_arguments_go_to_the_command_and_its_usage_errors_come_back(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    with pytest.raises(UsageError, match="no study in the storage"):
        dispatch.main(["report", "--runs-dir", str(tmp_path)])
    with pytest.raises(UsageError, match="no study in the storage"):
        dispatch.main(["sync_mlflow", "--runs-dir", str(tmp_path)])  # python -m's spelling
