"""A multi-objective study (Pareto set) in PostgreSQL, exported by rank."""
import json
import uuid

import optuna
import pytest

from tests.conftest import FAST, tuner

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_study():
    """A unique study name in the machines' PostgreSQL (127.0.0.1:5432, trust auth, db test)."""
    name = f"tuner-test-{uuid.uuid4().hex[:8]}"
    yield name
    optuna.delete_study(study_name=name, storage=POSTGRES)


@pytest.mark.slow
def test_pareto_search_in_postgresql_then_export(postgres_study, tmp_path):
    tuner("search", *FAST, "--trials", "3", "--objective", "throughput", "memory",
          "--sampler", "nsga2", "--storage", POSTGRES, "--study-name", postgres_study,
          runs_dir=tmp_path)
    study = optuna.load_study(study_name=postgres_study, storage=POSTGRES)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert len(study.trials) == 3 and study.best_trials
    assert all(len(t.values) == 2 for t in study.best_trials)
    out = tmp_path / "best.json"
    tuner("export", "--storage", POSTGRES, "--study-name", postgres_study, "--out", out,
          runs_dir=tmp_path)
    exported = json.loads(out.read_text())
    assert exported["study"]["trial"] in {t.number for t in study.best_trials}
    assert exported["study"]["objectives"] == ["maximize", "minimize"]


@pytest.mark.slow
def test_pareto_member_by_weight_and_by_memory_budget(postgres_study, tmp_path):
    tuner("search", *FAST, "--trials", "4", "--objective", "throughput", "memory",
          "--sampler", "nsga2", "--storage", POSTGRES, "--study-name", postgres_study,
          runs_dir=tmp_path)
    study = optuna.load_study(study_name=postgres_study, storage=POSTGRES)
    ok = [t for t in study.trials if t.state.name == "COMPLETE"]
    picks = {}
    for label, args in {"speed": ["--weights", "throughput=1"],
                        "memory": ["--weights", "memory=1"]}.items():
        out = tmp_path / f"{label}.json"
        tuner("export", "--storage", POSTGRES, "--study-name", postgres_study, "--out", out,
              *args, runs_dir=tmp_path)
        picks[label] = json.loads(out.read_text())
    pareto = study.best_trials
    assert picks["speed"]["metrics"]["throughput_ips"] == max(t.values[0] for t in pareto)
    assert picks["memory"]["metrics"]["peak_memory_mb"] == min(t.values[1] for t in pareto)
    budget = min(t.values[1] for t in ok)
    out = tmp_path / "budget.json"
    tuner("export", "--storage", POSTGRES, "--study-name", postgres_study, "--out", out,
          "--max-memory-mb", budget, runs_dir=tmp_path)
    assert json.loads(out.read_text())["metrics"]["peak_memory_mb"] <= budget
    bad = tuner("export", "--storage", POSTGRES, "--study-name", postgres_study, "--out", out,
                "--weights", "speed=1", runs_dir=tmp_path, check=False)
    assert bad.returncode == 2 and "--weights speed: not an objective" in bad.stderr
