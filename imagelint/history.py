"""Map image history steps (and so layers) to Dockerfile lines.

The image config's ``history`` lists one step per instruction that ran, oldest first;
steps with ``empty_layer`` made no layer. The last steps are the Dockerfile's
shipped instructions (the final stage, after the stages it is built FROM); the
earlier ones come from the base image. We align from the end, matching each
step's ``created_by`` to an instruction of the same kind and, where the text
allows, the same arguments. When text disagrees (a rebuilt Dockerfile, build
args substituted) the mapping is kept but marked uncertain.

``created_by`` forms handled:
- classic builder: ``/bin/sh -c #(nop)  ENV A=1``, ``/bin/sh -c #(nop) COPY file:<sha> in /app``,
  ``/bin/sh -c apt-get update`` (shell-form RUN), ``/bin/busybox --install`` (exec-form RUN),
  ``|2 A=1 B=2 /bin/sh -c make`` (RUN with build args);
- BuildKit: ``RUN /bin/sh -c make # buildkit``, ``RUN |1 V=2 /bin/sh -c make # buildkit``,
  ``COPY . . # buildkit`` (no flags), ``WORKDIR /app`` (resolved absolute), ``ENV A=1``.

A Dockerfile edited after the build: a step whose text disagrees is matched to a
neighbouring instruction (up to 3 away) that agrees exactly; steps of instructions
removed since stay unmapped, instructions added since are skipped.
"""
from __future__ import annotations

import re

__all__ = ["parse_created_by", "LayerSource", "map_history"]

_NOP = "/bin/sh -c #(nop)"
_ARGS_PREFIX = re.compile(r"^\|\d+\s+((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*)")
_KEYWORDS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
             "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
_WS = re.compile(r"\s+")
_WINDOW = 3  # how far to look for the instruction a step matches when the Dockerfile was edited


def parse_created_by(created_by: str) -> tuple:
    """``created_by`` → (KEYWORD, argument text); ('', text) when it cannot be read."""
    s = (created_by or "").strip()
    if s.endswith("# buildkit"):
        s = s[: -len("# buildkit")].rstrip()
        word, _, rest = s.partition(" ")
        if word.upper() in _KEYWORDS:
            rest = rest.strip()
            if word.upper() == "RUN":
                m = _ARGS_PREFIX.match(rest)  # BuildKit: `RUN |1 V=2 /bin/sh -c ...` with build args
                if m:
                    rest = rest[m.end():]
                if rest.startswith("/bin/sh -c "):
                    rest = rest[len("/bin/sh -c "):]
            return word.upper(), rest
        return "RUN", s
    m = _ARGS_PREFIX.match(s)
    if m:
        s = s[m.end():]
    if s.startswith(_NOP):
        rest = s[len(_NOP):].strip()
        word, _, args = rest.partition(" ")
        return (word.upper() if word.upper() in _KEYWORDS else ""), args.strip()
    if s.startswith("/bin/sh -c "):
        return "RUN", s[len("/bin/sh -c "):]
    word, _, rest = s.partition(" ")
    if word.upper() in _KEYWORDS and word.isupper():
        return word, rest.strip()
    return ("RUN", s) if s else ("", "")


def _norm(text: str) -> str:
    text = text.replace("\\\n", " ").replace("`\n", " ")
    return _WS.sub(" ", text).strip()


def _instruction_text(ins) -> str:
    if ins.keyword == "RUN" and ins.exec_form is not None:
        return " ".join(ins.exec_form)
    if ins.keyword == "RUN":
        return ins.script
    return ins.args


def _heredoc_texts(ins) -> list:
    """What BuildKit records for a heredoc RUN: the body run by the shell, the command with
    its heredocs put back, or the script file it runs (a body starting with #!)."""
    docs = "\n".join(f"{h.body}\n{h.name}" for h in ins.heredocs)
    return [ins.script, f"{ins.args}\n{docs}"] + [f"/dev/pipes/{h.name}" for h in ins.heredocs]


def _ports(text: str) -> set:
    """``80 443/udp`` or ``map[443/udp:{} 80/tcp:{}]`` → {'80/tcp', '443/udp'}."""
    text = text.replace("map[", " ").replace("]", " ").replace(":{}", " ")
    return {p if "/" in p else p + "/tcp" for p in text.split()}


def _env_pairs(text: str) -> str:
    """ENV's legacy form ``ENV A 1`` is recorded as ``A=1``."""
    word, _, rest = text.partition(" ")
    if "=" not in word and rest:
        return f"{word}={rest}"
    return text


