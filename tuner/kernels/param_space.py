"""The kernels' tunable parameter spaces, read from ``search_spaces/cpu_kernels.yaml``.

The YAML file is the single source of truth: parameter names, types, ranges, defaults, the
preprocessor macro each parameter is compiled as, and the restrictions between parameters
(Python expressions, all of which must hold, as in Kernel Tuner).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from tuner import cpuinfo
from tuner.errors import shown
from tuner.paths import SPACES_DIR

DEFAULT_SPACE_PATH = SPACES_DIR / "cpu_kernels.yaml"
_TYPES = ("categorical", "int", "bool")


class InvalidParams(ValueError):
    """Parameters outside a kernel's space: ``key`` is where in a kernel choice (``params.<name>``,
    or ``params`` for a restriction between them), ``reason`` what is wrong there."""

    def __init__(self, kernel: str, key: str, reason: str):
        super().__init__(f"{kernel}: {key}: {reason}")
        self.kernel, self.key, self.reason = kernel, key, reason


@dataclass(frozen=True)
class KernelParam:
    """One tunable parameter. ``define_values`` maps a choice to its macro value (optional)."""

    name: str
    type: str
    default: Any
    define: str = ""   # empty for a parameter the program runtime reads from the spec
    choices: tuple = ()
    low: int | None = None
    high: int | None = None
    step: int = 1
    define_values: tuple[tuple[Any, Any], ...] = ()

    def values(self) -> tuple:
        """Every allowed value, in order."""
        if self.type == "categorical":
            return self.choices
        if self.type == "bool":
            return (False, True)
        return tuple(range(self.low, self.high + 1, self.step))

    def adjacent(self, value: Any) -> tuple:
        """The values next to ``value`` in declared order, the smaller first (Kernel Tuner's
        "adjacent" neighbourhood); every value when ``value`` is not one of them."""
        values = self.values()
        at = next((i for i, v in enumerate(values) if type(v) is type(value) and v == value), None)
        if at is None:
            return values
        return tuple(values[i] for i in (at - 1, at + 1) if 0 <= i < len(values))

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not one of this parameter's values (its type included: ``true`` is
        not 1, ``8.0`` not 8), or None."""
        if self.type == "bool":
            return None if isinstance(value, bool) else f"{shown(value)} is not true/false"
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{shown(value)} is not an integer"
            if not self.low <= value <= self.high or (value - self.low) % self.step:
                steps = f" in steps of {self.step} from {self.low}" if self.step != 1 else ""
                return f"{shown(value)} is not in [{self.low}, {self.high}]{steps}"
            return None
        if not any(type(value) is type(choice) and value == choice for choice in self.choices):
            return f"{shown(value)} is not one of {list(self.choices)}"
        return None

    def allows(self, value: Any) -> bool:
        return self.check(value) is None

    def macro_value(self, value: Any) -> str:
        """The text passed as ``-D<define>=<text>`` for ``value``."""
        mapped = dict(self.define_values).get(value, value)
        if isinstance(mapped, bool):
            return "1" if mapped else "0"
        return str(mapped)


EPILOGUE_ACTIVATIONS = ("none", "relu", "relu6", "silu")  # a hand epilogue's, at most
HAND_ACTIVATIONS = ("none", "relu", "relu6")  # unless a kernel lists its own


