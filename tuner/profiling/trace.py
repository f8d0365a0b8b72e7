"""One Chrome trace (Perfetto, chrome://tracing) holding the profiled runs of several
processes, each as its own track, each starting at time 0, custom kernels named by workload."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from tuner.profiling.operator_times import Profile


def _events(profile: Profile) -> list[dict]:
    if not profile.trace_file or not Path(profile.trace_file).exists():
        return []
    data = json.loads(Path(profile.trace_file).read_text())
    return data.get("traceEvents", []) if isinstance(data, dict) else data


def merged_trace(profiles: Sequence[Profile]) -> dict:
    """``{"traceEvents": [...]}``: process ``i + 1`` is ``profiles[i]``; its duration events
    shifted so that its first one starts at 0 (microseconds)."""
    merged: list[dict] = []
    for pid, profile in enumerate(profiles, start=1):
        names = {op.scope: op.name for op in profile.operators if op.kernel}
        spans = [e for e in _events(profile) if e.get("ph") == "X"]
        start = min((float(e["ts"]) for e in spans), default=0.0)
        merged.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                       "args": {"name": profile.label}})
        merged.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                       "args": {"sort_index": pid}})
        for event in spans:
            merged.append({**event, "pid": pid, "ts": float(event["ts"]) - start,
                           "dur": float(event.get("dur", 0.0)),
                           "name": names.get(event["name"], event["name"]),
                           "args": {**event.get("args", {}), "scope": event["name"]}})
    return {"traceEvents": merged, "displayTimeUnit": "ms"}
