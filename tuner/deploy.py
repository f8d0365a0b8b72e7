"""Applying a tuned configuration to a network, in the caller's process.

``apply(net, config)`` is what a deployment does with its own trained network; ``load(path)``
builds the tuned model named by an exported JSON. Both return a new top-level Cell (a network
compiled before the rewrite would silently keep its old graph) that runs as a compiled graph
in either execution mode, MindSpore's default PyNative mode included.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mindspore import nn

from tuner.config import TuningConfig
from tuner.errors import UnsupportedDeviceError, UsageError, one_line
from tuner.graph.capture import CaptureError
from tuner.exported_config import ExportedConfig, check_config, check_model, read_export
from tuner.models import create_model, fingerprint
from tuner.rewrites.batchnorm import fold_batchnorms
from tuner.rewrites.fusion_scope import exclude_from_fusion
from tuner.rewrites.input_contract import InputContract
from tuner.rewrites.network import GraphNetwork, TunedNetwork
from tuner.serving import batch_planner


def apply_process_settings(config: TuningConfig) -> None:
    """Set the environment variables of ``config`` in this process.

    Fusion flags take effect for cells compiled afterwards. OpenMP reads its variables when the
    OpenMP runtime starts, so in a long-running process they only fully apply when set before
    MindSpore is imported (the exported JSON lists them under ``environment``). The execution
    mode is left as the caller has it: the tuned network compiles itself as a graph
    (TunedNetwork), as every configuration was measured.
    """
    os.environ.pop("MS_DEV_GRAPH_KERNEL_FLAGS", None)
    os.environ.update(config.environment())


def rewrite_network(net: nn.Cell, config: TuningConfig, input_shape: tuple[int, ...] | None = None,
                    device: str = "CPU", graph: Any = None, verify_in: Path | None = None,
                    seed: int = 0, rel_tolerance: float = 1e-3) -> nn.Cell:
    """Apply the network-level parts of ``config`` to ``net`` (in place) and wrap it anew:
    the device's programs first (they read the untuned network, or its captured ``graph``;
    ``verify_in``: check each against its reference output there, within ``rel_tolerance``,
    the bound the whole network is held to), then BatchNorm folding
    and fusion exclusions on what is left of MindSpore's own operators."""
    top = net
    if config.programs.enabled or config.kernels:
        from tuner.kernels import kernel_library

        if input_shape is None:
            raise UsageError("this configuration uses programs: give the input shape")
        try:
            library = kernel_library(device)
        except UnsupportedDeviceError as exc:
            raise UsageError(str(exc)) from None
        top = library.apply(net, config, tuple(input_shape), graph, verify_in, seed, rel_tolerance)
    return finish_network(net, top, config)


def finish_network(net: nn.Cell, top: nn.Cell, config: TuningConfig) -> nn.Cell:
    """BatchNorm folding and fusion exclusions of ``config`` on what is left of MindSpore's own
    operators in ``net`` (in place), and a new top-level cell around ``top`` (``net``, or the
    program that replaced all of it)."""
    scope = config.rewrites.fold_scope()
    if scope is not None:
        fold_batchnorms(net, under=scope)
    if config.graph_kernel.enabled and config.graph_kernel.excluded_modules:
        exclude_from_fusion(net, config.graph_kernel.excluded_modules)
    tuned = TunedNetwork(top)
    tuned.set_train(False)
    return tuned


def fixes_input_shape(config: TuningConfig) -> bool:
    """Whether ``config``'s programs fix the network's input shape."""
    return config.programs.enabled or bool(config.kernels)


def serving_network(tuned: nn.Cell, config: TuningConfig, input_shape: tuple[int, ...] | None,
                    plan_batch=None) -> GraphNetwork:
    """What deployment gets: ``tuned`` compiled as a graph, held to the input shape it was
    tuned at when its programs fix that shape (InputContract); ``plan_batch``: how to plan it
    for another batch size (tuner.serving.batch_planner)."""
    contract = None
    if input_shape is not None and fixes_input_shape(config):
        contract = InputContract(tuple(input_shape))
    return GraphNetwork(tuned, contract, plan_batch)


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


def load(path: str | Path, checkpoint: str | Path | None = None, *,
         trust_model_code: bool = False) -> nn.Cell:
    """Build the model named by an exported JSON, load ``checkpoint`` if given, apply the
    config; or load a bundle (its directory, or the ``best.json`` inside it), which carries its
    weights, libraries and planned programs.

    An export naming a ``package.module:factory`` model is refused (ExportError) unless
    ``trust_model_code``: building it imports that module and runs the factory (a bundle whose
    programs cover the whole network builds no model)."""
    from tuner.bundle import bundle_directory, load_bundle

    bundle = bundle_directory(path)
    if bundle is not None:
        if checkpoint is not None:
            raise UsageError(f"{bundle}: a bundle carries its weights; write it with "
                             f"--checkpoint {checkpoint} instead")
        return load_bundle(bundle, lambda exported: build_model(
            exported, trust_model_code=trust_model_code))
    exported = read_export(path)
    return apply(build_model(exported, checkpoint, trust_model_code), exported)


def build_model(exported: ExportedConfig, checkpoint: str | Path | None = None,
                trust_model_code: bool = False) -> nn.Cell:
    """The untuned model an export names, with ``checkpoint``'s weights if given; a
    ``package.module:factory`` model only with ``trust_model_code``."""
    import mindspore as ms

    check_model(exported, trust_model_code)
    net = create_model(exported.target.model)
    if checkpoint is not None:
        try:
            not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(str(checkpoint)))
        except (RuntimeError, ValueError, OSError) as exc:
            raise UsageError(f"{checkpoint}: cannot load checkpoint ({exc})") from None
        if not_loaded:
            raise UsageError(f"{checkpoint}: no value for parameter {not_loaded[0]!r}")
    return net