def _text_agrees(keyword: str, history_text: str, ins) -> bool:
    h = _norm(history_text)
    d = _norm(_instruction_text(ins))
    if keyword == "RUN" and ins.heredocs and ins.exec_form is None:
        return any(h == _norm(t) for t in _heredoc_texts(ins))
    if keyword == "EXPOSE":
        return _ports(h) == _ports(d)
    if keyword == "WORKDIR":
        # recorded as the resolved absolute path: `WORKDIR sub` after `WORKDIR /app` is /app/sub
        return h == d or (not d.startswith("/") and h.rstrip("/").endswith("/" + d.rstrip("/")))
    if keyword in ("VOLUME", "SHELL") and h.startswith("[") and h.endswith("]"):
        # classic builder prints Go's %v of a list: [/data] or [/bin/sh -c]
        words = ins.exec_form if ins.exec_form is not None else d.split()
        return h[1:-1].split() == [w for a in words for w in a.split()]
    if keyword in ("CMD", "ENTRYPOINT") and ins.exec_form is None:
        # shell form is recorded with the shell put in front: ["/bin/sh" "-c" "echo hi"]
        return h.endswith('"' + d.replace('"', '\\"') + '"]')
    if keyword == "HEALTHCHECK":
        # recorded as a Go struct; agree when the test command's words are all there
        return all(w.strip('"[],') in h for w in d.split() if w.strip('"[],') and not w.startswith("--"))
    if keyword in ("COPY", "ADD"):
        # classic builder: "file:<sha> in /dest"; compare the destination
        if " in " in h and re.match(r"^(file|dir|multi):[0-9a-f]+ in ", h):
            dest = h.split(" in ", 1)[1].strip()
            words = d.split()
            return bool(words) and words[-1].rstrip("/") == dest.rstrip("/")
        return h == d or h.endswith(d) or d.endswith(h)
    if keyword in ("CMD", "ENTRYPOINT", "SHELL") and ins.exec_form is not None:
        # classic builder prints ["a" "b"]; BuildKit prints ["a","b"] or the JSON
        return _norm(h.replace('" "', '","').replace(", ", ",")) == _norm(
            "[" + ",".join(f'"{a}"' for a in ins.exec_form) + "]") or h == d
    if keyword == "ENV":
        return h.replace('"', "") == _env_pairs(d).replace('"', "")
    if keyword in ("LABEL", "ARG"):
        return h.replace('"', "") == d.replace('"', "")
    return h == d


class LayerSource:
    """Where a history step came from: a Dockerfile instruction, or the base image."""

    __slots__ = ("history_index", "keyword", "text", "instruction", "certain", "from_base")

    def __init__(self, history_index: int, keyword: str, text: str):
        self.history_index = history_index
        self.keyword = keyword
        self.text = text
        self.instruction = None  # imagelint.dockerfile.Instruction when mapped
        self.certain = False
        self.from_base = False

    @property
    def line(self):
        return self.instruction.start_line if self.instruction is not None else None

    def to_dict(self) -> dict:
        d = {"history_index": self.history_index, "keyword": self.keyword, "from_base": self.from_base,
             "line": self.line, "certain": self.certain}
        if self.instruction is not None:
            d["end_line"] = self.instruction.end_line
        return d


def shipped_instructions(df) -> list:
    """Instructions of the final image in build order (parent stages first), FROMs excluded."""
    out = []
    for st in df.final_stage.chain() if df.final_stage is not None else ():
        out.extend(ins for ins in st.instructions if ins.keyword != "FROM")
    return out


def map_history(history: list, df) -> list:
    """One :class:`LayerSource` per history step; Dockerfile ``df`` may be None."""
    sources = []
    for i, step in enumerate(history):
        kw, text = parse_created_by(step.get("created_by", ""))
        sources.append(LayerSource(i, kw, text))
    if df is None or df.final_stage is None:
        return sources
    instructions = shipped_instructions(df)
    i, j = len(sources) - 1, len(instructions) - 1
    while i >= 0 and j >= 0:
        src, ins = sources[i], instructions[j]
        agrees = src.keyword == ins.keyword and _text_agrees(src.keyword, src.text, ins)
        if not agrees:
            # The Dockerfile was edited after the build: an instruction added since (skip it)
            # or removed since (leave its step unmapped), when a near neighbour agrees exactly.
            added = next((k for k in range(j - 1, max(j - 1 - _WINDOW, -1), -1)
                          if instructions[k].keyword == src.keyword
                          and _text_agrees(src.keyword, src.text, instructions[k])), None)
            if added is not None:
                j = added
                continue
            removed = next((m for m in range(i - 1, max(i - 1 - _WINDOW, -1), -1)
                            if sources[m].keyword == ins.keyword
                            and _text_agrees(ins.keyword, sources[m].text, ins)), None)
            if removed is not None:
                i = removed
                continue
        if src.keyword == ins.keyword:
            src.instruction = ins
            src.certain = agrees  # same kind, other text: build args substituted, or edited
            i -= 1
            j -= 1
            continue
        # BuildKit leaves some instructions (ONBUILD) out of history
        ahead = next((k for k in range(j - 1, -1, -1) if instructions[k].keyword == src.keyword), None)
        if ahead is not None and j - ahead <= _WINDOW:
            j = ahead
            continue
        break
    # steps before the first mapped one belong to the base image; a Dockerfile fully
    # matched up to its first instruction means everything earlier is the base.
    first_mapped = next((k for k, s in enumerate(sources) if s.instruction is not None), len(sources))
    for s in sources[:first_mapped]:
        s.from_base = True
    return sources
