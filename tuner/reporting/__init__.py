"""Pictures and a self-contained HTML report of a study (matplotlib, Optuna's visualisations)."""
