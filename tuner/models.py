"""Which network is tuned: mindcv registry names or a user's ``package.module:factory``."""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from tuner.errors import UsageError


@dataclass(frozen=True)
class TuningTarget:
    """A network, the shape of its input and the device it runs on.

    ``model`` is a mindcv model name (``resnet50``) or ``package.module:factory`` where
    ``factory()`` returns a MindSpore Cell. The input is ``batch_size x 3 x image_size x
    image_size`` float32.
    """

    model: str
    batch_size: int = 1
    image_size: int = 224
    device: str = "CPU"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size: {self.batch_size} is not a positive integer")
        if self.image_size < 8:
            raise UsageError(f"--image-size: {self.image_size} is below 8 pixels")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, 3, self.image_size, self.image_size)

    def study_name(self, objectives: tuple[str, ...]) -> str:
        model = self.model.replace(":", ".").replace("/", ".")
        shape = "x".join(map(str, self.input_shape))
        return f"{model}_{shape}_{self.device}_{'+'.join(objectives)}"

    def to_dict(self) -> dict:
        return {"model": self.model, "batch_size": self.batch_size,
                "image_size": self.image_size, "device": self.device}


def _mindcv_names() -> list[str]:
    import mindcv

    return list(mindcv.list_models())


FACTORY_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def is_model_code(name: str) -> bool:
    """Whether ``name`` is a user's ``package.module:factory`` (code that building it imports
    and runs) rather than a mindcv registry name."""
    return ":" in name


def _factory(name: str):
    """The factory of ``package.module:factory``: a function or class defined in that module
    (not a name it imported, nor a builtin). UsageError (``--model NAME: why``) otherwise."""
    if not FACTORY_NAME.fullmatch(name):
        raise UsageError(f"--model {name}: not package.module:factory (dotted module name, "
                         "colon, function name)")
    module_name, _, factory_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--model {name}: cannot import module {module_name!r} ({exc})") from None
    factory = vars(module).get(factory_name)
    if not (inspect.isfunction(factory) or inspect.isclass(factory)):
        raise UsageError(f"--model {name}: module {module_name!r} has no function {factory_name!r}")
    if factory.__module__ != module.__name__:
        raise UsageError(f"--model {name}: {factory_name!r} is not defined in {module_name!r} "
                         f"(it comes from {factory.__module__!r})")
    return factory


def model_import_root(name: str) -> Path | None:
    """The directory a ``package.module:factory`` model's top-level package is imported from
    (what a child process needs on its path to import it), as this process finds it; None for
    a mindcv name or a module that cannot be found."""
    if not is_model_code(name):
        return None
    module_name = name.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.has_location:
        where = Path(spec.origin).resolve().parent
        if spec.submodule_search_locations is not None:  # a package: origin is its __init__
            where = where.parent
    elif spec.submodule_search_locations:  # a namespace package
        where = Path(list(spec.submodule_search_locations)[0]).resolve().parent
    else:
        return None
    for _ in range(module_name.count(".")):
        where = where.parent
    return where


def check_model_name(name: str) -> None:
    """Raise UsageError, with close names, unless ``name`` can be created (a factory's module
    is imported: call it only for a name the user gave, or trusts)."""
    if is_model_code(name):
        _factory(name)
        return
    names = _mindcv_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise UsageError(f"--model {name}: not a mindcv model{hint} "
                         f"(or give package.module:factory for your own Cell)")


def create_model(name: str):
    """A fresh, randomly initialised network in inference mode; UsageError when a factory
    returns something else than a MindSpore Cell."""
    from mindspore import nn

    if is_model_code(name):
        net = _factory(name)()
        if not isinstance(net, nn.Cell):
            raise UsageError(f"--model {name}: the factory returned {type(net).__name__}, "
                             "not a MindSpore Cell")
    else:
        import mindcv

        net = mindcv.create_model(name, pretrained=False)
    net.set_train(False)
    return net


def randomize_normalization(net, seed: int):
    """``net`` with random BatchNorm statistics and affine parameters, as a trained network has
    (moving mean and beta ~ N(0, 0.1), moving variance and gamma ~ U(0.8, 1.25), from ``seed``).
    With the initial values (0 and 1) every bias folded from a BatchNorm would be zero, and a
    kernel that mishandled its bias would still match the untuned reference."""
    import numpy as np
    from mindspore import Tensor, nn

    rng = np.random.default_rng(seed)
    for _, cell in net.cells_and_names():
        if not isinstance(cell, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            continue
        for param, centred in ((cell.moving_mean, True), (cell.beta, True),
                               (cell.moving_variance, False), (cell.gamma, False)):
            values = (rng.normal(0.0, 0.1, param.shape) if centred
                      else rng.uniform(0.8, 1.25, param.shape))
            param.set_data(Tensor(values.astype(np.float32)))
    return net


def model_stages(net, minimum: int = 3, limit: int = 24) -> tuple[str, ...]:
    """The sub-modules at the shallowest depth holding at least ``minimum`` container cells.

    ResNet gives layer1..layer4; MobileNetV2 gives features.1..features.17-ish blocks. These are
    the names offered to per-module knobs (fusion exclusions, partial BatchNorm folding).
    """
    containers_by_depth: dict[int, list[str]] = {}
    for name, cell in net.cells_and_names():
        if name and cell.name_cells():
            containers_by_depth.setdefault(name.count(".") + 1, []).append(name)
    for depth in sorted(containers_by_depth):
        if len(containers_by_depth[depth]) >= minimum:
            return tuple(containers_by_depth[depth][:limit])
    return ()


def fingerprint(net) -> str:
    """A hash of the network's parameter names and shapes: same architecture, same fingerprint."""
    digest = hashlib.sha256()
    for name, param in sorted(net.parameters_and_names(), key=lambda item: item[0]):
        digest.update(f"{name}:{tuple(param.shape)};".encode())
    return digest.hexdigest()[:16]
