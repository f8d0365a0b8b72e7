"""The kernel graph: a region's computation as the operations the program runtime executes.

Values are activations (``Act``, float32 tensors computed by an op or entering the region) or
constants (``Const``: numpy arrays, the BatchNorm-folded weights and other parameters). An op
computes one activation from its inputs, then applies its post-ops (element-wise functions and
binary operations with other values), as oneDNN's primitives do. The fusion passes
(``tuner.kernels.cpu.program.fusion``) rewrite this graph; ``emit`` turns it into a spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from tuner.kernels.cpu.program.spec import Alg


@dataclass(frozen=True)
class Act:
    id: int


@dataclass(frozen=True)
class Const:
    id: int


Ref = Union[Act, Const]

HEAVY_KINDS = ("conv", "matmul")


@dataclass
class Post:
    """A post-op: ``alg`` with ``alpha``/``beta`` (element-wise), or with ``operand``."""

    alg: Alg
    alpha: float = 0.0
    beta: float = 0.0
    operand: Ref | None = None


@dataclass
class KOp:
    kind: str                      # conv pool eltwise binary concat matmul reduce layernorm
                                   # softmax transpose reshape slice
    inputs: list[Ref]
    out: Act
    attrs: dict[str, Any] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)   # captured node ids it computes
    fused: list[str] = field(default_factory=list)   # what the fusion passes merged into it

    def reads(self) -> list[Ref]:
        return [*self.inputs, *(p.operand for p in self.posts if p.operand is not None)]


@dataclass
class KernelGraph:
    """Ops in execution order; ``shapes[act id]``; ``consts[const id]``; one input, one output."""

    ops: list[KOp]
    shapes: dict[int, tuple[int, ...]]
    consts: list[np.ndarray]
    input: Act
    output: Act

    def new_act(self, shape: tuple[int, ...]) -> Act:
        act = Act(max(self.shapes, default=-1) + 1)
        self.shapes[act.id] = tuple(int(d) for d in shape)
        return act

    def new_const(self, array: np.ndarray) -> Const:
        self.consts.append(np.ascontiguousarray(array, dtype=np.float32))
        return Const(len(self.consts) - 1)

    def shape(self, ref: Ref) -> tuple[int, ...]:
        return self.shapes[ref.id] if isinstance(ref, Act) else tuple(self.consts[ref.id].shape)

    def consumers(self) -> dict[Act, list[KOp]]:
        users: dict[Act, list[KOp]] = {}
        for op in self.ops:
            for ref in op.reads():
                if isinstance(ref, Act):
                    users.setdefault(ref, []).append(op)
        return users

    def producer(self) -> dict[Act, KOp]:
        return {op.out: op for op in self.ops}

    def replace_uses(self, old: Act, new: Ref) -> None:
        """Every read of ``old`` (and the output, if it is ``old``) reads ``new`` instead."""
        for op in self.ops:
            op.inputs = [new if ref == old else ref for ref in op.inputs]
            for post in op.posts:
                if post.operand == old:
                    post.operand = new
        if self.output == old:
            assert isinstance(new, Act)
            self.output = new

    def ancestors(self, act: Act) -> set[Act]:
        """Every activation ``act`` depends on (itself included)."""
        producer = self.producer()
        seen, stack = set(), [act]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            op = producer.get(current)
            if op is not None:
                stack.extend(ref for ref in op.reads() if isinstance(ref, Act))
        return seen

    def sort(self) -> None:
        """Re-order the ops so that every op comes after what it reads (stable otherwise):
        fusing a residual add into a convolution makes the convolution read the other branch."""
        producer = self.producer()
        placed: set[Act] = {self.input}
        order: list[KOp] = []
        visiting: set[int] = set()

        def place(op: KOp) -> None:
            if op.out in placed:
                return
            if id(op) in visiting:
                raise ValueError("cycle in the kernel graph")
            visiting.add(id(op))
            for ref in op.reads():
                if isinstance(ref, Act) and ref not in placed:
                    place(producer[ref])
            visiting.discard(id(op))
            placed.add(op.out)
            order.append(op)

        for op in self.ops:
            place(op)
        self.ops = order

    def prune(self) -> None:
        """Drop ops whose result nothing reads (after fusion)."""
        while True:
            used = {ref for op in self.ops for ref in op.reads() if isinstance(ref, Act)}
            used.add(self.output)
            kept = [op for op in self.ops if op.out in used]
            if len(kept) == len(self.ops):
                return
            self.ops = kept

    def heavy_ops(self) -> list[KOp]:
        return [op for op in self.ops if op.kind in HEAVY_KINDS]
