"""Reading and validating search-space YAML files.

Format (see search_spaces/cpu.yaml)::

    version: 1
    device: CPU
    knobs:
      graph_kernel.opt_level:          # a dotted path of tuner.config.TuningConfig
        type: int                      # bool | int | categorical | subset
        low: 1
        high: 3
        default: 1
        when: {graph_kernel.enabled: true}   # active only under these values of earlier knobs

Every problem is reported as one line ``<file>: <key>: <reason>`` before any trial runs.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from tuner.config import all_knob_paths, knob_field, check_field
from tuner.errors import ConfigError, UsageError, shown
from tuner.files import read_user_text
from tuner.space.focus import WorkloadFocus
from tuner.space.kernel_knobs import KernelKnobs
from tuner.space.knobs import BoolKnob, CategoricalKnob, Condition, IntKnob, Knob, SubsetKnob
from tuner.space.search_space import MODEL_STAGES, SearchSpace

SCHEMA_VERSION = 1
_KNOB_KEYS = {"bool": {"default"}, "int": {"low", "high", "step", "default"},
              "categorical": {"choices", "default"}, "subset": {"choices", "default"}}


class SpaceError(UsageError):
    """A malformed search-space file; the message is ``<file>: <key>: <reason>``."""


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    text = read_user_text(path, SpaceError, "search space")
    try:
        document = yaml.safe_load(text)
    except RecursionError:
        raise SpaceError(f"{path}: nested too deeply to be a search space") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise SpaceError(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return _parse(path, document)


def _fail(path: Path, key: str, reason: str) -> SpaceError:
    return SpaceError(f"{path}: {key}: {reason}")


def _parse(path: Path, document: Any) -> SearchSpace:
    if not isinstance(document, dict):
        raise _fail(path, "<top>", "expected a mapping with 'version', 'device' and 'knobs'")
    unknown = set(document) - {"version", "device", "knobs", "description", "custom_kernels"}
    if unknown:
        raise _fail(path, sorted(map(str, unknown))[0], "unknown top-level key")
    version = document.get("version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise _fail(path, "version", f"expected {SCHEMA_VERSION}, got {shown(version)}")
    device = document.get("device")
    if not isinstance(device, str):
        raise _fail(path, "device", "expected a device name such as CPU")
    knobs_doc = document.get("knobs")
    if not isinstance(knobs_doc, dict) or not knobs_doc:
        raise _fail(path, "knobs", "expected a non-empty mapping of knob path -> definition")
    knobs: list[Knob] = []
    for knob_path, spec in knobs_doc.items():
        knobs.append(_parse_knob(path, str(knob_path), spec, knobs))
    kernels = _parse_custom_kernels(path, device, document.get("custom_kernels"))
    return SearchSpace(source=path, device=device, knobs=tuple(knobs), kernels=kernels)


def _parse_custom_kernels(path: Path, device: str, section: Any) -> KernelKnobs | None:
    """``custom_kernels: {params: <kernel parameter YAML>}``."""
    if section is None:
        return None
    from tuner.backends import get_backend
    from tuner.kernels.param_space import load_kernel_space

    backend = get_backend(device)
    if not backend.has_kernels:
        raise _fail(path, "custom_kernels", f"custom kernels are not implemented for device "
                                            f"{backend.name} ({backend.kernels_missing})")
    if not isinstance(section, dict) or set(section) - {"params", "focus"}:
        raise _fail(path, "custom_kernels",
                    "expected {params: <kernel parameter file>[, focus: {coverage, max_workloads}]}")
    try:
        focus = WorkloadFocus.from_dict(section.get("focus") or {})
    except (ValueError, TypeError) as exc:
        raise _fail(path, "custom_kernels.focus", str(exc)) from None
    params_file = path.parent / str(section.get("params", ""))
    try:
        spaces = load_kernel_space(params_file)
    except OSError as exc:
        raise _fail(path, "custom_kernels.params", f"cannot read {params_file} ({exc.strerror})") from None
    except (ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise _fail(path, "custom_kernels.params", f"{params_file}: {exc}") from None
    return KernelKnobs(spaces=spaces, source=params_file, focus=focus)


def _parse_knob(path: Path, knob_path: str, spec: Any, earlier: list[Knob]) -> Knob:
    key = f"knobs.{knob_path}"
    try:
        field = knob_field(knob_path)
    except ConfigError:
        close = difflib.get_close_matches(knob_path, all_knob_paths(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise _fail(path, key, f"unknown knob{hint}") from None
    if not isinstance(spec, dict):
        raise _fail(path, key, "expected a mapping with 'type' and its settings")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _KNOB_KEYS:
        raise _fail(path, f"{key}.type", f"{shown(kind)} is not one of {sorted(_KNOB_KEYS)}")
    unknown = set(map(str, spec)) - _KNOB_KEYS[kind] - {"type", "when"}
    if unknown:
        raise _fail(path, f"{key}.{sorted(unknown)[0]}", f"not a setting of a {kind} knob")
    if "default" not in spec:
        raise _fail(path, f"{key}.default", "missing")
    conditions = _parse_conditions(path, key, spec.get("when", {}), earlier)
    knob = _build_knob(path, key, knob_path, kind, spec, conditions)
    _check_domain(path, key, field, knob)
    problem = knob.check(tuple(knob.default) if isinstance(knob.default, list) else knob.default)
    if problem:
        raise _fail(path, f"{key}.default", problem)
    return knob


def _build_knob(path, key, knob_path, kind, spec, conditions) -> Knob:
    default = spec["default"]
    if kind == "bool":
        return BoolKnob(knob_path, default, conditions)
    if kind == "int":
        for name in ("low", "high"):
            if not isinstance(spec.get(name), int) or isinstance(spec.get(name), bool):
                raise _fail(path, f"{key}.{name}", "expected an integer")
        step = spec.get("step", 1)
        if not isinstance(step, int) or step < 1:
            raise _fail(path, f"{key}.step", "expected a positive integer")
        if spec["low"] > spec["high"]:
            raise _fail(path, f"{key}.low", f"{spec['low']} is above high {spec['high']}")
        return IntKnob(knob_path, default, conditions, spec["low"], spec["high"], step)
    choices = spec.get("choices")
    if kind == "subset" and choices == MODEL_STAGES:
        choices = [MODEL_STAGES]
    if not isinstance(choices, list) or not choices:
        raise _fail(path, f"{key}.choices", "expected a non-empty list")
    if len(set(map(repr, choices))) != len(choices):
        raise _fail(path, f"{key}.choices", "has duplicates")
    if kind == "categorical":
        return CategoricalKnob(knob_path, default, conditions, tuple(choices))
    if not all(isinstance(c, str) for c in choices):
        raise _fail(path, f"{key}.choices", "a subset's choices must be names")
    if not isinstance(default, list):
        raise _fail(path, f"{key}.default", "expected a list")
    return SubsetKnob(knob_path, tuple(default), conditions, tuple(choices))


def _parse_conditions(path, key, when, earlier: list[Knob]) -> tuple[Condition, ...]:
    if not isinstance(when, dict):
        raise _fail(path, f"{key}.when", "expected a mapping of earlier knob -> value(s)")
    conditions = []
    for other, values in when.items():
        target = next((k for k in earlier if k.path == other), None)
        if target is None:
            raise _fail(path, f"{key}.when.{other}", "not a knob declared before this one")
        if isinstance(target, SubsetKnob):
            raise _fail(path, f"{key}.when.{other}", "conditions on subset knobs are not supported")
        values = tuple(values) if isinstance(values, list) else (values,)
        for value in values:
            problem = target.check(value)
            if problem:
                raise _fail(path, f"{key}.when.{other}", problem)
        conditions.append(Condition(other, values))
    return tuple(conditions)


def _check_domain(path: Path, key: str, field: dataclasses.Field, knob: Knob) -> None:
    """Every value the knob can produce must be one the configuration field accepts."""
    section = knob.path.partition(".")[0]
    if isinstance(knob, BoolKnob):
        candidates = [False, True]
    elif isinstance(knob, IntKnob):
        candidates = [knob.low, knob.high]
    elif isinstance(knob, CategoricalKnob):
        candidates = list(knob.choices)
    else:
        candidates = [tuple(c for c in knob.choices if c != MODEL_STAGES)]
    expected_bool = field.type in ("bool", bool)
    for value in candidates:
        if expected_bool != isinstance(value, bool):
            hint = (" (YAML reads unquoted off/on/yes/no as false/true: quote it)"
                    if isinstance(value, bool) else "")
            raise _fail(path, key, f"{knob.path} takes {field.type}, not {shown(value)}{hint}")
        try:
            check_field(section, field, value)
        except ConfigError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise _fail(path, key, f"out of the knob's domain: {reason}") from None
