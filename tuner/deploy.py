"""Loading a tuned model, in the caller's process: ``load(path)`` builds the model an exported
JSON names and applies the configuration to it (tuner.apply_config.apply), or loads a bundle
(tuner.bundle), which carries its weights, libraries and planned programs. The top of the
deployment modules: tuner.tuned_network, tuner.serving, tuner.apply_config and tuner.bundle
sit under it.
"""
from __future__ import annotations

from pathlib import Path

from mindspore import nn

from tuner.apply_config import apply
from tuner.bundle import bundle_directory, load_bundle
from tuner.errors import UsageError
from tuner.exported_config import ExportedConfig, check_model, read_export
from tuner.models import create_model


def load(path: str | Path, checkpoint: str | Path | None = None, *,
         trust_model_code: bool = False) -> nn.Cell:
    """Build the model named by an exported JSON, load ``checkpoint`` if given, apply the
    config; or load a bundle (its directory, or the ``best.json`` inside it), which carries its
    weights, libraries and planned programs.

    An export naming a ``package.module:factory`` model is refused (ExportError) unless
    ``trust_model_code``: building it imports that module and runs the factory (a bundle whose
    programs cover the whole network builds no model)."""
    bundle = bundle_directory(path)
    if bundle is not None:
        if checkpoint is not None:
            raise UsageError(f"{bundle}: a bundle carries its weights; write it with "
                             f"--checkpoint {checkpoint} instead")
        return load_bundle(bundle, lambda exported: build_model(
            exported, trust_model_code=trust_model_code))
    exported = read_export(path)
    return apply(build_model(exported, checkpoint, trust_model_code), exported)


def build_model(exported: ExportedConfig, checkpoint: str | Path | None = None,
                trust_model_code: bool = False) -> nn.Cell:
    """The untuned model an export names, with ``checkpoint``'s weights if given; a
    ``package.module:factory`` model only with ``trust_model_code``."""
    import mindspore as ms

    check_model(exported, trust_model_code)
    net = create_model(exported.target.model)
    if checkpoint is not None:
        try:
            not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(str(checkpoint)))
        except (RuntimeError, ValueError, OSError) as exc:
            raise UsageError(f"{checkpoint}: cannot load checkpoint ({exc})") from None
        if not_loaded:
            raise UsageError(f"{checkpoint}: no value for parameter {not_loaded[0]!r}")
    return net
