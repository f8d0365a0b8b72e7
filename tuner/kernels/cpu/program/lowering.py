"""From captured MindSpore primitives (tuner.graph.capture) to a kernel graph.

Each supported primitive becomes one kernel op with the same semantics (MindSpore's attribute
conventions translated: pad lists, 'same' padding, NCHW strides, transposed matrix operands);
parameters become constants. ``unsupported_reason(node, graph)`` says, without building
anything, why a primitive cannot run in a program (the region containing it stays builtin).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from tuner.graph.graph import Constant, Graph, GraphInput, Node, NodeOutput, ParamRef, TupleOf
from tuner.kernels.cpu.program.kernel_graph import Act, Const, KernelGraph, KOp, Ref
from tuner.kernels.cpu.program.spec import Alg

ELTWISE = {  # MindSpore primitive -> (alg, alpha, beta)
    "ReLU": (Alg.RELU, 0.0, 0.0),
    "ReLU6": (Alg.CLIP, 0.0, 6.0),
    "Sigmoid": (Alg.LOGISTIC, 0.0, 0.0),
    "Tanh": (Alg.TANH, 0.0, 0.0),
    "GeLU": (Alg.GELU_TANH, 0.0, 0.0),   # MindSpore's GeLU primitive is the tanh form
    "FastGeLU": None,  # x * sigmoid(1.702 x) is not one of oneDNN's functions
    "Erf": (None, 0.0, 0.0),             # only inside x * (1 + erf(x / sqrt 2)) / 2 (fusion)
    "HSwish": (Alg.HARDSWISH, 1.0 / 6.0, 0.5),
    "HSigmoid": (Alg.HARDSIGMOID, 1.0 / 6.0, 0.5),
    "SiLU": (Alg.SWISH, 1.0, 0.0),
}
BINARY = {"Add": Alg.ADD, "AddExt": Alg.ADD, "InplaceAddExt": Alg.ADD, "Adds": Alg.ADD,
          "Sub": Alg.SUB, "SubExt": Alg.SUB, "Mul": Alg.MUL, "Muls": Alg.MUL, "RealDiv": Alg.DIV,
          "Div": Alg.DIV, "Divs": Alg.DIV, "Maximum": Alg.MAX, "Minimum": Alg.MIN}
COMMUTATIVE = {Alg.ADD, Alg.MUL, Alg.MAX, Alg.MIN}
LAYOUT_OPS = {"Reshape", "Flatten", "Squeeze", "ExpandDims", "Unsqueeze"}
# pad_mode of the functional pooling primitives (mindspore.ops.auto_generate's enumeration)
PAD_MODE_SAME, PAD_MODE_VALID = 1, 2


# MindSpore primitive -> the Lowering method that lowers it (filled by @_lowers below)
_PRIMITIVE_LOWERINGS: dict[str, Callable[["Lowering", Node], None]] = {}


def _lowers(primitive: str):
    """Registers the decorated Lowering method as the lowering of ``primitive``."""
    def register(method):
        _PRIMITIVE_LOWERINGS[primitive] = method
        return method
    return register


class Unsupported(Exception):
    """A primitive the programs cannot run; the message is the reason (one line)."""


def _const(operand, what: str):
    if not isinstance(operand, Constant):
        raise Unsupported(f"{what} is not a constant")
    return operand.value


def _pairs(value, count: int = 2) -> tuple[int, ...]:
    values = tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
    if len(values) == 1:
        values = values * count
    return values[-count:]


def _same_padding(size: int, out: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def unsupported_reason(node: Node, graph: Graph) -> str | None:
    """Why ``node`` cannot run in a program, or None; cheap checks only (no weights read)."""
    if node.op not in SUPPORTED:
        return f"{node.op} is not supported by the program runtime"
    if any(len(shape) > 12 for shape in node.shapes):
        return f"{node.op}: rank above 12"
    if node.op == "Conv2D" and node.attrs.get("format", "NCHW") != "NCHW":
        return "Conv2D: data format other than NCHW"
    if node.op in ("MaxPool", "AvgPool") and node.attrs.get("format", "NCHW") != "NCHW":
        return f"{node.op}: data format other than NCHW"
    if node.op == "StridedSlice":
        masks = [c.value for c in node.inputs[4:] if isinstance(c, Constant)]
        if len(masks) >= 5 and (masks[2] or masks[3]):
            return "StridedSlice with ellipsis or new-axis masks"
        strides = node.inputs[3].value if isinstance(node.inputs[3], Constant) else None
        if strides is None or any(int(s) != 1 for s in strides):
            return "StridedSlice with strides other than 1"
    if node.op == "BroadcastTo" and not isinstance(node.inputs[0], (ParamRef, Constant)):
        return "BroadcastTo of an activation"
    if node.op == "AvgPool" and len(node.inputs) > 3 and isinstance(node.inputs[3], Constant) \
            and node.inputs[3].value not in (PAD_MODE_VALID, PAD_MODE_SAME):
        return "AvgPool with explicit padding"
    if node.op == "AvgPool3D" and (node.attrs.get("ceil_mode") or node.attrs.get("divisor_override")
                                   or tuple(node.attrs.get("kernel_size", ()))[2:3] != (1,)):
        return "AvgPool3D other than a 2-D pooling (ceil mode, a divisor, a depth window)"
    if node.op == "InplaceAddExt" and len(node.inputs) > 2 and isinstance(node.inputs[2], Constant) \
            and node.inputs[2].value not in (1, 1.0):
        return "InplaceAddExt with alpha other than 1"
    return None


class Lowering:
    """Builds the kernel graph of one region: ``nodes`` (ids, in order) reading ``source``."""

    def __init__(self, graph: Graph, parameters: Callable[[str], np.ndarray]):
        self.graph = graph
        self.parameters = parameters

    def lower(self, node_ids: list[int], source, output: NodeOutput) -> KernelGraph:
        kg = KernelGraph([], {}, [], Act(0), Act(0))
        kg.input = kg.new_act(self._operand_shape(source))
        self.kg = kg
        self.env: dict = {source: kg.input}
        for node_id in node_ids:
            node = self.graph.nodes[node_id]
            reason = unsupported_reason(node, self.graph)
            if reason:
                raise Unsupported(reason)
            self._lower(node)
        result = self.env.get(output)
        if not isinstance(result, Act):
            raise Unsupported("the region's output is not computed inside it")
        kg.output = result
        return kg

    # -- operands -------------------------------------------------------------------------
    def _operand_shape(self, operand) -> tuple[int, ...]:
        if isinstance(operand, GraphInput):
            return self.graph.input_shapes[operand.index]
        node = self.graph.nodes[operand.node]
        return node.shapes[operand.index] if len(node.shapes) > operand.index else node.shape

    def ref(self, operand) -> Ref:
        if isinstance(operand, (NodeOutput, GraphInput)):
            if operand not in self.env:
                raise Unsupported("reads a value computed outside the region")
            return self.env[operand]
        if isinstance(operand, ParamRef):
            return self.kg.new_const(np.asarray(self.parameters(operand.name), np.float32))
        if isinstance(operand, Constant) and isinstance(operand.value, np.ndarray):
            return self.kg.new_const(operand.value.astype(np.float32))
        if isinstance(operand, Constant) and isinstance(operand.value, (int, float)) \
                and not isinstance(operand.value, bool):
            return self.kg.new_const(np.asarray(operand.value, np.float32))
        raise Unsupported(f"operand {type(operand).__name__} is not a tensor")

    def array(self, ref: Ref) -> np.ndarray | None:
        return self.kg.consts[ref.id] if isinstance(ref, Const) else None

    def emit(self, node: Node, kind: str, inputs: list[Ref], shape=None, index: int = 0,
             **attrs) -> Act:
        out = self.kg.new_act(node.shape if shape is None else shape)
        self.kg.ops.append(KOp(kind, inputs, out, attrs, nodes=[node.id]))
        self.env[NodeOutput(node.id, index)] = out
        return out

    # -- primitives -----------------------------------------------------------------------
    def _lower(self, node: Node) -> None:
        op = node.op
        if op in ELTWISE:
            alg, alpha, beta = ELTWISE[op]
            kind = "erf" if op == "Erf" else "eltwise"
            self.emit(node, kind, [self.ref(node.inputs[0])], alg=alg, alpha=alpha, beta=beta)
        elif op in BINARY:
            self._binary(node, BINARY[op])
        elif op in LAYOUT_OPS:
            self._reshape(node, self.ref(node.inputs[0]), node.shape)
        else:
            _PRIMITIVE_LOWERINGS[op](self, node)

    def _reshape(self, node: Node, src: Ref, shape, index: int = 0) -> Act:
        if isinstance(src, Const):
            const = self.kg.new_const(self.array(src).reshape(shape))
            self.env[NodeOutput(node.id, index)] = const
            return const
        if tuple(self.kg.shape(src)) == tuple(shape):
            self.env[NodeOutput(node.id, index)] = src
            return src
        return self.emit(node, "reshape", [src], shape=shape, index=index)

    @_lowers("Conv2D")
    def _conv2d(self, node: Node) -> None:
        x, w = self.ref(node.inputs[0]), self.ref(node.inputs[1])
        weights = self.array(w)
        if weights is None:
            raise Unsupported("Conv2D with computed weights")
        n, c, h, width = self.kg.shape(x)
        out_h, out_w = node.shape[2], node.shape[3]
        kh, kw = weights.shape[2], weights.shape[3]
        stride = _pairs(node.attrs.get("stride", 1))
        dilation = _pairs(node.attrs.get("dilation", 1))
        groups = int(node.attrs.get("group", node.attrs.get("groups", 1)))
        mode = str(node.attrs.get("pad_mode", "pad")).lower()
        if mode == "same":
            top, bottom = _same_padding(h, out_h, kh, stride[0], dilation[0])
            left, right = _same_padding(width, out_w, kw, stride[1], dilation[1])
        elif mode == "valid":
            top = bottom = left = right = 0
        else:
            pads = node.attrs.get("pad_list") or node.attrs.get("pad") or (0, 0, 0, 0)
            top, bottom, left, right = _pairs(pads, 4) if len(pads) == 4 else _pairs(pads[0], 4)
        if weights.shape[1] * groups != c:
            raise Unsupported("Conv2D: weight channels do not match the input")
        self.emit(node, "conv", [x, w], groups=groups, stride=stride, dilation=dilation,
                  padding=(top, left, bottom, right), bias=None)

    @_lowers("BatchNorm")
    def _batchnorm(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        gamma, beta, mean, var = (self.array(self.ref(o)) for o in node.inputs[1:5])
        if any(a is None for a in (gamma, beta, mean, var)):
            raise Unsupported("BatchNorm with computed statistics")
        epsilon = float(node.attrs.get("epsilon", 1e-5))
        if len(node.inputs) > 6 and isinstance(node.inputs[6], Constant):
            epsilon = float(node.inputs[6].value)
        if len(node.inputs) > 5 and isinstance(node.inputs[5], Constant) and node.inputs[5].value:
            raise Unsupported("BatchNorm in training mode")
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        self.emit(node, "affine", [x], shape=self.kg.shape(x), scale=scale, shift=shift)

    @_lowers("BiasAdd")
    def _biasadd(self, node: Node) -> None:
        x, b = self.ref(node.inputs[0]), self.ref(node.inputs[1])
        bias = self.array(b)
        if bias is None:
            raise Unsupported("BiasAdd of a computed bias")
        self.emit(node, "affine", [x], shape=self.kg.shape(x), scale=None,
                  shift=bias.astype(np.float64))

    def _binary(self, node: Node, alg: Alg) -> None:
        a, b = self.ref(node.inputs[0]), self.ref(node.inputs[1])
        out_shape = tuple(node.shape)
        if tuple(self.kg.shape(a)) != out_shape or isinstance(a, Const):
            if alg in COMMUTATIVE and (tuple(self.kg.shape(b)) == out_shape and isinstance(b, Act)):
                a, b = b, a
            else:
                raise Unsupported(f"{node.op}: the first operand broadcasts")
        if isinstance(b, Const):
            array = self.array(b)
            array = array.reshape((1,) * (len(out_shape) - array.ndim) + array.shape)
            b = self.kg.new_const(array)
        elif len(self.kg.shape(b)) != len(out_shape):
            raise Unsupported(f"{node.op}: operands of different ranks")
        self.emit(node, "binary", [a, b], alg=alg)

    def _pool(self, node: Node, alg: Alg, kernel, stride, pad_mode: str) -> None:
        x = self.ref(node.inputs[0])
        _, _, h, w = self.kg.shape(x)
        out_h, out_w = node.shape[2], node.shape[3]
        if pad_mode == "same":
            top, bottom = _same_padding(h, out_h, kernel[0], stride[0], 1)
            left, right = _same_padding(w, out_w, kernel[1], stride[1], 1)
        else:
            top = left = 0
            bottom = (out_h - 1) * stride[0] + kernel[0] - h
            right = (out_w - 1) * stride[1] + kernel[1] - w
            if bottom > 0 or right > 0:
                raise Unsupported(f"{node.op}: ceil-mode output size")
            bottom, right = 0, 0
        self.emit(node, "pool", [x], alg=alg, kernel=tuple(kernel), stride=tuple(stride),
                  padding=(top, left, bottom, right))

    @_lowers("MaxPool")
    def _maxpool(self, node: Node) -> None:
        kernel = _pairs(node.attrs.get("kernel_size", 1))
        stride = _pairs(node.attrs.get("strides", 1))
        self._pool(node, Alg.POOL_MAX, kernel, stride, str(node.attrs.get("pad_mode", "VALID")).lower())

    @_lowers("AvgPool")
    def _avgpool(self, node: Node) -> None:
        """'same' padding averages only over the input's elements (TensorFlow's rule)."""
        if len(node.inputs) > 2:  # functional primitive: kernel, strides, pad_mode as inputs
            kernel = _pairs(_const(node.inputs[1], "AvgPool kernel"))
            stride = _pairs(_const(node.inputs[2], "AvgPool strides"))
            same = len(node.inputs) > 3 and node.inputs[3].value == PAD_MODE_SAME
        else:
            kernel = _pairs(node.attrs.get("kernel_size", 1))
            stride = _pairs(node.attrs.get("strides", 1))
            same = str(node.attrs.get("pad_mode", "VALID")).lower() == "same"
        self._pool(node, Alg.POOL_AVG_EXCLUDE, kernel, stride, "same" if same else "valid")

    @_lowers("AvgPool3D")
    def _avgpool3d(self, node: Node) -> None:
        """nn.AvgPool2d with explicit padding: a 3-D pooling of depth 1 (between an ExpandDims
        and a Squeeze), as the 2-D pooling it is."""
        x = self.ref(node.inputs[0])
        n, c, d, h, w = self.kg.shape(x)
        kernel = tuple(int(k) for k in node.attrs["kernel_size"])[-2:]
        stride = tuple(int(k) for k in node.attrs["strides"])[-2:]
        pads = tuple(int(p) for p in node.attrs.get("pad_list") or node.attrs.get("pad"))
        if d != 1 or any(pads[:2]):
            raise Unsupported("AvgPool3D over a depth")
        top, bottom, left, right = pads[2:]
        flat = self.kg.new_act((n, c, h, w))
        self.kg.ops.append(KOp("reshape", [x], flat, {}, nodes=[node.id]))
        out = self.kg.new_act((n, c, *node.shape[3:]))
        alg = Alg.POOL_AVG_INCLUDE if node.attrs.get("count_include_pad") else Alg.POOL_AVG_EXCLUDE
        self.kg.ops.append(KOp("pool", [flat], out, dict(alg=alg, kernel=kernel, stride=stride,
                                                         padding=(top, left, bottom, right)),
                               nodes=[node.id]))
        self._reshape(node, out, node.shape)

    @_lowers("Split")
    def _split(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        shape = self.kg.shape(x)
        axis = int(node.attrs.get("axis", _const(node.inputs[1], "Split axis")
                                  if len(node.inputs) > 1 else 0)) % len(shape)
        count = int(node.attrs.get("output_num", _const(node.inputs[2], "Split count")
                                   if len(node.inputs) > 2 else 1))
        if shape[axis] % count:
            raise Unsupported("Split into unequal parts")
        size = shape[axis] // count
        for i in range(count):
            part = self.kg.new_act(tuple(size if d == axis else s for d, s in enumerate(shape)))
            offsets = tuple(i * size if d == axis else 0 for d in range(len(shape)))
            self.kg.ops.append(KOp("slice", [x], part, dict(offsets=offsets), nodes=[node.id]))
            self.env[NodeOutput(node.id, i)] = part

    @_lowers("Stack")
    def _stack(self, node: Node) -> None:
        items = node.inputs[0]
        if not isinstance(items, TupleOf):
            raise Unsupported("Stack of a non-tuple")
        axis = int(node.attrs.get("axis", 0)) % len(node.shape)
        parts = []
        for item in items.items:
            ref = self.ref(item)
            shape = self.kg.shape(ref)
            expanded = shape[:axis] + (1,) + shape[axis:]
            if isinstance(ref, Const):
                parts.append(self.kg.new_const(self.array(ref).reshape(expanded)))
                continue
            part = self.kg.new_act(expanded)
            self.kg.ops.append(KOp("reshape", [ref], part, {}, nodes=[node.id]))
            parts.append(part)
        self.emit(node, "concat", parts, axis=axis)

    def _reduce(self, node: Node, alg: Alg, axis, keep: bool) -> None:
        x = self.ref(node.inputs[0])
        shape = self.kg.shape(x)
        axes = tuple(sorted(int(a) % len(shape) for a in (
            axis if isinstance(axis, (tuple, list)) else (axis,)))) or tuple(range(len(shape)))
        kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
        out = self.kg.new_act(kept)
        self.kg.ops.append(KOp("reduce", [x], out, dict(alg=alg), nodes=[node.id]))
        if kept != tuple(node.shape):
            self._reshape(node, out, node.shape)
        else:
            self.env[NodeOutput(node.id)] = out

    @_lowers("SumExt")
    def _sumext(self, node: Node) -> None:  # ops.sum(x, dim, keepdim, dtype)
        if len(node.inputs) > 3 and _const(node.inputs[3], "sum dtype") is not None:
            raise Unsupported("SumExt to another dtype")
        axis = _const(node.inputs[1], "sum axis") if len(node.inputs) > 1 else ()
        self._reduce(node, Alg.REDUCE_SUM, () if axis is None else axis, False)

    @_lowers("ReduceSum")
    def _reducesum(self, node: Node) -> None:
        axis = _const(node.inputs[1], "ReduceSum axis") if len(node.inputs) > 1 else ()
        self._reduce(node, Alg.REDUCE_SUM, axis, False)

    @_lowers("Pad")
    def _pad(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        paddings = node.attrs.get("paddings")
        if paddings is None or len(paddings) != 4 or any(tuple(p) != (0, 0) for p in paddings[:2]):
            raise Unsupported("Pad other than of the spatial axes of an NCHW tensor")
        (top, bottom), (left, right) = (tuple(int(v) for v in p) for p in paddings[2:])
        self.emit(node, "pad", [x], padding=(top, left, bottom, right))

    @_lowers("ReduceMean")
    def _reducemean(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        shape = self.kg.shape(x)
        axis = _const(node.inputs[1], "ReduceMean axis") if len(node.inputs) > 1 else ()
        axes = tuple(sorted(int(a) % len(shape) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))))
        if not axes:
            axes = tuple(range(len(shape)))
        kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
        if len(shape) == 4 and axes == (2, 3):
            out = self.kg.new_act(kept)
            self.kg.ops.append(KOp("pool", [x], out, dict(alg=Alg.POOL_AVG_EXCLUDE,
                                   kernel=shape[2:], stride=(1, 1), padding=(0, 0, 0, 0)),
                                   nodes=[node.id]))
        else:
            out = self.kg.new_act(kept)
            self.kg.ops.append(KOp("reduce", [x], out, dict(alg=Alg.REDUCE_MEAN), nodes=[node.id]))
        if kept != tuple(node.shape):
            self._reshape(node, out, node.shape)
        else:
            self.env[NodeOutput(node.id)] = out

    @_lowers("MatMul")
    def _matmul(self, node: Node) -> None:
        a, b = self.ref(node.inputs[0]), self.ref(node.inputs[1])
        flags = [bool(c.value) for c in node.inputs[2:4] if isinstance(c, Constant)]
        transpose_a = bool(node.attrs.get("transpose_a", flags[0] if flags else False))
        transpose_b = bool(node.attrs.get("transpose_b", flags[1] if len(flags) > 1 else False))
        if isinstance(a, Const):
            raise Unsupported(f"{node.op} with a constant first operand")
        rank = len(self.kg.shape(a))
        weights = self.array(b)
        if weights is not None:  # constant weights: stored (..., K, N), ranks matched
            if transpose_b:
                weights = np.swapaxes(weights, -1, -2)
            weights = weights.reshape((1,) * (rank - weights.ndim) + weights.shape)
            b = self.kg.new_const(weights)
            transpose_b = False
        elif len(self.kg.shape(b)) != rank:
            raise Unsupported(f"{node.op}: operands of different ranks")
        self.emit(node, "matmul", [a, b], transpose_a=transpose_a, transpose_b=transpose_b,
                  bias=None)

    @_lowers("BatchMatMul")
    def _batchmatmul(self, node: Node) -> None:
        self._matmul(node)

    @_lowers("MatMulExt")
    def _matmulext(self, node: Node) -> None:  # ops.matmul: numpy's broadcasting rules
        a, b = self.ref(node.inputs[0]), self.ref(node.inputs[1])
        if isinstance(a, Const):
            raise Unsupported(f"{node.op} with a constant first operand")
        rank = len(node.shape)
        if len(self.kg.shape(a)) != rank or min(rank, len(self.kg.shape(b))) < 2:
            raise Unsupported(f"{node.op}: operands that are not matrices of the result's rank")
        weights = self.array(b)
        if weights is not None:
            b = self.kg.new_const(weights.reshape((1,) * (rank - weights.ndim) + weights.shape))
        elif len(self.kg.shape(b)) != rank:
            raise Unsupported(f"{node.op}: operands of different ranks")
        self.emit(node, "matmul", [a, b], transpose_a=False, transpose_b=False, bias=None)

    @_lowers("BatchMatMulExt")
    def _batchmatmulext(self, node: Node) -> None:
        self._matmulext(node)

    @_lowers("AdaptiveAvgPool2D")
    def _adaptiveavgpool2d(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        n, c, h, w = self.kg.shape(x)
        out_h, out_w = node.shape[2], node.shape[3]
        if h % out_h or w % out_w:
            raise Unsupported("AdaptiveAvgPool2D to a size that does not divide the input")
        kernel = (h // out_h, w // out_w)
        self.emit(node, "pool", [x], alg=Alg.POOL_AVG_EXCLUDE, kernel=kernel, stride=kernel,
                  padding=(0, 0, 0, 0))

    @_lowers("Concat")
    def _concat(self, node: Node) -> None:
        items = node.inputs[0]
        if not isinstance(items, TupleOf):
            raise Unsupported("Concat of a non-tuple")
        refs = [self.ref(item) for item in items.items]
        axis = int(node.attrs.get("axis", _const(node.inputs[1], "Concat axis")
                                  if len(node.inputs) > 1 else 0))
        axis %= len(node.shape)
        self.emit(node, "concat", refs, axis=axis)

    @_lowers("Transpose")
    def _transpose(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        perm = tuple(int(p) for p in _const(node.inputs[1], "Transpose permutation"))
        if isinstance(x, Const):
            self.env[NodeOutput(node.id)] = self.kg.new_const(np.transpose(self.array(x), perm))
            return
        self.emit(node, "transpose", [x], perm=perm)

    @_lowers("LayerNorm")
    def _layernorm(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        gamma, beta = self.array(self.ref(node.inputs[1])), self.array(self.ref(node.inputs[2]))
        rank = len(self.kg.shape(x))
        begin_norm = int(node.inputs[3].value) if len(node.inputs) > 3 else -1
        begin_params = int(node.inputs[4].value) if len(node.inputs) > 4 else -1
        epsilon = float(node.inputs[5].value) if len(node.inputs) > 5 else 1e-7
        if begin_norm % rank != rank - 1 or begin_params % rank != rank - 1:
            raise Unsupported("LayerNorm over more than the last axis")
        if gamma is None or beta is None:
            raise Unsupported("LayerNorm with computed scale")
        self.emit(node, "layernorm", [x, self.kg.new_const(gamma.reshape(-1)),
                                      self.kg.new_const(beta.reshape(-1))],
                  shape=self.kg.shape(x), epsilon=epsilon)

    @_lowers("GroupNorm")
    def _groupnorm(self, node: Node) -> None:  # GroupNorm(x, groups, gamma, beta, eps)
        x = self.ref(node.inputs[0])
        groups = int(_const(node.inputs[1], "GroupNorm groups"))
        gamma, beta = self.array(self.ref(node.inputs[2])), self.array(self.ref(node.inputs[3]))
        if gamma is None or beta is None:
            raise Unsupported("GroupNorm with computed scale")
        epsilon = float(_const(node.inputs[4], "GroupNorm epsilon"))
        self.emit(node, "groupnorm", [x, self.kg.new_const(gamma.reshape(-1)),
                                      self.kg.new_const(beta.reshape(-1))],
                  shape=self.kg.shape(x), groups=groups, epsilon=epsilon)

    @_lowers("ResizeNearestNeighbor")
    def _resizenearestneighbor(self, node: Node) -> None:
        """Upsampling by whole factors without corner alignment: every rounding rule picks the
        same source pixel."""
        x = self.ref(node.inputs[0])
        flags = [c.value for c in node.inputs[2:4] if isinstance(c, Constant)]
        shape = self.kg.shape(x)
        if any(flags) or len(shape) != 4 or any(
                o % i for o, i in zip(node.shape[2:], shape[2:])):
            raise Unsupported(f"{node.op} other than by whole factors without corner alignment")
        self.emit(node, "resample", [x])

    @_lowers("ResizeNearestNeighborV2")
    def _resizenearestneighborv2(self, node: Node) -> None:
        self._resizenearestneighbor(node)

    @_lowers("Softmax")
    def _softmax(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        axis = _const(node.inputs[1], "Softmax axis") if len(node.inputs) > 1 else -1
        axis = axis[0] if isinstance(axis, (tuple, list)) else axis
        self.emit(node, "softmax", [x], shape=self.kg.shape(x),
                  axis=int(axis) % len(self.kg.shape(x)))

    @_lowers("Unstack")
    def _unstack(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        shape = self.kg.shape(x)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        for i in range(shape[axis]):
            offsets = tuple(i if d == axis else 0 for d in range(len(shape)))
            sliced = tuple(1 if d == axis else s for d, s in enumerate(shape))
            part = self.kg.new_act(sliced)
            self.kg.ops.append(KOp("slice", [x], part, dict(offsets=offsets), nodes=[node.id]))
            squeezed = tuple(s for d, s in enumerate(shape) if d != axis)
            out = self.kg.new_act(squeezed)
            self.kg.ops.append(KOp("reshape", [part], out, {}, nodes=[node.id]))
            self.env[NodeOutput(node.id, i)] = out

    @_lowers("StridedSlice")
    def _stridedslice(self, node: Node) -> None:
        x = self.ref(node.inputs[0])
        shape = self.kg.shape(x)
        begin, end = (tuple(int(v) for v in _const(o, "StridedSlice bound"))
                      for o in node.inputs[1:3])
        masks = [int(c.value) for c in node.inputs[4:9]]
        begin_mask, end_mask, _, _, shrink = masks
        offsets, sizes = [], []
        for d, size in enumerate(shape):
            lo = 0 if d >= len(begin) or begin_mask >> d & 1 else begin[d] % size
            if d < len(begin) and shrink >> d & 1:
                hi = lo + 1
            else:
                hi = size if d >= len(end) or end_mask >> d & 1 else min(
                    end[d] if end[d] >= 0 else end[d] + size, size)
            offsets.append(lo)
            sizes.append(hi - lo)
        if isinstance(x, Const):
            index = tuple(slice(o, o + s) for o, s in zip(offsets, sizes))
            self.env[NodeOutput(node.id)] = self.kg.new_const(
                self.array(x)[index].reshape(node.shape))
            return
        part = self.kg.new_act(tuple(sizes))
        self.kg.ops.append(KOp("slice", [x], part, dict(offsets=tuple(offsets)), nodes=[node.id]))
        self._reshape(node, part, node.shape)

    @_lowers("BroadcastTo")
    def _broadcastto(self, node: Node) -> None:
        src = self.ref(node.inputs[0])
        self.env[NodeOutput(node.id)] = self.kg.new_const(
            np.broadcast_to(self.array(src), tuple(node.shape)))


# every primitive a program can run: the registered lowerings and the table-driven ones
SUPPORTED = frozenset({*_PRIMITIVE_LOWERINGS, *LAYOUT_OPS, *BINARY,
                       *(k for k, v in ELTWISE.items() if v is not None)})


def lower_region(graph: Graph, node_ids: list[int], source, output: NodeOutput,
                 parameters: Mapping[str, np.ndarray] | Callable[[str], np.ndarray]) -> KernelGraph:
    """The kernel graph of the captured nodes ``node_ids`` (reading ``source``, computing
    ``output``); Unsupported if one of them cannot run in a program."""
    lookup = parameters if callable(parameters) else parameters.__getitem__
    return Lowering(graph, lookup).lower(node_ids, source, output)

