"""A multi-objective study (Pareto set) in PostgreSQL, exported by rank."""
import json
import uuid

import optuna
import pytest

from tests.study.test_search_cli import FAST, tuner

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_study():
    """A unique study name in the machines' PostgreSQL (127.0.0.1:5432, trust auth, db test)."""
    name = f"tuner-test-{uuid.uuid4().hex[:8]}"
    yield name
    optuna.delete_study(study_name=name, storage=POSTGRES)


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
