"""Replacing planned convolution units by custom cells (see plan.py for the patterns)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from mindspore import nn

from tuner.kernels.cpu.cells import (BuiltinConvUnit, CustomConv2d, FusedInvertedResidual,
                                     FusedResNetBlock)
from tuner.kernels.cpu.packing import WeightLayout
from tuner.kernels.cpu.plan import BlockPlan, ConvUnit, NetworkPlan
from tuner.kernels.cpu.probe import set_child
from tuner.rewrites.batchnorm import folded_weight_and_bias

# (workload key) -> (library path, weight layout) of the chosen variant
LibraryFor = Callable[[str], tuple[Path, WeightLayout]]


def folded_parameters(unit: ConvUnit) -> tuple[np.ndarray, np.ndarray]:
    if unit.bn is not None:
        return folded_weight_and_bias(unit.conv, unit.bn)
    weight = unit.conv.weight.asnumpy().astype(np.float32)
    bias = (unit.conv.bias.asnumpy().astype(np.float32) if unit.conv.has_bias
            else np.zeros(unit.conv.out_channels, np.float32))
    return weight, bias


def custom_cell(unit: ConvUnit, library: Path, layout: WeightLayout) -> CustomConv2d:
    weight, bias = folded_parameters(unit)
    w = unit.workload
    return CustomConv2d(library, layout, weight, bias, w.stride, w.padding, unit.activation,
                        name=unit.path or "custom_conv", workload=w.key)


def _is_chosen(unit, choices) -> bool:
    return isinstance(unit, ConvUnit) and unit.workload is not None and unit.workload.key in choices


def _unit_cell(unit: ConvUnit, choices, library_for: LibraryFor) -> nn.Cell:
    if _is_chosen(unit, choices):
        return custom_cell(unit, *library_for(unit.workload.key))
    return BuiltinConvUnit(unit.conv, unit.bn, unit.activation)


def _rewrite_block(block: BlockPlan, choices, library_for: LibraryFor) -> None:
    main = [_unit_cell(u, choices, library_for) for u in block.main]
    tail = _unit_cell(block.tail, choices, library_for)
    if block.kind == "resnet":
        down = block.down
        if isinstance(down, ConvUnit):
            down = _unit_cell(down, choices, library_for) if _is_chosen(down, choices) \
                else block.block.down_sample
        fused = FusedResNetBlock(main, tail, down)
    else:
        fused = FusedInvertedResidual(main, tail, block.use_residual)
    set_child(block.parent, block.name, fused)


def _rewrite_single(unit: ConvUnit, library_for: LibraryFor) -> None:
    set_child(unit.parent, unit.conv_name, custom_cell(unit, *library_for(unit.workload.key)))
    for name in (unit.bn_name, unit.act_name):
        if name:
            set_child(unit.parent, name, nn.Identity())


def rewrite_network(plan: NetworkPlan, choices: Mapping[str, object], library_for: LibraryFor) -> list[str]:
    """Rewrite the chosen units in place; return the paths of the convs now custom."""
    rewritten = []
    for block in plan.blocks:
        if any(_is_chosen(u, choices) for u in block.units()):
            _rewrite_block(block, choices, library_for)
            rewritten.extend(u.path for u in block.units() if _is_chosen(u, choices))
    for unit in plan.singles:
        if _is_chosen(unit, choices):
            _rewrite_single(unit, library_for)
            rewritten.append(unit.path)
    return rewritten
