"""Output of ``imagelint measure``: the side-by-side table, JSON, waterfall SVG/HTML, progress line.

The waterfall is drawn by hand (no plotting library): per image, two panels on their own time
axes — what was measured here (the median cold run: each layer's download and extract bars, then
create+start and ready) and what the model predicts on Fargate (provisioning, registry, the same
layer bars at Fargate rates, container start, readiness) — so one sees at a glance where the
seconds go.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import sys
import time

from ..gate import format_bytes

__all__ = ["render_table", "render_json", "waterfall_svg", "waterfall_html", "write_waterfalls", "Progress",
           "human_bytes"]

COLORS = {"download": "#4e79a7", "extract": "#f28e2b", "provisioning": "#9c9c9c", "registry": "#b07aa1",
          "start": "#59a14f", "ready": "#e15759", "grid": "#e6e6e6", "text": "#222222", "muted": "#777777"}


def human_bytes(n) -> str:
    return "-" if n is None else format_bytes(n)


def _mib(n) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def _s(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _range(lo, hi, digits: int = 1, unit: str = " s") -> str:
    if lo is None:
        return "-"
    if hi is None or abs(hi - lo) < 10 ** -digits:
        return f"{lo:.{digits}f}{unit}"
    return f"{lo:.{digits}f}–{hi:.{digits}f}{unit}"


def _usd(v) -> str:
    if v is None:
        return "-"
    if v < 0.01:
        return f"${v:.5f}"
    return f"${v:,.2f}"


def _usd_range(lo, hi) -> str:
    return _usd(lo) if _usd(lo) == _usd(hi) else f"{_usd(lo)}–{_usd(hi)}"


# --- table ---------------------------------------------------------------------------------------

def render_table(run) -> str:
    """The side-by-side table of every image, then each estimate's terms and what-ifs."""
    from tabulate import tabulate

    s = run.settings
    lines = [f"Fargate {s.task} ({s.task.label}), {s.region}, {s.arch}{', Spot' if s.spot else ''}; "
             f"engine: {run.engine or '-'}; calibration: {run.calibration.source if run.calibration else '-'} "
             f"({run.calibration_origin})", ""]
    headers = ["image", "cold pull", "start", "ready", "peak mem", "Fargate cold start", "billed", "$/launch"]
    monthly = s.launches_per_day is not None
    if monthly:
        headers.append(f"$/month ({s.launches_per_day:g}/day)")
    rows = []
    for r in run.results:
        m = r.measurement
        pull = m.pull_seconds() if m else None
        pull_text = (f"{pull['median']:.2f} s ({pull['min']:.2f}–{pull['max']:.2f})" if pull else "-")
        start = r.start_seconds()
        ready = r.ready_seconds()
        peak = m.peak_memory if m else None
        peak_text = _mib(peak)
        if r.oom and r.oom.get("risk"):
            peak_text += " OOM!"
        e = r.estimate
        row = [r.ref if r.ok else f"{r.ref} (FAILED)", pull_text, _s(start) + (" s" if start is not None else ""),
               _s(ready) + (" s" if ready is not None else ""), peak_text,
               _range(*e.total) if e else "-", _range(*e.billed, digits=0) if e else "-",
               _usd_range(*e.cost) if e else "-"]
        if monthly:
            row.append(_usd_range(*e.per_month) if e and e.per_month else "-")
        rows.append(row)
    lines.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
    for r in run.results:
        lines.append("")
        lines.append(f"== {r.ref}")
        if r.error:
            lines.append(f"   error: {r.error}")
        for w in r.warnings:
            lines.append(f"   warning: {w}")
        e = r.estimate
        if e is None:
            continue
        trows = []
        for key, t in e.terms.items():
            name = key[:-2].replace("_", " ")
            trows.append([name + (" (info)" if t.get("informational") else ""), _range(t["low"], t["high"], 2),
                          t["what"]])
        trows.append(["total", _range(*e.total, 1), f"billed {_range(*e.billed, 0)} (from the first download; "
                      f"{int(s.data.param('billing_minimum_seconds'))} s minimum"
                      f"{', applied' if e.minimum_applied else ''})"])
        lines.append(tabulate(trows, headers=["term", "seconds", "what"], tablefmt="simple", disable_numparse=True))
        if r.what_ifs:
            wrows = []
            for w in r.what_ifs:
                wrows.append([w.label, _range(*w.total), _range(*w.billed, digits=0), _usd_range(*w.cost),
                              w.confidence, "; ".join(w.notes + (["readiness scaled, not measured"] if w.ready_scaled
                                                                  else []))])
            lines.append("")
            lines.append(tabulate(wrows, headers=["what-if", "cold start", "billed", "$/launch", "confidence", "notes"],
                                  tablefmt="simple", disable_numparse=True))
        soci = r.estimate.soci if r.estimate else None
        if soci and not soci["applies"]:
            lines.append(f"   SOCI lazy loading: does not apply ({human_bytes(soci['compressed_bytes'])} compressed, "
                         f"threshold {human_bytes(soci['threshold_bytes'])})")
        if r.oom:
            o = r.oom
            ratio = f"{o['ratio']:.0%} of the task's memory" if o.get("ratio") is not None else "unknown"
            lines.append(f"   memory: peak {_mib(o.get('peak_bytes'))} ({ratio})"
                         f"{' — ' + o['note'] if o.get('note') else ''}; fits with headroom: "
                         f"{o.get('recommended_task') or 'none'} at {s.task.vcpu:g} vCPU, "
                         f"{o.get('smallest_task') or 'none'} smallest of all")
        if r.local:
            lines.append(f"   model check here: predicted local pull+start {r.local['predicted_s']:.2f} s, measured "
                         f"{_s(r.local['measured_s'])} s")
    for w in run.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def render_json(run) -> str:
    return json.dumps(run.to_dict(), indent=2, sort_keys=False, default=_json_default) + "\n"


