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
from .inspectcmd import INSPECT_OPTIONS, run_inspect
from .lintcmd import EXIT_BAD_INPUT, EXIT_CLEAN, EXIT_FINDINGS, LINT_OPTIONS, LintOption, load_linter, run_lint

__all__ = ["main", "EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_BAD_INPUT"]


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
        except (SystemExit, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: one line (IMAGELINT_DEBUG=1 shows the traceback)
            if os.environ.get("IMAGELINT_DEBUG"):
                raise
            _err(f"internal error: {type(e).__name__}: {e} (set IMAGELINT_DEBUG=1 for the traceback; "
                 "please report it)")
            sys.exit(EXIT_BAD_INPUT)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagelint")
def main():
    """Make container images small and fast to start (built for AWS Fargate)."""


def _load(config_path, rules_dirs, select, ignore, scope="dockerfile"):
    """Config + rules + Linter, or exit 2 with one line."""
    return load_linter(config_path, rules_dirs, select, ignore, scope)


def _click_option(o: LintOption):
    """A click option from the shared table (lintcmd.LINT_OPTIONS), so the console script's
    fast path and click read exactly the same options."""
    kw = {"help": o.help, "multiple": o.multiple, "default": o.default, "metavar": o.metavar}
    if o.is_flag:
        kw["is_flag"] = True
    elif o.choices is not None:
        kw["type"] = click.Choice(list(o.choices))
    elif o.path == "file":
        kw["type"] = click.Path(dir_okay=False)
    elif o.path == "dir":
        kw["type"] = click.Path(file_okay=False)
    elif o.int_range is not None:
        kw["type"] = click.IntRange(*o.int_range)
    return click.option(*o.decls, o.dest, **kw)


def _table_options(options: tuple):
    """click options from a shared option table (lintcmd.LINT_OPTIONS, inspectcmd.INSPECT_OPTIONS)."""
    def decorate(f):
        for o in reversed(options):
            f = _click_option(o)(f)
        return f
    return decorate


_lint_options = _table_options(LINT_OPTIONS)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@_lint_options
def lint(paths, fmt, fail_on, select, ignore, config_path, rules_dirs, no_color, stdin_filename):
    """Lint Dockerfiles: files, directories (searched for Dockerfile, Dockerfile.*,
    *.Dockerfile, Containerfile) or - for stdin. Default: ./Dockerfile."""
    run_lint(paths, fmt, fail_on, select, ignore, config_path, rules_dirs, no_color, stdin_filename)


@main.command("rules")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table",
              help="markdown: the rule reference (docs/rules.md is generated with it).")
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
    if fmt == "markdown":
        from .report import rules_markdown
        click.echo(rules_markdown(shown), nl=False)
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


@main.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@_table_options(INSPECT_OPTIONS)
def inspect(images, **options):
    """Analyse built images: layer sizes, waste (dive-compatible and recoverable), image rules, CI gates.

    IMAGE is a local engine image (name:tag or id; DOCKER_HOST respected), docker-archive:PATH
    (a `docker save` tar), oci:DIR (an OCI layout) or registry:REF (read from a registry, no engine).
    Exit 0 when every gate passes, 1 when a gate fails (or a finding reaches --fail-on), 2 on bad input.
    """
    run_inspect(images, **options)


@main.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--task-size", default=None, metavar="VCPUxGB", help="Fargate task size, e.g. 0.5x1 (default 0.5x1).")
@click.option("--region", default=None, help="AWS region for prices (default us-east-1).")
@click.option("--arch", default=None, type=click.Choice(["x86", "arm"]), help="Fargate architecture (default x86).")
@click.option("--spot/--on-demand", "spot", default=None, help="Fargate Spot prices (default on-demand).")
@click.option("--ready", "ready", default="exit", metavar="PROBE",
              help="Readiness probe: exit | log:REGEX | tcp:PORT | http:PORT/PATH (default exit).")
@click.option("--ready-timeout", type=click.FloatRange(min=0.1), default=60.0, metavar="SECONDS")
@click.option("--runs", type=click.IntRange(1, 50), default=3, help="Cold pull + start runs per image (default 3).")
@click.option("--launches-per-day", default=None, type=click.FloatRange(min=0), metavar="N",
              help="Also show the cost per month at N launches a day.")
@click.option("--push-to", default=None, metavar="REGISTRY",
              help="Copy images found only in your engine to this registry first (e.g. 127.0.0.1:5000).")
@click.option("--engine", "engine", type=click.Choice(["auto", "private", "current"]), default="auto",
              help="auto: a private throwaway dockerd when possible (truly cold pulls), else your engine.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--waterfall", default=None, metavar="DIR|FILE.html",
              help="Write waterfall pictures: SVGs + index.html into DIR, or one HTML page.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Override a Fargate or model parameter (repeatable; see imagelint/data/fargate.json).")
@click.option("--fargate-data", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Use another Fargate data file.")
@click.option("--calibrate", is_flag=True, help="Measure this machine's rates on a generated calibration image "
              "(needs --push-to) and keep them in the cache.")
@click.option("--calibration", "calibration_file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Load the calibration from FILE (with --calibrate: also save it there).")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def measure(images, task_size, region, arch, spot, ready, ready_timeout, runs, launches_per_day, push_to, engine, fmt,
            waterfall, params, fargate_data, calibrate, calibration_file, config_path, quiet):
    """Time real cold pulls and starts, and estimate the Fargate cold start and cost per launch.

    IMAGE is pulled from its registry (or, with --push-to, copied there from your engine first).
    Exit 0 when every image was measured, 2 when any failed (one line each; the others are measured).
    """
    from .config import ConfigError, load_config
    from .measure.calibrate import CalibrationError
    from .measure.command import run_measure
    from .measure.container import parse_probe
    from .measure.model import SettingsError, resolve_settings
    from .measure.report import Progress, render_json, render_table, write_waterfalls

    try:
        config = load_config(config_path)
        settings = resolve_settings(task_size=task_size, region=region, arch=arch, spot=spot,
                                    launches_per_day=launches_per_day, params=params, fargate_data=fargate_data,
                                    config=config.measure, config_source=config.source or "config")
        probe = parse_probe(ready)
    except (ConfigError, SettingsError, ValueError) as e:
        _err(str(e))
        sys.exit(EXIT_BAD_INPUT)
    progress = Progress(quiet=quiet, runs=runs)
    try:
        run = run_measure(list(images), settings, runs=runs, probe=probe, ready_timeout=ready_timeout, engine=engine,
                          push_to=push_to, calibrate=calibrate, calibration_file=calibration_file,
                          on_progress=progress)
    except CalibrationError as e:
        progress.finish()
        _err(str(e))
        sys.exit(EXIT_BAD_INPUT)
    progress.finish()
    for r in run.failed:
        _err(f"{r.ref}: {r.error}")
    out = render_json(run) if fmt == "json" else render_table(run)
    sys.stdout.write(out)
    if waterfall:
        try:
            written = write_waterfalls(run, waterfall)
            if not quiet:
                _err(f"waterfall written to {written[-1]}")
        except OSError as e:
            _err(f"--waterfall {waterfall}: cannot write: {e.strerror}")
            sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_BAD_INPUT if run.failed else EXIT_CLEAN)


if __name__ == "__main__":  # pragma: no cover
    main()
