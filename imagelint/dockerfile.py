"""Dockerfile model: instructions with line ranges, flags, heredocs and stages.

dockerfile-parse gives the instruction structure (continuations, the ``# escape=``
directive, comments inside continued lines). On top of it this module fills
what it lacks: heredoc bodies (it reads them as instructions), a continuation at
end of file (it drops the instruction), flags (``--mount``, ``--from``,
``--chown``), exec vs shell form, stages and which of them ship, ONBUILD
triggers, SHELL, and ARG/ENV substitution.

Parsing never raises: problems are collected in :attr:`Dockerfile.errors`.
"""
from __future__ import annotations

import io
import json
import re

from dockerfile_parse import DockerfileParser

from .shell import ShellSyntaxError, split_commands

__all__ = ["Dockerfile", "Instruction", "Stage", "Heredoc", "parse", "substitute", "KEYWORDS"]

KEYWORDS = frozenset(
    "FROM RUN CMD LABEL MAINTAINER EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER "
    "WORKDIR ARG ONBUILD STOPSIGNAL HEALTHCHECK SHELL".split()
)
# (?<!<): `<<<word` is a here-string, not a heredoc
_HEREDOC_RE = re.compile(r"(?<!<)<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_POSIX_SHELLS = ("sh", "bash", "dash", "ash", "zsh", "ksh")


class Heredoc:
    """A heredoc attached to RUN/COPY/ADD: ``<<EOF`` ... ``EOF``."""

    __slots__ = ("name", "body", "strip_tabs", "quoted", "start_line", "end_line", "terminated")

    def __init__(self, name, strip_tabs, quoted, start_line):
        self.name = name
        self.strip_tabs = strip_tabs
        self.quoted = quoted
        self.start_line = start_line  # first body line (1-based)
        self.end_line = start_line  # terminator line
        self.body = ""
        self.terminated = False


class Instruction:
    """One instruction. Lines are 1-based and inclusive."""

    __slots__ = (
        "keyword", "start_line", "end_line", "raw", "value", "flags", "args",
        "exec_form", "heredocs", "stage", "index", "onbuild", "_commands",
        "shell_error", "shell", "trigger",
    )

    def __init__(self, keyword: str, start_line: int, end_line: int, raw: str, value: str):
        self.keyword = keyword
        self.start_line = start_line
        self.end_line = end_line
        self.raw = raw
        self.value = value
        self.flags: list = []  # [(name, value or None)]
        self.args = value  # value without leading --flags
        self.exec_form = None  # list of str for JSON (exec) form
        self.heredocs: list = []
        self.stage = None
        self.index = 0
        self.onbuild = False  # a trigger inside ONBUILD
        self._commands = None
        self.shell_error = None
        self.shell = None  # SHELL in force, as a list, or None for the default
        self.trigger = None  # for ONBUILD: the instruction it triggers

    # -- flags ---------------------------------------------------------------
    def flag(self, name: str):
        """Value of ``--name=value`` (last one), True for a bare ``--name``, else None."""
        found = None
        for k, v in self.flags:
            if k == name:
                found = True if v is None else v
        return found

    def flag_values(self, name: str) -> list:
        return [v for k, v in self.flags if k == name and v is not None]

    @property
    def mounts(self) -> list:
        """``RUN --mount`` specs as dicts with ``type`` (default bind) and ``target``."""
        out = []
        for spec in self.flag_values("mount"):
            d = {}
            for part in spec.split(","):
                k, eq, v = part.partition("=")
                d[k.strip().lower()] = v.strip() if eq else "true"
            d.setdefault("type", "bind")
            for alias in ("dst", "destination"):
                if alias in d and "target" not in d:
                    d["target"] = d[alias]
            out.append(d)
        return out

    def cache_mount_targets(self) -> list:
        """Targets of cache and tmpfs mounts: what they hold never lands in the layer."""
        return [m.get("target", "") for m in self.mounts if m["type"] in ("cache", "tmpfs")]

    # -- shell -----------------------------------------------------------------
    @property
    def script(self) -> str:
        """Shell text a RUN executes ('' for exec form or non-RUN)."""
        if self.keyword != "RUN" or self.exec_form is not None:
            return ""
        text = self.args
        if self.heredocs:
            rest = text
            for m in reversed(_heredoc_markers(text)):
                rest = rest[:m.start()] + rest[m.end():]
            rest = rest.strip()
            first = rest.split()[0].rsplit("/", 1)[-1] if rest else ""
            bodies = "\n".join(h.body for h in self.heredocs)
            if not rest:
                return bodies
            if first in _POSIX_SHELLS:
                return rest + "\n" + bodies if "-c" in rest.split() else bodies
            return rest  # heredoc is data fed to a program (python3 <<EOF)
        return text

    @property
    def commands(self) -> list:
        """Simple commands this RUN executes (:class:`imagelint.shell.Command`)."""
        if self._commands is None:
            self._commands = []
            if self.keyword == "RUN":
                if self.shell and self.shell[0].rsplit("/", 1)[-1].split(".")[0].lower() not in _POSIX_SHELLS:
                    return self._commands  # powershell/cmd: not analysed
                try:
                    if self.exec_form is not None:
                        from .shell import Command, _unwrap
                        if self.exec_form:
                            argv, wrappers, inner = _unwrap(list(self.exec_form), {}, 0)
                            if inner is not None:
                                self._commands = split_commands(inner)
                            elif argv:
                                self._commands = [Command(argv, {}, [], "", wrappers, 0)]
                    else:
                        self._commands = split_commands(self.script)
                except ShellSyntaxError as e:
                    self.shell_error = str(e)
        return self._commands

    @property
    def line_range(self) -> tuple:
        return (self.start_line, self.end_line)

    def __repr__(self) -> str:
        return f"<{self.keyword} {self.start_line}-{self.end_line} {self.args[:40]!r}>"


class Stage:
    """A build stage: ``FROM image [AS name]`` and what follows."""

    __slots__ = ("index", "name", "base", "image", "platform", "from_instruction",
                 "instructions", "parent", "ships", "is_final")

    def __init__(self, index: int, from_instruction: Instruction):
        self.index = index
        self.from_instruction = from_instruction
        self.name = None
        self.base = ""  # as written
        self.image = ""  # with global ARG defaults substituted
        self.platform = None
        self.instructions: list = []
        self.parent = None  # Stage this one is built FROM, if any
        self.ships = False  # part of the final image (final stage or its FROM ancestors)
        self.is_final = False  # the last stage: what `docker build` tags

    def chain(self) -> list:
        """This stage and the stages it is built FROM, the root first."""
        out = []
        st = self
        while st is not None and st not in out:
            out.append(st)
            st = st.parent
        out.reverse()
        return out

    def __repr__(self) -> str:
        return f"<Stage {self.index} {self.name or ''} FROM {self.image}>"


class Dockerfile:
    """A parsed Dockerfile."""

    def __init__(self, text: str, path: str = "Dockerfile"):
        self.path = path
        self.text = text
        self.lines = text.splitlines()
        self.instructions: list = []  # top-level, in order (ONBUILD triggers inside)
        self.stages: list = []
        self.global_args: dict = {}  # ARGs before the first FROM (name → default or None)
        self.directives: dict = {}  # parser directives (escape, syntax, check)
        self.comments: list = []  # (line, text without '#')
        self.errors: list = []  # (line, message)
        self.escape = "\\"
        self._env_cache: dict = {}  # stage index → _stage_envs result

    # -- queries -----------------------------------------------------------------
    @property
    def final_stage(self):
        return self.stages[-1] if self.stages else None

    def walk(self, *keywords: str, shipped_only: bool = False, onbuild: bool = True):
        """Instructions (ONBUILD triggers included), optionally filtered by keyword."""
        for ins in self.instructions:
            if shipped_only and (ins.stage is None or not ins.stage.ships):
                continue
            if ins.keyword == "ONBUILD":
                trig = ins.trigger
                if trig is not None and onbuild and (not keywords or trig.keyword in keywords):
                    yield trig
                continue
            if not keywords or ins.keyword in keywords:
                yield ins

    def stage_named(self, ref: str):
        """Stage by name (case-insensitive) or index; None if not defined."""
        if ref is None:
            return None
        for st in self.stages:
            if st.name and st.name.lower() == ref.lower():
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def env_at(self, ins: Instruction) -> dict:
        """ENV and ARG values visible to ``ins`` (inherited through FROM <stage>).

        A new dict on every call (callers add to it). Several rules ask on every RUN,
        so each stage's ENV/ARG instructions are read once (:meth:`_stage_envs`).
        """
        if ins.stage is None:
            return {}
        indices, envs = self._stage_envs(ins.stage)
        pos = len(indices) - 1
        while indices[pos] >= ins.index:  # the last ENV/ARG before ins (indices[0] is -1)
            pos -= 1
        return dict(envs[pos])

    def _stage_envs(self, stage: "Stage") -> tuple:
        """([-1, index of each ENV/ARG in the stage], [env before the stage's first one, after each])."""
        cached = self._env_cache.get(stage.index)
        if cached is not None:
            return cached
        parent = stage.parent
        # parents always come earlier (see _build_stages), so this recursion ends
        env = dict(self._stage_envs(parent)[1][-1]) if parent is not None and parent.index < stage.index else {}
        indices, envs = [-1], [dict(env)]
        for other in stage.instructions:
            if other.keyword in ("ENV", "ARG"):
                for k, v in parse_key_values(other.args, other.keyword):
                    if v is None:
                        v = self.global_args.get(k) or env.get(k) or ""
                    env[k] = v
                indices.append(other.index)
                envs.append(dict(env))
        self._env_cache[stage.index] = (indices, envs)
        return indices, envs

    def substitute(self, text: str, env: dict) -> str:
        """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}``."""
        return substitute(text, env)


def substitute(text: str, env: dict, keep_empty: bool = False) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}`` from ``env``.

    An unknown variable stays as written; with ``keep_empty`` so does one whose value is
    empty (an ARG without a default), for checks that must not guess a path from it.
    """
    if "$" not in text:
        return text

    def rep(m):
        name = m.group(1) or m.group(4)
        op, word = m.group(2), m.group(3)
        val = env.get(name)
        if op in (":-", "-"):
            return val if val else (word or "")
        if op in (":+", "+"):
            return (word or "") if val else ""
        if keep_empty:
            return val if val else m.group(0)
        return val if val is not None else m.group(0)

    return _VAR_RE.sub(rep, text)


def parse_key_values(text: str, keyword: str = "ENV") -> list:
    """``ENV a=1 b="2 3"`` / legacy ``ENV a 1`` / ``ARG a`` → [(key, value|None)]."""
    text = text.strip()
    if not text:
        return []
    try:
        import shlex
        words = shlex.split(text, posix=True)
    except ValueError:
        words = text.split()
    if not words:
        return []
    if "=" not in words[0]:
        if keyword == "ARG":
            return [(w.split("=", 1)[0], None) for w in words]
        # legacy ENV key value
        parts = text.split(None, 1)
        return [(parts[0], parts[1].strip() if len(parts) > 1 else "")]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        out.append((k, v if eq else None))
    return out


def _split_flags(value: str):
    """Leading ``--name[=value]`` words of an instruction; returns (flags, rest)."""
    flags = []
    rest = value.lstrip()
    while rest.startswith("--"):
        m = re.match(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\"[^\"]*\"|'[^']*'|\S*))?(?:\s+|$)", rest)
        if not m:
            break
        v = m.group(2)
        if v is not None and len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        flags.append((m.group(1).lower(), v))
        rest = rest[m.end():]
    return flags, rest


def _parse_exec(text: str):
    t = text.strip()
    if not t.startswith("["):
        return None
    try:
        v = json.loads(t)
    except ValueError:
        return None
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return v
    return None


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text. Never raises for any input string."""
    df = Dockerfile(text, path)
    try:
        _parse_into(df, text)
    except Exception as e:  # defensive: a parser bug must not take the linter down
        df.errors.append((1, f"internal parser error ({type(e).__name__}: {e}); please report it"))
    return df


