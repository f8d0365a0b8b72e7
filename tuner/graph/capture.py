"""What a network computes, read from MindSpore's own compiled graph (MindIR).

``capture(net, input_shape)`` exports the network with ``mindspore.export(format="MINDIR")``
(graph mode, the same compilation the network gets when it runs) and reads the protobuf back
into a :class:`Graph`: its primitive operations in execution order, each with its inputs, its
primitive's attributes, its output shape and the scope of the Cell whose ``construct`` created
it (``Default/layer1-SequentialCell/0-Bottleneck/conv1-Conv2d/Conv2D-op0`` -> ``layer1.0.conv1``).
Parameter reads (``Load``), ``Depend``, ``TupleGetItem``, ``MakeTuple`` and the monads are
resolved into the operands of the real operations, so a node's inputs are other nodes'
outputs, parameters (by name), the network input or constants. Nothing here depends on a model
family: the same reading serves any network MindSpore can compile.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

_PASS_THROUGH = {"Depend"}            # value = first input
_MONAD_OPS = {"UpdateState"}          # side-effect ordering only
_MONAD_TYPES = ("UMONAD", "IOMONAD")
_MONAD = object()                     # the value of a monad: never an operand


@dataclass(frozen=True)
class NodeOutput:
    node: int
    index: int = 0


@dataclass(frozen=True)
class ParamRef:
    name: str


@dataclass(frozen=True)
class GraphInput:
    index: int = 0


@dataclass(frozen=True)
class Constant:
    value: Any


@dataclass(frozen=True)
class TupleOf:
    items: tuple["Operand", ...]


Operand = Union[NodeOutput, ParamRef, GraphInput, Constant, TupleOf]


@dataclass(frozen=True)
class Node:
    """One primitive operation; ``path`` is the module path of the Cell that created it."""

    id: int
    op: str
    inputs: tuple[Operand, ...]
    attrs: dict[str, Any]
    scope: str
    shapes: tuple[tuple[int, ...], ...]

    @property
    def path(self) -> str:
        return scope_path(self.scope)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.shapes[0] if self.shapes else ()


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output: Operand

    def consumers(self) -> dict[NodeOutput, list[int]]:
        """Each node output -> the ids of the nodes that read it (in order)."""
        users: dict[NodeOutput, list[int]] = {}
        for node in self.nodes:
            for operand in node.inputs:
                for ref in operand_refs(operand):
                    users.setdefault(ref, []).append(node.id)
        return users


def operand_refs(operand: Operand) -> list[NodeOutput]:
    if isinstance(operand, NodeOutput):
        return [operand]
    if isinstance(operand, TupleOf):
        return [r for item in operand.items for r in operand_refs(item)]
    return []


def scope_path(scope: str) -> str:
    """``Default/features-SequentialCell/3-InvertedResidual/Add-op2`` -> ``features.3``."""
    parts = scope.split("/")
    if parts and parts[0] == "Default":
        parts = parts[1:]
    return ".".join(part.split("-", 1)[0] for part in parts[:-1])


class CaptureError(RuntimeError):
    """The network could not be exported or its graph not read; the message says why."""


def _attribute_value(attribute, mind_ir_pb2) -> Any:
    kind = mind_ir_pb2.AttributeProto
    t = attribute.type
    if t == kind.BOOL:
        return bool(attribute.i)
    if t in (kind.INT8, kind.INT16, kind.INT32, kind.INT64, kind.UINT8, kind.UINT16,
             kind.UINT32, kind.UINT64):
        return int(attribute.ints[0]) if attribute.ints else int(attribute.i)
    if t == kind.FLOAT:
        return float(attribute.floats[0]) if attribute.floats else float(attribute.f)
    if t == kind.DOUBLE:
        return float(attribute.doubles[0]) if attribute.doubles else float(attribute.d)
    if t == kind.STRING:
        value = attribute.strings[0] if attribute.strings else attribute.s
        return value.decode() if isinstance(value, bytes) else value
    if t in (kind.TUPLE, kind.LIST):
        return tuple(_attribute_value(v, mind_ir_pb2) for v in attribute.values)
    if t == kind.TENSORS and attribute.tensors:
        tensor = attribute.tensors[0]
        return _tensor_value(tensor)
    if t == kind.NONE:
        return None
    if kind.AttributeType.Name(t) in _MONAD_TYPES:
        return _MONAD
    return f"<{kind.AttributeType.Name(t)}>"


_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
           7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


def _tensor_value(tensor) -> Any:
    dtype = _DTYPES.get(tensor.data_type)
    if dtype is None or not tensor.raw_data:
        return tuple(int(d) for d in tensor.dims)
    return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tuple(tensor.dims)).copy()


def _shapes(node) -> tuple[tuple[int, ...], ...]:
    for attribute in node.attribute:
        if attribute.name == "shape":
            return tuple(tuple(int(d) for d in t.dims) for t in attribute.tensors)
    return ()


def _is_monad(value) -> bool:
    return isinstance(value, Constant) and value.value is _MONAD


def read_mindir(path: Path) -> Graph:
    """The :class:`Graph` of an exported MindIR file."""
    from mindspore.train import mind_ir_pb2

    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(Path(path).read_bytes())
    graph = model.graph
    if len(model.functions):
        raise CaptureError(f"the graph has {len(model.functions)} sub-graphs (control flow)")
    primitives = {p.name: p for p in model.primitives}
    values: dict[str, Operand] = {}
    for index, item in enumerate(graph.input):
        values[item.name] = GraphInput(index)
    for parameter in graph.parameter:
        values[parameter.name] = ParamRef(parameter.name.split(":", 1)[-1])
    nodes: list[Node] = []
    tuples: dict[str, tuple[Operand, ...]] = {}

    def operand(name: str) -> Operand:
        if name in tuples:
            return TupleOf(tuples[name])
        if name not in values:
            raise CaptureError(f"operand {name!r} is read before it is defined")
        return values[name]

    for raw in graph.node:
        op = raw.op_type.split("::")[-1].split(":")[0]
        out = raw.output[0] if raw.output else raw.name
        if raw.op_type == "Constant":
            values[out] = Constant(_attribute_value(raw.attribute[0], mind_ir_pb2)
                                   if raw.attribute else None)
            continue
        if op in _MONAD_OPS:
            values[out] = Constant(_MONAD)
            continue
        if op == "Load":
            values[out] = operand(raw.input[0])
            continue
        if op in _PASS_THROUGH:
            values[out] = operand(raw.input[0])
            continue
        if op == "MakeTuple":
            tuples[out] = tuple(operand(name) for name in raw.input)
            continue
        if op == "TupleGetItem":
            source, index = operand(raw.input[0]), operand(raw.input[1])
            position = int(index.value) if isinstance(index, Constant) else 0
            if isinstance(source, TupleOf):
                values[out] = source.items[position]
            elif isinstance(source, NodeOutput):
                values[out] = NodeOutput(source.node, position)
            else:
                raise CaptureError(f"TupleGetItem of {source!r}")
            continue
        primitive = primitives.get(raw.op_type.split("::")[-1])
        attrs = ({a.name: _attribute_value(a, mind_ir_pb2) for a in primitive.attribute
                  if a.name not in ("input_names", "output_names")} if primitive else {})
        inputs = tuple(operand(name) for name in raw.input if not _is_monad(values.get(name)))
        node = Node(len(nodes), op, inputs, attrs, raw.domain, _shapes(raw))
        nodes.append(node)
        values[out] = NodeOutput(node.id)
    if not graph.output:
        raise CaptureError("the graph has no output")
    shapes = tuple(tuple(int(d) for d in item.tensor[0].dims) if item.tensor else ()
                   for item in graph.input)
    return Graph(tuple(nodes), shapes, operand(graph.output[0].name))


def capture(net, input_shape: tuple[int, ...]) -> Graph:
    """Export ``net`` for a float32 input of ``input_shape`` and read its graph (graph mode;
    the caller's execution mode is restored)."""
    import mindspore as ms

    previous = ms.get_context("mode")
    with tempfile.TemporaryDirectory(prefix="tuner-capture-") as directory:
        stem = os.path.join(directory, "network")
        try:
            ms.set_context(mode=ms.GRAPH_MODE)
            was_training = net.training
            net.set_train(False)
            ms.export(net, ms.Tensor(np.zeros(input_shape, np.float32)), file_name=stem,
                      file_format="MINDIR")
            net.set_train(was_training)
        except Exception as error:  # MindSpore raises many kinds; the reason is what matters
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CaptureError(f"mindspore.export failed: {first}") from None
        finally:
            ms.set_context(mode=previous)
        return read_mindir(Path(stem + ".mindir"))
