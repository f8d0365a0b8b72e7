"""Knob types of a search space.

A knob is one tunable setting addressed by a dotted path of :class:`tuner.config.TuningConfig`.
Rules every knob follows:

- ``suggest(trial)`` asks Optuna for a value and returns it in the type the config field takes;
  Optuna parameter names start with the knob's path (subsets use ``path[item]``).
- ``params_for(value)`` is the inverse: the Optuna parameters that make ``suggest`` return
  ``value`` (used to enqueue known configurations such as the baseline).
- ``check(value)`` returns an error message, or None when the knob can take ``value``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import optuna


@dataclass(frozen=True)
class Condition:
    """The knob matters only when knob ``path`` is active and has one of ``values``."""

    path: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Knob(ABC):
    path: str
    default: Any
    conditions: tuple[Condition, ...] = ()

    @abstractmethod
    def suggest(self, trial: optuna.Trial) -> Any: ...

    @abstractmethod
    def params_for(self, value: Any) -> dict[str, Any]: ...

    @abstractmethod
    def check(self, value: Any) -> str | None: ...


@dataclass(frozen=True)
class BoolKnob(Knob):
    def suggest(self, trial):
        return trial.suggest_categorical(self.path, [False, True])

    def params_for(self, value):
        return {self.path: value}

    def check(self, value):
        return None if isinstance(value, bool) else f"{value!r} is not true/false"


@dataclass(frozen=True)
class IntKnob(Knob):
    low: int = 0
    high: int = 0
    step: int = 1

    def suggest(self, trial):
        return trial.suggest_int(self.path, self.low, self.high, step=self.step)

    def params_for(self, value):
        return {self.path: value}

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{value!r} is not an integer"
        if not self.low <= value <= self.high or (value - self.low) % self.step:
            return f"{value} is not in range({self.low}, {self.high} + 1, {self.step})"
        return None


@dataclass(frozen=True)
class CategoricalKnob(Knob):
    choices: tuple[Any, ...] = ()

    def suggest(self, trial):
        return trial.suggest_categorical(self.path, list(self.choices))

    def params_for(self, value):
        return {self.path: value}

    def check(self, value):
        return None if value in self.choices else f"{value!r} is not one of {list(self.choices)}"


@dataclass(frozen=True)
class SubsetKnob(Knob):
    """A set of names: one yes/no Optuna parameter per choice, so samplers learn each item."""

    choices: tuple[str, ...] = ()

    def suggest(self, trial):
        return tuple(item for item in self.choices
                     if trial.suggest_categorical(f"{self.path}[{item}]", [False, True]))

    def params_for(self, value):
        return {f"{self.path}[{item}]": item in value for item in self.choices}

    def check(self, value):
        if not isinstance(value, (list, tuple)):
            return f"{value!r} is not a list"
        extra = [item for item in value if item not in self.choices]
        return f"{extra[0]!r} is not one of {list(self.choices)}" if extra else None
