"""Split POSIX shell text into simple commands (argv lists).

A small hand-written tokenizer instead of bashlex: bashlex costs ~220 ms to
import, and linting only needs argv lists, prefix assignments and the operator
between commands. Handles quotes, escapes, ``$(...)``/backticks (their bodies are
split too), ``&& || ; | &``, newlines, comments, redirections, reserved words,
``VAR=x cmd`` prefixes, wrappers (sudo, env, nice, ...) and ``sh -c "..."``.
"""
from __future__ import annotations

import fnmatch
import os

__all__ = ["Command", "ShellSyntaxError", "split_commands", "name_matches"]


class ShellSyntaxError(ValueError):
    """The script cannot be tokenized (unterminated quote or substitution)."""


class Command:
    """One simple command: ``argv`` after wrappers, ``env`` prefix assignments."""

    __slots__ = ("argv", "env", "redirects", "op", "wrappers", "line")

    def __init__(self, argv: list, env: dict, redirects: list, op: str, wrappers: list, line: int):
        self.argv = argv
        self.env = env
        self.redirects = redirects
        self.op = op  # operator that precedes this command ('' for the first one)
        self.wrappers = wrappers  # e.g. ['sudo'] or ['sh -c']
        self.line = line  # 0-based line offset inside the script

    @property
    def name(self) -> str:
        """Program name without directory, e.g. ``apt-get`` for ``/usr/bin/apt-get``."""
        if not self.argv:
            return ""
        a0 = self.argv[0]
        return a0[a0.rfind("/") + 1:]  # posixpath.basename, inlined: checks call this very often

    @property
    def args(self) -> list:
        return self.argv[1:]

    def positionals(self) -> list:
        """Arguments that are not options (approximate: anything not starting with '-')."""
        return [a for a in self.argv[1:] if not a.startswith("-") or a == "-"]

    @property
    def subcommand(self) -> str:
        """The first positional argument, e.g. ``install`` in ``apt-get -y install x``."""
        for a in self.argv[1:]:
            if not a.startswith("-"):
                return a
        return ""

    def has_flag(self, *flags: str) -> bool:
        """True if any flag is present: ``--long``, ``--long=value`` or short ``-y`` in ``-qy``."""
        for a in self.argv[1:]:
            if a == "--":
                break
            for f in flags:
                if a == f:
                    return True
                if f.startswith("--"):
                    if a.startswith(f + "="):
                        return True
                elif len(f) == 2 and f[0] == "-" and len(a) > 2 and a[0] == "-" and a[1] != "-":
                    if f[1] in a[1:] and a[1:].isalpha():
                        return True
        return False

    def flag_value(self, flag: str):
        """Value of ``--flag=v`` or ``--flag v`` (last occurrence), or None."""
        value = None
        argv = self.argv
        for i, a in enumerate(argv[1:], 1):
            if a.startswith(flag + "="):
                value = a[len(flag) + 1:]
            elif a == flag and i + 1 < len(argv):
                value = argv[i + 1]
        return value

    def __repr__(self) -> str:
        return f"Command({self.argv!r}, env={self.env!r}, op={self.op!r})"


def name_matches(name: str, patterns) -> bool:
    """fnmatch ``name`` against a list of patterns (``pip``, ``pip[0-9]*``)."""
    for p in patterns:
        if p == name or (("*" in p or "[" in p or "?" in p) and fnmatch.fnmatchcase(name, p)):
            return True
    return False


# -- tokenizer ---------------------------------------------------------------

_OPERATORS = ("&&", "||", ";;", "|&", ";", "|", "&", "(", ")", "\n")
_REDIRS = ("&>>", "&>", ">>", ">&", "<&", "<<<", "<<-", "<<", "<>", ">|", ">", "<")
_WORD_BREAK = set(" \t\n;&|()<>")


class _Word(str):
    """A word; ``subs`` are the bodies of $(...) and backticks inside it."""

    __slots__ = ("subs", "quoted", "quote_at")


def _matching_paren(s: str, i: int) -> int:
    """Index just past the ')' that closes the '(' at s[i], honouring quotes."""
    depth = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated single quote")
            i = j + 1
            continue
        if c == '"':
            i = _end_of_double(s, i + 1)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ShellSyntaxError("unterminated $( or (")


