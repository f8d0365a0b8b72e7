"""Per-workload custom-kernel knobs: builtin or a custom kernel, and that kernel's tiling.

Workloads are the model's distinct convolution problems (layers that share one are tuned
together, as TVM's tasks). Optuna parameters: ``kernels.<workload>`` in {builtin, custom}, plus
the ``choice`` label of every alternative kernel that can run the workload (dense 3x3
stride-1: ``winograd``). ``custom`` is the workload's default kernel, whose parameters are
``kernels.<workload>.<param>``; an alternative's are ``kernels.<workload>.<choice>.<param>``
(distinct names: Optuna refuses one name with two distributions). Parameters are declared in
the kernel parameter file with their restrictions; a sampled combination that breaks one is
repaired to the nearest valid combination rather than wasting the trial. Which kernel the
space's default configuration uses is the file's ``default_for`` rule of each alternative.
The per-workload kernel knobs exist only when ``kernels.choose_per_workload`` is true; when it is
false every workload runs the default configuration's kernel and only tilings are sampled.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import optuna

from tuner.config import KernelChoice
from tuner.kernels.workload import ConvWorkload

BUILTIN, CUSTOM = "builtin", "custom"
PER_WORKLOAD = "kernels.choose_per_workload"
TILE_PER_WORKLOAD = "kernels.tile_per_workload"
REPAIRED_ATTR = "repaired_kernels"


@dataclass(frozen=True)
class Workload:
    """A convolution problem of the model: its key, its default kernel, its layers.
    ``kernels``: every kernel that can run it, default first (derived from the key if empty)."""

    key: str
    kernel: str
    layers: tuple[str, ...] = ()
    flops: int = 0
    kernels: tuple[str, ...] = ()

    def conv(self) -> ConvWorkload | None:
        try:
            return ConvWorkload.from_key(self.key)
        except ValueError:
            return None

    def kernel_names(self) -> tuple[str, ...]:
        if self.kernels:
            return self.kernels
        conv = self.conv()
        names = conv.kernel_names if conv is not None else ()
        return (self.kernel, *(k for k in names if k != self.kernel))


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

    def kernel_options(self, workload: Workload) -> dict[str, str]:
        """Knob value -> kernel name for one workload: ``custom`` is its default kernel, then
        each alternative this space declares, under its ``choice`` label."""
        options = {CUSTOM: workload.kernel}
        for name in workload.kernel_names():
            if name != workload.kernel and name in self.spaces:
                options[self.spaces[name].choice or name] = name
        return options

    @staticmethod
    def _prefix(workload: Workload, label: str) -> str:
        return f"kernels.{workload.key}." + ("" if label == CUSTOM else f"{label}.")

    def default_label(self, workload: Workload) -> str:
        """The knob value of the workload in the space's default configuration."""
        if self.default_impl != CUSTOM:
            return BUILTIN
        kernel = self.default_kernel(workload)
        return next(label for label, name in self.kernel_options(workload).items() if name == kernel)

    def suggest(self, trial: optuna.Trial) -> tuple[KernelChoice, ...]:
        """One choice per workload; sampled tiling that breaks the kernel's restrictions is
        repaired to the nearest valid one (listed in the trial's ``repaired_kernels``).

        The kernel of each workload is sampled only under ``kernels.choose_per_workload``;
        otherwise every workload keeps the space default's kernel and only tilings are sampled.
        Independent per-workload coins would almost never give a configuration without a slow
        builtin layer among ~20 workloads; behind this switch the sampler learns first whether
        mixing kernels pays at all (a conditional space, as TPE's ``group`` mode models).

        Likewise, tilings are sampled per workload (``kernels.<workload>[.<choice>].<param>``)
        only under ``kernels.tile_per_workload``; otherwise each kernel gets one tiling shared
        by all its workloads (``kernels.<kernel>.<param>``): ~10 dimensions instead of ~200,
        and a few variants to build per trial instead of one per workload."""
        choices, repaired = [], []
        if not self.workloads:
            return ()
        per_workload = trial.suggest_categorical(PER_WORKLOAD, [False, True])
        tile_per_workload = trial.suggest_categorical(TILE_PER_WORKLOAD, [False, True])
        shared: dict[str, tuple[dict[str, Any], bool]] = {}
        for workload in self.workloads:
            options = self.kernel_options(workload)
            label = (trial.suggest_categorical(f"kernels.{workload.key}", [BUILTIN, *options])
                     if per_workload else self.default_label(workload))
            if label == BUILTIN:
                continue
            space = self.spaces[options[label]]
            if tile_per_workload:
                params, was_repaired = self._suggest_tiling(trial, space,
                                                            self._prefix(workload, label))
            else:
                if space.kernel_name not in shared:
                    shared[space.kernel_name] = self._suggest_tiling(
                        trial, space, self._shared_prefix(space.kernel_name))
                params, was_repaired = shared[space.kernel_name]
            if was_repaired:
                repaired.append(workload.key)
            choices.append(KernelChoice(workload.key, space.kernel_name,
                                        tuple(sorted(params.items()))))
        if repaired:
            trial.set_user_attr(REPAIRED_ATTR, repaired)
        return tuple(choices)

    def _suggest_tiling(self, trial: optuna.Trial, space, prefix: str) -> tuple[dict[str, Any], bool]:
        """A valid tiling, and whether the sampled one had to be repaired."""
        sampled = {p.name: self._suggest_param(trial, prefix + p.name, p) for p in space.params}
        params = space.nearest_valid(sampled)
        return params, params != sampled

    @staticmethod
    def _shared_prefix(kernel_name: str) -> str:
        return f"kernels.{kernel_name}."

    def params_for(self, choices: tuple[KernelChoice, ...]) -> dict[str, Any]:
        by_key = {c.workload: c for c in choices}
        unknown = sorted(set(by_key) - {w.key for w in self.workloads})
        if unknown:
            raise ValueError(f"kernels: workload {unknown[0]} is not one of this model's")
        params: dict[str, Any] = {}
        tilings: dict[str, tuple[str, dict[str, Any]]] = {}  # workload -> (label, full tiling)
        for workload in self.workloads:
            choice = by_key.get(workload.key)
            if choice is None:
                params[f"kernels.{workload.key}"] = BUILTIN
                continue
            labels = {kernel: label for label, kernel in self.kernel_options(workload).items()}
            if choice.kernel not in labels:
                raise ValueError(f"kernels.{workload.key}: kernel {choice.kernel!r} cannot run it "
                                 f"(kernels: {sorted(labels)})")
            label = labels[choice.kernel]
            params[f"kernels.{workload.key}"] = label
            tilings[workload.key] = (label, self.spaces[choice.kernel].complete(dict(choice.params)))
        if not self.workloads:
            return params
        per_workload = any(params[f"kernels.{w.key}"] != self.default_label(w)
                           for w in self.workloads)
        params[PER_WORKLOAD] = per_workload
        if not per_workload:
            for workload in self.workloads:
                del params[f"kernels.{workload.key}"]
        by_kernel: dict[str, dict] = {}
        for choice in by_key.values():
            by_kernel.setdefault(choice.kernel, {})[json.dumps(tilings[choice.workload][1],
                                                              sort_keys=True)] = choice
        tile_per_workload = any(len(variants) > 1 for variants in by_kernel.values())
        params[TILE_PER_WORKLOAD] = tile_per_workload
        for workload in self.workloads:
            if workload.key in tilings:
                label, full = tilings[workload.key]
                prefix = (self._prefix(workload, label) if tile_per_workload
                          else self._shared_prefix(by_key[workload.key].kernel))
                params.update({prefix + k: v for k, v in full.items()})
        return params

    def default_kernel(self, workload: Workload) -> str:
        """The first alternative whose ``default_for`` rule holds, else the default kernel."""
        conv = workload.conv()
        for label, kernel in self.kernel_options(workload).items():
            if label != CUSTOM and conv is not None and self.spaces[kernel].is_default_for(conv):
                return kernel
        return workload.kernel

    def default_choices(self) -> tuple[KernelChoice, ...]:
        if self.default_impl != CUSTOM:
            return ()
        kernels = [(w, self.default_kernel(w)) for w in self.workloads]
        return tuple(KernelChoice(w.key, k, tuple(sorted(self.spaces[k].defaults().items())))
                     for w, k in kernels)

    def invalid_reason(self, choices: tuple[KernelChoice, ...]) -> str | None:
        """Why a set of choices breaks a kernel's declared restrictions, or None."""
        for choice in choices:
            try:
                self.spaces[choice.kernel].validate(dict(choice.params))
            except ValueError as exc:
                return f"kernels.{choice.workload}: {exc}"
        return None
