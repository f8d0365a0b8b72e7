"""From a tuning configuration to the network a caller runs, in the caller's process: the
configuration's process settings, the device's programs and MindSpore-level rewrites on a
network, and the graph-compiled top-level cell around the result (held to the input shape its
programs fix). The floor under tuner.serving (other batch sizes), tuner.apply_config (applying
an export) and tuner.bundle (loading planned programs); trial processes use it too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mindspore import nn

from tuner.config import TuningConfig
from tuner.errors import UnsupportedDeviceError, UsageError
from tuner.rewrites.batchnorm import fold_batchnorms
from tuner.rewrites.fusion_scope import exclude_from_fusion
from tuner.rewrites.input_contract import InputContract
from tuner.rewrites.network import GraphNetwork, TunedNetwork


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
        from tuner.backends import kernel_library

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
