"""The callback interface, defined beside the loop in tuner.study.callbacks (kept importable
from here)."""
from tuner.study.callbacks import StudyCallback

__all__ = ["StudyCallback"]
