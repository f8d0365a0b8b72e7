"""The exported best-configuration JSON that deployment code loads (``tuner.load``)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.config import TuningConfig
from tuner.errors import ConfigError, UsageError, one_line, shown
from tuner.files import atomic_write_text, read_user_text
from tuner.models import FACTORY_NAME, TuningTarget, is_model_code

SCHEMA_VERSION = 1


class ExportError(ConfigError):
    """A bad exported configuration (unreadable, not JSON, a key or value out of its domain):
    one line ``<file>: <JSON path>: <reason>``. A UsageError: the CLIs exit with code 2."""


REQUIRED_KEYS = ("schema_version", "model", "input_shape", "device", "mindspore_version",
                 "fingerprint", "config")
OPTIONAL_KEYS = ("environment", "metrics", "baseline_metrics", "validation", "study")
MAX_INPUT_VALUES = 2 ** 30   # float32 values of the input (4 GiB): beyond, a tampered shape
MAX_BATCH = 4096
MAX_IMAGE_SIZE = 4096
TRUST_HINT = ("refused unless you trust this file: tuner.load(..., trust_model_code=True) or "
              "--trust-model-code")


@dataclass(frozen=True)
class ExportedConfig:
    """A configuration chosen by a study, with what was measured for it and for the baseline.

    ``fingerprint`` identifies the architecture (parameter names and shapes) it was tuned for;
    ``metrics``/``baseline_metrics`` are the trial records' figures (see tuner.trial.result);
    ``validation``, when present, the speedup re-measured against the baseline in interleaved
    rounds (median and range of the per-round ratios; see tuner.study.validation).
    """

    target: TuningTarget
    config: TuningConfig
    fingerprint: str
    mindspore_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    study: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.target.model,
            "input_shape": list(self.target.input_shape),
            "device": self.target.device,
            "mindspore_version": self.mindspore_version,
            "fingerprint": self.fingerprint,
            "config": self.config.to_dict(),
            "environment": self.config.environment(),
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "validation": self.validation,
            "study": self.study,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "ExportedConfig":
        """Read and check an export: every key and value, the kernel choices against the
        device's declared kernel space included. ExportError (one line: ``<source>: <JSON
        path>: <reason>``) for the first problem; nothing is built or compiled."""
        def fail(key: str, reason: str) -> ExportError:
            return ExportError(f"{source}: {key}: {reason}")

        if not isinstance(data, dict):
            raise ExportError(f"{source}: expected a JSON object, got {_json_type(data)}")
        version = data.get("schema_version")
        if type(version) is not int or version != SCHEMA_VERSION:
            raise ExportError(f"{source}: schema_version {shown(version)} is not supported "
                              f"(this tuner reads {SCHEMA_VERSION})")
        unknown = sorted(set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if unknown:
            raise fail(shown(unknown[0]), "unknown key (known: "
                       f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")
        missing = [key for key in REQUIRED_KEYS if key not in data]
        if missing:
            raise ExportError(f"{source}: missing key {missing[0]!r}")
        for key in ("model", "device", "fingerprint", "mindspore_version"):
            if not isinstance(data[key], str) or (key in ("model", "device") and not data[key]):
                raise fail(key, f"{shown(data[key])} is not a "
                           f"{'name' if key in ('model', 'device') else 'string'}")
        if is_model_code(data["model"]) and not FACTORY_NAME.fullmatch(data["model"]):
            raise fail("model", f"{shown(data['model'])} is neither a mindcv name nor "
                       "package.module:factory")
        batch, image_size = _input_shape(data["input_shape"], fail)
        device = _device_name(data["device"], fail)
        try:
            config = TuningConfig.from_dict(data["config"])
        except ConfigError as exc:
            raise ExportError(f"{source}: {exc}") from None
        problem = _kernel_problem(config, device)
        if problem:
            raise ExportError(f"{source}: config.{problem}")
        records = {key: _record(data.get(key, {}), key, fail) for key in OPTIONAL_KEYS}
        _check_records(records, fail)
        return cls(target=TuningTarget(data["model"], batch, image_size, device), config=config,
                   fingerprint=data["fingerprint"], mindspore_version=data["mindspore_version"],
                   metrics=records["metrics"], baseline_metrics=records["baseline_metrics"],
                   validation=records["validation"], study=records["study"], source=source)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             type(None): "null", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _input_shape(shape: Any, fail) -> tuple[int, int]:
    """(batch, image size) of ``[batch, 3, size, size]``."""
    if not (isinstance(shape, list) and len(shape) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
        raise fail("input_shape", f"{shown(shape)} is not [batch, 3, size, size] (integers)")
    batch, channels, height, width = shape
    if channels != 3 or height != width:
        raise fail("input_shape", f"{shape} is not [batch, 3, size, size]")
    if not 1 <= batch <= MAX_BATCH:
        raise fail("input_shape[0]", f"{shown(batch)} is not a batch size in [1, {MAX_BATCH}]")
    if height < 8:
        raise fail("input_shape[2]", f"{height} is below 8 pixels")
    if height > MAX_IMAGE_SIZE:
        raise fail("input_shape[2]", f"{shown(height)} is above {MAX_IMAGE_SIZE} pixels")
    if batch * 3 * height * width > MAX_INPUT_VALUES:
        raise fail("input_shape", f"{shown(shape)} is more than {MAX_INPUT_VALUES} input values")
    return batch, height


def _device_name(device: str, fail) -> str:
    from tuner.backends import backend_names

    names = {name.lower(): name for name in backend_names()}
    if device.lower() not in names:
        raise fail("device", f"{shown(device)} is not one of {', '.join(names.values())}")
    return names[device.lower()]


@functools.lru_cache(maxsize=None)
def _kernel_space(device: str):
    """The device's search space, whose declared custom kernels (tuner.space.kernel_knobs)
    check kernel choices; programs and trials use the same kernel parameter file."""
    from tuner.backends import get_backend
    from tuner.space import load_space

    return load_space(get_backend(device).default_space_path())


def _kernel_problem(config: TuningConfig, device: str, workloads=None) -> str | None:
    """Why the device's kernels cannot run ``config``'s programs and kernel choices (with
    ``workloads``, the model's WorkloadGroups, also for which of them), or None."""
    from tuner.backends import get_backend

    backend = get_backend(device)
    if config.programs.enabled and not backend.has_kernels:
        return (f"programs.granularity: {config.programs.granularity!r} needs custom kernels, "
                f"which device {backend.name} does not have ({backend.kernels_missing})")
    space = _kernel_space(device)
    if workloads is not None:
        space = space.with_model((), tuple(workloads))
    return space.invalid_reason(config, check_workloads=workloads is not None)


def _record(value: Any, key: str, fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, f"expected an object, got {_json_type(value)}")
    return value


def _check_records(records: dict[str, dict[str, Any]], fail) -> None:
    """The values of the export's records that commands read (free-form otherwise)."""
    for name, value in records["environment"].items():
        if not isinstance(value, str):
            raise fail(f"environment.{name}", f"{shown(value)} is not a string")
    for key in ("metrics", "baseline_metrics"):
        for name, value in records[key].items():
            if value is not None and not _is_number(value):
                raise fail(f"{key}.{name}", f"{shown(value)} is not a number or null")
    validation = records["validation"]
    if validation:
        for name in ("speedup", "spread", "rounds"):
            if name not in validation:
                raise fail(f"validation.{name}", "missing")
        if not _is_number(validation["speedup"]):
            raise fail("validation.speedup", f"{shown(validation['speedup'])} is not a number")
        spread = validation["spread"]
        if not (isinstance(spread, list) and len(spread) == 2 and all(map(_is_number, spread))):
            raise fail("validation.spread", f"{shown(spread)} is not [low, high]")
        rounds = validation["rounds"]
        if type(rounds) is not int or rounds < 1:
            raise fail("validation.rounds", f"{shown(rounds)} is not a positive integer")
    seed = records["study"].get("weights_seed", 0)
    if type(seed) is not int or not 0 <= seed < 2 ** 32:
        raise fail("study.weights_seed", f"{shown(seed)} is not an integer in [0, 2**32)")


def check_for_model(exported: ExportedConfig, workloads) -> None:
    """Refuse (ExportError) kernel choices for workloads the built model does not have, or
    with kernels that cannot run theirs: the check that needs the model (``workloads``: its
    WorkloadGroups, as the study's preparation found them); the rest was checked on reading."""
    problem = _kernel_problem(exported.config, exported.target.device, workloads)
    if problem:
        raise ExportError(f"{exported.source}: config.{problem}")


def check_model_trusted(exported: ExportedConfig, trust_model_code: bool = False) -> None:
    """Refuse (ExportError) an export naming a ``package.module:factory`` model, code that
    building it would import and run, unless the caller trusts the file; nothing is imported.
    mindcv names need no trust."""
    if is_model_code(exported.target.model) and not trust_model_code:
        raise ExportError(f"{exported.source}: model: {exported.target.model!r} is code "
                          f"(package.module:factory) that building it would run; {TRUST_HINT}")


def check_model(exported: ExportedConfig, trust_model_code: bool = False) -> None:
    """Refuse (ExportError) an export whose model is untrusted code (check_model_trusted) or
    cannot be created here (imports mindcv or the factory's module: for the commands that
    build the model in their own process)."""
    from tuner.models import check_model_name

    check_model_trusted(exported, trust_model_code)
    try:
        check_model_name(exported.target.model)
    except UsageError as exc:  # "--model NAME: why"
        raise ExportError(f"{exported.source}: model: {str(exc).split(': ', 1)[-1]}") from None


def check_config(config: TuningConfig, device: str = "CPU") -> None:
    """Refuse (ConfigError ``config.<path>: ...``) a configuration given in Python that the
    device's kernels cannot run, as reading an export does."""
    problem = _kernel_problem(config, device)
    if problem:
        raise ConfigError(f"config.{problem}")


def read_export(path: str | Path) -> ExportedConfig:
    """The export at ``path``, checked (ExportedConfig.from_dict); ExportError otherwise."""
    path = Path(path)
    text = read_user_text(path, ExportError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ExportError(f"{path}: not valid JSON here (nested too deeply)") from None
    except ValueError as exc:  # a number of more than 4300 digits
        raise ExportError(f"{path}: not valid JSON here ({one_line(exc).split(':')[0]})") from None
    return ExportedConfig.from_dict(data, source=str(path))


def write_export(exported: ExportedConfig, path: str | Path) -> Path:
    """Write ``exported`` to ``path`` atomically (tuner.files): a failed write keeps the
    previous export."""
    return atomic_write_text(path, json.dumps(exported.to_dict(), indent=2, sort_keys=False) + "\n")
