"""tuner.trial.protocol's progress steps, as the worker writes them."""
import json

from tuner.runner import worker
from tuner.trial.protocol import PROGRESS_FILE, WARMUP_STEP, is_progress_step


def test_progress_steps_are_the_warmup_and_powers_of_two():
    assert [n for n in range(0, 70) if is_progress_step(n)] == [WARMUP_STEP, 1, 2, 4, 8, 16, 32, 64]
    assert not is_progress_step(-1)


def test_the_worker_writes_progress_only_at_the_progress_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    worker._report_warmup(0.5)
    durations = []
    for seconds in [0.1] * 9:
        durations.append(seconds)
        worker._report_progress(durations)
    entries = [json.loads(line) for line in (tmp_path / PROGRESS_FILE).read_text().splitlines()]
    assert [e["runs"] for e in entries] == [WARMUP_STEP, 1, 2, 4, 8]
    assert entries[0]["median_s"] == 0.5 and entries[-1]["median_s"] == 0.1
