"""How the loop runs a study's trials (StudySettings)."""
from __future__ import annotations

from dataclasses import dataclass

from tuner.errors import UsageError
from tuner.study.validation import MIN_ROUNDS


@dataclass(frozen=True)
class StudySettings:
    """How the loop runs trials: per-trial timeout (s), whole-search timeout (s, None = no
    limit), the seed of the model's random weights and input, whether to save graph op counts,
    and how many top configurations to re-measure in how many interleaved rounds at the end
    (0 = no validation; see tuner.study.validation); a trial whose peak memory exceeds
    ``max_memory_mb`` is a constraint violation (measured, kept, never a winner). With
    ``warm_start``, a new study first tries the tuning records of its kernel workloads. ``jobs``
    trials compile at once; their timed runs still happen one trial at a time. With
    ``start_from_default`` the baseline is followed by the space's default, its variant with the
    tuning records, and the default's one-knob neighbours (``SearchSpace.one_knob_neighbours``:
    each top-level knob flipped on its own, in place of the random trials a sampler such as TPE
    starts with); without it only the baseline is measured and the sampler picks the rest.
    With ``screen_workloads``, whenever no trial waits, up to half of a worker's remaining
    trials go to the incumbent's heaviest workload not screened yet, its choice moved one
    step at a time (tuner.study.workload_screening).

    Several workers: with ``study_trials`` the study ends once it holds that many finished
    trials (every worker stops asking; the one that finishes the last validates and exports);
    ``allow_heterogeneous`` lets a worker join whose CPU model or cores differ from the study's
    host (tuner.study.hosts)."""

    trial_timeout: float = 300.0
    search_timeout: float | None = None
    weights_seed: int = 0
    dump_graph: bool = False
    keep_trial_dirs: bool = False
    validate_top: int = 3
    validation_rounds: int = 3
    max_memory_mb: float | None = None
    warm_start: bool = True
    jobs: int = 1
    start_from_default: bool = True
    screen_workloads: bool = True
    study_trials: int | None = None
    allow_heterogeneous: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError(f"--jobs {self.jobs}: must be at least 1")
        if self.validate_top < 0:
            raise UsageError(f"--validate-top {self.validate_top}: must be 0 (off) or more")
        if self.validate_top and self.validation_rounds < MIN_ROUNDS:
            raise UsageError(f"--validation-rounds {self.validation_rounds}: must be at least "
                             f"{MIN_ROUNDS} (one round bounds no interval)")
        if self.study_trials is not None and self.study_trials < 1:
            raise UsageError(f"--study-trials {self.study_trials}: must be at least 1")
