"""Output of `imagelint inspect`: tty (tables), json (versioned), sarif, github."""
from __future__ import annotations

import json

from . import __version__
from .gate import format_bytes
from .inspect import INSPECT_SCHEMA_VERSION
from .report import _gh_escape, render_github, render_sarif, render_tty

__all__ = ["render_inspect"]

_CATEGORY_TEXT = {
    "deleted": "deleted in a later layer",
    "unchanged-rewrite": "re-written unchanged (chmod/chown/touch)",
    "overwritten": "overwritten in a later layer",
    "duplicate": "identical content at other paths",
}


def render_inspect(fmt: str, results: list, rules: list, errors: list = (), color: bool = False,
                   top: int = 10) -> str:
    if fmt == "json":
        doc = {"version": INSPECT_SCHEMA_VERSION, "tool": {"name": "imagelint", "version": __version__},
               "images": [r.to_dict(top=top) for r in results],
               "errors": [{"image": ref, "message": m} for ref, m in errors]}
        return json.dumps(doc, indent=2) + "\n"
    findings = [f for r in results for f in r.findings]
    if fmt == "sarif":
        return render_sarif(findings, rules, errors)
    if fmt == "github":
        out = render_github(findings)
        for r in results:
            for g in r.gates:
                if g.status == "fail":
                    out += f"::error title={_gh_escape('imagelint gate ' + g.key, True)}::" \
                           f"{_gh_escape(r.image.ref + ': ' + g.message)}\n"
        return out
    return "\n".join(_tty(r, color, top) for r in results)


def _short(created_by: str, n: int = 58) -> str:
    """A history step as the instruction it was: ``RUN apt-get ...``, ``COPY ... in /app``."""
    from .history import parse_created_by

    keyword, args = parse_created_by(created_by or "")
    text = " ".join(f"{keyword} {args}".split()) if keyword else " ".join((created_by or "").split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _tty(r, color: bool, top: int) -> str:
    from tabulate import tabulate

    img, st, dive, waste = r.image, r.stats, r.dive, r.waste
    out = []
    head = f"Image {img.ref}  [{img.source}{', ' + img.platform if img.platform else ''}]"
    if img.id:
        head += f"  id {img.id[:19]}"
    out.append(head)
    pull = format_bytes(st.transfer_size) if st.transfer_size is not None else "unknown"
    pull_note = "" if st.transfer_exact or st.transfer_size is None else " (estimate)"
    out.append(f"  {format_bytes(st.size)} uncompressed · {pull}{pull_note} to pull · {st.layer_count} layers · "
               f"{st.file_count:,} files")
    out.append("")
    rows = []
    for d in r.layer_rows():
        if d["dockerfile_line"]:
            origin = f"{r.dockerfile}:{d['dockerfile_line']}" + ("" if d["line_certain"] else " (?)")
        elif d["from_base_image"]:
            origin = "base image"
        else:
            origin = ""
        comp = format_bytes(d["compressed_size"]) if d["compressed_size"] is not None else "-"
        if d["compressed_size"] is not None and not d["compressed_size_exact"]:
            comp += "~"
        rows.append((d["index"], format_bytes(d["size"]), comp, d["files"], origin, _short(d["created_by"])))
    out.append(tabulate(rows, headers=["#", "size", "pull", "files", "from", "created by"],
                        colalign=("right", "right", "right", "right", "left", "left")))
    if any(d["compressed_size"] is not None and not d["compressed_size_exact"] for d in r.layer_rows()):
        out.append("  ~ pull size estimated: this source has no compressed blobs (use registry: for exact sizes)")
    out.append("")
    pct = dive.user_wasted_percent
    pct_text = f"{pct * 100:.2f}%" if pct == pct and pct != float("inf") else "n/a"
    out.append(f"Waste, dive-compatible: efficiency {dive.efficiency * 100:.4f}% · wasted {format_bytes(dive.wasted_bytes)} "
               f"({dive.wasted_bytes:,} B) · user wasted {pct_text}")
    cats = waste.by_category()
    parts = [f"{_CATEGORY_TEXT[c]} {format_bytes(b)}" for c, b in cats.items() if b]
    out.append(f"Waste, recoverable: {format_bytes(waste.recoverable_bytes)}" + (" — " + "; ".join(parts) if parts else ""))
    for note in waste.notes:
        out.append(f"  note: {note}")
    items = sorted(
        [(i.bytes, _CATEGORY_TEXT[i.category], i.path, f"{','.join(map(str, i.added_by))}→{i.changed_by}")
         for i in waste.items] +
        [(g.bytes, _CATEGORY_TEXT["duplicate"], g.paths[0] + f" (+{len(g.paths) - 1})", ",".join(map(str, g.layers)))
         for g in waste.duplicates], key=lambda x: -x[0])[:top]
    if items:
        out.append(tabulate([(format_bytes(b), c, p, lay) for b, c, p, lay in items],
                            headers=["bytes", "waste", "path", "layers"], colalign=("right",)))
    out.append("")
    if st.largest_files:
        out.append(tabulate([(format_bytes(f.size), f.layer, "/" + f.path) for f in st.largest_files],
                            headers=["largest files", "layer", "path"], colalign=("right",)))
        out.append("")
    if st.largest_dirs:
        out.append(tabulate([(format_bytes(d.size), "/" + d.path) for d in st.largest_dirs],
                            headers=["largest dirs", "path"], colalign=("right",)))
        out.append("")
    if r.findings:
        out.append("Findings:")
        out.append(render_tty(r.findings, color).rstrip("\n"))
        out.append("")
    if r.gates:
        for g in r.gates:
            out.append(f"{g.status.upper():4} {g.key}: {g.message}")
        out.append("")
    return "\n".join(out)

