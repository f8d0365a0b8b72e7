"""The exported best-configuration JSON that deployment code loads (``tuner.load``)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.config import TuningConfig
from tuner.errors import ConfigError, UsageError
from tuner.models import TuningTarget

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ExportedConfig:
    """A configuration chosen by a study, with what was measured for it and for the baseline.

    ``fingerprint`` identifies the architecture (parameter names and shapes) it was tuned for;
    ``metrics``/``baseline_metrics`` are the trial records' figures (see tuner.runner.record);
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
        if not isinstance(data, dict):
            raise UsageError(f"{source}: expected a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UsageError(f"{source}: schema_version {version!r} is not supported "
                             f"(this tuner reads {SCHEMA_VERSION})")
        try:
            shape = data["input_shape"]
            if not (isinstance(shape, list) and len(shape) == 4 and shape[2] == shape[3]):
                raise UsageError(f"{source}: input_shape: expected [batch, 3, size, size]")
            target = TuningTarget(str(data["model"]), int(shape[0]), int(shape[2]),
                                  str(data["device"]))
            config = TuningConfig.from_dict(data["config"])
            return cls(target=target, config=config, fingerprint=str(data["fingerprint"]),
                       mindspore_version=str(data["mindspore_version"]),
                       metrics=dict(data.get("metrics", {})),
                       baseline_metrics=dict(data.get("baseline_metrics", {})),
                       validation=dict(data.get("validation", {})),
                       study=dict(data.get("study", {})), source=source)
        except KeyError as exc:
            raise UsageError(f"{source}: missing key {exc.args[0]!r}") from None
        except ConfigError as exc:
            raise UsageError(f"{source}: config.{exc}") from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{source}: malformed value ({exc})") from None


def read_export(path: str | Path) -> ExportedConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    return ExportedConfig.from_dict(data, source=str(path))


def write_export(exported: ExportedConfig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(exported.to_dict(), indent=2, sort_keys=False) + "\n")
    return path
