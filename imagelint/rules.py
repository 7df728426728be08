"""Rules: metadata, loading rule files, and the declarative matchers.

A rule is one YAML file (see ``rules/`` and docs/rules.md): id, name, severity,
category, title, message, fix, rationale, examples, and either a declarative
``match`` or a ``check: module:function`` naming Python code. Parsed rule files
are cached as JSON keyed by file mtimes, so the lint path does not import PyYAML.
"""
from __future__ import annotations

import fnmatch
import os
import re

from .shell import name_matches
from .yamlcache import YamlFileError, load_yaml_cached

__all__ = ["Rule", "Problem", "RuleError", "CheckContext", "load_rule_dirs", "builtin_rules_dir",
           "SEVERITIES", "CATEGORIES", "severity_rank"]

SEVERITIES = ("error", "warning", "info", "style")
CATEGORIES = ("size", "layers", "cache", "startup", "security", "correctness")
SCOPES = ("dockerfile", "image")
_ID_RE = re.compile(r"^IL\d{4}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_REQUIRED = ("id", "name", "severity", "category", "title", "message", "fix", "rationale", "examples")
_KNOWN = set(_REQUIRED) | {"hadolint", "scope", "match", "check", "options", "stages"}
_MATCH_KEYS = {"command", "subcommand", "args", "without-flag", "with-flag", "without-command",
               "unless-env", "unless-mount", "instruction", "args-regex", "without-instruction-flag",
               "with-instruction-flag",
               "paths", "exclude-paths", "where"}
_FALSY = ("", "0", "false", "no", "off")


def severity_rank(sev: str) -> int:
    """error=3 … style=0; higher is more severe."""
    return 3 - SEVERITIES.index(sev)


class RuleError(ValueError):
    """A rule file is invalid; the message names the file and the key."""


class Problem:
    """What a check yields: where, and optionally a message/fix more specific than the rule's.

    Image rules also say which layer, how many bytes it costs and example paths;
    ``line`` is then the Dockerfile line that made the layer, or 0 when unknown.
    """

    __slots__ = ("line", "end_line", "message", "fix", "layer", "bytes", "paths", "certain")

    def __init__(self, line: int, end_line: int = None, message: str = None, fix: str = None,
                 layer: int = None, nbytes: int = None, paths: list = None, certain: bool = True):
        self.line = line
        self.end_line = end_line if end_line is not None else line
        self.message = message
        self.fix = fix
        self.layer = layer
        self.bytes = nbytes
        self.paths = paths
        self.certain = certain  # False: the layer-to-line mapping is a best guess

    @classmethod
    def in_layer(cls, view, layer: int, nbytes: int = None, paths: list = None, message: str = None,
                 fix: str = None) -> "Problem":
        """An image finding in ``layer``, placed on its Dockerfile line when known."""
        where = view.layer_line(layer) if layer is not None else None
        if where is None:
            return cls(0, 0, message, fix, layer, nbytes, paths, certain=False)
        return cls(where[0], where[1], message, fix, layer, nbytes, paths, certain=where[2])

    @classmethod
    def at(cls, ins, message: str = None, fix: str = None) -> "Problem":
        return cls(ins.start_line, ins.end_line, message, fix)

    def __repr__(self) -> str:
        return f"Problem({self.line}-{self.end_line}, {self.message!r})"


class CheckContext:
    """Handed to Python checks: the rule, its options, the build context directory, config."""

    __slots__ = ("rule", "options", "context_dir", "config")

    def __init__(self, rule: "Rule", options: dict, context_dir, config):
        self.rule = rule
        self.options = options
        self.context_dir = context_dir  # None for stdin
        self.config = config


class Rule:
    """One rule, loaded from a rule file."""

    __slots__ = ("id", "name", "severity", "category", "title", "message", "fix", "rationale",
                 "examples", "hadolint", "scope", "match", "check", "options", "stages", "source",
                 "_func")

    def __init__(self, data: dict, source: str):
        self.source = source
        unknown = set(data) - _KNOWN
        if unknown:
            raise RuleError(f"{source}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(_KNOWN))})")
        for key in _REQUIRED:
            if key not in data:
                raise RuleError(f"{source}: missing key {key!r}")
        self.id = str(data["id"])
        self.name = str(data["name"])
        self.severity = str(data["severity"])
        self.category = str(data["category"])
        self.title = str(data["title"]).strip()
        self.message = str(data["message"]).strip()
        self.fix = str(data["fix"]).strip()
        self.rationale = str(data["rationale"]).strip()
        self.examples = data["examples"]
        self.hadolint = data.get("hadolint")
        self.scope = data.get("scope", "dockerfile")
        self.match = data.get("match")
        self.check = data.get("check")
        self.options = dict(data.get("options") or {})
        self.stages = data.get("stages", "shipped")
        self._func = None
        if not _ID_RE.match(self.id):
            raise RuleError(f"{source}: id {self.id!r} must be IL followed by 4 digits")
        if not _NAME_RE.match(self.name):
            raise RuleError(f"{source}: name {self.name!r} must be kebab-case")
        if self.severity not in SEVERITIES:
            raise RuleError(f"{source}: severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if self.category not in CATEGORIES:
            raise RuleError(f"{source}: category {self.category!r} is not one of {', '.join(CATEGORIES)}")
        if self.scope not in SCOPES:
            raise RuleError(f"{source}: scope {self.scope!r} is not one of {', '.join(SCOPES)}")
        if self.stages not in ("shipped", "all"):
            raise RuleError(f"{source}: stages must be 'shipped' or 'all'")
        if not isinstance(self.examples, dict) or not {"bad", "good"} <= set(self.examples):
            raise RuleError(f"{source}: examples needs 'bad' and 'good'")
        if (self.match is None) == (self.check is None):
            raise RuleError(f"{source}: give exactly one of 'match' or 'check'")
        if self.match is not None:
            if not isinstance(self.match, dict):
                raise RuleError(f"{source}: match must be a mapping")
            bad = set(self.match) - _MATCH_KEYS
            if bad:
                raise RuleError(f"{source}: unknown match key {sorted(bad)[0]!r}")
            if self.scope == "image":
                if "paths" not in self.match:
                    raise RuleError(f"{source}: an image rule's match needs 'paths'")
                if self.match.get("where", "final") not in ("final", "any-layer"):
                    raise RuleError(f"{source}: match.where must be 'final' or 'any-layer'")
            elif "command" not in self.match and "instruction" not in self.match:
                raise RuleError(f"{source}: match needs 'command' or 'instruction'")
            _check_regexes(self.match, source)
        if self.check is not None and ":" not in str(self.check):
            raise RuleError(f"{source}: check must be 'module:function'")

    def names(self) -> tuple:
        return (self.id, self.name)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "name": self.name, "severity": self.severity, "category": self.category,
            "scope": self.scope, "title": self.title, "message": self.message, "fix": self.fix,
            "rationale": self.rationale, "hadolint": self.hadolint, "examples": self.examples,
            "options": self.options,
        }

    # -- running ---------------------------------------------------------------
    def run(self, df, ctx: CheckContext):
        """Yield :class:`Problem` for a parsed Dockerfile."""
        if self.check is not None:
            if self._func is None:
                import importlib
                mod, _, fn = str(self.check).partition(":")
                try:
                    self._func = getattr(importlib.import_module(mod), fn)
                except (ImportError, AttributeError) as e:
                    raise RuleError(f"{self.source}: check {self.check!r} cannot be loaded: {e}") from None
            return self._func(df, ctx)
        if self.scope == "image":
            return _run_image_match(self, df, ctx)
        if "instruction" in self.match:
            return _run_instruction_match(self, df, ctx)
        return _run_command_match(self, df, ctx)


def _check_regexes(match: dict, source: str) -> None:
    """Compile the match's regular expressions now: a bad one must fail at load, not mid-lint."""
    specs = [("match", match)] + [(f"match.without-command[{i}]", s)
                                  for i, s in enumerate(_as_list(match.get("without-command")))]
    for where, spec in specs:
        if not isinstance(spec, dict):
            raise RuleError(f"{source}: {where} must be a mapping")
        for key in ("args", "args-regex"):
            for rx in _as_list(spec.get(key)):
                try:
                    re.compile(str(rx))
                except re.error as e:
                    raise RuleError(f"{source}: {where}.{key}: invalid regular expression {rx!r}: {e}") from None


def _as_list(v) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def command_matches(spec: dict, cmd) -> bool:
    """Does a shell command match ``{command, subcommand, args}``?"""
    if not name_matches(cmd.name, _as_list(spec.get("command"))):
        return False
    subs = _as_list(spec.get("subcommand"))
    if subs and cmd.subcommand not in subs:
        return False
    args = _as_list(spec.get("args"))
    if args and not any(re.search(rx, a) for rx in args for a in cmd.args):
        return False
    return True


def env_truthy(value) -> bool:
    return value is not None and str(value).strip().lower() not in _FALSY


def _cache_mounted(ins, patterns) -> bool:
    for target in ins.cache_mount_targets():
        t = target.rstrip("/")
        for p in patterns:
            if fnmatch.fnmatchcase(t, p.rstrip("/")) or fnmatch.fnmatchcase(t + "/", p):
                return True
    return False


def _run_command_match(rule: Rule, df, ctx: CheckContext):
    m = rule.match
    without = _as_list(m.get("without-flag"))
    with_ = _as_list(m.get("with-flag"))
    without_cmd = _as_list(m.get("without-command"))
    unless_env = _as_list(m.get("unless-env"))
    unless_mount = _as_list(m.get("unless-mount"))
    for ins in df.walk("RUN", shipped_only=rule.stages == "shipped"):
        cmds = ins.commands
        for cmd in cmds:
            if not command_matches(m, cmd):
                continue
            if without and cmd.has_flag(*without):
                continue
            if with_ and not cmd.has_flag(*with_):
                continue
            if without_cmd and any(command_matches(spec, c) for spec in without_cmd for c in cmds):
                continue
            if unless_env:
                env = df.env_at(ins)
                env.update(cmd.env)
                if any(env_truthy(env.get(k)) for k in unless_env):
                    continue
            if unless_mount and _cache_mounted(ins, unless_mount):
                continue
            yield Problem.at(ins)
            break


def _run_instruction_match(rule: Rule, df, ctx: CheckContext):
    m = rule.match
    keywords = [k.upper() for k in _as_list(m["instruction"])]
    rx = re.compile(m["args-regex"]) if m.get("args-regex") else None
    without = _as_list(m.get("without-instruction-flag"))
    with_ = _as_list(m.get("with-instruction-flag"))
    for ins in df.walk(*keywords, shipped_only=rule.stages == "shipped"):
        if rx is not None and not rx.search(ins.args):
            continue
        if without and any(ins.flag(f) is not None for f in without):
            continue
        if with_ and not any(ins.flag(f) is not None for f in with_):
            continue
        yield Problem.at(ins)


def _run_image_match(rule: Rule, view, ctx: CheckContext):
    """Image rules: paths (globs) present in the final image, or in any layer.

    One problem per layer that contributes, with its bytes; the rule option
    ``min-bytes`` (when the rule has it) is the threshold below which it is silent.
    """
    from .globs import glob_regex

    m = rule.match
    patterns = _as_list(m["paths"])
    excludes = [glob_regex(p.strip("/")) for p in _as_list(m.get("exclude-paths"))]
    min_bytes = _size_option(ctx, "min-bytes")
    by_layer: dict = {}  # layer → [bytes, paths]
    seen: set = set()
    if m.get("where", "final") == "any-layer":
        for layer, entry in view.matches_any_layer([glob_regex(p.strip("/")) for p in patterns]):
            if any(rx.match(entry.path) for rx in excludes):
                continue
            b = by_layer.setdefault(layer, [0, []])
            b[0] += entry.size
            b[1].append(entry.path)
    else:
        from .checks.image_rules import glob_paths  # level-by-level: no scan of whole subtrees

        final = view.final
        for pattern in patterns:
            for path in glob_paths(final, pattern.strip("/")):
                for p, entry, layer in final.walk(path):
                    if entry is None or entry.kind == "dir" or any(rx.match(p) for rx in excludes):
                        continue
                    if p in seen:  # overlapping patterns
                        continue
                    seen.add(p)
                    b = by_layer.setdefault(layer, [0, []])
                    b[0] += entry.size
                    b[1].append(p)
    total = sum(b[0] for b in by_layer.values())
    if not by_layer or total < min_bytes:
        return
    for layer in sorted(by_layer):
        nbytes, paths = by_layer[layer]
        paths.sort()
        yield Problem.in_layer(view, layer, nbytes, paths,
                               message=image_message(rule.message, view, layer, nbytes, paths))


def _size_option(ctx: CheckContext, key: str) -> int:
    """A size option: bytes or a size such as ``5MB``; a bad value is a config error."""
    from .gate import GateError, parse_size

    try:
        return parse_size(ctx.options.get(key, 0) or 0, f"{ctx.rule.id} option {key}")
    except GateError as e:
        raise RuleError(str(e)) from None


def image_message(template: str, view, layer: int, nbytes: int, paths: list) -> str:
    """A declarative image rule's message for one layer: ``{size}`` (human units),
    ``{files}`` ("3 files"), ``{paths}`` (the first two) and ``{layer}`` (index and step) are filled
    in; a message without ``{size}`` gets the size in front."""
    from .gate import format_bytes

    shown = ", ".join("/" + p for p in paths[:2]) + (f" and {len(paths) - 2} more" if len(paths) > 2 else "")
    files = f"{len(paths)} file" + ("" if len(paths) == 1 else "s")
    values = {"{size}": format_bytes(nbytes), "{files}": files, "{paths}": shown,
              "{layer}": view.layer_label(layer)}
    text = template if "{size}" in template else "{size}: " + template
    for key, value in values.items():
        text = text.replace(key, value)
    return text


# -- loading -----------------------------------------------------------------

def builtin_rules_dir() -> str:
    """The rule pack shipped inside the package (``rules/`` in the source tree)."""
    here = os.path.dirname(os.path.abspath(__file__))
    packaged = os.path.join(here, "builtin_rules")
    if os.path.isdir(packaged):
        return packaged
    return os.path.join(os.path.dirname(here), "rules")


def load_rule_dir(directory: str) -> list:
    """Rules from every ``*.yaml``/``*.yml`` file in ``directory`` (cached as JSON)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith((".yaml", ".yml")))
    except OSError as e:
        raise RuleError(f"{directory}: cannot read rules directory: {e.strerror}") from None
    paths = [os.path.join(directory, n) for n in names]
    try:
        raw = load_yaml_cached(paths)
    except YamlFileError as e:
        raise RuleError(str(e)) from None
    for d, p in zip(raw, paths):
        if not isinstance(d, dict):
            raise RuleError(f"{p}: a rule file must be a YAML mapping")
    return [Rule(d, p) for d, p in zip(raw, paths)]


def load_rule_dirs(dirs: list, include_builtin: bool = True) -> list:
    """Built-in rules plus user rule directories; ids and names must be unique."""
    rules = []
    all_dirs = ([builtin_rules_dir()] if include_builtin else []) + list(dirs)
    seen: dict = {}
    for d in all_dirs:
        for r in load_rule_dir(d):
            for key in (r.id, r.name):
                if key in seen:
                    raise RuleError(f"{r.source}: {key!r} is already used by {seen[key]}")
                seen[key] = r.source
            rules.append(r)
    rules.sort(key=lambda r: r.id)
    return rules
