"""Declarative search spaces: knobs read from YAML files, suggested through Optuna trials."""
from tuner.space.knobs import BoolKnob, CategoricalKnob, Condition, IntKnob, Knob, SubsetKnob
from tuner.space.loader import SpaceError, load_space
from tuner.space.space import MODEL_STAGES, SearchSpace

__all__ = ["BoolKnob", "CategoricalKnob", "Condition", "IntKnob", "Knob", "SubsetKnob",
           "SpaceError", "load_space", "MODEL_STAGES", "SearchSpace"]
