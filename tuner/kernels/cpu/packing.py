"""Weight layouts the kernels expect; done once when a custom cell is created."""
from __future__ import annotations

import numpy as np


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