def _parse_into(df: Dockerfile, text: str) -> None:
    lines = df.lines
    # parser directives: only at the very top, before any instruction or other comment
    for i, line in enumerate(lines):
        m = _DIRECTIVE_RE.match(line.strip())
        if not m or not line.strip():
            break
        df.directives[m.group(1).lower()] = m.group(2)
    df.escape = df.directives.get("escape", "\\") if df.directives.get("escape") in ("\\", "`") else "\\"

    src = text.replace("\r\n", "\n").replace("\r", "\n")
    if src and not src.endswith("\n"):
        src += "\n"
    # a continuation on the last line would make dockerfile-parse drop the instruction
    src += "\n"
    parser = DockerfileParser(fileobj=io.BytesIO(src.encode("utf-8", "surrogateescape")), env_replace=False)
    structure = parser.structure

    heredoc_until = -1  # 0-based line; structure items inside heredoc bodies are skipped
    for item in structure:
        start, end = item["startline"], min(item["endline"], max(len(lines) - 1, 0))
        if start <= heredoc_until:
            continue
        kw = item["instruction"]
        if kw == "COMMENT":
            df.comments.append((start + 1, item["value"]))
            continue
        raw = "\n".join(lines[start:end + 1])
        ins = Instruction(kw, start + 1, end + 1, raw, item["value"].strip())
        _fill(df, ins)
        if ins.heredocs:
            last = ins.heredocs[-1]
            heredoc_until = last.end_line - 1
            ins.end_line = max(ins.end_line, last.end_line)
            ins.raw = "\n".join(lines[start:ins.end_line])
        df.instructions.append(ins)
    _build_stages(df)
    if not df.instructions and not df.errors:
        df.errors.append((1, "empty Dockerfile: no instructions"))


