"""Counting the operators of the graph MindSpore finally built (from its saved IR files)."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

GRAPHS_DIR = "graphs"
"""Where a trial process saves its IR files, relative to its working directory."""
_ENTRY = re.compile(r"^# IR entry: @(\S+)", re.MULTILINE)
_SUBGRAPH = re.compile(r"^subgraph @([\w.]+)\(", re.MULTILINE)
_INFO_NAME = re.compile(r"^info_name: (\S+)", re.MULTILINE)
_CALL = re.compile(r"^\s+%\d+\([^)]*\) = (?:call @([\w.]+)|([A-Za-z_][\w:]*))\(", re.MULTILINE)
_HASH_SUFFIX = re.compile(r"(_fusion)?_\d+$")
_BOOKKEEPING = {"Load", "UpdateState", "MakeTuple", "TupleGetItem", "Depend", "Return"}


def graph_dump_environment(directory: Path) -> dict[str, str]:
    """Environment that makes MindSpore save its IR files into ``directory``."""
    return {"MS_DEV_SAVE_GRAPHS": "1", "MS_DEV_SAVE_GRAPHS_PATH": str(directory)}


def _subgraph_bodies(text: str) -> dict[str, tuple[str, str]]:
    """subgraph name -> (its info_name or '', its body text)."""
    bodies = {}
    starts = list(_SUBGRAPH.finditer(text))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        header_start = text.rfind("subgraph attr:", 0, match.start())
        info = _INFO_NAME.search(text, header_start if header_start >= 0 else match.start(),
                                 match.start())
        bodies[match.group(1)] = (info.group(1) if info else "", text[match.end():end])
    return bodies


def count_graph_ops(directory: Path) -> dict[str, int]:
    """Operator histogram of the built kernel graph's entry: ``Conv2D``, ``Fused_ReLU``, ...

    A call of a fused sub-graph counts under its fused kernel name without the hash suffix.
    """
    builds = sorted(Path(directory).glob("**/graph_build_*.ir"))
    if not builds:
        return {}
    text = builds[-1].read_text(errors="replace")
    entry = _ENTRY.search(text)
    bodies = _subgraph_bodies(text)
    if not entry or entry.group(1) not in bodies:
        return {}
    counts: Counter[str] = Counter()
    for match in _CALL.finditer(bodies[entry.group(1)][1]):
        called, primitive = match.groups()
        if called:
            name = _HASH_SUFFIX.sub("", bodies.get(called, ("",))[0]) or f"call:{called}"
        else:
            name = primitive.removeprefix("PrimFunc_").removeprefix("Prim::")
        if name not in _BOOKKEEPING:
            counts[name] += 1
    return dict(sorted(counts.items()))