def _json_default(o):
    if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
        return None
    return str(o)


# --- waterfall SVG --------------------------------------------------------------------------------

_ROW = 18
_LABEL_W = 260
_PLOT_W = 560
_PAD = 10


def _esc(t) -> str:
    return html.escape(str(t), quote=True)


def _ticks(total: float) -> list:
    if total <= 0:
        return [0.0]
    raw = total / 6
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    out, t = [], 0.0
    while t <= total + 1e-9:
        out.append(t)
        t += step
    return out


class _Panel:
    """One time axis with labelled rows of bars."""

    def __init__(self, title: str):
        self.title = title
        self.rows: list = []  # (label, [(t0, t1, colour, tooltip, faint)])
        self.markers: list = []  # (t, text): dashed vertical lines

    def row(self, label: str, bars: list) -> None:
        self.rows.append((label, bars))

    def end(self) -> float:
        return max((b[1] for _, bars in self.rows for b in bars), default=0.0)

    def draw(self, y0: float, out: list) -> float:
        total = self.end() or 1.0
        scale = _PLOT_W / total
        x0 = _PAD + _LABEL_W
        out.append(f'<text x="{_PAD}" y="{y0 + 14:.1f}" font-weight="bold">{_esc(self.title)}</text>')
        y = y0 + 22 + (10 if self.markers else 0)
        height = len(self.rows) * _ROW
        for t in _ticks(total):
            x = x0 + t * scale
            out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + height:.1f}" stroke="{COLORS["grid"]}"/>')
            out.append(f'<text x="{x:.1f}" y="{y + height + 12:.1f}" font-size="10" text-anchor="middle" '
                       f'fill="{COLORS["muted"]}">{t:g} s</text>')
        for t, text in self.markers:
            x = x0 + t * scale
            out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x:.1f}" y2="{y + height:.1f}" stroke="#333" '
                       f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{y + 4:.1f}" font-size="9" '
                       f'fill="{COLORS["muted"]}">{_esc(text)}</text>')
        for label, bars in self.rows:
            out.append(f'<text x="{_PAD}" y="{y + 13:.1f}" font-size="11">{_esc(label)}</text>')
            for t0, t1, colour, tip, faint in bars:
                w = max((t1 - t0) * scale, 1.0)
                opacity = ' fill-opacity="0.35"' if faint else ""
                out.append(f'<rect x="{x0 + t0 * scale:.1f}" y="{y + 3:.1f}" width="{w:.1f}" height="{_ROW - 6}" '
                           f'fill="{colour}"{opacity}><title>{_esc(tip)}</title></rect>')
            y += _ROW
        return y + 20 - y0


def _layer_label(lay) -> str:
    size = human_bytes(lay.compressed) if lay else "?"
    if lay is None:
        return "layer ?"
    return f"L{lay.index} {size} → {human_bytes(lay.uncompressed)}, {lay.files} entries"


