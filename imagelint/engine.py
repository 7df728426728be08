"""Run rules over parsed Dockerfiles: selection, severities, options, inline ignores."""
from __future__ import annotations

import os
import re

from .rules import CheckContext, Rule, RuleError, severity_rank

__all__ = ["Finding", "Linter", "InputError", "fails", "read_dockerfile", "find_dockerfiles"]

_PRAGMA_RE = re.compile(
    r"^\s*(imagelint|hadolint)\s+(?:(global|stage|file)\s+)?ignore\s*=\s*([A-Za-z0-9_,\s-]+?)\s*(?:#.*)?$")


class InputError(Exception):
    """An input cannot be linted (missing, unreadable, binary): one line, exit 2."""


class Finding:
    """A rule's finding at a place in a file."""

    __slots__ = ("rule", "severity", "path", "line", "end_line", "message", "fix", "layer", "bytes", "paths",
                 "certain")

    def __init__(self, rule: Rule, severity: str, path: str, line: int, end_line: int, message: str, fix: str,
                 layer: int = None, nbytes: int = None, paths: list = None, certain: bool = True):
        self.rule = rule
        self.severity = severity
        self.path = path
        self.line = line  # 0: an image finding whose layer maps to no Dockerfile line
        self.end_line = end_line
        self.message = message
        self.fix = fix
        self.layer = layer  # image findings: the layer index
        self.bytes = nbytes  # image findings: what it costs
        self.paths = paths  # image findings: the paths involved
        self.certain = certain  # image findings: False when the layer-to-line mapping is a guess

    def to_dict(self) -> dict:
        d = {
            "rule": self.rule.id, "name": self.rule.name, "severity": self.severity,
            "category": self.rule.category, "file": self.path, "line": self.line,
            "end_line": self.end_line, "message": self.message, "fix": self.fix,
            "hadolint": self.rule.hadolint,
        }
        if self.layer is not None or self.bytes is not None:
            d.update({"layer": self.layer, "bytes": self.bytes, "paths": (self.paths or [])[:20],
                      "path_count": len(self.paths or []), "line_certain": self.certain})
        return d

    def __repr__(self) -> str:
        return f"<{self.rule.id} {self.path}:{self.line} {self.message[:50]!r}>"


