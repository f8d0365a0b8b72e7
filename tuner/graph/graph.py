"""A network's computation as data: primitive operations, their operands, the graph.

``Node.path`` is the module path of the Cell that created the operation (``layer3.1.conv2``),
from its scope. ``Graph.to_dict``/``from_dict`` are its one serialised form (a study captures
once, in tuner.graph.capture, and every trial plans from the stored graph).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np

WRAPPER = "tuner_captured"  # the attribute name of the network inside the exported wrapper


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

    def to_dict(self) -> dict:
        """A JSON-able form (``from_dict`` reads it back): a study captures once and every
        trial process plans from the stored graph."""
        return {"nodes": [{"op": n.op, "inputs": [_encode(o) for o in n.inputs],
                           "attrs": {k: _encode_value(v) for k, v in n.attrs.items()},
                           "scope": n.scope, "shapes": [list(s) for s in n.shapes]}
                          for n in self.nodes],
                "input_shapes": [list(s) for s in self.input_shapes],
                "output": _encode(self.output)}

    @classmethod
    def from_dict(cls, data: dict) -> "Graph":
        nodes = tuple(Node(i, n["op"], tuple(_decode(o) for o in n["inputs"]),
                           {k: _decode_value(v) for k, v in n["attrs"].items()}, n["scope"],
                           tuple(tuple(s) for s in n["shapes"]))
                      for i, n in enumerate(data["nodes"]))
        return cls(nodes, tuple(tuple(s) for s in data["input_shapes"]), _decode(data["output"]))

    def consumers(self) -> dict[NodeOutput, list[int]]:
        """Each node output -> the ids of the nodes that read it (in order)."""
        users: dict[NodeOutput, list[int]] = {}
        for node in self.nodes:
            for operand in node.inputs:
                for ref in operand_refs(operand):
                    users.setdefault(ref, []).append(node.id)
        return users


def _encode_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, (tuple, list)):
        return {"tuple": [_encode_value(v) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict) and "tuple" in value:
        return tuple(_decode_value(v) for v in value["tuple"])
    return value


def _encode(operand: Operand) -> dict:
    if isinstance(operand, NodeOutput):
        return {"node": operand.node, "index": operand.index}
    if isinstance(operand, ParamRef):
        return {"param": operand.name}
    if isinstance(operand, GraphInput):
        return {"input": operand.index}
    if isinstance(operand, TupleOf):
        return {"items": [_encode(o) for o in operand.items]}
    return {"const": _encode_value(operand.value)}


def _decode(data: dict) -> Operand:
    if "node" in data:
        return NodeOutput(data["node"], data["index"])
    if "param" in data:
        return ParamRef(data["param"])
    if "input" in data:
        return GraphInput(data["input"])
    if "items" in data:
        return TupleOf(tuple(_decode(o) for o in data["items"]))
    return Constant(_decode_value(data["const"]))


def operand_refs(operand: Operand) -> list[NodeOutput]:
    if isinstance(operand, NodeOutput):
        return [operand]
    if isinstance(operand, TupleOf):
        return [r for item in operand.items for r in operand_refs(item)]
    return []


def scope_path(scope: str) -> str:
    """``Default/tuner_captured-MobileNetV2/features-SequentialCell/3-InvertedResidual/Add-op2``
    -> ``features.3``."""
    parts = scope.split("/")
    if parts and parts[0] == "Default":
        parts = parts[1:]
    if parts and parts[0].split("-", 1)[0] == WRAPPER:
        parts = parts[1:]
    return ".".join(part.split("-", 1)[0] for part in parts[:-1])


