"""The Optuna study that drives trials: objectives, samplers, the ask-and-tell loop, validation,
the end of a study (what it keeps lives in tuner.storages)."""
