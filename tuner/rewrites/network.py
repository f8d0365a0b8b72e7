"""The top-level cell that every rewrite returns, and replacing a sub-cell in place."""
from __future__ import annotations

import threading
from typing import Callable

from mindspore import Tensor, context, jit, nn
from mindspore.graph.api import _cell_graph_executor

from tuner.errors import one_line
from tuner.rewrites.input_contract import InputContract


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


class _RepeatedCallsToTheExecutor(nn.Cell):
    """In graph mode, a call with one tensor of a shape and type this cell has already run goes
    straight to MindSpore's graph executor with the compiled graph's phase, as ``Cell.__call__``
    does in the end: ``Cell.__call__`` first checks the arguments, sets attributes and asks
    the compiler whether the graph exists, in Python, ~0.9 ms per call (MobileNetV2 at batch 1
    took 8.0 ms a call through it, 7.1 ms through the executor, Intel Xeon 2 vCPUs). Any other
    call (first of its kind, keyword arguments, PyNative mode) takes ``Cell.__call__``.
    Before all that, in either mode, a network that can run a call from Python without a graph
    does (``call_directly``: a network that is one program skips the graph executor)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "_compiled_phases", {})

    def call_directly(self, *args) -> Tensor | None:
        """The output of a call that the wrapped network runs from Python without a graph (a
        network that is one program: ProgramCell.call_directly), else None."""
        inner = getattr(self.network, "call_directly", None)
        return inner(*args) if inner is not None else None

    def __call__(self, *args, **kwargs):
        if not kwargs:
            output = self.call_directly(*args)
            if output is not None:
                return output
        key = _call_key(args, kwargs)
        phase = self._compiled_phases.get(key) if key is not None else None
        if phase is not None and _cell_graph_executor.has_compiled(phase):
            return _cell_graph_executor._graph_executor(args, phase)  # pylint: disable=protected-access
        output = super().__call__(*args, **kwargs)
        if key is not None:
            self._compiled_phases[key] = self.compile_phase
        return output


def _call_key(args: tuple, kwargs: dict):
    """What selects a compiled graph of a cell for this call: (mode, shape, dtype) of its one
    tensor argument in graph mode; None for any other call."""
    if kwargs or len(args) != 1 or type(args[0]) is not Tensor:  # noqa: E721 (no subclasses)
        return None
    mode = context.get_context("mode")
    if mode != context.GRAPH_MODE:
        return None
    return mode, tuple(args[0].shape), args[0].dtype


class TunedNetwork(_RepeatedCallsToTheExecutor):
    """A fresh top-level cell around a rewritten network. MindSpore keys compiled graphs by the
    top-level cell instance, so an already compiled cell would silently keep its old graph.
    Repeated calls skip ``Cell.__call__`` (_RepeatedCallsToTheExecutor)."""

    def __init__(self, network: nn.Cell):
        super().__init__()
        self.network = network

    def construct(self, x):
        return self.network(x)


class GraphNetwork(_RepeatedCallsToTheExecutor):
    """What deployment returns: the tuned network compiled as a graph (``mindspore.jit``) in
    either execution mode. Every configuration was measured as a graph, and the caller's mode
    (MindSpore's default is PyNative) is the caller's business. In graph mode, repeated calls
    skip ``Cell.__call__`` (_RepeatedCallsToTheExecutor), as the measured ones did.

    With a ``contract`` (a network that programs fixed to one input shape), every call is
    checked against it. Another batch size runs on the network ``plan_batch(batch)`` returns,
    planned on its first use and kept (up to MAX_PLANNED_BATCHES sizes); without one, or where
    planning fails, in chunks of the tuned batch (InputContract.serve). Calls from several
    threads run one at a time: the network's buffers are shared, and a call already uses
    every core."""

    MAX_PLANNED_BATCHES = 8

    def __init__(self, network: nn.Cell, contract: InputContract | None = None,
                 plan_batch: Callable[[int], nn.Cell] | None = None):
        super().__init__(auto_prefix=False)
        self.network = network
        object.__setattr__(self, "contract", contract)
        object.__setattr__(self, "_plan_batch", plan_batch)
        object.__setattr__(self, "_batches", {})  # batch size -> its network, or None
        object.__setattr__(self, "planning_failures", {})  # batch size -> why (one line)
        object.__setattr__(self, "_calls", threading.Lock())

    def __call__(self, *args, **kwargs):
        with self._calls:
            if self.contract is None or kwargs or len(args) != 1:
                return super().__call__(*args, **kwargs)
            batch = self.contract.check(args[0])
            if batch == self.contract.batch:
                return super().__call__(*args)
            network = self._network_for(batch)
            if network is not None:
                return network(*args)
            return self.contract.serve(args[0], super().__call__)

    @property
    def planned_batches(self) -> tuple[int, ...]:
        """The batch sizes other than the tuned one that have a network of their own."""
        return tuple(sorted(b for b, network in self._batches.items() if network is not None))

    def _network_for(self, batch: int) -> nn.Cell | None:
        if batch not in self._batches and self._plan_batch is not None \
                and len(self._batches) < self.MAX_PLANNED_BATCHES:
            try:
                self._batches[batch] = self._plan_batch(batch)
            except Exception as exc:  # noqa: BLE001  (e.g. no compiler): served in chunks
                self._batches[batch] = None
                self.planning_failures[batch] = one_line(exc)
        return self._batches.get(batch)

    @jit
    def construct(self, x):
        return self.network(x)
