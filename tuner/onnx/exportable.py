"""Rewrites that make a network exportable by ``mindspore.export(..., file_format="ONNX")``
without changing what it computes (the anchors benchmark checks that on real outputs).

MindSpore 2.10's ONNX converter has no entry for some operators the parser emits:

- ``InplaceAddExt`` (and the other in-place updates) for an augmented assignment on tensors,
  ``out += identity`` in mindcv's ResNet and EfficientNet blocks. ``out_of_place_updates``
  recompiles each such ``construct`` from its own source with ``a op= b`` written as
  ``a = a op b``, in a subclass whose source is a real file (MindSpore parses the source).
- ``Unstack`` (ViT's ``q, k, v = self.unstack(qkv)``): ``unstack_as_gathers`` replaces every
  ``ops.Unstack`` primitive held by a cell with a cell of one ``Gather`` per slice.
- ``AdaptiveAvgPool2D``: ``global_pools_as_means`` replaces such a primitive whose output is
  1x1 (a global average) with the mean over the spatial axes.

Each recognises what the code does (an augmented assignment; an Unstack primitive), never a
model's class names.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
import tempfile
import textwrap
from pathlib import Path

from mindspore import Tensor, nn, ops

import mindspore as ms

_GENERATED_DIR: Path | None = None
_CLASSES: dict[type, type | None] = {}


class _OutOfPlace(ast.NodeTransformer):
    def __init__(self) -> None:
        self.changed = False

    def visit_AugAssign(self, node: ast.AugAssign):
        load = ast.fix_missing_locations(_as_load(node.target))
        self.changed = True
        return ast.copy_location(ast.Assign(targets=[node.target],
                                            value=ast.BinOp(left=load, op=node.op, right=node.value)),
                                 node)


def _as_load(target: ast.expr) -> ast.expr:
    copy = ast.parse(ast.unparse(target), mode="eval").body
    return ast.copy_location(copy, target)


def _defining_class(cls: type) -> type | None:
    return next((k for k in cls.__mro__ if "construct" in vars(k)), None)


def _generated_dir() -> Path:
    global _GENERATED_DIR
    if _GENERATED_DIR is None:
        _GENERATED_DIR = Path(tempfile.mkdtemp(prefix="tuner-exportable-"))
    return _GENERATED_DIR


def _out_of_place_class(cls: type) -> type | None:
    """A subclass of ``cls`` whose construct has no augmented assignment (None: nothing to do,
    or the source cannot be rewritten safely, e.g. it uses ``super()``)."""
    if cls in _CLASSES:
        return _CLASSES[cls]
    _CLASSES[cls] = None
    owner = _defining_class(cls)
    if owner is None or owner.__module__.startswith("mindspore."):
        return None
    function = vars(owner)["construct"]
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return None
    tree = ast.parse(source)
    if any(isinstance(n, ast.Name) and n.id == "super" for n in ast.walk(tree)):
        return None
    transformer = _OutOfPlace()
    tree = ast.fix_missing_locations(transformer.visit(tree))
    if not transformer.changed:
        return None
    code = ast.unparse(tree) + "\n"
    name = f"_tuner_exportable_{hashlib.sha256(code.encode()).hexdigest()[:16]}"
    path = _generated_dir() / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    original = sys.modules[function.__module__].__dict__
    module.__dict__.update({k: v for k, v in original.items() if not k.startswith("__")})
    spec.loader.exec_module(module)
    sys.modules[name] = module
    _CLASSES[cls] = type(cls.__name__, (cls,), {"construct": module.construct, "__module__": name})
    return _CLASSES[cls]


def out_of_place_updates(net: nn.Cell) -> int:
    """Give every cell whose ``construct`` has ``a op= b`` a class computing ``a = a op b``;
    return how many cells changed."""
    changed = 0
    for _, cell in net.cells_and_names():
        rewritten = _out_of_place_class(type(cell))
        if rewritten is not None:
            cell.__class__ = rewritten
            changed += 1
    return changed


class UnstackAsGathers(nn.Cell):
    """``ops.Unstack(axis)`` as one ``Gather`` per slice along ``axis``."""

    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def construct(self, x):
        axis = self.axis if self.axis >= 0 else self.axis + x.ndim
        return tuple(ops.gather(x, Tensor(i, ms.int32), axis) for i in range(x.shape[axis]))


def _replace_primitives(net: nn.Cell, replacement) -> int:
    """Set each primitive attribute ``p`` of every cell to ``replacement(p)`` where that is not
    None; return how many were replaced."""
    replaced = 0
    for _, cell in list(net.cells_and_names()):
        held = {**vars(cell), **vars(cell).get("_primitives", {})}
        for attribute, value in held.items():
            if isinstance(value, ops.Primitive):
                substitute = replacement(value)
                if substitute is not None:
                    setattr(cell, attribute, substitute)
                    replaced += 1
    return replaced


def unstack_as_gathers(net: nn.Cell) -> int:
    """Replace each ``ops.Unstack`` primitive held by a cell; return how many."""
    return _replace_primitives(net, lambda p: UnstackAsGathers(int(p.axis))
                               if isinstance(p, ops.Unstack) else None)


class SpatialMean(nn.Cell):
    """The mean over the last two axes, kept as 1x1 (a global average pool)."""

    def construct(self, x):
        return x.mean(axis=(-2, -1), keep_dims=True)


def _is_global_average(primitive) -> bool:
    size = primitive.attrs.get("output_size") if isinstance(primitive, ops.AdaptiveAvgPool2D) else None
    return size is not None and tuple(size if isinstance(size, (tuple, list)) else (size,)) in ((1,), (1, 1))


def global_pools_as_means(net: nn.Cell) -> int:
    """Replace each ``AdaptiveAvgPool2D`` primitive with a 1x1 output; return how many."""
    return _replace_primitives(net, lambda p: SpatialMean() if _is_global_average(p) else None)


def make_exportable(net: nn.Cell) -> dict[str, int]:
    """Every rewrite, in place; the counts say what changed."""
    return {"out_of_place_updates": out_of_place_updates(net),
            "unstack_as_gathers": unstack_as_gathers(net),
            "global_pools_as_means": global_pools_as_means(net)}
