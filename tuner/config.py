"""What a trial applies to a network: frozen, typed, validated knob settings with JSON round trip.

A :class:`TuningConfig` is the complete description of one candidate: graph-kernel fusion flags,
inference rewrites, runtime (thread) settings and custom kernel choices. Its default value is the
untuned MindSpore baseline. Knobs are addressed by dotted paths (``graph_kernel.opt_level``),
which is how search spaces, Optuna parameters and MLflow parameters name them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from tuner.errors import ConfigError, shown

_OP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_MODULE_PATH = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_FUSION_PATTERN = re.compile(r"^(fold_normalisation|eltwise_post_ops|binary_post_ops)$")


def _domain(*, choices: tuple | None = None, low: int | None = None, high: int | None = None,
            item: re.Pattern | None = None, doc: str = "") -> dict:
    return {"choices": choices, "low": low, "high": high, "item": item, "doc": doc}


def check_field(owner: str, f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    where = f"{owner}.{f.name}"
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{where}: {shown(value)} is not one of {list(meta['choices'])}")
    if meta.get("low") is not None or meta.get("high") is not None:
        if value is None and f.default is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {shown(value)} is not an integer")
        if not meta["low"] <= value <= meta["high"]:
            raise ConfigError(f"{where}: {value} is out of range [{meta['low']}, {meta['high']}]")
    if meta.get("item") is not None:
        if not isinstance(value, tuple):
            raise ConfigError(f"{where}: expected a list of names, got {shown(value)}")
        for item in value:
            if not isinstance(item, str) or not meta["item"].match(item):
                raise ConfigError(f"{where}: {shown(item)} is not a valid name")
    if f.type in ("bool", bool) and not isinstance(value, bool):
        raise ConfigError(f"{where}: {shown(value)} is not true/false")


class _Section:
    """Shared validation and dict conversion for the config sections."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list) and f.metadata.get("item") is not None:
                object.__setattr__(self, f.name, tuple(value))
            check_field(self.SECTION, f, getattr(self, f.name))

    def canonical(self):
        """The section that runs the same with the fields that have no effect at their defaults."""
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.SECTION}: expected an object, got {shown(data)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{cls.SECTION}: unknown key {unknown[0]!r} (known: {sorted(known)})")
        return cls(**data)


@dataclass(frozen=True)
class GraphKernelConfig(_Section):
    """MindSpore graph-kernel fusion (AKG), passed as ``MS_DEV_GRAPH_KERNEL_FLAGS``.

    ``enabled`` false means fusion is off and every other field is ignored. Operator lists name
    MindSpore primitives (``ReLU``, ``Mul``); ``disable_pass`` takes ``<stage>.<pass>`` names (a
    bare pass name is silently ignored by MindSpore). ``excluded_modules`` names sub-modules
    (``layer3``, ``layer4.2``) whose primitives are tagged so that fusion leaves them alone.
    """

    SECTION = "graph_kernel"
    enabled: bool = False
    opt_level: int = field(default=1, metadata=_domain(low=0, high=3))
    disable_expand_ops: tuple[str, ...] = field(default=(), metadata=_domain(item=_OP_NAME))
    enable_expand_ops_only: tuple[str, ...] = field(default=(), metadata=_domain(item=_OP_NAME))
    disable_cluster_ops: tuple[str, ...] = field(default=(), metadata=_domain(item=_OP_NAME))
    enable_cluster_ops: tuple[str, ...] = field(default=(), metadata=_domain(item=_OP_NAME))
    disable_pass: tuple[str, ...] = field(default=(), metadata=_domain(item=_OP_NAME))
    enable_parallel_fusion: bool = False
    enable_horizontal_fusion: bool = False
    enable_stitch_fusion: bool = False
    enable_recompute_fusion: bool = False
    enable_auto_tensor_inplace: bool = False
    excluded_modules: tuple[str, ...] = field(default=(), metadata=_domain(item=_MODULE_PATH))

    _LIST_FLAGS = ("disable_expand_ops", "enable_expand_ops_only", "disable_cluster_ops",
                   "enable_cluster_ops", "disable_pass")
    _BOOL_FLAGS = ("enable_parallel_fusion", "enable_horizontal_fusion", "enable_stitch_fusion",
                   "enable_recompute_fusion", "enable_auto_tensor_inplace")

    def flags(self) -> str:
        """The value of ``MS_DEV_GRAPH_KERNEL_FLAGS``; empty when fusion is off."""
        if not self.enabled:
            return ""
        parts = [f"--opt_level={self.opt_level}"]
        parts += [f"--{name}={','.join(getattr(self, name))}"
                  for name in self._LIST_FLAGS if getattr(self, name)]
        parts += [f"--{name}=true" for name in self._BOOL_FLAGS if getattr(self, name)]
        return " ".join(parts)


@dataclass(frozen=True)
class RewriteConfig(_Section):
    """Rewrites of the network before compilation.

    ``fold_batchnorm``: ``none``; ``all`` folds every Conv2d+BatchNorm2d pair into one Conv2d with
    bias; ``modules`` folds only the pairs under ``fold_batchnorm_modules`` (e.g. ``layer3``).
    """

    SECTION = "rewrites"
    fold_batchnorm: str = field(default="none", metadata=_domain(choices=("none", "all", "modules")))
    fold_batchnorm_modules: tuple[str, ...] = field(default=(), metadata=_domain(item=_MODULE_PATH))

    def fold_scope(self) -> tuple[str, ...] | None:
        """None: fold nothing; empty tuple: fold everything; else the module names to fold under."""
        if self.fold_batchnorm == "none" or (
                self.fold_batchnorm == "modules" and not self.fold_batchnorm_modules):
            return None
        return () if self.fold_batchnorm == "all" else self.fold_batchnorm_modules

    def canonical(self) -> "RewriteConfig":
        return RewriteConfig() if self.fold_scope() is None else self


@dataclass(frozen=True)
class RuntimeConfig(_Section):
    """Process-level runtime settings. ``None``/``default`` leaves MindSpore's own choice.

    ``omp_num_threads`` and ``omp_wait_policy`` become ``OMP_NUM_THREADS``/``OMP_WAIT_POLICY`` (read
    by OpenMP when the process starts, so they are set before MindSpore is imported). MindSpore's
    ``op_tuning.threads_num`` is not offered: it showed no effect on CPU inference here.
    """

    SECTION = "runtime"
    omp_num_threads: int | None = field(default=None, metadata=_domain(low=1, high=1024))
    omp_wait_policy: str = field(default="default",
                                 metadata=_domain(choices=("default", "ACTIVE", "PASSIVE")))

    def environment(self) -> dict[str, str]:
        env = {}
        if self.omp_num_threads is not None:
            env["OMP_NUM_THREADS"] = str(self.omp_num_threads)
        if self.omp_wait_policy != "default":
            env["OMP_WAIT_POLICY"] = self.omp_wait_policy
        return env


GRANULARITY_LIMITS = {"layer": 1, "block": 4, "stage": 16, "network": None}


@dataclass(frozen=True)
class ProgramConfig(_Section):
    """Programs (CPU): regions of the network run as one custom operator each, a sequence of
    oneDNN primitives and hand-written kernels (tuner.kernels.cpu.program).

    ``granularity`` bounds the heavy operations (convolutions, matrix products) per program:
    ``off`` (no programs: every layer is MindSpore's own), ``layer`` (1), ``block`` (4),
    ``stage`` (16) or ``network`` (no bound: the whole network if it can be one region); the
    largest regions that fit are taken. ``layout`` is the activation layout asked of the
    convolutions inside a program (``any``: oneDNN's choice per convolution, ``nhwc``,
    ``blocked``: channels in blocks of 16). ``excluded_modules`` are module paths kept out of
    every program (they stay MindSpore's own operators). ``unfused`` names fusion patterns not
    applied inside programs (``fold_normalisation``, ``eltwise_post_ops``, ``binary_post_ops``:
    tuner.kernels.cpu.program.fusion.FUSION_PATTERNS); what they would fuse runs as steps of
    its own.
    """

    SECTION = "programs"
    granularity: str = field(default="off", metadata=_domain(
        choices=("off", *GRANULARITY_LIMITS)))
    layout: str = field(default="any", metadata=_domain(choices=("any", "nhwc", "blocked")))
    excluded_modules: tuple[str, ...] = field(default=(), metadata=_domain(item=_MODULE_PATH))
    unfused: tuple[str, ...] = field(default=(), metadata=_domain(item=_FUSION_PATTERN))

    @property
    def enabled(self) -> bool:
        return self.granularity != "off"

    @property
    def limit(self) -> int | None:
        """Heavy operations per program at most (None: no bound); only when enabled."""
        return GRANULARITY_LIMITS[self.granularity]

    def canonical(self) -> "ProgramConfig":
        return self if self.enabled else ProgramConfig()


@dataclass(frozen=True)
class KernelChoice:
    """The kernel that runs one workload inside the programs, and its parameters (name ->
    number, name or true/false; whether they are the kernel's is for its space to say, see
    tuner.space.kernel_knobs). Problems are ConfigErrors naming the field."""

    workload: str
    kernel: str
    params: tuple[tuple[str, Any], ...]

    KEYS = ("workload", "kernel", "params")

    def __post_init__(self) -> None:
        for name in ("workload", "kernel"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name}: {shown(value)} is not a name")
        names = set()
        for pair in self.params:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise ConfigError(f"params: {shown(pair)} is not a (name, value) pair")
            name, value = pair
            if name in names:
                raise ConfigError(f"params.{name}: given twice")
            names.add(name)
            if not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"params.{name}: {shown(value)} is not a number, name or "
                                  "true/false")
        object.__setattr__(self, "params", tuple(sorted(self.params)))

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "kernel": self.kernel, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "kernels[0]") -> "KernelChoice":
        """``where``: the choice's place in the configuration, which messages start with."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected an object with {', '.join(cls.KEYS)}, "
                              f"got {shown(data)}")
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {list(cls.KEYS)})")
        missing = [key for key in cls.KEYS if key not in data]
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: missing")
        if not isinstance(data["params"], Mapping):
            raise ConfigError(f"{where}.params: expected an object of parameter -> value, got "
                              f"{shown(data['params'])}")
        try:
            return cls(data["workload"], data["kernel"], tuple(data["params"].items()))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None


@dataclass(frozen=True)
class TuningConfig:
    """One candidate configuration; ``TuningConfig()`` is the untuned baseline."""

    graph_kernel: GraphKernelConfig = GraphKernelConfig()
    rewrites: RewriteConfig = RewriteConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    programs: ProgramConfig = ProgramConfig()
    kernels: tuple[KernelChoice, ...] = ()

    SECTIONS = {"graph_kernel": GraphKernelConfig, "rewrites": RewriteConfig,
                "runtime": RuntimeConfig, "programs": ProgramConfig}

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name).to_dict() for name in self.SECTIONS}
        data["kernels"] = [choice.to_dict() for choice in self.kernels]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TuningConfig":
        """From ``to_dict``'s form (missing sections and fields: their defaults); ConfigError
        ``config.<path>: <reason>`` for the first key or value out of its domain."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"config: expected an object, got {shown(data)}")
        unknown = sorted(set(data) - set(cls.SECTIONS) - {"kernels"})
        if unknown:
            raise ConfigError(f"config: unknown section {unknown[0]!r} "
                              f"(sections: {', '.join([*cls.SECTIONS, 'kernels'])})")
        try:
            sections = {name: section.from_dict(data.get(name, {}))
                        for name, section in cls.SECTIONS.items()}
            return cls(**sections, kernels=cls._choices_from_list(data.get("kernels", [])))
        except ConfigError as exc:
            raise ConfigError(f"config.{exc}") from None

    @staticmethod
    def _choices_from_list(kernels: Any) -> tuple[KernelChoice, ...]:
        if not isinstance(kernels, (list, tuple)):
            raise ConfigError(f"kernels: expected a list of kernel choices, got {shown(kernels)}")
        choices = tuple(KernelChoice.from_dict(c, f"kernels[{i}]") for i, c in enumerate(kernels))
        first: dict[str, int] = {}
        for index, choice in enumerate(choices):
            if first.setdefault(choice.workload, index) != index:
                raise ConfigError(f"kernels[{index}].workload: {choice.workload!r} has a choice "
                                  f"already (kernels[{first[choice.workload]}])")
        return choices

    def environment(self) -> dict[str, str]:
        """Environment variables this configuration needs before MindSpore compiles."""
        env = self.runtime.environment()
        flags = self.graph_kernel.flags()
        if flags:
            env["MS_DEV_GRAPH_KERNEL_FLAGS"] = flags
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning AKG threads starve MindSpore
        return env

    def flat(self) -> dict[str, Any]:
        """Every knob by dotted path, lists joined by commas: for MLflow parameters and tables."""
        flat: dict[str, Any] = {}
        for name in self.SECTIONS:
            for key, value in getattr(self, name).to_dict().items():
                flat[f"{name}.{key}"] = ",".join(value) if isinstance(value, list) else value
        for choice in self.kernels:
            flat[f"kernels.{choice.workload}"] = choice.kernel
            for key, value in choice.params:
                flat[f"kernels.{choice.workload}.{key}"] = value
        return flat

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, Any],
                   kernels: tuple[KernelChoice, ...] = ()) -> "TuningConfig":
        """Build from ``{"section.field": value}``; fields not given keep their default."""
        by_section: dict[str, dict[str, Any]] = {name: {} for name in cls.SECTIONS}
        for path, value in knobs.items():
            section, _, key = path.partition(".")
            if section not in by_section:
                raise ConfigError(f"{path}: unknown knob section {section!r}")
            by_section[section][key] = value
        return cls(**{name: cls.SECTIONS[name].from_dict(values)
                      for name, values in by_section.items()}, kernels=kernels)

    def canonical_hash(self) -> str:
        """Equal for configurations that run the same: the knobs that have no effect under other
        knobs' values hold their defaults (as the search space produces them; sections also
        reset settings that amount to their default, such as folding the BatchNorms of an
        empty list of modules), so the full dictionary is the canonical form."""
        canonical = dataclasses.replace(
            self, **{name: getattr(self, name).canonical() for name in self.SECTIONS},
            kernels=self.kernels if self.programs.enabled else ())
        text = json.dumps(canonical.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def non_default_knobs(self) -> dict[str, Any]:
        """The graph-kernel, rewrite and runtime knobs that differ from the untuned defaults
        (custom kernel choices are summarized by ``describe``)."""
        default = TuningConfig().flat()
        return {k: v for k, v in self.flat().items()
                if k in default and default[k] != v}

    def describe(self) -> str:
        """One line for tables: the non-default knobs and how many workloads run custom kernels."""
        parts = [f"{k}={v}" for k, v in self.non_default_knobs().items()]
        if self.kernels:
            by_kernel: dict[str, int] = {}
            for choice in self.kernels:
                by_kernel[choice.kernel] = by_kernel.get(choice.kernel, 0) + 1
            parts.append("kernels " + ", ".join(f"{k} on {n} workloads"
                                                for k, n in sorted(by_kernel.items())))
        return ", ".join(parts) or "none (the untuned defaults)"


def knob_field(path: str) -> dataclasses.Field:
    """The dataclass field behind a dotted knob path; ConfigError if there is none."""
    section, _, name = path.partition(".")
    cls = TuningConfig.SECTIONS.get(section)
    if cls is None:
        raise ConfigError(f"unknown knob {path!r}: no section {section!r} "
                          f"(sections: {sorted(TuningConfig.SECTIONS)})")
    for f in fields(cls):
        if f.name == name:
            return f
    raise ConfigError(f"unknown knob {path!r}")


def all_knob_paths() -> list[str]:
    return [f"{section}.{f.name}" for section, cls in TuningConfig.SECTIONS.items()
            for f in fields(cls)]
