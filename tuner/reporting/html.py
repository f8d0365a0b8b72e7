"""One self-contained HTML page (inline CSS and PNGs, no script, no network) of a study."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from tuner.reporting.plots import Plot

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em}
th{background:#f4f4f4;text-align:left}pre{background:#f7f7f7;padding:.8em;overflow-x:auto}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}.missing{color:#888;font-style:italic}
"""


@dataclass(frozen=True)
class ReportContent:
    """What the report shows; every text is plain text (escaped here)."""

    title: str
    context: dict[str, str]
    summary: str
    plots: list[Plot]
    winner: str
    winner_knobs: list[tuple[str, str]]
    failures: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    profile_rows: list[dict] = field(default_factory=list)
    reproduce: list[str] = field(default_factory=list)


def _table(header: list[str], rows: list[list[str]], css_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    identity = f' id="{css_id}"' if css_id else ""
    return f"<table{identity}><tr>{head}</tr>{body}</table>"


def _figure(plot: Plot) -> str:
    title = html.escape(plot.title)
    if plot.figure is None:
        return (f'<figure id="plot-{plot.name}"><figcaption>{title}</figcaption>'
                f'<p class="missing">not shown: {html.escape(plot.reason)}</p></figure>')
    data = base64.b64encode(plot.png()).decode()
    return (f'<figure id="plot-{plot.name}"><img alt="{title}" src="data:image/png;base64,{data}">'
            f'<figcaption>{title}</figcaption></figure>')


def _share(value) -> str:
    return "-" if value in (None, "") else f"{float(value):.1%}"


def _ms(value) -> str:
    return "-" if value in (None, "") else f"{float(value):.3f}"


def _rate(value) -> str:
    return "-" if value in (None, "") else f"{float(value):.1f}"


def render(content: ReportContent) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(content.title)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(content.title)}</h1>",
             "<h2>Context</h2>", _table(["", "value"], [[k, v] for k, v in content.context.items()],
                                        "context"),
             "<h2>Summary</h2>", f'<pre id="summary">{html.escape(content.summary)}</pre>',
             "<h2>Winner</h2>", f"<p>{html.escape(content.winner)}</p>",
             _table(["knob", "value"], [list(k) for k in content.winner_knobs], "winner-knobs"),
             "<h2>Plots</h2>", *[_figure(p) for p in content.plots]]
    if content.profile_rows:
        rows = [[r["section"], r["key"], r.get("tuned_what") or r.get("baseline_what") or "",
                 _ms(r["baseline_ms"]), _share(r["baseline_share"]), _ms(r["tuned_ms"]),
                 _share(r["tuned_share"]), _rate(r.get("tuned_gflops"))]
                for r in content.profile_rows]
        parts += ["<h2>Where the winner's time goes</h2>",
                  _table(["section", "operator type / layer", "what runs", "baseline ms",
                          "baseline %", "winner ms", "winner %", "winner GFLOP/s"], rows,
                         "profile")]
    parts.append("<h2>Failures</h2>")
    if content.failures:
        for status, trials in sorted(content.failures.items()):
            parts.append(f"<h3>{html.escape(status)} ({len(trials)})</h3>")
            parts.append(_table(["trial", "first error line"],
                                [[str(n), line] for n, line in trials], f"failures-{status}"))
    else:
        parts.append("<p>No trial failed.</p>")
    parts += ["<h2>How to reproduce</h2>",
              f"<pre id='reproduce'>{html.escape(chr(10).join(content.reproduce))}</pre>",
              "</body></html>"]
    return "\n".join(parts)
