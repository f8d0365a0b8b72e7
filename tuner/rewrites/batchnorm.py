"""Folding inference BatchNorm into the convolution that precedes it.

For a convolution ``y = W * x + b`` followed by ``BatchNorm(y) = (y - mean) * s + beta`` with
``s = gamma / sqrt(var + eps)``, the pair equals one convolution with ``W' = W * s`` (per output
channel) and ``b' = (b - mean) * s + beta``. The fold is exact up to float32 rounding (~1e-6).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from mindspore import Parameter, Tensor, nn

from tuner.rewrites.network import set_child


@dataclass(frozen=True)
class ConvBatchNormPair:
    """A convolution child immediately followed by a BatchNorm child of the same parent cell.

    ``parent`` is the cell holding both, ``conv_name``/``bn_name`` their attribute names (a
    SequentialCell's are its indices as strings), ``path`` the convolution's full name in the
    network (as ``cells_and_names`` spells it).
    """

    parent: nn.Cell
    conv_name: str
    bn_name: str
    path: str


def folded_weight_and_bias(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """The float32 (weight, bias) of the single convolution equivalent to ``bn(conv(x))``."""
    weight = conv.weight.asnumpy().astype(np.float64)
    out_channels = weight.shape[0]
    bias = conv.bias.asnumpy().astype(np.float64) if conv.has_bias else np.zeros(out_channels)
    gamma = bn.gamma.asnumpy().astype(np.float64)
    beta = bn.beta.asnumpy().astype(np.float64)
    mean = bn.moving_mean.asnumpy().astype(np.float64)
    var = bn.moving_variance.asnumpy().astype(np.float64)
    scale = gamma / np.sqrt(var + bn.eps)
    folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    folded_bias = (bias - mean) * scale + beta
    return folded_weight.astype(np.float32), folded_bias.astype(np.float32)


def conv_batchnorm_pairs(net: nn.Cell) -> Iterator[ConvBatchNormPair]:
    """Yield every Conv2d child directly followed (in declaration order) by a matching BatchNorm2d.

    Declaration order is taken as execution order, which holds for SequentialCell and for the
    conv/bn attribute pairs of mindcv's blocks; a network that declares them otherwise is caught
    by the trial's output check against the untuned reference.
    """
    for prefix, cell in net.cells_and_names():
        children = list(cell.name_cells().items())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(bn, nn.BatchNorm2d)
                and bn.num_features == conv.out_channels
            ):
                path = f"{prefix}.{conv_name}" if prefix else conv_name
                yield ConvBatchNormPair(cell, conv_name, bn_name, path)


def _folded_conv(conv: nn.Conv2d, weight: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        pad_mode=conv.pad_mode,
        padding=conv.padding,
        dilation=conv.dilation,
        group=conv.group,
        has_bias=True,
        data_format=conv.data_format,
    )
    folded.weight = Parameter(Tensor(weight), name=conv.weight.name)
    folded.bias = Parameter(Tensor(bias), name=conv.weight.name.rsplit(".", 1)[0] + ".bias")
    return folded


def fold_batchnorms(net: nn.Cell, under: tuple[str, ...] = ()) -> list[str]:
    """Fold every Conv2d+BatchNorm2d pair of ``net`` in place; return the folded convs' paths.

    ``under``: when non-empty, only pairs whose convolution path starts with one of these module
    names (``layer3`` matches ``layer3.0.conv1``) are folded. The caller must build or compile a
    fresh top-level cell afterwards (an already compiled one reuses its old graph).
    """
    folded_paths = []
    for pair in list(conv_batchnorm_pairs(net)):
        if under and not any(pair.path == m or pair.path.startswith(m + ".") for m in under):
            continue
        conv = pair.parent.name_cells()[pair.conv_name]
        bn = pair.parent.name_cells()[pair.bn_name]
        weight, bias = folded_weight_and_bias(conv, bn)
        set_child(pair.parent, pair.conv_name, _folded_conv(conv, weight, bias))
        set_child(pair.parent, pair.bn_name, nn.Identity())
        folded_paths.append(pair.path)
    return folded_paths
