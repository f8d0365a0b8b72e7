"""The study's plots: a figure where the data allows one, else the reason."""
import optuna
from optuna.distributions import FloatDistribution

from tuner.profiling.operator_times import OperatorTime, Profile
from tuner.trial.result import Status, TrialResult
from tuner.reporting import plots
from tuner.study.validation import ValidatedCandidate, ValidationReport


def _study(directions=("maximize",), n=12, user_attrs=lambda i: {}):
    study = optuna.create_study(directions=list(directions), study_name="s")
    for i in range(n):
        x = i / n
        values = [10 * x] if len(directions) == 1 else [10 * x, 10 * (1 - x) ** 2]
        study.add_trial(optuna.trial.create_trial(
            params={"x": x, "y": (i * 7 % n) / n},
            distributions={"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)},
            values=values, user_attrs=user_attrs(i)))
    return study


def _phases(i):
    """A trial built with the others from 100 s, waited, and was measured after trial i-1."""
    return {"result": TrialResult(Status.OK, phases=(
        ("build", 100.0, 103.0), ("wait", 103.0, 104.0 + i), ("measure", 104.0 + i, 105.0 + i)),
    ).to_dict()}


def test_history_importances_and_slices_of_a_study():
    study = _study()
    made = [plots.history(study), plots.importances(study), plots.slices(study)]
    try:
        assert all(p.figure is not None for p in made), [p.reason for p in made]
        assert all(p.png().startswith(b"\x89PNG") for p in made)
    finally:
        plots.close(made)


def test_plots_without_data_say_why():
    empty = optuna.create_study()
    assert "no trial" in plots.history(empty).reason
    assert plots.importances(empty).figure is None and plots.importances(empty).reason
    assert "not validated" in plots.validation(None).reason
    assert "not profiled" in plots.kernels(None, None).reason
    assert "single objective" in plots.pareto(empty, None).reason
    assert "--jobs 1" in plots.timeline(empty, 1).reason


def test_validation_kernels_pareto_and_timeline():
    report = ValidationReport(3, (ValidatedCandidate(4, (9.0, 10.0, 11.0), (2.0, 2.1, 1.9), (1, 0),
                                                     (0.01, 0.01, 0.01)),
                                  ValidatedCandidate(7, (8.0, 8.5, 9.0), (1.8, 1.7, 1.9), (0, 1),
                                                     (0.01, 0.01, 0.01))), winner=4)
    base = Profile("b", 1, 10.0, 10.0, (OperatorTime("Conv2D", "c1", "s1", 1, 8.0),))
    tuned = Profile("t", 1, 2.0, 2.0, (OperatorTime("Custom:conv2d_dense", "c1", "s2", 1, 1.0,
                                                    "conv2d_dense", "dense_key"),))
    study = _study(("maximize", "minimize"))
    assert "no trial recorded its phases" in plots.timeline(study, 2).reason
    made = [plots.validation(report), plots.kernels(tuned, base), plots.pareto(study, 3),
            plots.timeline(_study(user_attrs=_phases), 2)]
    try:
        assert all(p.figure is not None for p in made), [p.reason for p in made]
    finally:
        plots.close(made)
    assert "runs no custom kernel" in plots.kernels(base, base).reason


def test_kernels_plot_shows_ms_per_workload_not_shares():
    """A winner whose kernel takes 1.5 of its 2 ms (a share of 0.75) where the baseline's layer
    took 6 of its 10 ms (0.6): in shares the faster winner's bar would be the longer one; in
    milliseconds per inference it is the shorter."""
    base = Profile("b", 1, 10.0, 10.0, (OperatorTime("Conv2D", "c1", "s1", 1, 6.0),
                                        OperatorTime("ReLU", "r1", "s3", 1, 4.0)))
    tuned = Profile("t", 2, 2.0, 2.0, (OperatorTime("Custom:conv2d_dense", "c1", "s2", 2, 3.0,
                                                    "conv2d_dense", "dense_key"),))
    plot = plots.kernels(tuned, base)
    try:
        ax = plot.figure.axes[0]
        widths = {bars.get_label(): [p.get_width() for p in bars.patches] for bars in ax.containers}
        assert widths == {"baseline (builtin)": [6.0], "winner (custom)": [1.5]}
        assert "ms per inference" in ax.get_xlabel()
        assert "baseline 10 ms" in ax.get_title() and "winner 2 ms" in ax.get_title()
        assert plot.title == "Kernels: ms per workload"
    finally:
        plots.close([plot])
