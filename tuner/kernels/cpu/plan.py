"""Which convolutions of a network can run as custom kernels, and with which fused epilogue.

Recognised patterns (pre-order walk; a recognised block claims all its sub-cells):
  * mindcv ResNet ``Bottleneck``/``BasicBlock``: conv+bn+ReLU units, the last conv+bn adds the
    identity (or the ``down_sample`` conv+bn, itself a unit) before the ReLU.
  * mindcv MobileNetV2 ``InvertedResidual``: conv+bn(+ReLU6) units; with ``use_res_connect``
    the last conv+bn adds the block input.
  * Anywhere else: a Conv2d, its following BatchNorm2d (folded), and, only inside a
    SequentialCell (where declaration order is execution order), a following ReLU/ReLU6.
Unsupported convolutions (dilation, other group counts, other dtypes) get no workload.
"""
from __future__ import annotations

from dataclasses import dataclass

from mindspore import nn

from tuner.kernels.cpu.geometry import conv_workload
from tuner.kernels.cpu.probe import conv_input_shapes
from tuner.kernels.workload import ConvWorkload

_ACTIVATIONS = ((nn.ReLU6, "relu6"), (nn.ReLU, "relu"))


@dataclass(frozen=True, eq=False)
class ConvUnit:
    """conv [+ bn] [+ residual] [+ activation]; ``workload`` is None if unsupported/unreached.
    ``parent``/``*_name`` locate the cells for in-place rewrites outside recognised blocks."""

    path: str
    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None
    activation: str
    has_residual: bool
    workload: ConvWorkload | None
    parent: nn.Cell | None = None
    conv_name: str = ""
    bn_name: str = ""
    act_name: str = ""
    order: int = 0  # position of the conv in the network's cells_and_names()


@dataclass(frozen=True, eq=False)
class BlockPlan:
    """A recognised block at ``parent.<name>``: ``kind`` is 'resnet' or 'inverted_residual';
    ``down`` is a ConvUnit, or the block's own down-sampling cell when not a conv+bn pair."""

    kind: str
    parent: nn.Cell
    name: str
    block: nn.Cell
    main: tuple[ConvUnit, ...]
    tail: ConvUnit
    down: ConvUnit | nn.Cell | None = None
    use_residual: bool = False

    def units(self) -> list[ConvUnit]:
        down = [self.down] if isinstance(self.down, ConvUnit) else []
        return [*self.main, self.tail, *down]


@dataclass(frozen=True, eq=False)
class NetworkPlan:
    blocks: tuple[BlockPlan, ...]
    singles: tuple[ConvUnit, ...]

    def units(self) -> list[ConvUnit]:
        """Every unit, in the network's declaration order."""
        units = [u for b in self.blocks for u in b.units()] + list(self.singles)
        return sorted(units, key=lambda u: u.order)


def _activation_of(cell) -> str | None:
    for cls, name in _ACTIVATIONS:
        if type(cell) is cls:
            return name
    return None


def _mindcv_blocks():
    try:
        from mindcv.models.mobilenetv2 import InvertedResidual
        from mindcv.models.resnet import BasicBlock, Bottleneck
    except ImportError:
        return (), ()
    return (BasicBlock, Bottleneck), (InvertedResidual,)


class _Planner:
    def __init__(self, net: nn.Cell, input_shape: tuple[int, ...]):
        self.shapes = conv_input_shapes(net, input_shape)
        self.paths = {id(cell): path for path, cell in net.cells_and_names()}
        self.order = {id(cell): i for i, (_, cell) in enumerate(net.cells_and_names())}
        self.net = net

    def unit(self, conv, bn, activation, residual, **where) -> ConvUnit:
        shape = self.shapes.get(id(conv))
        workload = conv_workload(conv, shape, activation, residual) if shape else None
        return ConvUnit(self.paths.get(id(conv), ""), conv, bn, activation, residual, workload,
                        **where, order=self.order.get(id(conv), 0))

    def resnet_block(self, parent, name, block) -> BlockPlan | None:
        act = _activation_of(block.relu)
        if act is None:
            return None
        pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
        if hasattr(block, "conv3"):
            pairs.append((block.conv3, block.bn3))
        main = tuple(self.unit(c, b, act, False) for c, b in pairs[:-1])
        tail = self.unit(*pairs[-1], act, True)
        down = block.down_sample
        if isinstance(down, nn.SequentialCell) and len(down) == 2 and isinstance(down[0], nn.Conv2d) \
                and isinstance(down[1], nn.BatchNorm2d):
            down = self.unit(down[0], down[1], "none", False)
        return BlockPlan("resnet", parent, name, block, main, tail, down)

    def inverted_residual(self, parent, name, block) -> BlockPlan | None:
        cells = list(block.layers)
        groups, i = [], 0
        while i < len(cells):
            if not (isinstance(cells[i], nn.Conv2d) and i + 1 < len(cells)
                    and isinstance(cells[i + 1], nn.BatchNorm2d)):
                return None
            act = _activation_of(cells[i + 2]) if i + 2 < len(cells) else None
            groups.append((cells[i], cells[i + 1], act or "none"))
            i += 3 if act else 2
        if not groups or (block.use_res_connect and groups[-1][2] != "none"):
            return None
        main = tuple(self.unit(c, b, a, False) for c, b, a in groups[:-1])
        tail = self.unit(*groups[-1][:2], groups[-1][2], bool(block.use_res_connect))
        return BlockPlan("inverted_residual", parent, name, block, main, tail,
                         use_residual=bool(block.use_res_connect))

    def singles(self, parent, claimed) -> list[ConvUnit]:
        children = list(parent.name_cells().items())
        units = []
        for i, (name, child) in enumerate(children):
            if not isinstance(child, nn.Conv2d) or id(child) in claimed:
                continue
            bn_name = act_name = ""
            nxt = i + 1
            if nxt < len(children) and isinstance(children[nxt][1], nn.BatchNorm2d) \
                    and children[nxt][1].num_features == child.out_channels:
                bn_name = children[nxt][0]
                nxt += 1
            activation = "none"
            if isinstance(parent, nn.SequentialCell) and nxt < len(children):
                found = _activation_of(children[nxt][1])
                if found:
                    activation, act_name = found, children[nxt][0]
            bn = parent.name_cells()[bn_name] if bn_name else None
            units.append(self.unit(child, bn, activation, False, parent=parent, conv_name=name,
                                   bn_name=bn_name, act_name=act_name))
        return units

    def plan(self) -> NetworkPlan:
        resnet_types, inverted_types = _mindcv_blocks()
        claimed: set[int] = set()
        blocks, singles = [], []
        for _, parent in self.net.cells_and_names():
            if id(parent) in claimed:
                continue
            for name, child in parent.name_cells().items():
                plan = None
                if resnet_types and type(child) in resnet_types:
                    plan = self.resnet_block(parent, name, child)
                elif inverted_types and type(child) in inverted_types:
                    plan = self.inverted_residual(parent, name, child)
                if plan is not None:
                    blocks.append(plan)
                    claimed.update(id(c) for _, c in child.cells_and_names())
            singles.extend(self.singles(parent, claimed))
        return NetworkPlan(tuple(blocks), tuple(singles))


def plan_network(net: nn.Cell, input_shape: tuple[int, ...]) -> NetworkPlan:
    return _Planner(net, input_shape).plan()
