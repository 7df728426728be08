"""IL3007-IL3008: the build context and its .dockerignore.

The matcher below follows moby/patternmatcher and the .dockerignore reader of
BuildKit (``frontend/dockerfile/dockerignore``), so what we call "ignored" is
what ``docker build`` leaves out:

- lines starting with ``#`` are comments; surrounding whitespace is trimmed;
- each pattern is cleaned like Go's ``filepath.Clean`` and a leading ``/`` is
  dropped (patterns are relative to the context root);
- ``*`` and ``?`` never cross ``/``; ``[...]`` is a character class; ``**``
  matches any number of directories (also none); ``\\`` escapes;
- ``!pattern`` re-includes; the LAST matching line wins;
- a pattern that matches a parent directory matches everything below it.
"""
from __future__ import annotations

import os
import re

from ..rules import Problem

TYPE_CHECKING = False  # annotations only: importing typing would slow the lint path
if TYPE_CHECKING:
    from typing import Iterator, Optional, Tuple

    from ..dockerfile import Dockerfile
    from ..rules import CheckContext

__all__ = ["DockerIgnore", "clean_pattern", "ignore_file_for", "load_ignore", "whole_context_copies",
           "context_copies", "dockerignore_missing", "dockerignore_incomplete"]


def clean_pattern(pattern: str) -> str:
    """Go ``filepath.Clean`` for a slash-separated pattern ('' → '.')."""
    if not pattern:
        return "."
    rooted = pattern.startswith("/")
    parts: list = []
    for part in pattern.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


# regex metacharacters that mean nothing in filepath.Match (moby escapes exactly these)
_REGEX_SPECIAL = set(".+()|{}$")


def _compile(pattern: str):
    """A predicate for one cleaned pattern, built the way moby/patternmatcher does.

    moby classifies patterns as exact, prefix (``foo/**``), suffix (``**/foo``, and
    any ``**...`` without other wildcards: a plain string suffix) or regex; the
    classification changes results in corner cases, so it is reproduced here.
    """
    rx = ["^"]
    kind = "exact"
    i, n, pos = 0, len(pattern), 0
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1  # "**/" is treated as "**"
                if i >= n:
                    # trailing "**": everything below
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        rx.append(".*")
                        kind = "regex"
                else:
                    rx.append("(.*/)?")  # any number of directories, even none
                    kind = "regex"
                if pos == 0:
                    kind = "suffix"
            else:
                rx.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            rx.append("[^/]")
            kind = "regex"
        elif ch in _REGEX_SPECIAL:
            rx.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                rx.append(re.escape(pattern[i]))  # the escaped character, literally
                i += 1
                kind = "regex"
            else:
                rx.append("\\\\")
        elif ch in "[]":
            rx.append(ch)
            kind = "regex"
        else:
            rx.append(ch)
        pos += 1
    if kind == "exact":
        return lambda path: path == pattern
    if kind == "prefix":
        head = pattern[:-2]
        return lambda path: path.startswith(head)
    if kind == "suffix":
        suffix = pattern[2:]
        return lambda path: path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
    compiled = re.compile("".join(rx) + "$", re.DOTALL)
    return lambda path: compiled.match(path) is not None


