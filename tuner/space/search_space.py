"""A search space: ordered knobs with conditions, turned into TuningConfigs through Optuna."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna

from tuner.config import KernelChoice, TuningConfig
from tuner.kernels.workload import WorkloadGroup
from tuner.space.focus import Guide
from tuner.space.kernel_knobs import KernelKnobs
from tuner.space.knobs import BoolKnob, CategoricalKnob, Knob, SubsetKnob

MODEL_STAGES = "model_stages"
"""Placeholder choices of a subset knob: the model's stages, filled in by ``with_model``."""


@dataclass(frozen=True)
class Suggestion:
    """A configuration drawn for a trial, and what the space did to draw it, for the study to
    store on the trial: the workloads whose kernel parameters were repaired, and the guide's
    focus (the workloads drawn; empty: no focus). See tuner.space.kernel_knobs."""

    config: TuningConfig
    repaired: tuple[str, ...] = ()
    focus: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchSpace:
    """Knobs in declaration order; a knob's conditions only refer to knobs declared before it.

    Knobs absent from the space keep the value of the untuned baseline (``TuningConfig()``).
    ``kernels`` (when the space declares custom kernels) adds per-workload kernel knobs once the
    model's workloads are known (``with_model``); they are active only in configurations whose
    programs are on (``programs.granularity`` not ``off``), the only place kernels run.
    """

    source: Path
    device: str
    knobs: tuple[Knob, ...]
    kernels: KernelKnobs | None = None

    def knob(self, path: str) -> Knob | None:
        return next((k for k in self.knobs if k.path == path), None)

    def _is_active(self, knob: Knob, values: dict[str, Any]) -> bool:
        return all(c.path in values and values[c.path] in c.values for c in knob.conditions)

    def _walk(self, value_of: Callable[[Knob], Any]) -> dict[str, Any]:
        """``value_of(knob)`` for each knob that the values of the knobs before it make active."""
        values: dict[str, Any] = {}
        for knob in self.knobs:
            if self._is_active(knob, values):
                values[knob.path] = value_of(knob)
        return values

    @property
    def guided(self) -> bool:
        """Whether a guide can narrow this space's draws (per-workload kernel knobs)."""
        return bool(self.kernels and self.kernels.workloads)

    def suggest(self, trial: optuna.Trial, guide: Guide | None = None) -> Suggestion:
        """A configuration drawn through ``trial`` (its kernel choices guided by ``guide``, see
        tuner.space.focus); the space reads nothing else and writes nothing on the trial."""
        config = TuningConfig.from_knobs(self._walk(lambda knob: knob.suggest(trial)))
        if not (self.kernels and config.programs.enabled):
            return Suggestion(config)
        drawn = self.kernels.suggest(trial, guide)
        return Suggestion(dataclasses.replace(config, kernels=drawn.choices), drawn.repaired,
                          drawn.focus)

    def invalid_reason(self, config: TuningConfig,
                       check_workloads: bool | None = None) -> str | None:
        """Why ``config`` breaks a declared restriction of this space's custom kernels (kernel
        choices without programs, choices outside the kernels' declared parameters; see
        KernelKnobs.invalid_reason), or None. One line starting with the field's path in the
        configuration (``kernels[3].params.unroll: ...``)."""
        if config.kernels and not config.programs.enabled:
            return "kernels: kernel choices given but programs.granularity is 'off'"
        if not config.kernels or self.kernels is None:
            return None
        return self.kernels.invalid_reason(config.kernels, check_workloads)

    def params_for(self, config: TuningConfig) -> dict[str, Any]:
        """The Optuna parameters under which ``suggest`` yields ``config``.

        Raises ValueError naming the knob when a value of ``config`` is outside the space, or when
        ``config`` sets a knob the space does not have to a non-default value.
        """
        values = self._active_values(config)
        params: dict[str, Any] = {}
        for knob in self.knobs:
            if knob.path not in values:
                continue
            problem = knob.check(values[knob.path])
            if problem:
                raise ValueError(f"{self.source}: knob {knob.path}: {problem}")
            params.update(knob.params_for(values[knob.path]))
        if config.kernels and not config.programs.enabled:
            raise ValueError(f"{self.source}: kernel choices need programs.granularity on")
        if self.kernels is not None and config.programs.enabled:
            params.update(self.kernels.params_for(config.kernels))
        elif config.kernels:
            raise ValueError(f"{self.source}: the space has no custom kernels")
        rebuilt = TuningConfig.from_knobs(values, kernels=config.kernels)
        if rebuilt != config:
            differing = sorted(k for k, v in config.flat().items() if rebuilt.flat().get(k) != v)
            raise ValueError(f"{self.source}: the space cannot express {differing[0]}")
        return params

    def default_config(self) -> TuningConfig:
        """The configuration made of every active knob's declared default (and, with programs
        on, every workload on its default kernel)."""
        config = TuningConfig.from_knobs(self._walk(lambda knob: knob.default))
        if self.kernels and config.programs.enabled:
            config = dataclasses.replace(config, kernels=self.kernels.default_choices())
        return config

    def one_knob_neighbours(self, config: TuningConfig) -> list[TuningConfig]:
        """A one-at-a-time screening design around ``config``: for each bool or categorical
        knob active in ``config``, ``config`` with that knob set to each of its other values,
        the knobs this activates at their declared defaults and everything else, kernel choices
        included, unchanged; then, with programs on, for each kernel of the kernel space,
        ``config`` with every workload that kernel can run moved to it (default parameters):
        what each kernel does where it applies, for the sampler to start from. In declaration
        order, without configurations equal (canonically) to ``config`` or to an earlier
        one."""
        current = self._active_values(config)
        seen = {config.canonical_hash()}
        neighbours = []
        for knob in self.knobs:
            if knob.path not in current or not isinstance(knob, (BoolKnob, CategoricalKnob)):
                continue
            others = [False, True] if isinstance(knob, BoolKnob) else list(knob.choices)
            for value in others:
                if value == current[knob.path]:
                    continue
                values = self._walk(lambda each: value if each is knob
                                    else current.get(each.path, each.default))
                neighbour = TuningConfig.from_knobs(values)
                if neighbour.programs.enabled:
                    neighbour = dataclasses.replace(
                        neighbour, kernels=config.kernels or (
                            self.kernels.default_choices() if self.kernels else ()))
                if neighbour.canonical_hash() not in seen:
                    seen.add(neighbour.canonical_hash())
                    neighbours.append(neighbour)
        for neighbour in self._kernel_neighbours(config):
            if neighbour.canonical_hash() not in seen:
                seen.add(neighbour.canonical_hash())
                neighbours.append(neighbour)
        return neighbours

    def _kernel_neighbours(self, config: TuningConfig) -> list[TuningConfig]:
        """Per kernel of the kernel space, in declaration order: ``config`` with every workload
        that kernel can run (and does not run already) on it, with its default parameters."""
        if not (self.kernels and config.programs.enabled):
            return []
        current = {c.workload: c for c in config.kernels or self.kernels.default_choices()}
        neighbours = []
        for name, kernel_space in self.kernels.spaces.items():
            moved = {g.key: KernelChoice(g.key, name, tuple(sorted(
                         kernel_space.defaults(g.workload).items())))
                     for g in self.kernels.workloads
                     if name in self.kernels.kernel_options(g).values()
                     and (g.key not in current or current[g.key].kernel != name)}
            if moved:
                kernels = tuple(moved.get(g.key, current.get(g.key)) for g in self.kernels.workloads)
                neighbours.append(dataclasses.replace(
                    config, kernels=tuple(k for k in kernels if k is not None)))
        return neighbours

    def _active_values(self, config: TuningConfig) -> dict[str, Any]:
        """The value ``config`` gives each knob that is active in it (lists as tuples)."""
        flat_config = {**TuningConfig().to_dict(), **config.to_dict()}

        def value_of(knob: Knob) -> Any:
            section, _, name = knob.path.partition(".")
            value = flat_config[section][name]
            return tuple(value) if isinstance(value, list) else value
        return self._walk(value_of)

    def with_model(self, stages: tuple[str, ...],
                   workloads: tuple[WorkloadGroup, ...] = ()) -> "SearchSpace":
        """Fill in the model's stage names (``model_stages`` choices) and its workloads."""
        knobs = tuple(
            dataclasses.replace(k, choices=tuple(stages))
            if isinstance(k, SubsetKnob) and k.choices == (MODEL_STAGES,) else k
            for k in self.knobs)
        kernels = (dataclasses.replace(self.kernels, workloads=tuple(workloads))
                   if self.kernels else None)
        return dataclasses.replace(self, knobs=knobs, kernels=kernels)

    def for_model(self, model_info: dict[str, Any]) -> "SearchSpace":
        """``with_model`` from a prepared study's ``model.json`` (stages and workloads)."""
        workloads = tuple(WorkloadGroup.from_dict(w) for w in model_info.get("workloads", []))
        return self.with_model(tuple(model_info["stages"]), workloads)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for MLflow."""
        kernels = ({"workloads": [w.to_dict() for w in self.kernels.workloads],
                    "focus": self.kernels.focus.to_dict(),
                    "params": {name: [dataclasses.asdict(p) for p in space.params]
                               for name, space in self.kernels.spaces.items()}}
                   if self.kernels else None)
        return {"source": str(self.source), "device": self.device, "custom_kernels": kernels,
                "knobs": {k.path: {"type": type(k).__name__, **{
                    f.name: getattr(k, f.name) for f in dataclasses.fields(k)
                    if f.name not in ("path",)}} for k in self.knobs}}
