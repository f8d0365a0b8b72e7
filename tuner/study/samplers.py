"""Optuna samplers by name."""
from __future__ import annotations

import importlib.util
import warnings

import optuna

from tuner.errors import UsageError

SAMPLER_NAMES = ("tpe", "random", "cmaes", "nsga2", "gp")


JOIN_SEED_STRIDE = 100_003


def make_sampler(name: str, seed: int | None, n_objectives: int,
                 trials_so_far: int = 0, joined_before: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` seeded with ``seed + trials_so_far + JOIN_SEED_STRIDE *
    joined_before``: a resumed study (one that already holds trials) does not replay the random
    draws of its first invocation, which would suggest configurations it has measured already,
    and workers joining one study at the same moment (``joined_before``: how many invocations
    joined it before this one) do not draw the same configurations; the sequence stays
    reproducible."""
    if seed is not None:
        seed += trials_so_far + JOIN_SEED_STRIDE * joined_before
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                           constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "cmaes":
        if n_objectives > 1:
            raise UsageError("--sampler cmaes: single objective only (use tpe or nsga2)")
        if importlib.util.find_spec("cmaes") is None:
            raise UsageError("--sampler cmaes: needs the 'cmaes' package (pip install cmaes)")
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        if importlib.util.find_spec("torch") is None:
            raise UsageError("--sampler gp: needs PyTorch (pip install -e '.[gp]')")
        return optuna.samplers.GPSampler(seed=seed)
    raise UsageError(f"--sampler {name}: unknown (choose from {', '.join(SAMPLER_NAMES)})")