@dataclass(frozen=True)
class KernelSpace:
    """The parameter space of one kernel (``source`` is relative to ``kernels/cpu``).

    ``choice`` is the kernel's value of a workload's kernel knob (``kernels.<workload>``);
    ``runs`` (a Python expression over the workload's fields, its ``op``, ``kind``,
    ``out_height``, ``out_width``) says which workloads it can run, and ``hand_epilogue`` that
    it fuses only the hand-written kernels' epilogues (a residual add, then one of
    ``activations``: ReLU or ReLU6 unless the file says more, e.g. SiLU);
    ``default_for`` (same variables, and ``cpu``: the CPU's flags) says where it is the space's
    default instead of the workload's first kernel. ``runtime_params``: its parameters are read
    by the program runtime from the program's spec, not compiled in (no ``define``; one build
    serves all). ``requires``: the CPU flags (``/proc/cpuinfo`` names) it is written for; on a
    CPU that lacks one it is not offered (``missing_flags``, ``unsupported_reason``).
    ``defaults_when``: (rule, parameter values) pairs, in order: where a rule holds (the
    ``default_for`` variables: a workload's fields and ``cpu``, the flags of ``cpu_flags``, the
    CPU the space is for, this one unless given), its values replace the defaults.
    """

    kernel_name: str
    source: str
    params: tuple[KernelParam, ...]
    restrictions: tuple[str, ...]
    choice: str = ""
    default_for: str = "False"
    runs: str = "True"
    hand_epilogue: bool = False
    runtime_params: bool = False
    requires: tuple[str, ...] = ()
    defaults_when: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    cpu_flags: frozenset[str] = frozenset()
    activations: tuple[str, ...] = HAND_ACTIVATIONS

    def takes_epilogue(self, epilogue: tuple[bool, str] | None) -> bool:
        """Whether it can fuse a layer's epilogue, (has_residual, activation) or None for one
        no kernel of the hand-epilogue kind fuses."""
        return not self.hand_epilogue or (epilogue is not None and epilogue[1] in self.activations)

    def missing_flags(self, cpu_flags: frozenset[str] | None = None) -> tuple[str, ...]:
        """The required CPU flags that ``cpu_flags`` (default: the space's CPU's) lacks (none:
        the kernel runs there)."""
        have = self.cpu_flags if cpu_flags is None else cpu_flags
        return tuple(flag for flag in self.requires if flag not in have)

    def unsupported_reason(self) -> str | None:
        """Why the space's CPU cannot run the kernel (the flags it lacks), or None."""
        missing = self.missing_flags()
        if not missing:
            return None
        return (f"{self.kernel_name} needs the CPU flag{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}, which this CPU lacks")

    def param(self, name: str) -> KernelParam:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(f"{self.kernel_name} has no parameter {name!r}")

    def defaults(self, workload: Any = None) -> dict[str, Any]:
        """Each parameter's default for ``workload`` on the space's CPU: the values of every
        ``defaults_when`` rule that holds applied in order (without a workload, only rules
        about the CPU alone can hold)."""
        values = {param.name: param.default for param in self.params}
        for rule, overrides in self.defaults_when:
            if self._rule(rule, workload):
                values.update(overrides)
        return values

    def complete(self, params: Mapping[str, Any], workload: Any = None) -> dict[str, Any]:
        """``params`` with the defaults (for ``workload``) filled in for the missing ones."""
        return {**self.defaults(workload), **dict(params)}

    def validate(self, params: Mapping[str, Any]) -> None:
        """Raise InvalidParams naming the offending parameter or restriction."""
        names = [param.name for param in self.params]
        for name in params:
            if name not in names:
                raise InvalidParams(self.kernel_name, f"params.{name}",
                                    f"unknown parameter (parameters: {', '.join(names)})")
        full = self.complete(params)
        for param in self.params:
            problem = param.check(full[param.name])
            if problem:
                raise InvalidParams(self.kernel_name, f"params.{param.name}", problem)
        for restriction in self.restrictions:
            try:
                holds = eval(restriction, {"__builtins__": {}}, dict(full))  # noqa: S307 (ours)
            except Exception as exc:  # a malformed rule of the kernel parameter file
                raise InvalidParams(self.kernel_name, "params", f"restriction {restriction!r} "
                                    f"cannot be evaluated ({type(exc).__name__}: {exc})") from None
            if not holds:
                used = ", ".join(f"{name}={full[name]!r}" for name in names
                                 if re.search(rf"\b{name}\b", restriction))
                raise InvalidParams(self.kernel_name, "params",
                                    f"restriction {restriction!r} fails for {used}")

    def is_valid(self, params: Mapping[str, Any]) -> bool:
        try:
            self.validate(params)
        except ValueError:
            return False
        return True

    def nearest_valid(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` if valid; else the valid set that changes one parameter the least (by its
        position among the allowed values); else the defaults. Lets a sampler's independent
        choices always yield a runnable variant instead of a rejected one."""
        full = self.complete(params)
        if self.is_valid(full):
            return full
        best: tuple[int, dict[str, Any]] | None = None
        for param in self.params:
            values = param.values()
            here = values.index(full[param.name]) if full[param.name] in values else 0
            for index, value in enumerate(values):
                candidate = {**full, param.name: value}
                if self.is_valid(candidate) and (best is None or abs(index - here) < best[0]):
                    best = (abs(index - here), candidate)
        return best[1] if best else self.defaults()

    def defines(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Macro name -> value text for a complete, valid parameter set (none for a kernel
        whose parameters are read at run time)."""
        full = self.complete(params)
        return {param.define: param.macro_value(full[param.name]) for param in self.params
                if param.define}

    def _rule(self, rule: str, workload: Any) -> bool:
        names: dict[str, Any] = {"cpu": self.cpu_flags}
        if workload is not None:
            names.update({name: getattr(workload, name) for name in workload.__dataclass_fields__})
            names["op"] = workload.op
            for derived in ("kind", "out_height", "out_width"):
                if hasattr(workload, derived):
                    names[derived] = getattr(workload, derived)
        try:
            return bool(eval(rule, {"__builtins__": {}}, names))  # noqa: S307 (trusted YAML)
        except (NameError, TypeError, AttributeError, IndexError):
            return False  # a rule about fields this kind of workload does not have

    def is_default_for(self, workload: Any) -> bool:
        """Whether ``default_for`` holds for a workload."""
        return self._rule(self.default_for, workload)

    def can_run(self, workload: Any) -> bool:
        """Whether ``runs`` holds for a workload."""
        return self._rule(self.runs, workload)

    def configurations(self) -> Iterator[dict[str, Any]]:
        """Every valid parameter combination (the full Cartesian product, filtered)."""
        names = [param.name for param in self.params]
        for values in itertools.product(*(param.values() for param in self.params)):
            candidate = dict(zip(names, values))
            if self.is_valid(candidate):
                yield candidate


def _parse_param(kernel: str, name: str, spec: Mapping[str, Any], runtime: bool) -> KernelParam:
    kind = spec.get("type")
    if kind not in _TYPES:
        raise ValueError(f"{kernel}.{name}: type must be one of {_TYPES}, got {kind!r}")
    if "define" not in spec and not runtime:
        raise ValueError(f"{kernel}.{name}: missing 'define' (the macro it is compiled as)")
    param = KernelParam(
        name=name,
        type=kind,
        default=spec.get("default"),
        define=str(spec.get("define", "")),
        choices=tuple(spec.get("choices", ())),
        low=spec.get("low"),
        high=spec.get("high"),
        step=int(spec.get("step", 1)),
        define_values=tuple(dict(spec.get("define_values", {})).items()),
    )
    if kind == "categorical" and not param.choices:
        raise ValueError(f"{kernel}.{name}: categorical parameter needs 'choices'")
    if kind == "int" and not (isinstance(param.low, int) and isinstance(param.high, int)
                              and param.low <= param.high and param.step >= 1):
        raise ValueError(f"{kernel}.{name}: int parameter needs integers low <= high "
                         "(and a positive step)")
    if not param.allows(param.default):
        raise ValueError(f"{kernel}.{name}: default {param.default!r} is not an allowed value")
    return param


def _parse_defaults_when(path, kernel: str, body: Mapping[str, Any]) -> tuple:
    document = body.get("defaults_when", [])
    if not (isinstance(document, list) and all(
            isinstance(entry, dict) and set(entry) == {"when", "set"}
            and isinstance(entry["when"], str) and isinstance(entry["set"], dict)
            for entry in document)):
        raise ValueError(f"{path}: kernel {kernel!r}: 'defaults_when' must be a list of "
                         "{when: <rule>, set: {<parameter>: <value>}}")
    for entry in document:
        try:
            compile(entry["when"], f"{path}: {kernel}.defaults_when", "eval")
        except SyntaxError as exc:
            raise ValueError(f"{path}: kernel {kernel!r}: defaults_when rule {entry['when']!r} "
                             f"is not an expression ({exc.msg})") from None
    return tuple((entry["when"], tuple(entry["set"].items())) for entry in document)


def _validate_defaults(space: KernelSpace) -> None:
    """The defaults are valid with each ``defaults_when`` rule's values alone and with all of
    them (whatever CPU and workload make the rules hold)."""
    base = {param.name: param.default for param in space.params}
    every: dict[str, Any] = dict(base)
    space.validate(base)
    for _, overrides in space.defaults_when:
        space.validate({**base, **dict(overrides)})
        every.update(overrides)
    space.validate(every)


def load_kernel_space(path: Path | str = DEFAULT_SPACE_PATH,
                      cpu_flags: frozenset[str] | None = None) -> dict[str, KernelSpace]:
    """Kernel name -> KernelSpace for a CPU with ``cpu_flags`` (default: this one's); raises
    ValueError on a malformed file."""
    if cpu_flags is None:
        cpu_flags = cpuinfo.flags()
    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping of kernel names")
    spaces = {}
    for kernel, body in document.items():
        if not isinstance(body, dict) or "source" not in body or not isinstance(
                body.get("params"), dict):
            raise ValueError(f"{path}: kernel {kernel!r} needs 'source' and 'params' (a mapping)")
        runtime = bool(body.get("runtime_params", False))
        requires = body.get("requires", [])
        if not (isinstance(requires, list) and all(isinstance(f, str) for f in requires)):
            raise ValueError(f"{path}: kernel {kernel!r}: 'requires' must be a list of CPU flags")
        params = tuple(_parse_param(kernel, n, s, runtime) for n, s in body["params"].items())
        activations = body.get("activations", list(HAND_ACTIVATIONS))
        if not (isinstance(activations, list) and set(activations) <= set(EPILOGUE_ACTIVATIONS)):
            raise ValueError(f"{path}: kernel {kernel!r}: 'activations' must be a list of "
                             f"{', '.join(EPILOGUE_ACTIVATIONS)}")
        space = KernelSpace(kernel, str(body["source"]), params, tuple(body.get("restrictions", ())),
                            str(body.get("choice", kernel)), str(body.get("default_for", "False")),
                            str(body.get("runs", "True")), bool(body.get("hand_epilogue", False)),
                            runtime, tuple(requires),
                            _parse_defaults_when(path, kernel, body), frozenset(cpu_flags),
                            tuple(activations))
        _validate_defaults(space)
        spaces[kernel] = space
    return spaces
