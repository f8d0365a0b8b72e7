"""What the CPU library checks its custom code against: MindSpore's builtin convolution of a
workload, with random weights and inputs drawn from a seed (the verification problem of a
hand-written kernel), and the comparison of an output with its reference (also the programs')."""
from __future__ import annotations

import numpy as np
from mindspore import Parameter, Tensor, nn

from tuner.kernels.base import VerifyResult
from tuner.kernels.workload import ConvWorkload


def compare(actual: np.ndarray, expected: np.ndarray, rel_tolerance: float) -> VerifyResult:
    if actual.shape != expected.shape:
        return VerifyResult(False, float("inf"), float("inf"),
                            f"shape {actual.shape} != reference {expected.shape}")
    abs_error = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    rel_error = abs_error / max(scale, np.finfo(np.float32).tiny)
    ok = bool(np.isfinite(rel_error) and rel_error <= rel_tolerance)
    message = "ok" if ok else f"max rel error {rel_error:.3g} > {rel_tolerance:g}"
    return VerifyResult(ok, abs_error, rel_error, message)


def verification_problem(workload: ConvWorkload, seed: int):
    """(builtin conv with random weights, its weight, its bias, random inputs) from ``seed``."""
    rng = np.random.default_rng(seed)
    conv, weight, bias = random_reference_conv(workload, rng)
    inputs = [Tensor(rng.standard_normal(workload.input_shape).astype(np.float32))]
    if workload.has_residual:
        inputs.append(Tensor(rng.standard_normal(workload.output_shape).astype(np.float32)))
    return conv, weight, bias, inputs


def reference_conv(workload: ConvWorkload) -> nn.Conv2d:
    """MindSpore's builtin convolution for a workload (with bias; weights to be set)."""
    return nn.Conv2d(workload.in_channels, workload.out_channels, workload.kernel,
                     stride=workload.stride, pad_mode="pad", padding=workload.padding,
                     dilation=workload.dilation, group=workload.groups, has_bias=True)


def random_reference_conv(workload: ConvWorkload,
                          rng: np.random.Generator) -> tuple[nn.Conv2d, np.ndarray, np.ndarray]:
    """The builtin convolution of a workload with random weight (scaled by 1/sqrt(fan-in)) and
    bias, and those arrays (to build the custom cell with the same values)."""
    conv = reference_conv(workload)
    fan_in = conv.weight.shape[1] * workload.kernel[0] * workload.kernel[1]
    weight = (rng.standard_normal(conv.weight.shape) / np.sqrt(fan_in)).astype(np.float32)
    bias = rng.standard_normal(workload.out_channels).astype(np.float32)
    conv.weight = Parameter(Tensor(weight), name="weight")
    conv.bias = Parameter(Tensor(bias), name="bias")
    return conv, weight, bias