class Linter:
    """Holds the active rules and their effective severities/options."""

    def __init__(self, rules: list, config, select=(), ignore=(), scope: str = "dockerfile"):
        self.config = config
        self.all_rules = rules
        self.by_key = {}
        for r in rules:
            self.by_key[r.id] = r
            self.by_key[r.name] = r
        self.by_hadolint: dict = {}
        for r in rules:
            if r.hadolint:
                self.by_hadolint.setdefault(str(r.hadolint).upper(), []).append(r)
        # config keys are checked even when a flag overrides them; errors name the config file
        cfg_select = [self._resolve_config(k, "select").id for k in config.select]
        cfg_ignore = [self._resolve_config(k, "ignore").id for k in config.ignore]
        select = [self.resolve(k).id for k in select] or cfg_select
        wanted = set(select) if select else None
        dropped = set(cfg_ignore) | {self.resolve(k).id for k in ignore}
        self.severity = {}
        self.options = {}
        for key, setting in config.rules.items():
            rule = self._resolve_config(key, "rules")
            if setting.get("off"):
                dropped.add(rule.id)
                continue
            if "severity" in setting:
                self.severity[rule.id] = setting["severity"]
            opts = {k: v for k, v in setting.items() if k != "severity"}
            unknown = set(opts) - set(rule.options)
            if unknown:
                raise RuleError(f"{config.source}: rules.{key}: unknown option {sorted(unknown)[0]!r} "
                                f"(options of {rule.id}: {', '.join(rule.options) or 'none'})")
            self.options[rule.id] = opts
        known_options = {o for r in rules for o in r.options}
        for opt in config.thresholds:
            if opt not in known_options:
                raise RuleError(f"{config.source}: thresholds: unknown option {opt!r} "
                                f"(known: {', '.join(sorted(known_options))})")
        self.active = [r for r in rules if r.scope == scope and r.id not in dropped
                       and (wanted is None or r.id in wanted)]

    def resolve(self, key: str) -> Rule:
        """Rule by id or name (case-insensitive id)."""
        k = key.strip()
        rule = self.by_key.get(k) or self.by_key.get(k.upper()) or self.by_key.get(k.lower())
        if rule is None:
            raise RuleError(f"unknown rule {key!r}; `imagelint rules` lists them")
        return rule

    def _resolve_config(self, key: str, where: str) -> Rule:
        try:
            return self.resolve(str(key))
        except RuleError as e:
            raise RuleError(f"{self.config.source}: {where}: {e}") from None

    def options_for(self, rule: Rule) -> dict:
        opts = dict(rule.options)
        for k, v in self.config.thresholds.items():
            if k in opts:
                opts[k] = v
        opts.update(self.options.get(rule.id, {}))
        return opts

    def severity_of(self, rule: Rule) -> str:
        return self.severity.get(rule.id, rule.severity)

    # -- linting -------------------------------------------------------------
    def lint_text(self, text: str, path: str = "Dockerfile", context_dir: str = None) -> list:
        """Findings for one Dockerfile's text, sorted by line."""
        from .dockerfile import parse  # here, not at the top: `inspect` without a Dockerfile never needs it

        df = parse(text, path)
        raw: list = []
        for rule in self.active:
            ctx = CheckContext(rule, self.options_for(rule), context_dir, self.config)
            try:
                for problem in rule.run(df, ctx):
                    raw.append((rule, problem))
            except RuleError:
                raise
            except Exception as e:  # a bug in one check: one clear line (exit 2), not a traceback
                raise RuleError(f"{path}: rule {rule.id} ({rule.name}) crashed: {type(e).__name__}: {e}; "
                                "please report this bug") from e
        ignored = None if self.config.disable_ignore_pragma else self._pragmas(df)
        findings = []
        seen = set()
        for rule, p in raw:
            if ignored is not None and _is_ignored(ignored, rule, p.line):
                continue
            key = (rule.id, p.line, p.message)
            if key in seen:
                continue
            seen.add(key)
            findings.append(Finding(rule, self.severity_of(rule), path, p.line, p.end_line,
                                    p.message or rule.message, p.fix or rule.fix))
        findings.sort(key=lambda f: (f.line, f.rule.id))
        return findings

    def lint_image(self, view, path: str) -> list:
        """Findings of image rules on an analysed image (:class:`imagelint.imageview.ImageView`).

        ``path`` names the Dockerfile (findings on its lines) or the image (no line known).
        Ignore pragmas in the Dockerfile apply to image findings placed on its lines too.
        """
        raw: list = []
        for rule in self.active:
            ctx = CheckContext(rule, self.options_for(rule), None, self.config)
            try:
                raw.extend((rule, p) for p in rule.run(view, ctx))
            except RuleError:
                raise
            except Exception as e:
                raise RuleError(f"{path}: rule {rule.id} ({rule.name}) crashed: {type(e).__name__}: {e}; "
                                "please report this bug") from e
        ignored = None
        if view.df is not None and not self.config.disable_ignore_pragma:
            ignored = self._pragmas(view.df)
        findings = []
        for rule, p in raw:
            if ignored is not None and p.line and _is_ignored(ignored, rule, p.line):
                continue
            message = p.message or rule.message
            findings.append(Finding(rule, self.severity_of(rule), path, p.line, p.end_line, message,
                                    p.fix or rule.fix, p.layer, p.bytes, p.paths, p.certain))
        findings.sort(key=lambda f: (-(f.bytes or 0), f.rule.id, f.layer if f.layer is not None else -1))
        return findings

    def _pragmas(self, df) -> list:
        """[(first_line, last_line, set of rule ids)] from ignore comments."""
        out = []
        n = len(df.lines)
        starts = sorted((ins.start_line, ins.end_line, ins.keyword) for ins in df.instructions)
        stage_starts = [st.from_instruction.start_line for st in df.stages]
        for line, text in df.comments:
            m = _PRAGMA_RE.match(text)
            if not m:
                continue
            tool, kind, codes = m.group(1), m.group(2), m.group(3)
            ids = set()
            for code in (c.strip() for c in codes.replace(" ", ",").split(",")):
                if not code:
                    continue
                if tool == "hadolint":
                    ids.update(r.id for r in self.by_hadolint.get(code.upper(), ()))
                else:
                    r = self.by_key.get(code) or self.by_key.get(code.upper())
                    if r is not None:
                        ids.add(r.id)
            if not ids:
                continue
            if kind in ("global", "file"):
                out.append((1, n + 1, ids))
                continue
            # a pragma inside a continued instruction is for that instruction, not the next one
            nxt = next(((s, e, k) for s, e, k in starts if s < line <= e), None) or \
                next(((s, e, k) for s, e, k in starts if s > line), None)
            if nxt is None:
                continue
            if kind == "stage":
                later = [s for s in stage_starts if s > nxt[0]]
                out.append((nxt[0], (later[0] - 1) if later else n + 1, ids))
            else:
                out.append((nxt[0], nxt[1], ids))
        return out


def _is_ignored(pragmas: list, rule: Rule, line: int) -> bool:
    for first, last, ids in pragmas:
        if rule.id in ids and first <= line <= last:
            return True
    return False


def fails(findings: list, fail_on: str) -> bool:
    """True if any finding is at or above ``fail_on`` ('none' never fails)."""
    if fail_on == "none":
        return False
    threshold = severity_rank(fail_on)
    return any(severity_rank(f.severity) >= threshold for f in findings)


def read_dockerfile(path: str, max_bytes: int = 5 * 1024 * 1024) -> str:
    """Text of a Dockerfile, or :class:`InputError` with one clear line."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; pass a Dockerfile or a directory that holds one") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    return decode_dockerfile(data, path, max_bytes)


def decode_dockerfile(data: bytes, path: str, max_bytes: int = 5 * 1024 * 1024) -> str:
    if len(data) > max_bytes:
        raise InputError(f"{path}: larger than {max_bytes // (1024 * 1024)} MiB; this is not a Dockerfile "
                         "(check the path)")
    if b"\x00" in data[:8192]:
        raise InputError(f"{path}: binary file (NUL bytes), not a Dockerfile")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x}); "
                         "save the file as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


DOCKERFILE_NAMES = ("Dockerfile", "Containerfile")


def is_dockerfile_name(name: str) -> bool:
    return (name in DOCKERFILE_NAMES or name.startswith(("Dockerfile.", "Containerfile."))
            or name.endswith((".Dockerfile", ".dockerfile", ".Containerfile")))


def find_dockerfiles(directory: str) -> list:
    """Dockerfile, Dockerfile.*, *.Dockerfile, Containerfile below ``directory``.

    Skips VCS, dependency and virtualenv directories; never follows directory links.
    """
    skip = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache"}
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(files):
            if is_dockerfile_name(name) and not name.endswith(".dockerignore"):
                found.append(os.path.join(root, name))
    return found
