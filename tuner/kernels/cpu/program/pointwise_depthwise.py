"""Fusing a 1x1 convolution into the 3x3 depthwise convolution that reads it (an inverted
residual's expansion and depthwise layers), where the depthwise workload's kernel choice is the
runtime's fused step (``pointwise_depthwise_nhwc``, kernels/cpu/program/pointwise_depthwise.h).

The pattern is what the ops compute, never a model's classes: a depthwise 3x3 convolution
(one filter a channel, channels a multiple of 16, stride 1 or 2, padding 0 or 1, then at most a
ReLU or ReLU6) whose input is a 1x1 convolution's result (stride 1, no padding, then at most a
ReLU or ReLU6) that nothing else reads. A depthwise layer whose choice names the fused step but
that has no such producer runs on oneDNN.
"""
from __future__ import annotations

from dataclasses import replace

from tuner.kernels.cpu.program.kernel_graph import Act, Const, KernelGraph, KOp
from tuner.kernels.cpu.program.workloads import hand_epilogue

POINTWISE_DEPTHWISE = "pointwise_depthwise_nhwc"
FUSED_KIND = "pointwise_depthwise"


def _activation(op: KOp, kg: KernelGraph) -> str | None:
    epilogue = hand_epilogue(op, kg)
    return epilogue[1] if epilogue is not None and not epilogue[0] else None


def _is_depthwise(op: KOp, kg: KernelGraph) -> bool:
    if op.kind != "conv" or not isinstance(op.inputs[1], Const):
        return False
    weights = kg.shape(op.inputs[1])
    channels = kg.shape(op.inputs[0])[1]
    top, left, _, _ = op.attrs["padding"]
    stride = tuple(op.attrs["stride"])
    return (op.attrs["groups"] == channels == weights[0] and tuple(weights[1:]) == (1, 3, 3)
            and channels % 16 == 0 and tuple(op.attrs["dilation"]) == (1, 1)
            and stride in ((1, 1), (2, 2)) and top in (0, 1) and left in (0, 1)
            and _activation(op, kg) is not None)


def _is_pointwise(op: KOp, kg: KernelGraph) -> bool:
    if op.kind != "conv" or not isinstance(op.inputs[1], Const):
        return False
    return (op.attrs["groups"] == 1 and tuple(kg.shape(op.inputs[1])[2:]) == (1, 1)
            and tuple(op.attrs["stride"]) == (1, 1) and tuple(op.attrs["padding"]) == (0,) * 4
            and isinstance(op.inputs[0], Act) and _activation(op, kg) is not None)


def pointwise_producer(op: KOp, kg: KernelGraph) -> KOp | None:
    """The 1x1 convolution that the depthwise convolution ``op`` can absorb, or None."""
    if not _is_depthwise(op, kg) or not isinstance(op.inputs[0], Act):
        return None
    source = op.inputs[0]
    producer = kg.producer().get(source)
    users = kg.consumers().get(source, [])
    if producer is None or users != [op] or source == kg.output:
        return None
    return producer if _is_pointwise(producer, kg) else None


def fuse_pointwise_depthwise(kg: KernelGraph, choice_for) -> KernelGraph:
    """``kg``, or a copy of it in which each depthwise convolution whose choice is the fused
    step (``choice_for(op, kg)[1]``, a NativeKernel) and its 1x1 producer are one op of kind
    ``pointwise_depthwise`` (attrs: ``pointwise``, ``depthwise``: the two ops; ``params``: the
    choice's parameters)."""
    fused: dict[int, KOp] = {}
    absorbed: set[int] = set()
    for op in kg.ops:
        native = choice_for(op, kg)[1] if op.kind == "conv" else None
        if getattr(native, "kernel", None) != POINTWISE_DEPTHWISE:
            continue
        producer = pointwise_producer(op, kg)
        if producer is None:
            continue
        fused[id(op)] = KOp(FUSED_KIND, [producer.inputs[0]], op.out,
                            {"pointwise": producer, "depthwise": op,
                             "params": dict(native.params)},
                            nodes=[*op.nodes, *producer.nodes],
                            fused=[*producer.fused, "conv1x1", *op.fused])
        absorbed.add(id(producer))
    if not fused:
        return kg
    ops = [fused.get(id(op), op) for op in kg.ops if id(op) not in absorbed]
    return replace(kg, ops=ops, shapes=dict(kg.shapes), consts=list(kg.consts))