def _end_of_double(s: str, i: int) -> int:
    """Index just past the closing '"' of a double-quoted string starting at s[i]."""
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "$" and i + 1 < n and s[i + 1] == "(":
            i = _matching_paren(s, i + 1)
            continue
        if c == "`":
            j = s.find("`", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated backtick")
            i = j + 1
            continue
        i += 1
    raise ShellSyntaxError("unterminated double quote")


def _tokenize(s: str):
    """Yield (kind, value, line) with kind 'word', 'op' or 'redir'."""
    i = 0
    n = len(s)
    line = 0
    buf: list = []
    subs: list = []
    quoted = False
    quote_at = -1  # offset in the word of its first quoted/escaped character
    start_line = 0
    have_word = False

    def flush():
        nonlocal buf, subs, quoted, have_word, quote_at
        w = _Word("".join(buf))
        w.subs = subs
        w.quoted = quoted
        w.quote_at = quote_at
        buf, subs, quoted, have_word, quote_at = [], [], False, False, -1
        return w

    def mark_quote():
        # `A="x y" cmd` is still an assignment; `"A=1" cmd` and `A\=1 cmd` are not
        nonlocal quote_at
        if quote_at < 0:
            quote_at = sum(len(b) for b in buf)

    while i < n:
        c = s[i]
        if c in " \t\r":
            if have_word:
                yield "word", flush(), start_line
            i += 1
            continue
        if not have_word:
            start_line = line
        if c == "\\":
            if i + 1 < n and s[i + 1] == "\n":
                line += 1
                i += 2
                continue
            if i + 1 < n:
                mark_quote()
                buf.append(s[i + 1])
            have_word = True
            i += 2
            continue
        if c == "'":
            j = s.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError(f"unterminated single quote (script line {line + 1})")
            chunk = s[i + 1:j]
            mark_quote()
            buf.append(chunk)
            line += chunk.count("\n")
            quoted = have_word = True
            i = j + 1
            continue
        if c == '"':
            j = _end_of_double(s, i + 1)
            raw = s[i + 1:j - 1]
            # unescape \" \\ \$ \` ; keep other backslashes
            out = []
            k = 0
            while k < len(raw):
                ch = raw[k]
                if ch == "\\" and k + 1 < len(raw) and raw[k + 1] in '"\\$`\n':
                    if raw[k + 1] != "\n":
                        out.append(raw[k + 1])
                    k += 2
                    continue
                if ch == "$" and k + 1 < len(raw) and raw[k + 1] == "(":
                    e = _matching_paren(raw, k + 1)
                    subs.append(raw[k + 2:e - 1])
                    out.append(raw[k:e])
                    k = e
                    continue
                out.append(ch)
                k += 1
            mark_quote()
            buf.append("".join(out))
            line += raw.count("\n")
            quoted = have_word = True
            i = j
            continue
        if c == "`":
            j = s.find("`", i + 1)
            if j < 0:
                raise ShellSyntaxError(f"unterminated backtick (script line {line + 1})")
            subs.append(s[i + 1:j])
            buf.append(s[i:j + 1])
            have_word = True
            i = j + 1
            continue
        if c == "$" and i + 1 < n and s[i + 1] in "({":
            if s[i + 1] == "(":
                j = _matching_paren(s, i + 1)
                body = s[i + 2:j - 1]
                if not body.startswith("("):  # $((arith)) is not a command
                    subs.append(body)
            else:
                j = s.find("}", i + 2)
                if j < 0:
                    raise ShellSyntaxError(f"unterminated ${{ (script line {line + 1})")
                j += 1
            buf.append(s[i:j])
            line += s.count("\n", i, j)
            have_word = True
            i = j
            continue
        if c == "#" and not have_word:
            j = s.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in _WORD_BREAK:
            # fd number before a redirection: 2>/dev/null
            if c in "<>" and have_word and "".join(buf).isdigit() and not quoted:
                flush()
            elif have_word:
                yield "word", flush(), start_line
            for r in _REDIRS:
                if s.startswith(r, i):
                    i += len(r)
                    yield "redir", r, line
                    break
            else:
                for op in _OPERATORS:
                    if s.startswith(op, i):
                        i += len(op)
                        yield "op", op, line
                        if op == "\n":
                            line += 1
                        break
            continue
        buf.append(c)
        have_word = True
        i += 1
    if have_word:
        yield "word", flush(), start_line


_RESERVED_SKIP = {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "}"}
_RESERVED_END = {"fi", "done", "esac", "}"}
_WRAPPERS_PLAIN = {"exec", "command", "nohup", "builtin", "time"}
_WRAPPERS_ONE_ARG_OPTS = {
    # wrapper: options that take a separate value
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"},
    "nice": {"-n"},
    "ionice": {"-c", "-n", "-p"},
    "stdbuf": set(),
    "gosu": set(),
    "su-exec": set(),
    "chroot": set(),
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "xargs": {"-n", "-I", "-d", "-P", "-L", "-s", "-a", "-E"},
}
_SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh"}
_ASSIGN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def _is_assignment(w: str) -> bool:
    eq = w.find("=")
    if eq <= 0:
        return False
    name = w[:eq]
    return not name[0].isdigit() and all(ch in _ASSIGN_CHARS for ch in name)


def _unquoted_name(word) -> bool:
    """The ``NAME=`` part of an assignment word is not quoted or escaped."""
    at = getattr(word, "quote_at", -1)
    return at < 0 or at > word.find("=")


def _unwrap(argv: list, env: dict, depth: int):
    """Strip wrappers; returns (argv, wrappers, inner_script or None)."""
    wrappers = []
    while argv:
        name = os.path.basename(argv[0])
        if name == "command" and any(a in ("-v", "-V") for a in argv[1:2]):
            break  # `command -v curl` looks curl up; it does not run it
        if name in _WRAPPERS_PLAIN:
            wrappers.append(name)
            argv = argv[1:]
            while argv and argv[0].startswith("-"):
                argv = argv[1:]
            continue
        if name == "env":
            wrappers.append("env")
            argv = argv[1:]
            while argv and (argv[0].startswith("-") or _is_assignment(argv[0])):
                if _is_assignment(argv[0]):
                    k, _, v = argv[0].partition("=")
                    env[k] = v
                argv = argv[1:]
            continue
        if name in _WRAPPERS_ONE_ARG_OPTS:
            opts = _WRAPPERS_ONE_ARG_OPTS[name]
            wrappers.append(name)
            argv = argv[1:]
            while argv and argv[0].startswith("-"):
                takes = argv[0] in opts
                argv = argv[2:] if takes else argv[1:]
            if name in ("timeout",) and argv:
                argv = argv[1:]  # the duration
            elif name in ("gosu", "su-exec", "chroot") and argv:
                argv = argv[1:]  # user / new root
            while name == "sudo" and argv and _is_assignment(argv[0]):
                k, _, v = argv[0].partition("=")
                env[k] = v
                argv = argv[1:]
            continue
        if name in _SHELLS and depth < 4:
            # sh -c "script" / bash -euxo pipefail -c "script"
            rest = argv[1:]
            i = 0
            cflag = False
            while i < len(rest) and rest[i].startswith("-"):
                opt = rest[i]
                if opt.startswith("--"):
                    i += 1
                    continue
                if "c" in opt[1:]:
                    cflag = True
                # -o/-euo take the option name as the next word
                i += 2 if opt.endswith("o") else 1
                if cflag:
                    break
            if cflag and i < len(rest):
                return [], wrappers + [name + " -c"], rest[i]
            return argv, wrappers, None
        if name == "eval" and depth < 4 and len(argv) > 1:
            return [], wrappers + ["eval"], " ".join(argv[1:])
        break
    return argv, wrappers, None


def _normalise(argv: list) -> list:
    """``python3 -m pip install x`` → ``pip install x`` (keeps the module name)."""
    if len(argv) >= 3 and os.path.basename(argv[0]).startswith("python"):
        rest = argv[1:]
        i = 0
        while i < len(rest) and rest[i].startswith("-") and rest[i] != "-m":
            i += 1
        if i + 1 < len(rest) and rest[i] == "-m":
            return rest[i + 1:]
    return argv


def split_commands(script: str, _depth: int = 0) -> list:
    """Split ``script`` into :class:`Command` objects in order.

    Raises :class:`ShellSyntaxError` for unterminated quotes or substitutions.
    """
    out: list = []
    words: list = []
    env: dict = {}
    redirects: list = []
    pending_redir = None
    op = ""
    first_line = 0
    skip_until_sep = False
    subs_bodies: list = []

    def emit():
        nonlocal words, env, redirects, skip_until_sep
        argv = [str(w) for w in words]
        cmd_env = env
        # leading assignments
        while argv and _is_assignment(argv[0]) and _unquoted_name(words[len(words) - len(argv)]):
            k, _, v = argv[0].partition("=")
            cmd_env[k] = v
            argv = argv[1:]
        # reserved words that prefix a command
        while argv and argv[0] in _RESERVED_SKIP:
            argv = argv[1:]
        if argv and argv[0] in _RESERVED_END:
            argv = argv[1:]
        inner = None
        wrappers: list = []
        if argv:
            argv, wrappers, inner = _unwrap(argv, cmd_env, _depth)
        if inner is not None:
            try:
                inner_cmds = split_commands(inner, _depth + 1)
            except ShellSyntaxError:
                inner_cmds = []
            for k, c in enumerate(inner_cmds):
                c.wrappers = wrappers + c.wrappers
                c.env = {**cmd_env, **c.env}
                c.line += first_line
                if k == 0:
                    c.op = op
            out.extend(inner_cmds)
        elif argv or cmd_env:
            out.append(Command(_normalise(argv), cmd_env, redirects, op, wrappers, first_line))
        words, env, redirects = [], {}, []
        skip_until_sep = False

    for kind, value, line in _tokenize(script):
        if kind == "word":
            if pending_redir is not None:
                redirects.append((pending_redir, str(value)))
                pending_redir = None
                if value.subs:
                    subs_bodies.extend(value.subs)
                continue
            if skip_until_sep:
                if value.subs:
                    subs_bodies.extend(value.subs)
                continue
            if not words:
                first_line = line
                if value in ("for", "case", "select", "function") and not value.quoted:
                    skip_until_sep = True
                    continue
                if value == "in" and not value.quoted:
                    continue
            if value.subs:
                subs_bodies.extend(value.subs)
            words.append(value)
        elif kind == "redir":
            pending_redir = value
        else:  # operator
            if words or env:
                emit()
            skip_until_sep = False
            if value in ("(", ")"):
                continue
            op = value
    if words or env:
        emit()
    # commands inside $(...) and backticks run too, e.g. $(curl -fsSL ...)
    if _depth < 4:
        for body in subs_bodies:
            try:
                for c in split_commands(body, _depth + 1):
                    c.wrappers = ["$()"] + c.wrappers
                    out.append(c)
            except ShellSyntaxError:
                pass
    return out
