"""Fusion passes over a kernel graph: what a region computes, in fewer and cheaper steps.

Each pass recognises a data-flow pattern, never a model family: a per-channel affine map
(BatchNorm, bias) right after a convolution or a matrix product is folded into its weights; a
zero padding before a convolution or a pooling becomes its padding; ``x * sigmoid(x)`` is swish;
an element-wise function or a binary operation (a residual add, a gate) applied to the only use
of a result becomes a post-op of the step that computes it. What remains of the affine maps
becomes binary steps. Each fused op lists what it absorbed (``KOp.fused``) for explanations.
"""
from __future__ import annotations

import numpy as np

from tuner.kernels.cpu.program.kernel_graph import Act, Const, KernelGraph, KOp, Post
from tuner.kernels.cpu.program.lowering import Unsupported
from tuner.kernels.cpu.program.spec import Alg

_POST_HOSTS = ("conv", "matmul", "binary", "pool")
_NONNEGATIVE = {Alg.RELU: lambda a, b: True, Alg.CLIP: lambda a, b: a >= 0,
                Alg.LOGISTIC: lambda a, b: True, Alg.HARDSIGMOID: lambda a, b: True}


def _sole_user(kg: KernelGraph, act: Act, users) -> KOp | None:
    found = users.get(act, [])
    return found[0] if len(found) == 1 and act != kg.output else None


def _absorb(kg: KernelGraph, host: KOp, op: KOp, label: str) -> None:
    """``op`` is gone; its readers read ``host``'s result."""
    kg.ops.remove(op)
    kg.replace_uses(op.out, host.out)
    host.nodes.extend(op.nodes)
    host.fused.append(label)


def fold_affine(kg: KernelGraph) -> bool:
    """conv/matmul -> per-channel affine (BatchNorm, bias): into the weights and bias."""
    users = kg.consumers()
    producer = kg.producer()
    for op in list(kg.ops):
        if op.kind != "affine" or not isinstance(op.inputs[0], Act):
            continue
        host = producer.get(op.inputs[0])
        if host is None or host.posts or _sole_user(kg, host.out, users) is not op:
            continue
        rank = len(kg.shapes[host.out.id])
        if host.kind == "conv":
            weights = kg.consts[host.inputs[1].id].astype(np.float64)
            scale = op.attrs["scale"]
            if scale is not None:
                weights = weights * scale.reshape(-1, 1, 1, 1)
        elif host.kind == "matmul" and rank == 2 and isinstance(host.inputs[1], Const):
            weights = kg.consts[host.inputs[1].id].astype(np.float64)  # (K, N)
            scale = op.attrs["scale"]
            if scale is not None:
                weights = weights * scale.reshape(1, -1)
        else:
            continue
        channels = kg.shapes[host.out.id][1]
        bias = (kg.consts[host.attrs["bias"].id].astype(np.float64).reshape(-1)
                if host.attrs.get("bias") is not None else np.zeros(channels))
        if op.attrs["scale"] is not None:
            bias = bias * op.attrs["scale"]
        bias = bias + op.attrs["shift"]
        host.inputs[1] = kg.new_const(weights)
        # a matrix product's bias has the rank of its result (oneDNN's broadcast convention)
        host.attrs["bias"] = kg.new_const(bias if host.kind == "conv" else bias.reshape(1, -1))
        _absorb(kg, host, op, "batchnorm" if op.attrs["scale"] is not None else "bias")
        return True
    return False


def _nonnegative(kg: KernelGraph, act: Act) -> bool:
    op = kg.producer().get(act)
    if op is None:
        return False
    last = op.posts[-1] if op.posts else None
    if last is not None and last.operand is None:
        return last.alg in _NONNEGATIVE and _NONNEGATIVE[last.alg](last.alpha, last.beta)
    if op.kind == "eltwise" and not op.posts:
        return op.attrs["alg"] in _NONNEGATIVE and _NONNEGATIVE[op.attrs["alg"]](
            op.attrs["alpha"], op.attrs["beta"])
    if op.kind in ("pool", "concat") and not op.posts:
        return all(_nonnegative(kg, ref) for ref in op.inputs if isinstance(ref, Act))
    return False


