"""Output formats for findings: tty, json, sarif, github, checkstyle."""
from __future__ import annotations

import json
import os
import sys

from . import __version__

__all__ = ["render", "FORMATS", "JSON_SCHEMA_VERSION"]

FORMATS = ("tty", "json", "sarif", "github", "checkstyle")
JSON_SCHEMA_VERSION = 1
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note", "style": "note"}
_GH_LEVEL = {"error": "error", "warning": "warning", "info": "notice", "style": "notice"}
_COLOR = {"error": "\033[1;31m", "warning": "\033[1;33m", "info": "\033[36m", "style": "\033[2m"}
_RESET = "\033[0m"
HELP_URI = "https://github.com/imagelint/imagelint/blob/main/docs/rules.md#{id}"


def render(fmt: str, findings: list, rules: list, errors: list = (), color: bool = False) -> str:
    """Render findings. ``rules`` are the rules that ran (for SARIF's rule table);
    ``errors`` are input errors [(path, message)] reported beside findings."""
    if fmt == "json":
        return render_json(findings, errors)
    if fmt == "sarif":
        return render_sarif(findings, rules, errors)
    if fmt == "github":
        return render_github(findings)
    if fmt == "checkstyle":
        return render_checkstyle(findings)
    return render_tty(findings, color)


def render_tty(findings: list, color: bool = False) -> str:
    out = []
    for f in findings:
        sev = f.severity
        if color:
            sev = f"{_COLOR[f.severity]}{f.severity}{_RESET}"
        where = _where(f)
        out.append(f"{where} {f.rule.id} {sev}: {f.message} [{f.rule.name}]")
        if f.fix:
            out.append(f"    fix: {f.fix}")
    return "\n".join(out) + ("\n" if out else "")


def _where(f) -> str:
    """``path:line`` for Dockerfile findings; image findings add their layer."""
    if f.line:
        lines = f"{f.line}" if f.end_line == f.line else f"{f.line}-{f.end_line}"
        where = f"{f.path}:{lines}"
    else:
        where = f.path
    if getattr(f, "layer", None) is not None:
        where += f" (layer {f.layer}{'' if f.certain or not f.line else ', line mapping uncertain'})"
    return where


def render_json(findings: list, errors: list = ()) -> str:
    doc = {
        "version": JSON_SCHEMA_VERSION,
        "tool": {"name": "imagelint", "version": __version__},
        "findings": [f.to_dict() for f in findings],
        "errors": [{"file": p, "message": m} for p, m in errors],
    }
    return json.dumps(doc, indent=2) + "\n"


def _uri(path: str) -> str:
    """A SARIF artifact URI: '/'-separated and percent-encoded (spaces, '#', '%' in names)."""
    from urllib.parse import quote

    if path == "-":
        return "stdin"
    p = path.replace(os.sep, "/")
    # surrogateescape: a file name that is not UTF-8 keeps its raw bytes (%FF)
    return quote(p[2:] if p.startswith("./") else p, safe="/", errors="surrogateescape")  # ":" encoded: an image ref stays a relative URI


