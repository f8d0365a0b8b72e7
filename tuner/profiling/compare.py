"""Baseline and tuned profiles side by side: by operator type and by layer, plus the time that
no operator accounts for. Rendered as text (the CLI), CSV, JSON and Markdown (MLflow)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from tuner.profiling.operator_times import Profile

SIDES = ("baseline", "tuned")


@dataclass(frozen=True)
class Row:
    """One line of the comparison; per side: calls per inference, ms per inference, share of
    that side's wall time per inference (None where the side has no such operator), and the
    rate of the floating-point work the side's profile knows of there (``gflops``: GFLOP/s,
    the known work per inference over the row's time; None where it knows of none)."""

    section: str       # "type", "layer" or "total"
    key: str           # operator type, layer path, or what a total line measures
    what: tuple[str, str]  # per side: what runs there (layers: its operators)
    calls: tuple[float | None, float | None]
    ms: tuple[float | None, float | None]
    share: tuple[float | None, float | None]
    gflops: tuple[float | None, float | None] = (None, None)

    def to_dict(self) -> dict:
        data = {"section": self.section, "key": self.key}
        for i, side in enumerate(SIDES):
            data.update({f"{side}_what": self.what[i], f"{side}_calls": self.calls[i],
                         f"{side}_ms": self.ms[i], f"{side}_share": self.share[i],
                         f"{side}_gflops": self.gflops[i]})
        return data


def _share(ms: float | None, profile: Profile) -> float | None:
    return None if ms is None or profile.wall_ms <= 0 else ms / profile.wall_ms


def _rate(flops: float | None, ms: float | None) -> float | None:
    return flops / ms / 1e6 if flops and ms else None


def _section(section: str, profiles: tuple[Profile, Profile], top: int) -> list[Row]:
    key_attr = "op_type" if section == "type" else "layer"
    per = [p.per_inference(key_attr) for p in profiles]
    flops = [p.flops_per_inference(key_attr) for p in profiles]
    names = [p.names_by_layer() for p in profiles] if section == "layer" else None
    keys = sorted(set(per[0]) | set(per[1]),
                  key=lambda k: -max(per[0].get(k, (0, 0))[1], per[1].get(k, (0, 0))[1]))
    rows = []
    for key in keys[:top] if top else keys:
        values = [side.get(key) for side in per]
        what = tuple(", ".join(dict.fromkeys(n.get(key, []))) for n in names) if names else ("", "")
        rows.append(Row(section, key, what,
                        tuple(v[0] if v else None for v in values),
                        tuple(v[1] if v else None for v in values),
                        tuple(_share(v[1] if v else None, p) for v, p in zip(values, profiles)),
                        tuple(_rate(f.get(key), v[1] if v else None)
                              for f, v in zip(flops, values))))
    return rows


def _total(key: str, values: tuple[float, float], profiles: tuple[Profile, Profile],
           rated: bool = True) -> Row:
    work = [p.flops_per_inference().get("") if rated else None for p in profiles]
    return Row("total", key, ("", ""), (None, None), values,
               tuple(_share(v, p) for v, p in zip(values, profiles)),
               tuple(_rate(f, v) for f, v in zip(work, values)))


def compare(baseline: Profile, tuned: Profile, top: int = 15) -> list[Row]:
    """Rows: the ``top`` operator types and layers by the larger side's time (0 = all), then
    the totals: operators, framework overhead, profiled wall and unprofiled wall time (all but
    the overhead with the rate of all the side's known work over that time)."""
    pair = (baseline, tuned)
    rows = _section("type", pair, top) + _section("layer", pair, top)
    rows.append(_total("all operators", (baseline.operator_ms, tuned.operator_ms), pair))
    rows.append(_total("framework overhead (wall - operators)",
                       (baseline.overhead_ms, tuned.overhead_ms), pair, rated=False))
    rows.append(_total("wall per inference, profiled", (baseline.wall_ms, tuned.wall_ms), pair))
    rows.append(_total("wall per inference, unprofiled",
                       (baseline.unprofiled_ms, tuned.unprofiled_ms), pair))
    return rows


def profiler_note(profile: Profile, tolerance: float = 0.15) -> str:
    """Says when the profiled wall time per inference is more than ``tolerance`` away from the
    unprofiled one (the profiler's own cost, or noise), and by how much."""
    slowdown = profile.profiler_slowdown
    if slowdown > 1 + tolerance:
        change = f"slowed an inference by {slowdown - 1:.0%}"
    elif slowdown < 1 - tolerance:
        change = f"ran an inference {1 - slowdown:.0%} faster than unprofiled"
    else:
        return ""
    return (f"{profile.label}: profiled, {change} ({profile.unprofiled_ms:.3f} -> "
            f"{profile.wall_ms:.3f} ms per inference)")


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {"calls": f"{value:g}", "ms": f"{value:.3f}", "share": f"{value:.1%}",
            "gflops": f"{value:.1f}"}[kind]


_COLUMNS = ("calls", "ms", "share", "gflops")
_HEADERS = [f"{side} {title}" for side in ("base", "tuned")
            for title in ("calls", "ms", "%", "GFLOP/s")]  # a side's _COLUMNS, in order
_TITLES = {"type": "by operator type", "layer": "by layer", "total": "totals"}


def render_text(rows: list[Row], width: int = 58) -> str:
    header = [""] + _HEADERS
    lines, section = [], None
    table = []
    for row in rows:
        if row.section != section:
            section = row.section
            table.append([f"-- {_TITLES[section]} --"] + [""] * (len(header) - 1))
        label = row.key if len(row.key) <= width else "..." + row.key[-width + 3:]
        if row.section == "layer" and row.what[1]:
            label = f"{label} [{row.what[1]}]"[:width + 40]
        table.append([label] + [_fmt(getattr(row, kind)[i], kind)
                                for i in range(2) for kind in _COLUMNS])
    widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
    for r in [header] + table:
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                               for i, c in enumerate(r)).rstrip())
    return "\n".join(lines)


def render_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    fields = list(rows[0].to_dict()) if rows else ["section", "key"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow(row.to_dict())
    return buffer.getvalue()


def render_markdown(rows: list[Row], baseline: Profile, tuned: Profile) -> str:
    out = [f"- {baseline.label}", f"- {tuned.label}",
           f"- {tuned.runs} profiled inferences each, after warm-up", ""]
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            out += ["", f"### {_TITLES[section]}", "",
                    "| | " + " | ".join(_HEADERS) + " |",
                    "|---|" + "---:|" * len(_HEADERS)]
        label = f"`{row.key}`" + (f" ({row.what[1]})" if row.section == "layer" and row.what[1]
                                  else "")
        cells = [_fmt(getattr(row, kind)[i], kind) for i in range(2) for kind in _COLUMNS]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = [n for n in (profiler_note(baseline), profiler_note(tuned)) if n]
    return "\n".join(out + [""] + [f"> {n}" for n in notes]) + "\n"
