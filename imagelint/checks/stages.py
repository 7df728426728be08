"""Correctness rules about stages and single-use instructions: IL5001
copy-from-unknown-stage, IL5002 duplicate-stage-name, IL5003 multiple-cmd,
IL5004 multiple-entrypoint, IL5005 workdir-relative.
"""
from __future__ import annotations

import re

from ..rules import Problem

__all__ = ["copy_from_unknown_stage", "duplicate_stage_name", "multiple_cmd", "multiple_entrypoint",
           "workdir_relative"]


def copy_from_unknown_stage(df, ctx):
    """IL5001: ``COPY --from=x`` where x is neither an earlier stage nor an image reference."""
    for ins in df.walk("COPY"):
        ref = ins.flag("from")
        if ref is True:
            yield Problem.at(ins, message="`COPY --from` without a value")
            continue
        if not ref or ins.stage is None or ins.onbuild:
            continue  # ONBUILD triggers run in another Dockerfile, with its stage names
        if "$" in ref:
            continue  # resolved only at build time
        if ":" in ref or "/" in ref or "@" in ref:
            continue  # an image reference: BuildKit pulls it
        here = ins.stage.index
        if ref.isdigit():
            if int(ref) < here:
                continue
            what = ("its own stage" if int(ref) == here else
                    "a later stage" if int(ref) < len(df.stages) else "no stage")
            earlier = "stage 0" if here == 1 else f"stages 0-{here - 1}"
            yield Problem.at(ins, message=(f"`COPY --from={ref}` refers to {what}: `--from` can only use stages "
                                           f"defined before this one ({earlier})" if here else
                                           f"`COPY --from={ref}` in the first stage: there is no earlier stage"))
            continue
        target = None
        for st in df.stages:
            if st.name and st.name.lower() == ref.lower():
                target = st
                break
        if target is not None and target.index < here:
            continue
        if target is not None and target.index == here:
            msg = f"`COPY --from={ref}` names its own stage: BuildKit fails with a circular dependency"
        elif target is not None:
            msg = (f"stage `{ref}` is defined later (line {target.from_instruction.start_line}); here `--from={ref}` "
                   f"means the image `docker.io/library/{ref.lower()}:latest`")
        else:
            known = ", ".join(f"`{s.name}`" for s in df.stages[:here] if s.name) or "none"
            msg = (f"`COPY --from={ref}` names no earlier stage (named stages before it: {known}), so Docker "
                   f"pulls the image `{ref.lower()}:latest` or the build fails")
        yield Problem.at(ins, message=msg)


def duplicate_stage_name(df, ctx):
    """IL5002: two stages with the same name (stage names are case-insensitive)."""
    seen: dict = {}
    for st in df.stages:
        if not st.name:
            continue
        key = st.name.lower()
        if key in seen:
            first = seen[key]
            yield Problem.at(st.from_instruction,
                             message=(f"stage name `{st.name}` is already used by the stage at line "
                                      f"{first.from_instruction.start_line}; BuildKit rejects the file "
                                      "(`--from` and `--target` would be ambiguous)"))
        else:
            seen[key] = st


def _multiple(df, keyword: str):
    for st in df.stages:
        found = [ins for ins in st.instructions if ins.keyword == keyword]
        for earlier, ins in zip(found, found[1:]):
            yield Problem.at(ins, message=(f"another {keyword} in this stage: the {keyword} at line "
                                           f"{earlier.start_line} has no effect, only the last one counts"))


def multiple_cmd(df, ctx):
    """IL5003: more than one CMD in a stage."""
    return _multiple(df, "CMD")


def multiple_entrypoint(df, ctx):
    """IL5004: more than one ENTRYPOINT in a stage."""
    return _multiple(df, "ENTRYPOINT")


_WINDOWS_ABS_RE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def workdir_relative(df, ctx):
    """IL5005: WORKDIR that is not absolute after ARG/ENV substitution."""
    for ins in df.walk("WORKDIR"):
        raw = ins.args.strip()
        if not raw:
            continue
        path = raw
        if len(path) >= 2 and path[0] == path[-1] and path[0] in "\"'":
            path = path[1:-1]
        shown = f"`{raw}`"
        if path.startswith("$"):
            env = df.env_at(ins) if ins.stage is not None else {}
            path = df.substitute(path, env)
            if path.startswith("$") or not path:
                continue  # unknown at lint time (e.g. $HOME from the base image)
            shown = f"`{raw}` (= `{path}`)"
        if path.startswith("/") or _WINDOWS_ABS_RE.match(path):
            continue
        yield Problem.at(ins, message=(f"WORKDIR {shown} is relative: it resolves against whatever WORKDIR the "
                                       "base image or an earlier line set, so the directory silently changes "
                                       "when they do"))
