"""The Optuna study that drives trials: objectives, samplers, storage, the ask-and-tell loop."""
