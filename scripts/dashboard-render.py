#!/usr/bin/env python3
"""dashboard-render.py — the panels of a Grafana dashboard JSON, evaluated by a
real Prometheus and drawn as SVG on one HTML page laid out like Grafana's grid.

Used by scripts/dashboard-screenshot.sh (which runs cascade, the traffic and
Prometheus, then screenshots the page with headless Chromium); Grafana itself
is not packaged in Debian, so this stands in for its renderer.

    dashboard-render.py query DASHBOARD PROM_URL START END STEP SCRAPE OUT.json
    dashboard-render.py html  DASHBOARD DATA.json OUT.html CAPTION

`query` sends every target's expr, exactly as the dashboard writes it, to
PROM_URL/api/v1/query_range after substituting Grafana's variables the way
Grafana would for this range: $instance (multi-value, "All" selected) -> .*,
$__rate_interval -> max($__interval + scrape interval, 4 x scrape interval),
$__interval -> STEP (Grafana's interval for a range this short is the scrape
interval, its min interval). `html` draws what came back; a panel none of
whose queries returned a finite sample says "No data" (no line is invented).
Only the Python standard library is used.
"""
import html
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request

PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9",
           "#8ab8ff", "#fade2a", "#96d98d", "#ffb357"]


def substitute(expr, step, scrape):
    rate_interval = max(step + scrape, 4 * scrape)
    expr = expr.replace("$__rate_interval", "%ds" % rate_interval)
    expr = expr.replace("$__interval", "%ds" % step)
    expr = re.sub(r'=~"\$\{?instance\}?"', '=~".*"', expr)
    return expr


def query(dash_path, prom, start, end, step, scrape, out):
    dash = json.load(open(dash_path))
    result = {"start": start, "end": end, "step": step, "scrape": scrape, "panels": {}}
    for p in dash["panels"]:
        targets = []
        for t in p.get("targets", []):
            expr = substitute(t["expr"], step, scrape)
            qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
            with urllib.request.urlopen("%s/api/v1/query_range?%s" % (prom, qs), timeout=30) as r:
                body = json.load(r)
            if body.get("status") != "success":
                raise SystemExit("query failed: %s: %s" % (expr, body))
            targets.append({"expr": expr, "legendFormat": t.get("legendFormat", ""),
                            "series": body["data"]["result"]})
        result["panels"][str(p["id"])] = targets
    json.dump(result, open(out, "w"))


# ---- drawing ---------------------------------------------------------------

def si(v, unit):
    """A tick or legend value in the panel's unit, as Grafana would print it."""
    if unit == "s":
        a = abs(v)
        if a == 0:
            return "0 s"
        if a < 1e-3:
            return "%s µs" % trim(v * 1e6)
        if a < 1:
            return "%s ms" % trim(v * 1e3)
        return "%s s" % trim(v)
    suffix = {"reqps": " req/s", "ops": " ops/s", "pps": " p/s"}.get(unit, "")
    a = abs(v)
    for div, s in ((1e9, " G"), (1e6, " M"), (1e3, " K")):
        if a >= div:
            return "%s%s%s" % (trim(v / div), s.strip(), suffix)
    return trim(v) + suffix