def _median_run(m) -> int:
    if not m.pulls:
        return -1
    order = sorted(range(len(m.pulls)), key=lambda i: m.pulls[i].seconds)
    return order[len(order) // 2]


def _measured_panel(result) -> _Panel:
    m = result.measurement
    i = _median_run(m)
    pull = m.pulls[i]
    t0 = pull.start
    panel = _Panel(f"Measured here (run {i + 1} of {len(m.pulls)}, median): pull {pull.seconds:.2f} s")
    by_short = {lay.digest.split(":")[-1][:12]: lay for lay in result.layers}
    for lt in pull.layers:
        lay = by_short.get(lt.id)
        bars = []
        if lt.cached:
            panel.row(f"{_layer_label(lay)} (cached)", [])
            continue
        if lt.download_start is not None and lt.download_end is not None:
            bars.append((lt.download_start - t0, lt.download_end - t0, COLORS["download"],
                         f"download {lt.download_end - lt.download_start:.2f} s", False))
        if lt.extract_start is not None and lt.extract_end is not None:
            bars.append((lt.extract_start - t0, lt.extract_end - t0, COLORS["extract"],
                         f"extract {lt.extract_end - lt.extract_start:.2f} s", False))
        panel.row(_layer_label(lay) if lay else f"layer {lt.id}", bars)
    start = m.cold_starts[i] if i < len(m.cold_starts) else (m.failed_start if m.failed_start else None)
    if start is not None and start.create_begin is not None:
        if start.started is not None:
            panel.row(f"create + start {start.create_seconds + start.start_seconds:.2f} s",
                      [(start.create_begin - t0, start.started - t0, COLORS["start"], "create + start", False)])
        if start.ready is not None:
            panel.row(f"ready ({start.probe.text}) {start.ready_seconds:.2f} s",
                      [(start.started - t0, start.ready - t0, COLORS["ready"], "app readiness", False)])
    return panel


def _fargate_panel(result, settings) -> _Panel:
    e = result.estimate
    prov_lo, prov_hi = e.terms["provisioning_s"]["low"], e.terms["provisioning_s"]["high"]
    panel = _Panel(f"Predicted on Fargate {e.task.label} ({settings.region}): {_range(*e.total)}, "
                   f"billed {_range(*e.billed, digits=0)}")
    panel.row(f"provisioning {prov_lo:g}–{prov_hi:g} s (not billed)",
              [(0, prov_lo, COLORS["provisioning"], f"provisioning, low {prov_lo:g} s", False),
               (prov_lo, prov_hi, COLORS["provisioning"], f"provisioning, up to {prov_hi:g} s", True)])
    off = prov_lo
    panel.markers.append((off, "billing starts"))
    reg = e.terms["registry_s"]["low"]
    panel.row(f"registry round trips {reg:.2f} s", [(off, off + reg, COLORS["registry"], "registry", False)])
    by_index = {lay.index: lay for lay in result.layers}
    for lt in e.timeline.layers:
        lay = by_index.get(lt["index"])
        panel.row(_layer_label(lay), [
            (off + lt["download_start"], off + lt["download_end"], COLORS["download"],
             f"download {lt['download_end'] - lt['download_start']:.2f} s", False),
            (off + lt["extract_start"], off + lt["extract_end"], COLORS["extract"],
             f"extract {lt['extract_end'] - lt['extract_start']:.2f} s", False)])
    t = off + e.timeline.total
    st = e.terms["container_start_s"]
    panel.row(f"container start {_range(st['low'], st['high'], 2)}",
              [(t, t + st["low"], COLORS["start"], "container start (low)", False),
               (t + st["low"], t + st["high"], COLORS["start"], "container start (high)", True)])
    t += st["low"]
    rd = e.terms["ready_s"]["low"]
    panel.row(f"ready {rd:.2f} s ({e.terms['ready_s']['source']})", [(t, t + rd, COLORS["ready"], "readiness", False)])
    return panel


def waterfall_svg(result, settings) -> str:
    """A standalone SVG for one image (well-formed XML; no scripts)."""
    panels = []
    if result.measurement is not None and result.measurement.pulls:
        panels.append(_measured_panel(result))
    if result.estimate is not None:
        panels.append(_fargate_panel(result, settings))
    body = []
    y = 34.0
    for p in panels:
        y += p.draw(y, body)
    if not panels:
        body.append(f'<text x="{_PAD}" y="{y + 14}">{_esc(result.error or "nothing measured")}</text>')
        y += 24
    legend_y = y + 4
    legend = []
    x = _PAD
    for key, name in (("download", "download"), ("extract", "extract"), ("provisioning", "provisioning"),
                      ("registry", "registry"), ("start", "create+start"), ("ready", "ready")):
        legend.append(f'<rect x="{x}" y="{legend_y:.1f}" width="12" height="10" fill="{COLORS[key]}"/>'
                      f'<text x="{x + 16}" y="{legend_y + 9:.1f}" font-size="10">{name}</text>')
        x += 16 + 8 * len(name) + 14
    height = legend_y + 22
    width = _PAD * 2 + _LABEL_W + _PLOT_W + 20
    title = f"{result.ref}" + (f" — FAILED: {result.error}" if result.error else "")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
            f'viewBox="0 0 {width} {height:.0f}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12" '
            f'fill="{COLORS["text"]}">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n'
            f'<text x="{_PAD}" y="20" font-size="14" font-weight="bold">{_esc(title[:160])}</text>\n'
            + "\n".join(body + legend) + "\n</svg>\n")


