"""Shell-style path globs as regular expressions: ``*`` and ``?`` stay within one path
segment, ``**`` crosses segments (``**/`` also matches no directory), ``[...]`` is a
character class (``[!...]`` negated). Used for image paths and .dockerignore patterns."""
from __future__ import annotations

import re

__all__ = ["glob_to_regex", "glob_regex"]


def glob_to_regex(pattern: str, backslash_escapes: bool = False) -> str:
    """The regular expression source for ``pattern``, anchored at the end; use it with
    ``match`` (which anchors the start, also at a ``pos``).

    ``backslash_escapes``: ``\\*`` means a literal ``*`` (.dockerignore); image paths
    take backslashes literally.
    """
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # '**/' also matches zero directories
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith(("[!", "[^"), i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and backslash_escapes and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out) + r"\Z"


def glob_regex(pattern: str, backslash_escapes: bool = False) -> "re.Pattern":
    """Compiled :func:`glob_to_regex` (``re.S``: names may hold newlines)."""
    return re.compile(glob_to_regex(pattern, backslash_escapes), re.S)
