"""A search space: ordered knobs with conditions, turned into TuningConfigs through Optuna."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from tuner.config import TuningConfig
from tuner.space.knobs import Knob, SubsetKnob

MODEL_STAGES = "model_stages"
"""Placeholder choices of a subset knob: the model's stages, filled in by ``with_model_stages``."""


@dataclass(frozen=True)
class SearchSpace:
    """Knobs in declaration order; a knob's conditions only refer to knobs declared before it.

    Knobs absent from the space keep the value of the untuned baseline (``TuningConfig()``).
    """

    source: Path
    device: str
    knobs: tuple[Knob, ...]

    def knob(self, path: str) -> Knob | None:
        return next((k for k in self.knobs if k.path == path), None)

    def _is_active(self, knob: Knob, values: dict[str, Any]) -> bool:
        return all(c.path in values and values[c.path] in c.values for c in knob.conditions)

    def suggest(self, trial: optuna.Trial) -> TuningConfig:
        values: dict[str, Any] = {}
        for knob in self.knobs:
            if self._is_active(knob, values):
                values[knob.path] = knob.suggest(trial)
        return TuningConfig.from_knobs(values)

    def params_for(self, config: TuningConfig) -> dict[str, Any]:
        """The Optuna parameters under which ``suggest`` yields ``config``.

        Raises ValueError naming the knob when a value of ``config`` is outside the space, or when
        ``config`` sets a knob the space does not have to a non-default value.
        """
        flat_config = {**TuningConfig().to_dict(), **config.to_dict()}
        values: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for knob in self.knobs:
            section, _, name = knob.path.partition(".")
            value = flat_config[section][name]
            if isinstance(value, list):
                value = tuple(value)
            if not self._is_active(knob, values):
                continue
            problem = knob.check(value)
            if problem:
                raise ValueError(f"{self.source}: knob {knob.path}: {problem}")
            values[knob.path] = value
            params.update(knob.params_for(value))
        rebuilt = TuningConfig.from_knobs(values, kernels=config.kernels)
        if rebuilt != config:
            differing = sorted(k for k, v in config.flat().items() if rebuilt.flat().get(k) != v)
            raise ValueError(f"{self.source}: the space cannot express {differing[0]}")
        return params

    def default_config(self) -> TuningConfig:
        """The configuration made of every active knob's declared default."""
        values: dict[str, Any] = {}
        for knob in self.knobs:
            if self._is_active(knob, values):
                values[knob.path] = knob.default
        return TuningConfig.from_knobs(values)

    def with_model_stages(self, stages: tuple[str, ...]) -> "SearchSpace":
        """Replace ``model_stages`` placeholder choices by the model's actual stage names."""
        knobs = tuple(
            dataclasses.replace(k, choices=tuple(stages))
            if isinstance(k, SubsetKnob) and k.choices == (MODEL_STAGES,) else k
            for k in self.knobs)
        return dataclasses.replace(self, knobs=knobs)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for MLflow."""
        return {"source": str(self.source), "device": self.device,
                "knobs": {k.path: {"type": type(k).__name__, **{
                    f.name: getattr(k, f.name) for f in dataclasses.fields(k)
                    if f.name not in ("path",)}} for k in self.knobs}}
