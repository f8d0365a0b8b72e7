"""The int32 geometry tensor the hand-written kernels read (layout: GeometryIndex in
kernels/cpu/conv_common.h)."""
from __future__ import annotations

import numpy as np

ACTIVATION_CODES = {"none": 0, "relu": 1, "relu6": 2}


def geometry_array(kernel, stride, padding, activation: str) -> np.ndarray:
    """The int32 vector [KH, KW, SH, SW, PT, PB, PL, PR, ACT]; padding (top, bottom, left,
    right)."""
    return np.array([*kernel, *stride, *padding, ACTIVATION_CODES[activation]], dtype=np.int32)