def fold_padding(kg: KernelGraph) -> None:
    """Zero padding -> the padding of the convolution or pooling that reads it (a max pooling
    only over values known to be non-negative, where zeros never win)."""
    users = kg.consumers()
    for op in [o for o in kg.ops if o.kind == "pad"]:
        readers = users.get(op.out, [])
        ok = bool(readers) and op.out != kg.output
        for reader in readers:
            if reader.kind == "conv":
                continue
            if reader.kind == "pool" and reader.attrs["alg"] == Alg.POOL_AVG_EXCLUDE \
                    and not any(reader.attrs["padding"]):
                continue
            if reader.kind == "pool" and reader.attrs["alg"] == Alg.POOL_MAX \
                    and _nonnegative(kg, op.inputs[0]):
                continue
            ok = False
        if not ok:
            raise Unsupported("Pad that no convolution or pooling absorbs")
        for reader in readers:
            reader.attrs["padding"] = tuple(a + b for a, b in zip(reader.attrs["padding"],
                                                                   op.attrs["padding"]))
            if reader.kind == "pool" and reader.attrs["alg"] == Alg.POOL_AVG_EXCLUDE:
                reader.attrs["alg"] = Alg.POOL_AVG_INCLUDE
            reader.inputs = [op.inputs[0] if ref == op.out else ref for ref in reader.inputs]
            reader.nodes.extend(op.nodes)
            reader.fused.append("pad")
        kg.ops.remove(op)


def swish(kg: KernelGraph) -> bool:
    """x * sigmoid(x) -> swish(x)."""
    users = kg.consumers()
    producer = kg.producer()
    for op in kg.ops:
        if op.kind != "binary" or op.attrs["alg"] != Alg.MUL or op.posts:
            continue
        for x, s in (op.inputs, op.inputs[::-1]):
            gate = producer.get(s) if isinstance(s, Act) else None
            if gate is None or gate.kind != "eltwise" or gate.attrs["alg"] != Alg.LOGISTIC \
                    or gate.inputs[0] != x or _sole_user(kg, s, users) is not op:
                continue
            op.kind, op.inputs = "eltwise", [x]
            op.attrs = dict(alg=Alg.SWISH, alpha=1.0, beta=0.0)
            op.nodes.extend(gate.nodes)
            op.fused.append("sigmoid*x")
            kg.ops.remove(gate)
            return True
    return False


def _scalar(kg: KernelGraph, ref) -> float | None:
    if isinstance(ref, Const) and kg.consts[ref.id].size == 1:
        return float(kg.consts[ref.id].reshape(-1)[0])
    return None


def exact_gelu(kg: KernelGraph) -> None:
    """x * (erf(x / sqrt 2) + 1) * 0.5 (in the orders nn.GELU(approximate=False) writes it)
    -> gelu_erf(x); an erf left over is not something the runtime computes."""
    producer = kg.producer()
    users = kg.consumers()
    for erf in [o for o in kg.ops if o.kind == "erf"]:
        scaled = producer.get(erf.inputs[0]) if isinstance(erf.inputs[0], Act) else None
        if scaled is None or scaled.kind != "binary" or len(users.get(scaled.out, [])) != 1:
            raise Unsupported("Erf outside the exact GELU x * (1 + erf(x / sqrt 2)) / 2")
        factor = _scalar(kg, scaled.inputs[1])
        if factor is None or not np.isclose(factor if scaled.attrs["alg"] == Alg.MUL else
                                            1 / factor, 1 / np.sqrt(2), rtol=1e-6):
            raise Unsupported("Erf outside the exact GELU x * (1 + erf(x / sqrt 2)) / 2")
        x = scaled.inputs[0]
        chain = [scaled, erf]
        current, rest = erf, [("add", 1.0), ("mul_x", None), ("mul", 0.5)]
        for _ in range(3):
            readers = users.get(current.out, [])
            if len(readers) != 1 or readers[0].kind != "binary":
                raise Unsupported("Erf outside the exact GELU x * (1 + erf(x / sqrt 2)) / 2")
            step = readers[0]
            other = step.inputs[1] if step.inputs[0] == current.out else step.inputs[0]
            for index, (name, value) in enumerate(rest):
                alg = Alg.ADD if name == "add" else Alg.MUL
                if step.attrs["alg"] == alg and (other == x if name == "mul_x" else
                                                 _scalar(kg, other) == value):
                    rest.pop(index)
                    break
            else:
                raise Unsupported("Erf outside the exact GELU x * (1 + erf(x / sqrt 2)) / 2")
            chain.append(step)
            current = step
        last = chain[-1]
        for op in chain[:-1]:
            kg.ops.remove(op)
        last.kind, last.inputs, last.posts = "eltwise", [x], []
        last.attrs = dict(alg=Alg.GELU_ERF, alpha=0.0, beta=0.0)
        last.nodes = [n for op in chain for n in op.nodes]
        last.fused.append("gelu")
        producer, users = kg.producer(), kg.consumers()


