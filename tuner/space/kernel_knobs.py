"""Per-workload custom-kernel knobs: builtin or custom, and the custom kernel's tiling.

Workloads are the model's distinct convolution problems (layers that share one are tuned
together, as TVM's tasks). Optuna parameters: ``kernels.<workload>`` in {builtin, custom} and,
when custom, ``kernels.<workload>.<param>`` for every parameter of the workload's kernel as
declared in the kernel parameter file (with its restrictions; a sampled combination that
breaks one is repaired to the nearest valid combination rather than wasting the trial).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import optuna

from tuner.config import KernelChoice

BUILTIN, CUSTOM = "builtin", "custom"
REPAIRED_ATTR = "repaired_kernels"


@dataclass(frozen=True)
class Workload:
    """A convolution problem of the model: its key, the kernel that can run it, its layers."""

    key: str
    kernel: str
    layers: tuple[str, ...] = ()
    flops: int = 0


@dataclass(frozen=True, eq=False)
class KernelKnobs:
    spaces: Mapping[str, Any]           # kernel name -> tuner.kernels.space.KernelSpace
    default_impl: str = CUSTOM
    workloads: tuple[Workload, ...] = field(default_factory=tuple)

    def _suggest_param(self, trial: optuna.Trial, name: str, param) -> Any:
        if param.type == "int":
            return trial.suggest_int(name, param.low, param.high, step=param.step)
        if param.type == "bool":
            return trial.suggest_categorical(name, [False, True])
        return trial.suggest_categorical(name, list(param.choices))

    def suggest(self, trial: optuna.Trial) -> tuple[KernelChoice, ...]:
        """One choice per workload; sampled tiling that breaks the kernel's restrictions is
        repaired to the nearest valid one (listed in the trial's ``repaired_kernels``)."""
        choices, repaired = [], []
        for workload in self.workloads:
            if trial.suggest_categorical(f"kernels.{workload.key}", [BUILTIN, CUSTOM]) != CUSTOM:
                continue
            space = self.spaces[workload.kernel]
            sampled = {p.name: self._suggest_param(trial, f"kernels.{workload.key}.{p.name}", p)
                       for p in space.params}
            params = space.nearest_valid(sampled)
            if params != sampled:
                repaired.append(workload.key)
            choices.append(KernelChoice(workload.key, workload.kernel, tuple(sorted(params.items()))))
        if repaired:
            trial.set_user_attr(REPAIRED_ATTR, repaired)
        return tuple(choices)

    def params_for(self, choices: tuple[KernelChoice, ...]) -> dict[str, Any]:
        by_key = {c.workload: c for c in choices}
        unknown = sorted(set(by_key) - {w.key for w in self.workloads})
        if unknown:
            raise ValueError(f"kernels: workload {unknown[0]} is not one of this model's")
        params: dict[str, Any] = {}
        for workload in self.workloads:
            choice = by_key.get(workload.key)
            params[f"kernels.{workload.key}"] = CUSTOM if choice else BUILTIN
            if choice:
                full = self.spaces[workload.kernel].complete(dict(choice.params))
                params.update({f"kernels.{workload.key}.{k}": v for k, v in full.items()})
        return params

    def default_choices(self) -> tuple[KernelChoice, ...]:
        if self.default_impl != CUSTOM:
            return ()
        return tuple(KernelChoice(w.key, w.kernel,
                                  tuple(sorted(self.spaces[w.kernel].defaults().items())))
                     for w in self.workloads)

    def invalid_reason(self, choices: tuple[KernelChoice, ...]) -> str | None:
        """Why a set of choices breaks a kernel's declared restrictions, or None."""
        for choice in choices:
            try:
                self.spaces[choice.kernel].validate(dict(choice.params))
            except ValueError as exc:
                return f"kernels.{choice.workload}: {exc}"
        return None
