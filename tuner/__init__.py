"""tuner: an experiment-tracking autotuner for MindSpore inference.

Deployment code uses :func:`load` (build the tuned model from an exported JSON, or load a bundle
that `python -m tuner.export --bundle DIR` wrote) or :func:`apply` (apply an exported
configuration to a network it built and loaded itself).
"""
__version__ = "0.1.0"


def apply(net, config_or_path):
    """Return ``net`` with a tuned configuration applied (see tuner.apply_config.apply)."""
    from tuner.apply_config import apply as _apply

    return _apply(net, config_or_path)


def load(path, checkpoint=None, *, trust_model_code=False):
    """Build the tuned model of an exported JSON, optionally with a checkpoint's weights, or
    load a bundle (its directory, or the ``best.json`` inside it); an export naming a
    ``package.module:factory`` model needs ``trust_model_code=True`` (building it runs that
    code). See tuner.deploy.load."""
    from tuner.deploy import load as _load

    return _load(path, checkpoint, trust_model_code=trust_model_code)


__all__ = ["apply", "load", "__version__"]