def _fill(df: Dockerfile, ins: Instruction) -> None:
    kw = ins.keyword
    if kw not in KEYWORDS:
        ins.args = ins.value
        df.errors.append((ins.start_line, f"unknown instruction {kw.split()[0][:40]!r}"))
        return
    if kw in ("RUN", "COPY", "ADD", "FROM", "HEALTHCHECK"):
        ins.flags, ins.args = _split_flags(ins.value)
    if kw == "ONBUILD":
        inner_kw, _, inner_val = ins.value.partition(" ")
        inner = Instruction(inner_kw.upper(), ins.start_line, ins.end_line, ins.raw, inner_val.strip())
        inner.onbuild = True
        if inner.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            df.errors.append((ins.start_line, f"ONBUILD may not trigger {inner.keyword}"))
        elif inner.keyword:
            _fill(df, inner)
        ins.trigger = inner
        return
    if kw in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "COPY", "ADD", "VOLUME"):
        body = ins.args
        if kw == "HEALTHCHECK":
            up = body.upper()
            if up.startswith("CMD"):
                body = body[3:].strip()
        ins.exec_form = _parse_exec(body)
        if ins.exec_form is None and body.startswith("[") and kw in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
            # Docker silently runs it in shell form: almost always a typo
            df.errors.append((ins.start_line, f"{kw} looks like JSON (exec) form but is not valid JSON; "
                                              "Docker will run it through /bin/sh -c"))
    if kw in ("RUN", "COPY", "ADD"):
        _read_heredocs(df, ins)


