"""What a network computes, read from MindSpore's own compiled graph (MindIR).

The types (Graph, Node, operands) are in tuner.graph.graph; they are re-exported here.

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

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tuner.graph.graph import (WRAPPER, Constant, Graph, GraphInput, Node, NodeOutput, Operand,
                               ParamRef, TupleOf, operand_refs, scope_path)

_PASS_THROUGH = {"Depend"}            # value = first input
_MONAD_OPS = {"UpdateState"}          # side-effect ordering only
_MONAD_TYPES = ("UMONAD", "IOMONAD")
_MONAD = object()                     # the value of a monad: never an operand


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
    """The node's output shapes (one per output of a tuple-valued node)."""
    for attribute in node.attribute:
        if attribute.name == "shape":
            if attribute.tensors:
                return tuple(tuple(int(d) for d in t.dims) for t in attribute.tensors)
            return tuple(tuple(int(d) for d in v.tensors[0].dims) if v.tensors else ()
                         for v in attribute.values)
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
        if op in ("MakeTuple", "make_list"):
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


def _wrapped(net):
    """``net`` inside a fresh top-level cell that leaves its parameter names alone (a network
    compiled before, e.g. inside another cell, cannot be exported directly)."""
    from mindspore import nn

    class Captured(nn.Cell):
        def __init__(self, network):
            super().__init__(auto_prefix=False)
            setattr(self, WRAPPER, network)

        def construct(self, x):
            return getattr(self, WRAPPER)(x)

    return Captured(net)


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
            ms.export(_wrapped(net), ms.Tensor(np.zeros(input_shape, np.float32)),
                      file_name=stem, file_format="MINDIR")
            net.set_train(was_training)
        except Exception as error:  # MindSpore raises many kinds; the reason is what matters
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CaptureError(f"mindspore.export failed: {first}") from None
        finally:
            ms.set_context(mode=previous)
        return _reattributed(_rooted(read_mindir(Path(stem + ".mindir")), net), net)


def _common_path(paths: list[str]) -> str:
    parts = [p.split(".") if p else [] for p in paths]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def _with_path(node: Node, owner: str) -> Node:
    """``node`` scoped as created by the cell at ``owner`` (same operation name)."""
    parts = node.scope.split("/")
    head = [p for p in parts[:-1] if p == "Default" or p.split("-", 1)[0] == WRAPPER]
    names = [f"{name}-cell" for name in owner.split(".")] if owner else []
    return dataclasses.replace(node, scope="/".join(head + names + parts[-1:]))


def _reattributed(graph: Graph, net) -> Graph:
    """Operations put in the cell that really created them. MindSpore parses a function (such
    as ``ops.concat`` or a tensor's ``+``) once and reuses it, so an operation it creates keeps
    the scope of the function's first call site, another instance or an outer cell. Two
    corrections by data flow, repeated until nothing moves: an operation whose latest input
    was made in another cell of the same class as the one its scope names, at the same depth,
    belongs to that cell; an operation whose inputs and readers all lie inside one cell below
    the one its scope names belongs to that cell."""
    cells = dict(net.cells_and_names())
    nodes = list(graph.nodes)
    readers: dict[int, list[int]] = {}
    for node in nodes:
        for operand in node.inputs:
            for ref in operand_refs(operand):
                readers.setdefault(ref.node, []).append(node.id)
    for _ in range(4):
        moved = False
        for index, node in enumerate(nodes):
            path = node.path
            if path not in cells:
                continue
            producers = [nodes[r.node].path for o in node.inputs for r in operand_refs(o)]
            neighbours = producers + [nodes[r].path for r in readers.get(node.id, [])]
            owner = path
            if producers and cells[path].name_cells():
                latest = nodes[max(r.node for o in node.inputs for r in operand_refs(o))].path
                depth = path.count(".") + 1 if path else 0
                candidate = ".".join(latest.split(".")[:depth])
                if path and not _within_path(latest, path) and candidate in cells \
                        and type(cells[candidate]) is type(cells[path]):
                    owner = candidate
            if owner == path and neighbours and isinstance(graph.output, NodeOutput) \
                    and node.id != graph.output.node:
                inner = _common_path(neighbours)
                if inner != path and _within_path(inner, path) and inner in cells:
                    owner = inner
            if owner != path:
                nodes[index] = _with_path(node, owner)
                moved = True
        if not moved:
            break
    return dataclasses.replace(graph, nodes=tuple(nodes))


def _within_path(path: str, root: str) -> bool:
    return root == "" or path == root or path.startswith(root + ".")


def _rooted(graph: Graph, net) -> Graph:
    """Scopes relative to ``net``: a cell once compiled inside another keeps that parent's
    name as the first part of its scope (``net-ResNet/conv1-Conv2d``), which is dropped."""
    paths = {path for path, _ in net.cells_and_names()}

    def strip(scope: str, count: int) -> str:
        parts = scope.split("/")
        head = 1 if parts and parts[0] == "Default" else 0
        if len(parts) > head and parts[head].split("-", 1)[0] == WRAPPER:
            head += 1
        return "/".join(parts[:head] + parts[head + count:])

    def matches(count: int) -> int:
        return sum(scope_path(strip(n.scope, count)) in paths for n in graph.nodes)

    best = max(range(4), key=lambda count: (matches(count), -count))
    if best == 0:
        return graph
    nodes = tuple(dataclasses.replace(n, scope=strip(n.scope, best)) for n in graph.nodes)
    return dataclasses.replace(graph, nodes=nodes)
