"""Weight layouts the kernels expect; done once when a custom cell is created."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeightLayout:
    """What a built kernel variant expects: its kernel name and the compiled tiling the packed
    weight depends on (asked from the library itself, see library.weight_layout)."""

    kernel: str
    register_rows: int = 1  # MR of conv2d_dense / conv2d_winograd
    tile_size: int = 0      # m of conv2d_winograd


def pack_weight(layout: WeightLayout, weight: np.ndarray) -> np.ndarray:
    """(OC, C/groups, KH, KW) folded weight -> the layout's packed float32 array."""
    if layout.kernel == "conv2d_winograd":
        return pack_winograd_weight(weight, layout.tile_size, layout.register_rows)
    if layout.kernel == "conv2d_dense":
        return pack_dense_weight(weight, layout.register_rows)
    return pack_depthwise_weight(weight)


def pack_dense_weight(weight: np.ndarray, register_rows: int) -> np.ndarray:
    """(OC, C, KH, KW) -> (ceil(OC/MR), C*KH*KW, MR): panels of MR output channels, zero-padded,
    so the kernel reads MR consecutive weights per reduction step."""
    out_channels = weight.shape[0]
    reduction = int(np.prod(weight.shape[1:]))
    rows = -(-out_channels // register_rows) * register_rows
    padded = np.zeros((rows, reduction), dtype=np.float32)
    padded[:out_channels] = weight.reshape(out_channels, reduction)
    panels = padded.reshape(rows // register_rows, register_rows, reduction)
    return np.ascontiguousarray(panels.transpose(0, 2, 1))


def pack_depthwise_weight(weight: np.ndarray) -> np.ndarray:
    """(C, 1, KH, KW) -> (C, KH*KW)."""
    return np.ascontiguousarray(weight.reshape(weight.shape[0], -1).astype(np.float32))


# Winograd F(m x m, 3 x 3) weight transforms G (alpha x 3), alpha = m + 2, matching the input
# and output transforms of kernels/cpu/conv2d_winograd.cpp (points 0, +-1 [, +-2], infinity).
WINOGRAD_G = {
    2: np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
}


def winograd_weight(weight: np.ndarray, tile_size: int) -> np.ndarray:
    """(OC, C, 3, 3) -> U = G g G^T as (alpha*alpha, OC, C), computed in float64."""
    g = WINOGRAD_G[tile_size]
    u = np.einsum("ak,ockl,bl->aboc", g, weight.astype(np.float64), g)
    return u.reshape(g.shape[0] ** 2, *weight.shape[:2])


def pack_winograd_weight(weight: np.ndarray, tile_size: int, register_rows: int) -> np.ndarray:
    """(OC, C, 3, 3) -> (alpha^2, ceil(OC/MR), C, MR) float32: per transform point, the dense
    kernel's panel layout of U (MR consecutive output channels per channel step)."""
    return np.stack([pack_dense_weight(u[:, :, None, None], register_rows)
                     for u in winograd_weight(weight, tile_size)])


def pack_winograd_nhwc_weight(weight: np.ndarray, tile_size: int, register_vectors: int) -> np.ndarray:
    """(OC, C, 3, 3) -> (alpha^2, ceil(OC/P), ceil(C/16)*16, P) float32, P = 16 *
    register_vectors: per transform point, U's output channels in panels of P (the runtime's
    Winograd step loads a panel row per channel), channels and output channels zero-padded."""
    u = winograd_weight(weight, tile_size)  # (X, OC, C)
    points, out_channels, channels = u.shape
    panel = 16 * register_vectors
    padded = np.zeros((points, -(-out_channels // panel) * panel, -(-channels // 16) * 16),
                      np.float32)
    padded[:, :out_channels, :channels] = u
    panels = padded.reshape(points, -1, panel, padded.shape[2])
    return np.ascontiguousarray(panels.transpose(0, 1, 3, 2))


def pack_winograd_nhwc_raw_weight(weight: np.ndarray, register_vectors: int) -> np.ndarray:
    """(OC, C, 3, 3) -> (ceil(OC/P), ceil(C/16)*16, 9, P) float32, P = 16 * register_vectors:
    the raw 3x3 weights in panels of P output channels, for the runtime's Winograd step to
    transform per call; channels and output channels zero-padded."""
    out_channels, channels = weight.shape[:2]
    panel = 16 * register_vectors
    padded = np.zeros((-(-out_channels // panel) * panel, -(-channels // 16) * 16, 9), np.float32)
    padded[:out_channels, :channels] = weight.reshape(out_channels, channels, 9)
    panels = padded.reshape(-1, panel, padded.shape[1], 9)
    return np.ascontiguousarray(panels.transpose(0, 2, 3, 1))


def pack_gemm_conv_weight(weight: np.ndarray, register_vectors: int) -> np.ndarray:
    """(OC, C, kh, kw) -> (ceil(OC/P), kh*kw*C, P) float32, P = 16 * register_vectors: the
    runtime's GEMM convolution step (gemm_conv.h) walks a panel of P output channels row by row,
    a row per (window row, window column, input channel) as its gathered inputs are ordered;
    output channels zero-padded to whole panels."""
    out_channels = weight.shape[0]
    rows = weight.transpose(0, 2, 3, 1).reshape(out_channels, -1)
    panel = 16 * register_vectors
    padded = np.zeros((-(-out_channels // panel) * panel, rows.shape[1]), np.float32)
    padded[:out_channels] = rows
    return np.ascontiguousarray(padded.reshape(-1, panel, rows.shape[1]).transpose(0, 2, 1))


def pack_pointwise_depthwise(pointwise: np.ndarray | None, pointwise_bias: np.ndarray | None,
                             depthwise: np.ndarray, depthwise_bias: np.ndarray,
                             projection: np.ndarray | None = None,
                             projection_bias: np.ndarray | None = None) -> np.ndarray:
    """A 1x1 convolution (C, K, 1, 1) (or None: no expansion) and the depthwise one
    (C, 1, k, k) after it, with their biases (C,), and optionally the 1x1 projection
    (P, C, 1, 1) after those with its bias (P,), as the runtime's fused step reads them
    (pointwise_depthwise.h): one float32 array of w1 as [K][C], b1 [C] (with the expansion),
    the depthwise taps as [k*k][C], bd [C], then wp as [C][P'] and bp [P'] (P' = P rounded up
    to 16, zero-padded)."""
    channels = depthwise.shape[0]
    parts = [] if pointwise is None else [pointwise.reshape(channels, -1).T.reshape(-1),
                                          np.asarray(pointwise_bias, np.float32).reshape(-1)]
    parts += [depthwise.reshape(channels, -1).T.reshape(-1),
              np.asarray(depthwise_bias, np.float32).reshape(-1)]
    if projection is not None:
        outputs = projection.shape[0]
        padded = -(-outputs // 16) * 16
        weights = np.zeros((channels, padded), np.float32)
        weights[:, :outputs] = projection.reshape(outputs, channels).T
        bias = np.zeros(padded, np.float32)
        bias[:outputs] = np.asarray(projection_bias, np.float32).reshape(-1)
        parts += [weights.reshape(-1), bias]
    return np.concatenate(parts).astype(np.float32)