def affine_to_binary(kg: KernelGraph) -> None:
    """What is left of the affine maps: x * scale + shift as binary steps."""
    for op in [o for o in kg.ops if o.kind == "affine"]:
        shape = kg.shapes[op.out.id]
        per_channel = (1, shape[1]) + (1,) * (len(shape) - 2) if len(shape) > 1 else shape
        shift = kg.new_const(np.asarray(op.attrs["shift"]).reshape(per_channel))
        if op.attrs["scale"] is None:
            op.kind, op.inputs, op.attrs = "binary", [op.inputs[0], shift], dict(alg=Alg.ADD)
        else:
            scale = kg.new_const(np.asarray(op.attrs["scale"]).reshape(per_channel))
            op.kind, op.inputs, op.attrs = "binary", [op.inputs[0], scale], dict(alg=Alg.MUL)
            op.posts.insert(0, Post(Alg.ADD, operand=shift))
        op.fused.append("batchnorm" if op.attrs["alg"] == Alg.MUL else "bias")


def scalar_binary(kg: KernelGraph) -> None:
    """x (op) scalar constant -> the linear function alpha * x + beta."""
    for op in kg.ops:
        if op.kind != "binary" or not isinstance(op.inputs[1], Const):
            continue
        value = kg.consts[op.inputs[1].id]
        if value.size != 1 or not isinstance(op.inputs[0], Act):
            continue
        v = float(value.reshape(-1)[0])
        linear = {Alg.MUL: (v, 0.0), Alg.ADD: (1.0, v), Alg.SUB: (1.0, -v),
                  Alg.DIV: (1.0 / v if v else None, 0.0)}.get(op.attrs["alg"])
        if linear is None or linear[0] is None:
            continue
        op.kind, op.inputs = "eltwise", [op.inputs[0]]
        op.attrs = dict(alg=Alg.LINEAR, alpha=linear[0], beta=linear[1])


def transposed_operands(kg: KernelGraph) -> None:
    """A matrix product reading a transpose of the last two axes (attention's ``k.T``) reads
    the untransposed tensor with its transpose flag flipped: no copy."""
    users = kg.consumers()
    producer = kg.producer()
    for op in [o for o in kg.ops if o.kind == "matmul"]:
        for index, flag in ((0, "transpose_a"), (1, "transpose_b")):
            ref = op.inputs[index]
            source = producer.get(ref) if isinstance(ref, Act) else None
            if source is None or source.kind != "transpose" or _sole_user(kg, ref, users) is not op:
                continue
            rank = len(source.attrs["perm"])
            if rank < 2 or tuple(source.attrs["perm"]) != (*range(rank - 2), rank - 1, rank - 2):
                continue
            op.inputs[index] = source.inputs[0]
            op.attrs[flag] = not op.attrs[flag]
            op.nodes.extend(source.nodes)
            op.fused.append("transpose")
            kg.ops.remove(source)
            users, producer = kg.consumers(), kg.producer()


