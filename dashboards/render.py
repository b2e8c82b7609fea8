#!/usr/bin/env python3
"""Renders the panels of a Grafana dashboard JSON as a static HTML page (SVG line charts laid
out on Grafana's 24-column grid), from Prometheus range-query results fetched by screenshot.sh.

  render.py DASHBOARD.json DATA.json OUT.html

DATA.json maps each target's expression to Prometheus's /api/v1/query_range answer."""
import html
import json
import sys

COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
          "#fade2a", "#37872d", "#c4162a"]


def fmt(value, unit):
    if unit in ("bytes", "Bps"):
        per = "/s" if unit == "Bps" else ""
        for suffix in ["B", "KiB", "MiB", "GiB", "TiB"]:
            if abs(value) < 1024:
                return f"{value:.3g} {suffix}{per}"
            value /= 1024
        return f"{value:.3g} PiB{per}"
    if unit == "percentunit":
        return f"{value * 100:.3g}%"
    return f"{value:.3g}"


def legend(template, metric):
    out = template
    for key, val in metric.items():
        out = out.replace("{{" + key + "}}", val)
    return out or json.dumps(metric)


def series_of(panel, data):
    series = []
    for target in panel["targets"]:
        answer = data.get(target["expr"], {})
        for result in answer.get("data", {}).get("result", []):
            points = [(float(t), float(v)) for t, v in result["values"]]
            series.append((legend(target.get("legendFormat", ""), result["metric"]), points))
    return series


def chart(panel, data, width, height):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "none")
    series = series_of(panel, data)
    if panel["type"] == "stat":
        value = series[0][1][-1][1] if series and series[0][1] else 0
        return (f'<div class="stat" style="height:{height - 40}px">{html.escape(fmt(value, unit))}'
                "</div>")
    plot_w, plot_h, left, top = width - 90, height - 110, 70, 10
    ts = [t for _, pts in series for t, _ in pts]
    vs = [v for _, pts in series for _, v in pts]
    if not ts:
        return '<div class="empty">no data</div>'
    t0, t1 = min(ts), max(ts)
    v1 = max(vs) * 1.1 or 1
    svg = [f'<svg width="{width - 20}" height="{plot_h + 30}">']
    for i in range(5):
        y = top + plot_h * i / 4
        svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                   'class="grid"/>')
        svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                   f"{html.escape(fmt(v1 * (4 - i) / 4, unit))}</text>")
    for i in range(5):
        t = t0 + (t1 - t0) * i / 4
        x = left + plot_w * i / 4
        minutes = (t - t1) / 60
        svg.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" class="axis" '
                   f'text-anchor="middle">{minutes:+.1f} min</text>')
    items = []
    for n, (name, pts) in enumerate(series):
        color = COLORS[n % len(COLORS)]
        path = " ".join(
            f"{left + plot_w * (t - t0) / max(t1 - t0, 1):.1f},{top + plot_h * (1 - v / v1):.1f}"
            for t, v in pts)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        last = pts[-1][1] if pts else 0
        items.append(f'<span><i style="background:{color}"></i>{html.escape(name)} '
                     f"<b>{html.escape(fmt(last, unit))}</b></span>")
    svg.append("</svg>")
    return "".join(svg) + '<div class="legend">' + "".join(items) + "</div>"


def main():
    dashboard = json.load(open(sys.argv[1]))
    data = json.load(open(sys.argv[2]))
    col, row = 64, 34
    parts = []
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        x, y, w, h = g["x"] * col, g["y"] * row, g["w"] * col - 8, g["h"] * row - 8
        parts.append(f'<div class="panel" style="left:{x}px;top:{y + 50}px;width:{w}px;'
                     f'height:{h}px"><div class="title">{html.escape(panel["title"])}</div>'
                     f"{chart(panel, data, w, h)}</div>")
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"]) * row + 60
    page = f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ background:#111217; color:#ccccdc; font:13px sans-serif; margin:0; }}
.head {{ position:absolute; left:8px; top:10px; font-size:18px; color:#fff; }}
.head small {{ color:#8e8e8e; font-size:12px; margin-left:12px; }}
.panel {{ position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:3px;
  box-sizing:border-box; padding:6px 8px; overflow:hidden; }}
.title {{ font-weight:600; color:#fff; margin-bottom:4px; }}
.grid {{ stroke:#2c3235; }} .axis {{ fill:#8e8e8e; font-size:10px; }}
.legend span {{ margin-right:14px; white-space:nowrap; font-size:11px; }}
.legend i {{ display:inline-block; width:10px; height:3px; margin-right:4px; vertical-align:middle; }}
.stat {{ font-size:56px; color:#73bf69; display:flex; align-items:center; justify-content:center; }}
</style></head><body style="height:{bottom}px">
<div class="head">{html.escape(dashboard["title"])}<small>panels of {html.escape(sys.argv[1].split("/")[-1])},
data from a real Prometheus scraping node-metricsd</small></div>
{"".join(parts)}</body></html>"""
    open(sys.argv[3], "w").write(page)


if __name__ == "__main__":
    main()