class DockerIgnore:
    """Parsed .dockerignore patterns; :meth:`excluded` answers for a context-relative path."""

    def __init__(self, lines):
        self.patterns: list = []  # (exclusion, cleaned pattern, compiled regex)
        for raw in lines:
            line = raw.lstrip("\ufeff")
            if line.startswith("#"):
                continue
            line = line.strip()
            if not line:
                continue
            invert = line.startswith("!")
            if invert:
                line = line[1:].strip()
                if not line:
                    continue  # BuildKit rejects a bare "!"; ignoring it is the safe reading
            line = clean_pattern(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            try:
                self.patterns.append((invert, line, _compile(line)))
            except re.error:
                continue  # docker build would fail on it; other rules are not the place to say so

    @classmethod
    def from_text(cls, text: str) -> "DockerIgnore":
        return cls(text.splitlines())

    def excluded(self, path: str) -> bool:
        """True if ``path`` (relative to the context root, '/'-separated) is left out."""
        path = clean_pattern(path.replace(os.sep, "/")).lstrip("/")
        if path in (".", ""):
            return False  # docker never excludes the context root itself
        parents = path.split("/")[:-1]
        matched = False
        for invert, _, match in self.patterns:
            # an exclusion only matters while not matched, an exception only once matched
            if invert != matched:
                continue
            hit = match(path)
            if not hit:
                for k in range(1, len(parents) + 1):
                    if match("/".join(parents[:k])):
                        hit = True
                        break
            if hit:
                matched = not invert
        return matched


def ignore_file_for(dockerfile_path: str, context_dir: str) -> Optional[str]:
    """The ignore file BuildKit uses: ``<Dockerfile>.dockerignore`` beside the Dockerfile
    wins over ``.dockerignore`` in the context root. None when there is neither."""
    if dockerfile_path:
        per_file = dockerfile_path + ".dockerignore"
        if os.path.isfile(per_file):
            return per_file
    root = os.path.join(context_dir, ".dockerignore")
    return root if os.path.isfile(root) else None


def load_ignore(dockerfile_path: str, context_dir: Optional[str]) -> Tuple[Optional[DockerIgnore], Optional[str]]:
    """(DockerIgnore or None, path or None) for a build context."""
    if not context_dir:
        return None, None
    path = ignore_file_for(dockerfile_path, context_dir)
    if path is None:
        return None, None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return DockerIgnore.from_text(f.read()), path
    except OSError:
        return None, None


# -- which instructions copy the context ----------------------------------------------

_WHOLE = {".", "./", "*", "./*", "/", "/."}


def _sources(ins) -> list:
    words = list(ins.exec_form) if ins.exec_form is not None else ins.args.split()
    return [w for w in words[:-1] if not w.startswith("<<")] if len(words) >= 2 else []


def _is_remote(src: str) -> bool:
    return "://" in src or src.startswith("git@")


def whole_context_copies(df: Dockerfile) -> list:
    """COPY/ADD instructions (without --from) whose sources include the whole context."""
    out = []
    for ins in df.walk("COPY", "ADD", onbuild=False):  # ONBUILD copies the child's context
        if ins.flag("from") is not None:
            continue
        if any(s.rstrip("/") in ("", ".") or s in _WHOLE for s in _sources(ins)):
            out.append(ins)
    return out


def context_copies(df: Dockerfile, context_dir: Optional[str]) -> list:
    """COPY/ADD of the whole context or of directories from it (first ones first)."""
    out = []
    for ins in df.walk("COPY", "ADD", onbuild=False):  # ONBUILD copies the child's context
        if ins.flag("from") is not None:
            continue
        for s in _sources(ins):
            if _is_remote(s):
                continue
            if s in _WHOLE or s.rstrip("/") in ("", ".") or s.endswith("/") or (
                    context_dir and "$" not in s
                    and os.path.isdir(os.path.join(context_dir, clean_pattern(s).lstrip("/")))):
                out.append(ins)
                break
    return out


# -- IL3007 ----------------------------------------------------------------------

def dockerignore_missing(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3007: the context (or a directory of it) is copied and there is no ignore file."""
    if not ctx.context_dir:
        return
    copies = context_copies(df, ctx.context_dir)
    if not copies or ignore_file_for(df.path, ctx.context_dir) is not None:
        return
    first = copies[0]
    name = os.path.basename(df.path or "Dockerfile")
    yield Problem.at(
        first,
        message=f"`{first.keyword} {first.args.strip()[:40]}` copies from the build context but there is no "
                f".dockerignore (nor {name}.dockerignore): .git, dependency folders, build outputs and "
                "local secrets can end up in the image, and every commit busts this layer's cache")


# -- IL3008 ----------------------------------------------------------------------

_OUTPUT_DIRS = ("dist", ".next", "coverage", "htmlcov", ".tox")
_ANY_DEPTH_DIRS = ("node_modules", "__pycache__")
_ENV_OK_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults", ".tpl")
_MAX_DEPTH = 3
_MAX_ENTRIES = 20000  # stop walking huge contexts: this runs on every commit


def _is_env_file(name: str) -> bool:
    if name != ".env" and not name.startswith(".env."):
        return False
    return not name.lower().endswith(_ENV_OK_SUFFIXES)


def _candidates(root: str, ignore) -> list:
    """(relative path, why) of things in the context that should not ship."""
    found: list = []
    top = set()
    try:
        top = set(os.listdir(root))
    except OSError:
        return found
    if "target" in top and top & {"Cargo.toml", "pom.xml", "build.sbt"}:
        found.append(("target", "build output"))
    if "build" in top and top & {"package.json", "setup.py", "pyproject.toml", "build.gradle",
                                  "build.gradle.kts", "CMakeLists.txt"}:
        found.append(("build", "build output"))
    if ".git" in top:
        found.append((".git", "git history"))
    seen = 0
    stack = [("", 0)]
    while stack:
        rel, depth = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(root, rel) if rel else root), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            seen += 1
            if seen > _MAX_ENTRIES:
                return found
            path = f"{rel}/{e.name}" if rel else e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if ignore is not None and ignore.excluded(path):
                continue
            if is_dir:
                if e.name == ".git":
                    continue  # reported from the top level only; never walked
                if e.name in _ANY_DEPTH_DIRS:
                    found.append((path, "dependencies" if e.name == "node_modules" else "bytecode cache"))
                    continue
                if os.path.isfile(os.path.join(e.path, "pyvenv.cfg")):
                    found.append((path, "virtualenv"))
                    continue
                if depth == 0 and e.name in _OUTPUT_DIRS:
                    found.append((path, "build output" if e.name in ("dist", ".next") else "test/coverage output"))
                    continue
                if depth == 0 and e.name in ("target", "build"):
                    continue  # judged above (only with a build manifest beside it)
                if depth + 1 < _MAX_DEPTH:
                    stack.append((path, depth + 1))
            elif _is_env_file(e.name):
                found.append((path, "secrets"))
    return found


def dockerignore_incomplete(df: Dockerfile, ctx: CheckContext) -> Iterator[Problem]:
    """IL3008: the ignore file exists but lets in .git, dependencies, venvs, outputs or .env."""
    if not ctx.context_dir:
        return
    copies = whole_context_copies(df)
    if not copies:
        return
    ignore, path = load_ignore(df.path, ctx.context_dir)
    if ignore is None:
        return  # no ignore file: IL3007's finding
    leaks = [(p, why) for p, why in _candidates(ctx.context_dir, ignore) if not ignore.excluded(p)]
    if not leaks:
        return
    leaks.sort(key=lambda x: (x[1] != "secrets", x[0].count("/"), x[0]))
    shown = ", ".join(f"{p} ({why})" for p, why in leaks[:8])
    more = f" and {len(leaks) - 8} more" if len(leaks) > 8 else ""
    first = copies[0]
    secret = any(why.startswith("secrets") for _, why in leaks)
    # suggest patterns that also catch nested copies (docker matches from the context root)
    pats = []
    for p, _ in leaks:
        name = p.rsplit("/", 1)[-1]
        pat = f"**/{name}" if ("/" in p or name in _ANY_DEPTH_DIRS or name == ".env") else name
        if pat not in pats:
            pats.append(pat)
    ign = os.path.basename(path)
    yield Problem.at(
        first,
        message=f"{ign} lets {shown}{more} into the build context that "
                f"`{first.keyword} {first.args.strip()[:40]}` (line {first.start_line}) copies: "
                + ("it ships secrets, adds bytes to the image and busts the layer cache" if secret
                   else "it adds bytes to the image and busts the layer cache"),
        fix=f"add these lines to {ign}: " + ", ".join(f"`{x}`" for x in pats[:10]))
