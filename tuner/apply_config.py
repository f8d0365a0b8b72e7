"""Applying a tuned configuration to a network the caller built, in the caller's process.

``apply(net, config)`` is what a deployment does with its own trained network (tuner.apply);
it returns a new top-level Cell (a network compiled before the rewrite would silently keep its
old graph) that runs as a compiled graph in either execution mode, MindSpore's default
PyNative mode included, and plans the configuration again for other batch sizes on first use
(tuner.serving). tuner.deploy.load builds the network an export names and calls it; bundles
are written through it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mindspore import nn

from tuner.config import TuningConfig
from tuner.errors import UsageError, one_line
from tuner.exported_config import ExportedConfig, check_config, read_export
from tuner.graph.capture import CaptureError
from tuner.models import fingerprint
from tuner.serving import batch_planner
from tuner.tuned_network import (apply_process_settings, fixes_input_shape, rewrite_network,
                                 serving_network)


def _as_export(config_or_path: Any) -> tuple[TuningConfig, ExportedConfig | None]:
    if isinstance(config_or_path, TuningConfig):
        check_config(config_or_path)
        return config_or_path, None
    if isinstance(config_or_path, ExportedConfig):
        check_config(config_or_path.config, config_or_path.target.device)
        return config_or_path.config, config_or_path
    if isinstance(config_or_path, (str, Path)):
        exported = read_export(config_or_path)
        return exported.config, exported
    raise TypeError(f"expected a TuningConfig, ExportedConfig or path, got {type(config_or_path)}")


def apply(net: nn.Cell, config_or_path: Any) -> nn.Cell:
    """Return ``net`` with the configuration applied, as a new top-level Cell for inference.

    ``config_or_path``: a TuningConfig, an ExportedConfig or the path of an exported JSON. With an
    export, ``net`` must have the tuned architecture (same parameter names and shapes).
    """
    config, exported = _as_export(config_or_path)
    input_shape = None
    device = "CPU"
    if exported is not None:
        actual = fingerprint(net)
        if actual != exported.fingerprint:
            raise UsageError(f"{exported.source}: tuned for {exported.target.model} "
                             f"(architecture {exported.fingerprint}); this network's is {actual}")
        input_shape = exported.target.input_shape
        device = exported.target.device
    net.set_train(False)
    apply_process_settings(config)
    plan_batch = None
    if input_shape is not None and fixes_input_shape(config):
        plan_batch = batch_planner(net, config, tuple(input_shape), device)
    try:
        return serving_network(rewrite_network(net, config, input_shape, device), config,
                               input_shape, plan_batch)
    except ValueError as exc:  # choices this network has no place for (another version?)
        where = exported.source if exported is not None else "config"
        raise UsageError(f"{where}: {exc}") from None
    except CaptureError as exc:  # an input shape the network cannot take
        where = exported.source if exported is not None else "config"
        shape = "x".join(map(str, input_shape or ()))
        raise UsageError(f"{where}: input_shape {shape}: the network cannot be run at it "
                         f"({one_line(exc)})") from None