def through_reshape(kg: KernelGraph) -> bool:
    """An element-wise function, or a binary operation with a constant that broadcasts along
    the last axis, applied to a reshape of a result that keeps its last axis (a dense layer on
    channels-last data) moves before the reshape, next to the operation it can fuse into."""
    users = kg.consumers()
    producer = kg.producer()
    for reshape in [o for o in kg.ops if o.kind == "reshape"]:
        source = reshape.inputs[0]
        host = producer.get(source) if isinstance(source, Act) else None
        readers = users.get(reshape.out, [])
        if host is None or host.kind not in _POST_HOSTS or len(readers) != 1 \
                or _sole_user(kg, source, users) is not reshape or reshape.out == kg.output:
            continue
        (op,) = readers
        before, after = kg.shapes[source.id], kg.shapes[reshape.out.id]
        if op.kind == "binary":
            operand = op.inputs[1]
            if not isinstance(operand, Const) or op.inputs[0] != reshape.out \
                    or before[-1:] != after[-1:]:
                continue
            constant = kg.consts[operand.id]
            if any(d != 1 for d in constant.shape[:-1]):
                continue
            op.inputs[1] = kg.new_const(constant.reshape((1,) * (len(before) - 1) +
                                                         constant.shape[-1:]))
        elif op.kind != "eltwise" or op.posts:
            continue
        # host -> op -> reshape: op computes on the host's shape, the reshape follows it
        result = op.out
        op.inputs[0] = source
        op.out = kg.new_act(before)
        reshape.inputs = [op.out]
        kg.replace_uses(result, reshape.out)
        kg.sort()
        return True
    return False


def _post_operand_ok(kg: KernelGraph, host: KOp, operand) -> bool:
    """oneDNN's binary post-ops take a full tensor, a per-channel vector or a scalar."""
    dst = kg.shapes[host.out.id]
    shape = kg.shape(operand)
    if len(shape) != len(dst):
        return False
    if tuple(shape) == tuple(dst) or all(d == 1 for d in shape):
        return True
    return len(dst) >= 2 and shape[1] == dst[1] and all(
        d == 1 for i, d in enumerate(shape) if i != 1)


def fuse_posts(kg: KernelGraph, kinds: frozenset[str] = frozenset({"eltwise", "binary"})) -> bool:
    """An element-wise function or binary operation (of ``kinds``) on the only use of a result
    -> a post-op."""
    users = kg.consumers()
    producer = kg.producer()
    for op in kg.ops:
        if op.kind not in kinds or op.posts:
            continue
        candidates = [op.inputs[0]]
        if op.kind == "binary" and op.attrs["alg"] in (Alg.ADD, Alg.MUL, Alg.MAX, Alg.MIN):
            candidates.append(op.inputs[1])
        for index, x in enumerate(candidates):
            host = producer.get(x) if isinstance(x, Act) else None
            if host is None or host.kind not in _POST_HOSTS or _sole_user(kg, x, users) is not op:
                continue
            if op.kind == "eltwise":
                host.posts.append(Post(op.attrs["alg"], op.attrs["alpha"], op.attrs["beta"]))
                _absorb(kg, host, op, op.attrs["alg"].name.lower())
                return True
            other = op.inputs[1 - index]
            if isinstance(other, Act) and host.out in kg.ancestors(other):
                continue
            if kg.shape(op.out) != kg.shape(x) or not _post_operand_ok(kg, host, other):
                continue
            host.posts.append(Post(op.attrs["alg"], operand=other))
            _absorb(kg, host, op, op.attrs["alg"].name.lower())
            return True
    return False


FUSION_PATTERNS = {
    "fold_normalisation": "a BatchNorm or bias after a convolution or dense layer folded into it",
    "eltwise_post_ops": "an activation on the only use of a result as its producer's post-op",
    "binary_post_ops": "a residual add, gate or scale on the only use of a result as a post-op",
}


def fuse(kg: KernelGraph, unfused: frozenset[str] = frozenset()) -> KernelGraph:
    """Every pass, to a fixed point, then execution order; the graph is changed in place. The
    patterns named in ``unfused`` (keys of FUSION_PATTERNS) are left as steps of their own."""
    unknown = set(unfused) - set(FUSION_PATTERNS)
    if unknown:
        raise ValueError(f"unknown fusion patterns {sorted(unknown)}")
    while "fold_normalisation" not in unfused and fold_affine(kg):
        pass
    fold_padding(kg)
    exact_gelu(kg)
    while swish(kg):
        pass
    affine_to_binary(kg)
    scalar_binary(kg)
    transposed_operands(kg)
    while through_reshape(kg):
        pass
    post_kinds = frozenset(kind for kind in ("eltwise", "binary")
                           if f"{kind}_post_ops" not in unfused)
    while post_kinds and fuse_posts(kg, post_kinds):
        pass
    kg.prune()
    kg.sort()
    return kg
