from tuner.study.validation import ValidatedCandidate, ValidationReport, choose_winner


def candidate(trial, speedups, complexity):
    return ValidatedCandidate(trial, tuple(speedups), tuple(speedups), complexity)


def test_clearly_fastest_wins():
    fast = candidate(1, [2.0, 2.1, 2.05], (3, 2))
    slow = candidate(2, [1.2, 1.25, 1.22], (0, 1))
    assert choose_winner([slow, fast]) == (1, "")


def test_within_noise_the_simpler_configuration_wins_and_the_report_says_so():
    fastest = candidate(1, [1.50, 1.62, 1.70], (4, 3))
    simpler = candidate(2, [1.45, 1.55, 1.58], (0, 2))
    winner, note = choose_winner([fastest, simpler])
    assert winner == 2
    assert "within noise" in note and "simplest" in note


def test_failed_rounds_are_ignored_in_the_median_and_range():
    c = candidate(5, [1.2, float("nan"), 1.4], (0, 1))
    assert abs(c.speedup - 1.3) < 1e-12 and c.spread == (1.2, 1.4)


def test_report_round_trips_through_json_attrs():
    report = ValidationReport(3, (candidate(1, [1.1, 1.2, 1.3], (0, 1)),), 1, "", (1.0, 1.0, 1.0), 7)
    again = ValidationReport.from_dict(report.to_dict())
    assert again == report and again.candidate(1).speedup == 1.2
