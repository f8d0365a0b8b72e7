"""Which network is tuned: mindcv registry names or a user's ``package.module:factory``."""
from __future__ import annotations

import difflib
import hashlib
import importlib
from dataclasses import dataclass

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


def check_model_name(name: str) -> None:
    """Raise UsageError, with close names, unless ``name`` can be created."""
    if ":" in name:
        module_name, _, factory = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UsageError(f"--model {name}: cannot import module {module_name!r} ({exc})") from None
        if not callable(getattr(module, factory, None)):
            raise UsageError(f"--model {name}: module {module_name!r} has no callable {factory!r}")
        return
    names = _mindcv_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise UsageError(f"--model {name}: not a mindcv model{hint} "
                         f"(or give package.module:factory for your own Cell)")


def create_model(name: str):
    """A fresh, randomly initialised network in inference mode."""
    if ":" in name:
        module_name, _, factory = name.partition(":")
        net = getattr(importlib.import_module(module_name), factory)()
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
