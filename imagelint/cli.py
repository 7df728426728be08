"""Command line: ``imagelint lint|rules|explain`` (and the image commands).

Exit codes: 0 clean, 1 findings at or above --fail-on (or a failed gate),
2 bad usage or unreadable input (the other inputs are still processed).
Heavy modules (docker SDK, tabulate) are imported inside the commands that need them.
"""
from __future__ import annotations

import os
import sys

import click

from . import __version__

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


def _err(msg: str) -> None:
    click.echo(f"imagelint: {msg}", err=True)


def _split_keys(values) -> list:
    out = []
    for v in values or ():
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException as e:
            e.exit_code = EXIT_BAD_INPUT
            raise
        except KeyboardInterrupt:
            _err("interrupted")
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagelint")
def main():
    """Make container images small and fast to start (built for AWS Fargate)."""


def _load(config_path, rules_dirs, select, ignore, scope="dockerfile"):
    """Config + rules + Linter, or exit 2 with one line."""
    from .config import ConfigError, load_config
    from .engine import Linter
    from .rules import RuleError, load_rule_dirs

    try:
        config = load_config(config_path)
        rules = load_rule_dirs(list(config.rules_dirs) + list(rules_dirs))
        linter = Linter(rules, config, select=_split_keys(select), ignore=_split_keys(ignore), scope=scope)
    except (ConfigError, RuleError) as e:
        _err(str(e))
        sys.exit(EXIT_BAD_INPUT)
    return config, rules, linter


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-f", "--format", "fmt", type=click.Choice(["tty", "json", "sarif", "github", "checkstyle"]),
              default=None, help="Output format (default tty, or `format` in config).")
@click.option("--fail-on", type=click.Choice(["error", "warning", "info", "style", "none"]), default=None,
              help="Exit 1 when a finding is at or above this severity (default info).")
@click.option("--select", multiple=True, metavar="ID_OR_NAME", help="Only these rules (repeat or comma-separate).")
@click.option("--ignore", multiple=True, metavar="ID_OR_NAME", help="Skip these rules (repeat or comma-separate).")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: nearest .imagelint.yaml or pyproject.toml [tool.imagelint]).")
@click.option("--rules", "rules_dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Extra rule directory (same format as the built-in rules/).")
@click.option("--no-color", is_flag=True, help="No ANSI colours (also NO_COLOR=1).")
@click.option("--stdin-filename", default="-", metavar="NAME", help="Name to report for `-` (stdin).")
def lint(paths, fmt, fail_on, select, ignore, config_path, rules_dirs, no_color, stdin_filename):
    """Lint Dockerfiles: files, directories (searched for Dockerfile, Dockerfile.*,
    *.Dockerfile, Containerfile) or - for stdin. Default: ./Dockerfile."""
    from .engine import InputError, decode_dockerfile, fails, find_dockerfiles, read_dockerfile
    from .report import render, use_color

    config, rules, linter = _load(config_path, rules_dirs, select, ignore)
    fmt = fmt or config.format
    fail_on = fail_on or config.fail_on
    if not paths:
        paths = ("Dockerfile",) if os.path.exists("Dockerfile") else ()
        if not paths:
            _err("no Dockerfile here; pass a path, a directory, or - for stdin")
            sys.exit(EXIT_BAD_INPUT)

    findings, errors = [], []
    targets = []  # (display path, context dir or None, text or None)
    for p in paths:
        if p == "-":
            try:
                data = sys.stdin.buffer.read()
                targets.append((stdin_filename, None, decode_dockerfile(data, stdin_filename)))
            except InputError as e:
                errors.append((stdin_filename, str(e)))
            continue
        if os.path.isdir(p):
            found = find_dockerfiles(p)
            if not found:
                errors.append((p, f"{p}: no Dockerfile, Dockerfile.*, *.Dockerfile or Containerfile in this "
                                  "directory"))
            targets.extend((f, os.path.dirname(f) or ".", None) for f in found)
        else:
            targets.append((p, os.path.dirname(p) or ".", None))

    from .rules import RuleError
    for path, context_dir, text in targets:
        try:
            if text is None:
                text = read_dockerfile(path)
            findings.extend(linter.lint_text(text, path, context_dir))
        except InputError as e:
            errors.append((path, str(e)))
        except RuleError as e:
            errors.append((path, str(e)))
    for _, msg in errors:
        _err(msg)
    out = render(fmt, findings, linter.active, errors, color=use_color(no_color or config.no_color))
    if out:
        sys.stdout.write(out)
    if errors:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_FINDINGS if fails(findings, fail_on) else EXIT_CLEAN)


@main.command("rules")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--rules", "rules_dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR")
@click.option("--scope", type=click.Choice(["dockerfile", "image", "all"]), default="all")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None)
def rules_cmd(fmt, rules_dirs, scope, config_path):
    """List the rules (id, name, severity, category, hadolint equivalent)."""
    import json

    config, rules, linter = _load(config_path, rules_dirs, (), ())
    shown = [r for r in rules if scope == "all" or r.scope == scope]
    if fmt == "json":
        docs = []
        for r in shown:
            d = r.to_dict()
            d["effective_severity"] = linter.severity_of(r)
            d["enabled"] = r in linter.active or r.scope != "dockerfile"
            docs.append(d)
        click.echo(json.dumps(docs, indent=2))
        return
    from tabulate import tabulate
    rows = [(r.id, r.name, linter.severity_of(r), r.category, r.scope, r.hadolint or "", r.title) for r in shown]
    click.echo(tabulate(rows, headers=["id", "name", "severity", "category", "scope", "hadolint", "title"]))


@main.command()
@click.argument("rule")
@click.option("--rules", "rules_dirs", multiple=True, type=click.Path(file_okay=False), metavar="DIR")
def explain(rule, rules_dirs):
    """Show a rule's documentation: why, how to fix, bad and good examples."""
    from .rules import RuleError

    config, rules, linter = _load(None, rules_dirs, (), ())
    try:
        r = linter.resolve(rule)
    except RuleError as e:
        _err(str(e))
        sys.exit(EXIT_BAD_INPUT)
    lines = [f"{r.id} {r.name} ({r.severity}, {r.category}, scope {r.scope})"]
    if r.hadolint:
        lines.append(f"hadolint equivalent: {r.hadolint}")
    lines += ["", r.title, "", r.rationale, "", f"Fix: {r.fix}", "", "Bad:"]
    lines += ["    " + ln for ln in r.examples["bad"].rstrip().splitlines()]
    lines += ["", "Good:"]
    lines += ["    " + ln for ln in r.examples["good"].rstrip().splitlines()]
    if r.options:
        lines += ["", "Options (config `rules: {" + r.name + ": {...}}` or `thresholds:`):"]
        lines += [f"    {k}: {v}" for k, v in r.options.items()]
    click.echo("\n".join(lines))


if __name__ == "__main__":  # pragma: no cover
    main()