def _heredoc_markers(text: str) -> list:
    """``<<EOF`` markers outside quotes: BuildKit reads ``echo "<<EOF"`` as plain text."""
    out = []
    quote = None  # the quote character we are inside, if any
    pos = 0
    for m in _HEREDOC_RE.finditer(text):
        for ch_i in range(pos, m.start()):
            ch = text[ch_i]
            if quote is None and ch in "\"'":
                quote = ch
            elif ch == quote and not (quote == '"' and ch_i > 0 and text[ch_i - 1] == "\\"):
                quote = None
        pos = m.start()
        if quote is None:
            out.append(m)
    return out


def _read_heredocs(df: Dockerfile, ins: Instruction) -> None:
    if "<<" not in ins.args:
        return
    # a heredoc marker inside quotes (echo '<<EOF') is not one; good enough to require
    # the marker in the instruction's first physical line, as BuildKit does
    first_line = df.lines[ins.start_line - 1] if ins.start_line - 1 < len(df.lines) else ""
    cursor = ins.end_line  # 0-based index of the first body line
    for m in _heredoc_markers(ins.args):
        if m.group(0) not in first_line and ins.start_line == ins.end_line:
            continue
        strip_tabs, quoted, name = m.group(1) == "-", bool(m.group(2)), m.group(3)
        h = Heredoc(name, strip_tabs, quoted, cursor + 1)
        body = []
        i = cursor
        while i < len(df.lines):
            line = df.lines[i]
            check = line.lstrip("\t") if strip_tabs else line
            if check.rstrip("\r") == name:
                h.terminated = True
                break
            body.append(check)
            i += 1
        h.body = "\n".join(body)
        h.end_line = min(i + 1, len(df.lines)) if df.lines else 1
        if not h.terminated:
            df.errors.append((ins.start_line, f"heredoc <<{name} is never terminated (no line '{name}')"))
        ins.heredocs.append(h)
        cursor = i + 1


