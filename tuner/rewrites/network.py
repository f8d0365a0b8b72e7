"""The top-level cell that every rewrite returns, and replacing a sub-cell in place."""
from mindspore import jit, nn


def set_child(parent: nn.Cell, name: str, child: nn.Cell) -> None:
    """Replace ``parent``'s child ``name`` (a SequentialCell's key is its index as a string).

    SequentialCell.__setitem__ renames the new child's parameters from a prefix it guesses
    from its other children's names, which fails once one child is custom; its ``_cells``
    dict and ``cell_list`` are therefore updated directly (parameter names are kept).
    """
    if isinstance(parent, nn.SequentialCell):
        parent._cells[name] = child  # pylint: disable=protected-access
        parent.cell_list = list(parent._cells.values())  # pylint: disable=protected-access
    else:
        setattr(parent, name, child)


class TunedNetwork(nn.Cell):
    """A fresh top-level cell around a rewritten network. MindSpore keys compiled graphs by the
    top-level cell instance, so an already compiled cell would silently keep its old graph."""

    def __init__(self, network: nn.Cell):
        super().__init__()
        self.network = network

    def construct(self, x):
        return self.network(x)


class GraphNetwork(nn.Cell):
    """What deployment returns: the tuned network compiled as a graph (``mindspore.jit``) in
    either execution mode. Every configuration was measured as a graph, and the caller's mode
    (MindSpore's default is PyNative) is the caller's business."""

    def __init__(self, network: nn.Cell):
        super().__init__(auto_prefix=False)
        self.network = network

    @jit
    def construct(self, x):
        return self.network(x)
