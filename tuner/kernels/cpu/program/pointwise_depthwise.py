"""Fusing a 1x1 convolution into the depthwise convolution that reads it (an inverted
residual's expansion and depthwise layers), where the depthwise workload's kernel choice is the
runtime's fused step (``pointwise_depthwise_nhwc``, kernels/cpu/program/pointwise_depthwise.h).

The pattern is what the ops compute, never a model's classes: a depthwise 3x3 or 5x5
convolution (one filter a channel, channels a multiple of 16, stride 1 or 2, padding up to half
the window on each side, then at most a ReLU, ReLU6 or SiLU) whose input is a 1x1
convolution's result (stride 1, no padding, then at most a ReLU, ReLU6 or SiLU) that nothing
else reads. Where the choice's ``projection`` parameter is on, the 1x1 convolution that alone
reads the depthwise result (an inverted residual's projection: stride 1, no padding, then at
most a residual add of a value computed before the expansion and a ReLU, ReLU6 or SiLU) joins
the step too; with it, a depthwise layer without such a producer (an inverted residual of
expansion ratio 1, MobileNetV2's first block) is fused with its projection alone, the step
reading the depthwise layer's input rows as they are. A depthwise layer whose choice names the
fused step but that has neither runs on oneDNN.
"""
from __future__ import annotations

from dataclasses import replace

from tuner.kernels.cpu.program.kernel_graph import Act, Const, KernelGraph, KOp
from tuner.kernels.cpu.program.workloads import step_epilogue

POINTWISE_DEPTHWISE = "pointwise_depthwise_nhwc"
FUSED_KIND = "pointwise_depthwise"


def _activation(op: KOp, kg: KernelGraph) -> str | None:
    epilogue = step_epilogue(op, kg)
    return epilogue[1] if epilogue is not None and not epilogue[0] else None


def _is_depthwise(op: KOp, kg: KernelGraph) -> bool:
    if op.kind != "conv" or not isinstance(op.inputs[1], Const):
        return False
    weights = kg.shape(op.inputs[1])
    channels = kg.shape(op.inputs[0])[1]
    padding = op.attrs["padding"]
    stride = tuple(op.attrs["stride"])
    window = weights[2]
    return (op.attrs["groups"] == channels == weights[0]
            and tuple(weights[1:]) in ((1, 3, 3), (1, 5, 5))
            and channels % 16 == 0 and tuple(op.attrs["dilation"]) == (1, 1)
            and stride in ((1, 1), (2, 2)) and all(0 <= p <= window // 2 for p in padding)
            and _activation(op, kg) is not None)


def _is_1x1(op: KOp, kg: KernelGraph) -> bool:
    return (op.kind == "conv" and isinstance(op.inputs[1], Const) and op.attrs["groups"] == 1
            and tuple(kg.shape(op.inputs[1])[2:]) == (1, 1)
            and tuple(op.attrs["stride"]) == (1, 1) and tuple(op.attrs["padding"]) == (0,) * 4
            and isinstance(op.inputs[0], Act))


def _is_pointwise(op: KOp, kg: KernelGraph) -> bool:
    return _is_1x1(op, kg) and _activation(op, kg) is not None


def _fusable_depthwise(op: KOp, kg: KernelGraph) -> bool:
    return _is_depthwise(op, kg) and isinstance(op.inputs[0], Act)


def pointwise_producer(op: KOp, kg: KernelGraph) -> KOp | None:
    """The 1x1 convolution that the depthwise convolution ``op`` can absorb, or None."""
    if not _fusable_depthwise(op, kg):
        return None
    source = op.inputs[0]
    producer = kg.producer().get(source)
    users = kg.consumers().get(source, [])
    if producer is None or users != [op] or source == kg.output:
        return None
    return producer if _is_pointwise(producer, kg) else None


def projection_consumer(op: KOp, kg: KernelGraph, before: KOp) -> KOp | None:
    """The 1x1 convolution that alone reads the depthwise convolution ``op``'s result and can
    join its fused step (its residual, if any, computed before the op ``before``), or None."""
    users = kg.consumers().get(op.out, [])
    if len(users) != 1 or op.out == kg.output:
        return None
    consumer = users[0]
    if not _is_1x1(consumer, kg) or consumer.inputs[0] != op.out:
        return None
    epilogue = step_epilogue(consumer, kg)
    if epilogue is None:
        return None
    if epilogue[0]:
        residual = consumer.posts[0].operand
        producer = kg.producer().get(residual)
        position = {id(o): i for i, o in enumerate(kg.ops)}
        if not isinstance(residual, Act) or (
                producer is not None and position[id(producer)] >= position[id(before)]):
            return None
    return consumer


def fuse_pointwise_depthwise(kg: KernelGraph, choice_for) -> KernelGraph:
    """``kg``, or a copy of it in which each depthwise convolution whose choice is the fused
    step (``choice_for(op, kg)[1]``, a NativeKernel) and its 1x1 producer (and, with the
    choice's ``projection``, its 1x1 consumer) are one op of kind ``pointwise_depthwise``
    (attrs: ``pointwise``, ``depthwise``, ``projection``: the ops, the first or the last None,
    not both; ``params``: the choice's parameters)."""
    fused: dict[int, KOp] = {}
    absorbed: set[int] = set()
    for op in kg.ops:
        native = choice_for(op, kg)[1] if op.kind == "conv" else None
        if getattr(native, "kernel", None) != POINTWISE_DEPTHWISE:
            continue
        producer = pointwise_producer(op, kg)
        params = dict(native.params)
        projection = (projection_consumer(op, kg, producer or op)
                      if params.get("projection") and _fusable_depthwise(op, kg) else None)
        if producer is None and projection is None:
            continue
        last = projection or op
        residual = ([last.posts[0].operand] if projection is not None
                    and step_epilogue(projection, kg)[0] else [])
        source = producer.inputs[0] if producer is not None else op.inputs[0]
        fused[id(last)] = KOp(FUSED_KIND, [source, *residual], last.out,
                              {"pointwise": producer, "depthwise": op, "projection": projection,
                               "params": params},
                              nodes=[*op.nodes, *(producer.nodes if producer else []),
                                     *(projection.nodes if projection else [])],
                              fused=[*([*producer.fused, "conv1x1"] if producer else []),
                                     *op.fused,
                                     *(["conv1x1", *projection.fused] if projection else [])])
        absorbed.update({id(producer)} if producer is not None else set())
        absorbed.update({id(op)} if projection is not None else set())
    if not fused:
        return kg
    ops = [fused.get(id(op), op) for op in kg.ops if id(op) not in absorbed]
    return replace(kg, ops=ops, shapes=dict(kg.shapes), consts=list(kg.consts))