def _build_stages(df: Dockerfile) -> None:
    stage = None
    shell = None
    seen_from = False
    for idx, ins in enumerate(df.instructions):
        ins.index = idx
        kw = ins.keyword
        if kw == "FROM":
            seen_from = True
            stage = Stage(len(df.stages), ins)
            words = ins.args.split()
            stage.base = words[0] if words else ""
            if len(words) >= 3 and words[1].lower() == "as":
                stage.name = words[2]
            elif len(words) > 1:
                df.errors.append((ins.start_line, f"FROM expects 'image [AS name]', got {ins.args!r}"))
            if not words:
                df.errors.append((ins.start_line, "FROM without an image"))
            defaults = {k: v for k, v in df.global_args.items() if v is not None}
            stage.image = df.substitute(stage.base, defaults)
            stage.platform = ins.flag("platform")
            parent = df.stage_named(stage.image) if stage.image else None
            if parent is not None and parent.index < stage.index:
                stage.parent = parent
            df.stages.append(stage)
            shell = stage.parent and _stage_shell(stage.parent) or None
        elif not seen_from:
            if kw == "ARG":
                for k, v in parse_key_values(ins.args, "ARG"):
                    df.global_args[k] = v
            elif kw in KEYWORDS:
                df.errors.append((ins.start_line, f"{kw} before the first FROM (only ARG may come first)"))
        if kw == "SHELL" and ins.exec_form:
            shell = ins.exec_form
        ins.stage = stage
        ins.shell = shell
        trig = ins.trigger
        if trig is not None:
            trig.stage, trig.index, trig.shell = stage, idx, shell
        if stage is not None:
            stage.instructions.append(ins)
    if df.stages:
        st = df.stages[-1]
        st.is_final = True
        while st is not None and not st.ships:
            st.ships = True
            st = st.parent
    elif df.instructions:
        df.errors.append((df.instructions[0].start_line, "no FROM instruction"))


def _stage_shell(stage: Stage):
    shell = None
    for ins in stage.instructions:
        if ins.keyword == "SHELL" and ins.exec_form:
            shell = ins.exec_form
    return shell
