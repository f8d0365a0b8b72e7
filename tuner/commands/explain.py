"""``python -m tuner.explain``: what the programs make of a network, layer by layer.

For a model (a mindcv name or ``package.module:factory``) at an input shape, or for an
exported configuration: every program with its steps (the layer each computes, what was folded
or fused into it, the kernel of its convolutions and matrix products), then every part of the
network left to MindSpore's own operators with the reason (an operation the runtime does not
have, a module called more than once, a region that reads or returns several values, an
excluded module).
"""
from __future__ import annotations

from pathlib import Path

from tuner.commands.entry import OneLineParser
from tuner.commands.options import add_trust_argument, positive_int
from tuner.config import GRANULARITY_LIMITS, ProgramConfig, TuningConfig
from tuner.errors import UnsupportedDeviceError, UsageError


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m tuner.explain", description=__doc__)
    parser.add_argument("config", nargs="?", type=Path,
                        help="an exported configuration (default: --model at --granularity)")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--image-size", type=positive_int, default=224)
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--granularity", choices=list(GRANULARITY_LIMITS), default="network",
                        help="heavy operations per program (without a config; default network)")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="MODULE",
                        help="module paths kept out of the programs (without a config)")
    add_trust_argument(parser)
    args = parser.parse_args(argv)
    from tuner.models import TuningTarget, check_model_name

    if args.config is not None:
        from tuner.exported_config import check_model, read_export

        exported = read_export(args.config)
        target, config = exported.target, exported.config
        if config.programs.enabled:
            check_model(exported, args.trust_model_code)
        else:
            print(f"{args.config}: programs are off (programs.granularity: off): every layer "
                  "is MindSpore's own")
            return 0
    else:
        check_model_name(args.model)
        target = TuningTarget(args.model, args.batch_size, args.image_size, args.device)
        config = TuningConfig(programs=ProgramConfig(args.granularity,
                                                     excluded_modules=tuple(args.exclude)))
    import mindspore as ms

    from tuner.backends import get_backend
    from tuner.exported_config import check_for_model
    from tuner.graph.capture import CaptureError, capture
    from tuner.models import create_model

    backend = get_backend(target.device)
    try:
        library = backend.kernel_library()
    except UnsupportedDeviceError as exc:
        raise UsageError(str(exc)) from None
    reason = library.unavailable_reason()
    if reason:
        raise UsageError(f"--device {target.device}: {reason}")
    ms.set_context(mode=ms.GRAPH_MODE)
    net = create_model(target.model)
    try:
        graph = None
        if config.kernels:  # an export's choices: for workloads of this network?
            graph = capture(net, target.input_shape)
            check_for_model(exported, library.find_workloads(net, target.input_shape, graph))
        print(library.explain(net, config, target.input_shape, graph))
    except CaptureError as exc:
        raise UsageError(f"{target.model}: {exc}") from None
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(f"{args.config or target.model}: {exc}") from None
    return 0
