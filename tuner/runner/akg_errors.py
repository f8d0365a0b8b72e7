"""What graph-kernel fusion's compiler (AKG) could not compile, from its build server's output.

When AKG fails on a fused kernel, MindSpore's compile raises only ``RuntimeError: Response is
empty.`` (its kernel build client lost the server); the reason is in the server's traceback,
which it prints to the trial process's standard output: ``ValueError: Compile error, args:
{kernel JSON}! build attrs: {...}``. The kernel JSON names the fused kernel and the operators
it holds, each with the scope of the module it came from.
"""
from __future__ import annotations

import json

_MARK = "Compile error, args: "
_END = "! build attrs:"


# The exception name a trial's error gives the reason under (TrialResult.reason() reads the
# last ``SomethingError: ...`` line).
AKG_ERROR = "AkgCompileError"


def _module(scope: str) -> str:
    """``Default/network-ResNet/layer2-SequentialCell/3-Bottleneck/bn2-BatchNorm2d/BatchNorm-op0``
    -> ``layer2.3.bn2``: the module names of a MindSpore operator's scope ("" for the network's
    own operators)."""
    return ".".join(part.split("-", 1)[0] for part in scope.split("/")[2:-1])


def akg_failure(output: str) -> str | None:
    """The last fused kernel AKG reports it could not compile in ``output`` (a process's
    standard output), as ``graph-kernel fusion (AKG) could not compile <kernel> (<operators>
    of <modules>)``; None if there is no such report."""
    start = output.rfind(_MARK)
    end = output.find(_END, start)
    if start < 0 or end < 0:
        return None
    try:
        kernel = json.loads(output[start + len(_MARK):end])
        ops = kernel.get("op_desc") or []
        names = sorted({op["name"] for op in ops})
        modules = sorted({_module(op.get("ptr_address", "")) for op in ops} - {""})
        what = (f"{kernel['op']} ({', '.join(names)} of {', '.join(modules) or 'the network'})"
                if names else str(kernel["op"]))
    except (ValueError, KeyError, TypeError):
        return None
    return f"graph-kernel fusion (AKG) could not compile {what}"
