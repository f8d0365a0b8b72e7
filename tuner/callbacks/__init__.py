"""Side effects of a study (progress, MLflow, export) as callbacks on the trial loop."""
from tuner.callbacks.base import StudyCallback

__all__ = ["StudyCallback"]