def render_sarif(findings: list, rules: list, errors: list = ()) -> str:
    used = {f.rule.id: f.rule for f in findings}
    table = {r.id: r for r in rules}
    table.update(used)
    ordered = sorted(table.values(), key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(ordered)}
    sarif_rules = []
    for r in ordered:
        help_text = f"{r.title}\n\n{r.rationale}\n\nFix: {r.fix}"
        entry = {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.title},
            "fullDescription": {"text": r.rationale},
            "help": {
                "text": help_text,
                "markdown": f"**{r.title}**\n\n{r.rationale}\n\n**Fix:** {r.fix}\n\n"
                            f"Bad:\n```dockerfile\n{r.examples['bad'].rstrip()}\n```\n\n"
                            f"Good:\n```dockerfile\n{r.examples['good'].rstrip()}\n```",
            },
            "helpUri": HELP_URI.format(id=r.id.lower()),
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
            "properties": {"category": r.category, "tags": [r.category]},
        }
        if r.hadolint:
            entry["properties"]["hadolint"] = r.hadolint
        sarif_rules.append(entry)
    results = []
    for f in findings:
        location = {"artifactLocation": {"uri": _uri(f.path)}}
        if f.line:  # image findings whose layer maps to no Dockerfile line have no region
            location["region"] = {"startLine": f.line, "endLine": max(f.end_line, f.line)}
        result = {
            "ruleId": f.rule.id,
            "ruleIndex": index[f.rule.id],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message}. Fix: {f.fix}" if f.fix else f.message},
            "locations": [{"physicalLocation": location}],
        }
        if getattr(f, "layer", None) is not None or getattr(f, "bytes", None) is not None:
            result["properties"] = {"layer": f.layer, "bytes": f.bytes, "lineCertain": f.certain,
                                    "paths": (f.paths or [])[:20]}
        results.append(result)
    run = {
        "tool": {"driver": {
            "name": "imagelint",
            "version": __version__,
            "informationUri": "https://github.com/imagelint/imagelint",
            "rules": sarif_rules,
        }},
        "results": results,
    }
    if errors:
        run["invocations"] = [{
            "executionSuccessful": False,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": m},
                 "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(p)}}}]}
                for p, m in errors
            ],
        }]
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    }
    return json.dumps(doc, indent=2) + "\n"


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def render_github(findings: list) -> str:
    out = []
    for f in findings:
        props = f"file={_gh_escape(f.path, True)},"
        if f.line:
            props += f"line={f.line},endLine={f.end_line},"
        props += f"title={_gh_escape(f.rule.id + ' ' + f.rule.name, True)}"
        msg = f"{f.message}" + (f"\nFix: {f.fix}" if f.fix else "")
        out.append(f"::{_GH_LEVEL[f.severity]} {props}::{_gh_escape(msg)}")
    return "\n".join(out) + ("\n" if out else "")


def _xml(s: str) -> str:
    s = "".join(ch if ch in "\t\n\r" or ord(ch) >= 0x20 else "?" for ch in str(s))
    # newlines and tabs as character references: a parser normalises literal ones in attributes to spaces
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;")
            .replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;"))


def render_checkstyle(findings: list) -> str:
    by_file: dict = {}
    for f in findings:
        by_file.setdefault(f.path, []).append(f)
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<checkstyle version="4.3">']
    for path, items in by_file.items():
        out.append(f'  <file name="{_xml(path)}">')
        for f in items:
            sev = {"style": "info"}.get(f.severity, f.severity)
            out.append(f'    <error line="{f.line}" column="1" severity="{sev}" '
                       f'message="{_xml(f.message + (". Fix: " + f.fix if f.fix else ""))}" '
                       f'source="imagelint.{_xml(f.rule.id)}"/>')
        out.append("  </file>")
    out.append("</checkstyle>")
    return "\n".join(out) + "\n"


def use_color(no_color: bool, stream=None) -> bool:
    stream = stream or sys.stdout
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def rules_markdown(rules: list) -> str:
    """The rule reference: a summary table, then each rule's documentation (anchors = lower-case ids)."""
    out = ["# Rules", "",
           "Generated by `imagelint rules --format markdown`; do not edit by hand.", "",
           "| id | name | severity | category | scope | hadolint | title |",
           "|---|---|---|---|---|---|---|"]
    for r in rules:
        out.append(f"| [{r.id}](#{r.id.lower()}) | `{r.name}` | {r.severity} | {r.category} | {r.scope} | "
                   f"{r.hadolint or ''} | {r.title} |")
    for r in rules:
        out += ["", f"## {r.id}", "", f"**`{r.name}`** — {r.title}", "",
                f"Severity {r.severity}, category {r.category}, scope {r.scope}"
                + (f", hadolint {r.hadolint}" if r.hadolint else "") + ".", "",
                r.rationale, "", f"**Fix:** {r.fix}", "",
                "Bad:", "", "```dockerfile", r.examples["bad"].rstrip(), "```", "",
                "Good:", "", "```dockerfile", r.examples["good"].rstrip(), "```"]
        if r.options:
            out += ["", "Options (config `rules: {" + r.name + ": {...}}` or `thresholds:`):", ""]
            for k, v in r.options.items():
                text = json.dumps(v) if not isinstance(v, str) else v
                if len(text) > 200:
                    text = text[:197] + "..."
                out.append(f"- `{k}`: `{text}`")
    return "\n".join(out) + "\n"
