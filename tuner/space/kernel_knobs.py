"""Per-workload kernel knobs: which kernel runs each workload inside the programs, and its
parameters.

Workloads are the model's distinct heavy-operation problems (layers that share one are tuned
together, as TVM's tasks), each with the kernels that can run all of its layers (the first is
its default). Optuna parameters: ``kernels.<workload>`` over the ``choice`` labels of those
kernels (``onednn``, ``dense``, ``winograd``, ...), and each kernel's parameters, either shared
by all the workloads that kernel runs (``kernels.<kernel>.<param>``) or per workload
(``kernels.<workload>.<label>.<param>``; distinct names: Optuna refuses one name with two
distributions). Parameters are declared in the kernel parameter file with their restrictions;
a sampled combination that breaks one is repaired to the nearest valid combination rather than
wasting the trial. Which kernel the space's default uses is the workload's first kernel unless
another's ``default_for`` rule holds. The per-workload kernel knobs exist only when
``kernels.choose_per_workload`` is true (else every workload runs the default's kernel and only
parameters are sampled), per-workload parameters only when ``kernels.tile_per_workload`` is;
under either, given a guide (tuner.space.focus.Guide: a measured trial's workload times and
choices), only the workloads of its focus (those that hold most of the guide's time) are drawn,
the others keep their choice in the guide. The knobs only read the trial they are handed and
the guide they are given: what they did (the focus, the repaired workloads) is returned for the
study to store.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import optuna

from tuner.config import KernelChoice
from tuner.errors import shown
from tuner.kernels.param_space import InvalidParams
from tuner.kernels.workload import WorkloadGroup
from tuner.space.focus import Guide, WorkloadFocus

PER_WORKLOAD = "kernels.choose_per_workload"
TILE_PER_WORKLOAD = "kernels.tile_per_workload"


@dataclass(frozen=True)
class KernelDraw:
    """What ``KernelKnobs.suggest`` drew for a trial: one choice per workload, the workloads
    whose sampled parameters broke a restriction and were repaired, and the focus (the workloads
    drawn when a guide narrowed the draws; empty: no focus, every workload drawn)."""

    choices: tuple[KernelChoice, ...]
    repaired: tuple[str, ...] = ()
    focus: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class KernelKnobs:
    spaces: Mapping[str, Any]           # kernel name -> tuner.kernels.param_space.KernelSpace
    workloads: tuple[WorkloadGroup, ...] = field(default_factory=tuple)
    source: Any = None                  # the kernel parameter file (trials read it too)
    focus: WorkloadFocus = field(default_factory=WorkloadFocus)

    @staticmethod
    def _suggest_param(trial: optuna.Trial, name: str, param) -> Any:
        if param.type == "int":
            return trial.suggest_int(name, param.low, param.high, step=param.step)
        if param.type == "bool":
            return trial.suggest_categorical(name, [False, True])
        return trial.suggest_categorical(name, list(param.choices))

    def kernel_options(self, group: WorkloadGroup) -> dict[str, str]:
        """Knob value -> kernel name for one workload (the kernels this space declares)."""
        return {self.spaces[k].choice: k for k in group.kernels if k in self.spaces}

    def default_kernel(self, group: WorkloadGroup) -> str:
        """The first kernel whose ``default_for`` rule holds, else the workload's first one."""
        names = [k for k in group.kernels if k in self.spaces]
        for name in names[1:]:
            if self.spaces[name].is_default_for(group.workload):
                return name
        return names[0]

    def _label(self, kernel: str) -> str:
        return self.spaces[kernel].choice

    @staticmethod
    def _workload_prefix(group: WorkloadGroup, label: str) -> str:
        return f"kernels.{group.key}.{label}."

    @staticmethod
    def _shared_prefix(kernel_name: str) -> str:
        return f"kernels.{kernel_name}."

    def suggest(self, trial: optuna.Trial, guide: Guide | None = None) -> KernelDraw:
        """One choice per workload; sampled parameters that break the kernel's restrictions are
        repaired to the nearest valid ones (``KernelDraw.repaired`` lists those workloads).

        The kernel of each workload is sampled only under ``kernels.choose_per_workload``:
        independent per-workload coins would almost never keep the default's kernels together,
        and behind this switch the sampler learns first whether mixing kernels pays at all (a
        conditional space, as TPE's ``group`` mode models). Likewise parameters are sampled
        per workload only under ``kernels.tile_per_workload``; otherwise each kernel has one
        set shared by all its workloads: a few dimensions instead of hundreds. Under either
        switch, with a ``guide``, only its focus is drawn (see module)."""
        if not self.workloads:
            return KernelDraw(())
        per_workload = trial.suggest_categorical(PER_WORKLOAD, [False, True])
        tile_per_workload = trial.suggest_categorical(TILE_PER_WORKLOAD, [False, True])
        focus: tuple[str, ...] = ()
        kept: dict[str, KernelChoice] = {}
        if (per_workload or tile_per_workload) and guide is not None:
            focus, kept = self._focus(guide)
        shared: dict[str, tuple[dict[str, Any], bool]] = {}
        choices, repaired = [], []
        for group in self.workloads:
            if group.key in kept:
                choices.append(kept[group.key])
                continue
            options = self.kernel_options(group)
            if per_workload and len(options) > 1:
                kernel = options[trial.suggest_categorical(f"kernels.{group.key}", list(options))]
            else:
                kernel = self.default_kernel(group)
            space = self.spaces[kernel]
            if not space.params:
                params, was_repaired = {}, False
            elif tile_per_workload:
                params, was_repaired = self._suggest_params(
                    trial, space, self._workload_prefix(group, self._label(kernel)))
            else:
                if kernel not in shared:
                    shared[kernel] = self._suggest_params(trial, space, self._shared_prefix(kernel))
                params, was_repaired = shared[kernel]
            if was_repaired:
                repaired.append(group.key)
            choices.append(KernelChoice(group.key, kernel, tuple(sorted(params.items()))))
        return KernelDraw(tuple(choices), tuple(repaired), focus)

    def _focus(self, guide: Guide) -> tuple[tuple[str, ...], dict[str, KernelChoice]]:
        """The guide's focus, and the workloads outside it with their choice in the guide (none
        without a focus)."""
        focus = self.focus.select(guide.workload_ms, (g.key for g in self.workloads))
        if not focus:
            return (), {}
        kept = {}
        for group in self.workloads:
            choice = guide.choices.get(group.key)
            if group.key not in focus and choice is not None \
                    and choice.kernel in self.kernel_options(group).values():
                kept[group.key] = choice
        return focus, kept

    def _suggest_params(self, trial: optuna.Trial, space, prefix: str) -> tuple[dict[str, Any], bool]:
        sampled = {p.name: self._suggest_param(trial, prefix + p.name, p) for p in space.params}
        params = space.nearest_valid(sampled)
        return params, params != sampled

    def params_for(self, choices: tuple[KernelChoice, ...]) -> dict[str, Any]:
        """The Optuna parameters under which ``suggest`` yields ``choices`` (a workload without
        a choice: its default kernel with default parameters)."""
        by_key = {c.workload: c for c in choices}
        unknown = sorted(set(by_key) - {g.key for g in self.workloads})
        if unknown:
            raise ValueError(f"kernels: workload {unknown[0]} is not one of this model's")
        if not self.workloads:
            return {}
        chosen: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (kernel, full params)
        for group in self.workloads:
            choice = by_key.get(group.key)
            kernel = choice.kernel if choice else self.default_kernel(group)
            if kernel not in self.kernel_options(group).values():
                raise ValueError(f"kernels.{group.key}: kernel {kernel!r} cannot run it "
                                 f"(kernels: {sorted(self.kernel_options(group).values())})")
            chosen[group.key] = (kernel, self.spaces[kernel].complete(
                dict(choice.params) if choice else {}, group.workload))
        per_workload = any(chosen[g.key][0] != self.default_kernel(g) for g in self.workloads)
        by_kernel: dict[str, set[str]] = {}
        for kernel, params in chosen.values():
            by_kernel.setdefault(kernel, set()).add(json.dumps(params, sort_keys=True))
        tile_per_workload = any(len(variants) > 1 for variants in by_kernel.values())
        params: dict[str, Any] = {PER_WORKLOAD: per_workload, TILE_PER_WORKLOAD: tile_per_workload}
        for group in self.workloads:
            kernel, full = chosen[group.key]
            if per_workload and len(self.kernel_options(group)) > 1:
                params[f"kernels.{group.key}"] = self._label(kernel)
            prefix = (self._workload_prefix(group, self._label(kernel)) if tile_per_workload
                      else self._shared_prefix(kernel))
            params.update({prefix + k: v for k, v in full.items()})
        return params

    def workload_neighbours(self, choices: tuple[KernelChoice, ...],
                            key: str) -> list[tuple[KernelChoice, ...]]:
        """``choices`` with workload ``key``'s choice moved one step: each parameter of its
        kernel set to each adjacent value on its own (KernelParam.adjacent; a combination that
        breaks a restriction is repaired to the nearest valid one), then each other kernel that
        can run the workload, with its defaults for it. Without duplicates or ``choices``
        itself; every other workload's choice unchanged."""
        group = next(g for g in self.workloads if g.key == key)
        by_key = {c.workload: c for c in choices}
        current = by_key.get(key) or next(c for c in self.default_choices() if c.workload == key)
        space = self.spaces[current.kernel]
        params = space.complete(dict(current.params), group.workload)
        moved = []
        for param in space.params:
            for value in param.adjacent(params[param.name]):
                moved.append((current.kernel, space.nearest_valid({**params, param.name: value})))
        for kernel in self.kernel_options(group).values():
            if kernel != current.kernel:
                moved.append((kernel, self.spaces[kernel].defaults(group.workload)))
        seen = {(current.kernel, tuple(sorted(params.items())))}
        neighbours = []
        for kernel, values in moved:
            choice = KernelChoice(key, kernel, tuple(sorted(values.items())))
            if (kernel, choice.params) in seen:
                continue
            seen.add((kernel, choice.params))
            neighbours.append(tuple(choice if g.key == key else by_key[g.key]
                                    for g in self.workloads if g.key == key or g.key in by_key))
        return neighbours

    def default_choices(self) -> tuple[KernelChoice, ...]:
        kernels = [(g, self.default_kernel(g)) for g in self.workloads]
        return tuple(KernelChoice(g.key, k, tuple(sorted(
                         self.spaces[k].defaults(g.workload).items()))) for g, k in kernels)

    def invalid_reason(self, choices: tuple[KernelChoice, ...],
                       check_workloads: bool | None = None) -> str | None:
        """Why a set of choices breaks a kernel's declared restrictions, or None: one line
        ``kernels[<index>].<key>: <reason>`` (``key``: ``kernel``, ``workload`` or
        ``params.<name>``). Each choice must name a kernel of this space with parameters of
        its type and range that meet its restrictions; with ``check_workloads`` (default: when
        the model's workloads are known), also one of the model's workloads and a kernel that
        can run it."""
        groups = {group.key: group for group in self.workloads}
        if check_workloads is None:
            check_workloads = bool(self.workloads)
        for index, choice in enumerate(choices):
            where = f"kernels[{index}]"
            space = self.spaces.get(choice.kernel)
            if space is None:
                declared = getattr(self.source, "name", "this space")
                return (f"{where}.kernel: {shown(choice.kernel)} is not a kernel of {declared} "
                        f"(kernels: {', '.join(self.spaces)})")
            if check_workloads:
                group = groups.get(choice.workload)
                if group is None:
                    some = ", ".join(list(groups)[:2]) + (", ..." if len(groups) > 2 else "")
                    return (f"{where}.workload: {shown(choice.workload, 80)} is not a workload of "
                            f"this model ({len(groups)} workloads{': ' if groups else ''}{some})")
                able = list(self.kernel_options(group).values())
                if choice.kernel not in able:
                    unsupported = space.unsupported_reason()
                    if unsupported:
                        return (f"{where}.kernel: {unsupported} (kernels that can run "
                                f"{choice.workload} here: {', '.join(able)})")
                    return (f"{where}.kernel: {choice.kernel} cannot run workload "
                            f"{choice.workload} (kernels that can: {', '.join(able)})")
            try:
                space.validate(dict(choice.params))
            except InvalidParams as exc:
                return (f"{where}.{exc.key}: {exc.reason} ({choice.kernel} for workload "
                        f"{shown(choice.workload, 80)})")
        return None