def trim(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return "%d" % round(v)
    if abs(v) >= 10:
        return ("%.1f" % v).rstrip("0").rstrip(".")
    return ("%.2f" % v).rstrip("0").rstrip(".")


def nice_ticks(lo, hi, n=4):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 0.5:
        ticks.append(round(v, 12))
        v += step
    return ticks


def legend_name(fmt, labels):
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
    name = labels.get("__name__", "")
    rest = ", ".join('%s="%s"' % kv for kv in sorted(labels.items()) if kv[0] != "__name__")
    return "%s{%s}" % (name, rest) if rest else (name or "{}")


def panel_svg(panel, targets, start, end, w, h):
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    series = []
    for t in targets:
        for s in t["series"]:
            pts = []
            for ts, v in s["values"]:
                f = float(v)
                pts.append((float(ts), f if math.isfinite(f) else None))
            if any(y is not None for _, y in pts):
                series.append((legend_name(t["legendFormat"], s["metric"]), pts))
    title_h, pad_l, pad_r, pad_b = 32, 70, 14, 24
    legend_rows = max(1, math.ceil(len(series) / 3)) if series else 0
    legend_h = 18 * legend_rows + 6
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">' % (w, h),
           '<rect x="0.5" y="0.5" width="%d" height="%d" rx="3" fill="#181b1f" stroke="#2c3235"/>' % (w - 1, h - 1),
           '<text x="10" y="21" class="title">%s</text>' % html.escape(panel["title"])]
    if not series:
        out.append('<text x="%d" y="%d" class="nodata" text-anchor="middle">No data</text>' % (w / 2, h / 2 + 8))
        out.append("</svg>")
        return "\n".join(out), False
    x0, x1 = pad_l, w - pad_r
    y0, y1 = title_h + 4, h - pad_b - legend_h
    ys = [y for _, pts in series for _, y in pts if y is not None]
    lo, hi = min(0.0, min(ys)), max(ys)
    if hi == lo:
        hi = lo + (abs(lo) or 1)
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def X(t):
        return x0 + (t - start) / (end - start) * (x1 - x0)

    def Y(v):
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)
    for tv in ticks:
        y = Y(tv)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>' % (x0, y, x1, y))
        out.append('<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>' % (x0 - 6, y + 4, html.escape(si(tv, unit))))
    span = end - start
    xstep = next(s for s in (5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 8)
    t = math.ceil(start / xstep) * xstep
    while t <= end:
        x = X(t)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/>' % (x, y0, x, y1))
        out.append('<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>' % (x, y1 + 16, time.strftime("%H:%M:%S", time.gmtime(t))))
        t += xstep
    for i, (name, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        segs, cur = [], []
        for ts, y in pts:
            if y is None:
                if cur:
                    segs.append(cur)
                cur = []
            else:
                cur.append("%.1f,%.1f" % (X(ts), Y(y)))
        if cur:
            segs.append(cur)
        for seg in segs:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append('<circle cx="%s" cy="%s" r="2" fill="%s"/>' % (cx, cy, color))
            else:
                out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>' % (" ".join(seg), color))
        col, row = i % 3, i // 3
        lx, ly = 10 + col * ((w - 20) / 3), h - legend_h + 10 + row * 18
        out.append('<rect x="%.1f" y="%.1f" width="14" height="4" fill="%s"/>' % (lx, ly - 4, color))
        out.append('<text x="%.1f" y="%.1f" class="legend">%s</text>' % (lx + 20, ly + 1, html.escape(name[:48])))
    out.append("</svg>")
    return "\n".join(out), True


def render(dash_path, data_path, out_path, caption, width=1600):
    dash = json.load(open(dash_path))
    data = json.load(open(data_path))
    margin, cell_h, head = 8, 30, 56
    col_w = (width - margin) / 24
    parts, bottom, empty = [], 0, []
    for p in dash["panels"]:
        g = p["gridPos"]
        x, y = margin + g["x"] * col_w, head + g["y"] * (cell_h + margin)
        w, h = g["w"] * col_w - margin, g["h"] * (cell_h + margin) - margin
        svg, has = panel_svg(p, data["panels"].get(str(p["id"]), []), data["start"], data["end"], int(w), int(h))
        if not has:
            empty.append(p["title"])
        parts.append('<div style="position:absolute;left:%dpx;top:%dpx">%s</div>' % (x, y, svg))
        bottom = max(bottom, y + h + margin)
    page = """<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#111217;font-family:Inter,"DejaVu Sans",Helvetica,Arial,sans-serif;color:#ccccdc}
.head{position:absolute;left:8px;top:0;height:%dpx;line-height:%dpx;font-size:18px}
.head small{font-size:12px;color:#8e8e9e;margin-left:14px}
.title{fill:#ccccdc;font-size:14px;font-weight:500}
.tick{fill:#8e8e9e;font-size:11px}
.legend{fill:#ccccdc;font-size:12px}
.grid{stroke:#2c3235;stroke-width:1}
.nodata{fill:#8e8e9e;font-size:16px}
</style></head><body style="width:%dpx;height:%dpx">
<div class="head">%s<small>%s</small></div>
%s
</body></html>""" % (head, head, width, bottom, html.escape(dash["title"]), html.escape(caption), "\n".join(parts))
    open(out_path, "w").write(page)
    print("page %dx%d; panels with no data: %s" % (width, bottom, "; ".join(empty) or "none"))
    print("HEIGHT=%d" % bottom)


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "query" and len(a) == 8:
        query(a[1], a[2], float(a[3]), float(a[4]), int(a[5]), int(a[6]), a[7])
    elif a and a[0] == "html" and len(a) == 5:
        render(a[1], a[2], a[3], a[4])
    else:
        sys.exit(__doc__)
