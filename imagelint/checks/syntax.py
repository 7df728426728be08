"""IL0001: what the parser could not accept (see rules/IL0001-invalid-dockerfile.yaml)."""
from __future__ import annotations

from ..rules import Problem


def check(df, ctx):
    for line, message in df.errors:
        yield Problem(line, line, message)
    for ins in df.walk("RUN"):
        ins.commands  # splitting sets shell_error
        if ins.shell_error:
            yield Problem.at(ins, f"cannot split the RUN command into commands: {ins.shell_error}")
