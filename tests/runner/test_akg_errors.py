"""AKG's reason for a failed fused kernel, read from its build server's output."""
import json

import pytest

from tuner.runner.akg_errors import akg_failure


def _report(kernel: str, *ops: tuple[str, str]) -> str:
    """A build server's traceback line as MindSpore 2.10's AKG prints it."""
    desc = {"composite": True, "op": kernel,
            "op_desc": [{"name": name, "ptr_address": scope} for name, scope in ops]}
    return (f'ValueError: Compile error, args: {json.dumps(desc)}! build attrs: '
            '{"compile_cache":"./"}\n')


BN = ("BatchNorm", "Default/network-ResNet/layer2-SequentialCell/3-Bottleneck/bn2-BatchNorm2d/"
                   "BatchNorm-op0_25405")
ADD = ("Add", "Default/network-ResNet/layer1-SequentialCell/0-Bottleneck/Add-op12")


@pytest.mark.parametrize("output, expected", [
    ("Traceback ...\n" + _report("Fused_BatchNorm_fusion_1", BN),
     "graph-kernel fusion (AKG) could not compile Fused_BatchNorm_fusion_1 "
     "(BatchNorm of layer2.3.bn2)"),
    (_report("Fused_A", BN) + "again:\n" + _report("Fused_B", BN, ADD),  # the last report
     "graph-kernel fusion (AKG) could not compile Fused_B (Add, BatchNorm of layer1.0, layer2.3.bn2)"),
    (_report("Fused_C", ("Mul", "Mul-op3")), "graph-kernel fusion (AKG) could not compile Fused_C "
                                             "(Mul of the network)"),
])
def test_the_kernel_and_the_modules_it_came_from_are_named(output, expected):
    assert akg_failure(output) == expected


@pytest.mark.parametrize("output", [
    "", "RuntimeError: Response is empty.\n",
    "ValueError: Compile error, args: {not json}! build attrs: {}\n",
    "ValueError: Compile error, args: {\"op_desc\": []}! build attrs: {}\n",  # no kernel name
    "ValueError: Compile error, args: {\"op\": \"Fused_D\"",  # cut off before its end
])
def test_output_without_a_whole_report_gives_none(output):
    assert akg_failure(output) is None
