"""The recovery report as one self-contained HTML page: the summary, a timeline chart of every
node's steps drawn as inline SVG (no script, nothing fetched: it opens offline), time per step and
the failed nodes. Everything from the report is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from drbootstrap.plan import Step
from drbootstrap.report.markdown import fmt, headline, timeline_origin

# One colour per step, in Step's order; a step on the critical path gets a dark outline.
_PALETTE = ("#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
            "#bab0ac", "#6a3d9a", "#d37295", "#8cd17d", "#17becf")
STEP_COLOURS = {str(step): _PALETTE[index % len(_PALETTE)] for index, step in enumerate(Step)}
_LABEL_WIDTH, _CHART_WIDTH, _ROW, _TOP = 150, 820, 24, 30

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.n { text-align: right; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: middle; }
svg.gantt text { font-size: 12px; }
rect.failed { fill: #d62728; }
rect.critical { stroke: #000; stroke-width: 2; }
pre { background: #f4f4f4; padding: 0.5em; }
"""


def render_html(report: dict[str, Any]) -> str:
    """The whole page."""
    env = escape(report["environment"])
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Recovery report: {env}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Recovery report: {env}</h1>", "<ul>"]
    parts += [f"<li>{escape(line)}</li>" for line in headline(report)]
    parts += ["</ul>", "<h2>Timeline</h2>", gantt_svg(report), _legend(report)]
    parts += ["<h2>Time per step</h2>", "<table><tr><th>step</th><th>nodes</th><th>min</th><th>median</th>"
              "<th>max</th><th>time spent (all nodes)</th></tr>"]
    for name, f in report["steps"].items():
        parts.append(f"<tr><td>{escape(name)}</td><td class=n>{f['nodes']}</td><td class=n>{fmt(f['min'])}</td>"
                     f"<td class=n>{fmt(f['median'])}</td><td class=n>{fmt(f['max'])}</td>"
                     f"<td class=n>{fmt(f['total'])}</td></tr>")
    parts.append("</table>")
    if report["failed"]:
        parts.append('<h2>Failed nodes</h2><ul class="failed">')
        for failure in report["failed"]:
            where = f" at {failure['step']}" if failure["step"] else ""
            parts.append(f"<li><b>{escape(failure['hostname'])}</b> ({escape(failure['state'] + where)}): "
                         f"{escape(failure['reason'])}")
            if failure["log_tail"]:
                parts.append(f"<pre>{escape(chr(10).join(failure['log_tail'].splitlines()[-20:]))}</pre>")
            parts.append("</li>")
        parts.append("</ul><p>Retry just these: <code>drbootstrap up SPEC --only FAILED</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def gantt_svg(report: dict[str, Any]) -> str:
    """One row per node, one bar per step at its start and length; an axis in seconds."""
    origin = timeline_origin(report)
    nodes = [node for node in report["nodes"] if node["steps"]]
    end = max(((s["finished_at"] or s["started_at"]) - origin for n in nodes for s in n["steps"]), default=0.0)
    scale = _CHART_WIDTH / max(end, 0.01)
    height = _TOP + _ROW * len(nodes) + 10
    width = _LABEL_WIDTH + _CHART_WIDTH + 20
    out = [f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of every node\'s steps">']
    tick = _tick(end)
    t = 0.0
    while t <= end + 1e-9:
        x = _LABEL_WIDTH + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{_TOP - 5}" x2="{x:.1f}" y2="{height - 10}" stroke="#e3e3e3"/>'
                   f'<text class="tick" x="{x:.1f}" y="{_TOP - 10}" text-anchor="middle">{fmt(t)}</text>')
        t += tick
    for row, node in enumerate(nodes):
        y = _TOP + row * _ROW
        out.append(f'<text class="node" x="4" y="{y + 16}">{escape(node["hostname"])}</text>')
        for step in node["steps"]:
            start = step["started_at"] - origin
            length = max(((step["finished_at"] or step["started_at"]) - origin) - start, 0.0)
            classes = ["bar", f"step-{step['step']}"] + (["failed"] if step["state"] == "failed" else []) \
                + (["critical"] if step["critical"] else [])
            out.append(f'<rect class="{" ".join(classes)}" x="{_LABEL_WIDTH + start * scale:.1f}" y="{y + 3}" '
                       f'width="{max(length * scale, 1.5):.1f}" height="{_ROW - 6}" '
                       f'fill="{STEP_COLOURS.get(step["step"], "#888")}"><title>{escape(node["hostname"])} '
                       f'{escape(step["step"])}: {fmt(step["seconds"])} (+{start:.1f} s) '
                       f'{escape(step["detail"])}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _tick(end: float) -> float:
    """A round axis step giving at most about ten ticks."""
    for tick in (0.01, 0.1, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if end / tick <= 10:
            return float(tick)
    return 7200.0


def _legend(report: dict[str, Any]) -> str:
    used = {s["step"] for n in report["nodes"] for s in n["steps"]}
    items = "".join(f'<span><i style="background:{STEP_COLOURS[str(step)]}"></i>{step}</span>'
                    for step in Step if str(step) in used)
    return (f'<p class="legend">{items}<span><i style="background:#fff;border:2px solid #000"></i>'
            f"on the critical path</span><span><i style=\"background:#d62728\"></i>failed</span></p>")
