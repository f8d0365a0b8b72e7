"""Declarative search spaces as data: knobs read from YAML files, kernels' parameter spaces and
their restrictions, suggested through the Optuna trial handed to them and guided by the trial
the study gives (``Guide``); nothing here reads or writes a study's history (tuner.study)."""
from tuner.space.focus import Guide, WorkloadFocus
from tuner.space.knobs import BoolKnob, CategoricalKnob, Condition, IntKnob, Knob, SubsetKnob
from tuner.space.loader import SpaceError, load_space
from tuner.space.search_space import MODEL_STAGES, SearchSpace, Suggestion

__all__ = ["BoolKnob", "CategoricalKnob", "Condition", "IntKnob", "Knob", "SubsetKnob",
           "SpaceError", "load_space", "MODEL_STAGES", "SearchSpace", "Suggestion", "Guide",
           "WorkloadFocus"]