def waterfall_html(run) -> str:
    """One HTML page with every image's SVG inline and its estimate terms."""
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>imagelint measure</title>',
             "<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}</style></head><body>",
             f"<h1>imagelint measure</h1><p>{_esc(str(run.settings.task))}, {_esc(run.settings.region)}, "
             f"{_esc(run.settings.arch)}{' Spot' if run.settings.spot else ''} — calibration: "
             f"{_esc(run.calibration.source if run.calibration else '-')} ({_esc(run.calibration_origin)})</p>"]
    for r in run.results:
        parts.append(f"<h2>{_esc(r.ref)}</h2>")
        if r.error:
            parts.append(f"<p><b>error:</b> {_esc(r.error)}</p>")
        svg = waterfall_svg(r, run.settings)
        parts.append(svg.split("\n", 1)[1])  # inline: drop the XML declaration
        if r.estimate:
            parts.append("<table><tr><th>term</th><th>seconds</th><th>what</th></tr>")
            for key, t in r.estimate.terms.items():
                parts.append(f"<tr><td>{_esc(key[:-2])}</td><td>{_esc(_range(t['low'], t['high'], 2))}</td>"
                             f"<td>{_esc(t['what'])}</td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _safe_name(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref).strip("_") or "image"


def write_waterfalls(run, target: str) -> list:
    """``target`` ending in .html: one page; otherwise a directory with one SVG per image plus
    index.html. Returns the files written."""
    written = []
    if target.lower().endswith((".html", ".htm")):
        parent = os.path.dirname(os.path.abspath(target))
        os.makedirs(parent, exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(waterfall_html(run))
        return [target]
    os.makedirs(target, exist_ok=True)
    names = set()
    for r in run.results:
        name = _safe_name(r.ref)
        while name in names:
            name += "_"
        names.add(name)
        path = os.path.join(target, name + ".svg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(waterfall_svg(r, run.settings))
        written.append(path)
    index = os.path.join(target, "index.html")
    with open(index, "w", encoding="utf-8") as f:
        f.write(waterfall_html(run))
    written.append(index)
    return written


# --- progress ---------------------------------------------------------------------------------------

class Progress:
    """``on_progress(ref, phase, run, detail)`` for MeasureSession and run_measure: one updating line
    on a TTY, plain lines (one per change of image/phase/run) otherwise; silent with ``quiet``."""

    PHASES = {"engine": "starting the measuring engine", "push": "pushing to the registry",
              "prepare": "making the pull cold", "pull": "cold pull", "start": "cold start",
              "warm-start": "warm start", "layers": "reading layers (sizes, entries, zstd)",
              "model": "modelling", "build": "building the calibration image", "done": "done",
              "cleanup": "cleaning up"}

    def __init__(self, stream=None, quiet: bool = False, tty: bool = None, runs: int = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self.runs = runs
        self.last_key = None
        self.last_draw = 0.0
        self.width = 0

    def __call__(self, ref: str, phase: str, run: int = 0, detail=None) -> None:
        if self.quiet:
            return
        key = (ref, phase, run)
        text = f"{ref or 'imagelint'}: {self.PHASES.get(phase, phase)}"
        if run:
            text += f" (run {run}{'/' + str(self.runs) if self.runs else ''})"
        timing = (detail or {}).get("timing") if isinstance(detail, dict) else None
        if timing is not None and phase == "pull" and timing.layers:
            layers = timing.layers
            done = sum(1 for lay in layers if lay.extract_end is not None or lay.cached)
            text += f": {done}/{len(layers)} layers"
        if self.tty:
            now = time.monotonic()
            if key == self.last_key and now - self.last_draw < 0.1:
                return  # repaint at most 10x a second
            self.last_draw = now
            self.last_key = key
            line = text[:150]
            pad = max(self.width - len(line), 0)
            self.width = len(line)
            self.stream.write("\r" + line + " " * pad)
            if phase == "cleanup":
                self.finish()
            self.stream.flush()
        elif key != self.last_key:
            self.last_key = key
            self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.width and not self.quiet:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
