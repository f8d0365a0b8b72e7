"""Serving a tuned network at batch sizes it was not tuned at: the same configuration planned
again for the new batch (its kernel choices carried to the same problems at that batch), on a
pristine copy of the untuned network, on first use of that batch size."""
from __future__ import annotations

import copy
import dataclasses
from typing import Callable

from mindspore import nn

from tuner.config import TuningConfig
from tuner.tuned_network import rewrite_network, serving_network


def choices_at_batch(config: TuningConfig, net: nn.Cell, library, tuned_shape: tuple[int, ...],
                     shape: tuple[int, ...]) -> TuningConfig:
    """``config`` with each kernel choice moved to the workload that computes the same problem
    at ``shape``'s batch (Workload.batchless_key); choices without one are dropped (the
    kernel library's default runs those)."""
    if not config.kernels:
        return config
    tuned = {g.key: g.workload.batchless_key for g in library.find_workloads(net, tuned_shape)}
    at_shape = {g.workload.batchless_key: g.key for g in library.find_workloads(net, shape)}
    kernels = tuple(dataclasses.replace(choice, workload=at_shape[tuned[choice.workload]])
                    for choice in config.kernels
                    if tuned.get(choice.workload) in at_shape)
    return dataclasses.replace(config, kernels=kernels)


def batch_planner(net: nn.Cell, config: TuningConfig, tuned_shape: tuple[int, ...],
                  device: str) -> Callable[[int], nn.Cell] | None:
    """A function that plans ``config`` for another batch size on a copy of ``net`` (which
    must still be untuned) and returns the network to call; None where ``net`` cannot be
    copied (then other batch sizes run in chunks of the tuned one)."""
    try:
        pristine = copy.deepcopy(net)
    except Exception:  # noqa: BLE001  (a user's cell that cannot be copied)
        return None

    def plan(batch: int) -> nn.Cell:
        from tuner.backends import kernel_library

        shape = (batch, *tuned_shape[1:])
        fresh = copy.deepcopy(pristine)
        moved = choices_at_batch(config, fresh, kernel_library(device), tuned_shape, shape)
        return serving_network(rewrite_network(fresh, moved, shape, device), moved, shape)

    return plan
