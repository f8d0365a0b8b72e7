"""The workloads of a kernel graph's heavy ops, and the epilogues the kernels take."""
from __future__ import annotations

from tuner.kernels.cpu.geometry import ACTIVATION_CODES
from tuner.kernels.cpu.program.kernel_graph import Const, KernelGraph, KOp
from tuner.kernels.cpu.program.spec import Alg
from tuner.kernels.workload import ConvWorkload, MatMulWorkload, Workload


def workload_of(op: KOp, kg: KernelGraph) -> Workload | None:
    """The tiling problem of a convolution or matrix product (None for other ops)."""
    if op.kind == "conv":
        n, c, h, w = kg.shape(op.inputs[0])
        weights = kg.shape(op.inputs[1])
        top, left, bottom, right = op.attrs["padding"]
        residual, activation = hand_epilogue(op, kg) or (False, "none")
        return ConvWorkload(n, c, weights[0], h, w, tuple(weights[2:]), tuple(op.attrs["stride"]),
                            (top, bottom, left, right), tuple(op.attrs["dilation"]),
                            op.attrs["groups"], residual, activation)
    if op.kind == "matmul":
        a, b = kg.shape(op.inputs[0]), kg.shape(op.inputs[1])
        m, k = (a[-1], a[-2]) if op.attrs["transpose_a"] else (a[-2], a[-1])
        n = b[-2] if op.attrs["transpose_b"] else b[-1]
        return MatMulWorkload(tuple(a[:-2]), m, k, n, isinstance(op.inputs[1], Const))
    return None


def step_epilogue(op: KOp, kg: KernelGraph) -> tuple[bool, str] | None:
    """(has_residual, activation) of a convolution whose post-ops the runtime's own steps (the
    fused step, the GEMM step) take: an optional residual add of a full tensor, then an optional
    ReLU, ReLU6 or SiLU (swish with alpha 1); None otherwise."""
    posts = list(op.posts)
    residual = False
    if posts and posts[0].operand is not None:
        if posts[0].alg != Alg.ADD or kg.shape(posts[0].operand) != kg.shapes[op.out.id]:
            return None
        residual = True
        posts = posts[1:]
    if not posts:
        return residual, "none"
    if len(posts) > 1 or posts[0].operand is not None:
        return None
    post = posts[0]
    if post.alg == Alg.RELU and post.alpha == 0:
        return residual, "relu"
    if post.alg == Alg.CLIP and (post.alpha, post.beta) == (0.0, 6.0):
        return residual, "relu6"
    if post.alg == Alg.SWISH and post.alpha == 1.0:
        return residual, "silu"
    return None


def hand_epilogue(op: KOp, kg: KernelGraph) -> tuple[bool, str] | None:
    """(has_residual, activation) when a convolution's post-ops are what the hand-written
    kernels fuse: ``step_epilogue``'s but SiLU; None otherwise."""
    epilogue = step_epilogue(op, kg)
    return None if epilogue is None or epilogue[1] == "silu" else epilogue


STEP_ACTIVATION_CODES = {**ACTIVATION_CODES, "silu": 3}   # TileActivation, register_tile.h
