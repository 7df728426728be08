"""``imagelint inspect`` without click: its option table and its body.

Like ``lint`` (see :mod:`imagelint.lintcmd`), the console script parses a plain
``imagelint inspect ...`` call from this table and runs :func:`run_inspect`
directly; cli.py builds the click command from the same table, and everything
unusual (help, usage errors) goes to click. Here the reason is memory as much as
time: click is ~3.5 MB of the ~30 MB `inspect` needs for a 600 MB image, and
peak memory is compared with dive's.
"""
import os
import sys

from .lintcmd import EXIT_BAD_INPUT, EXIT_CLEAN, EXIT_FINDINGS, FAIL_LEVELS, LintOption, _err, load_linter

__all__ = ["INSPECT_OPTIONS", "run_inspect"]

INSPECT_OPTIONS = (
    LintOption(("--dockerfile",), "dockerfile", "Dockerfile the image was built from: map layers and findings to "
               "its lines.", path="file"),
    LintOption(("--platform",), "platform", "Platform to read from a multi-platform image (registry: and oci: "
               "sources).", metavar="OS/ARCH[/VARIANT]"),
    LintOption(("-f", "--format"), "fmt", "Output format.", choices=("tty", "json", "sarif", "github"),
               default="tty"),
    LintOption(("--max-size",), "max_size", "Fail when the uncompressed size exceeds SIZE (300MB = 300×10^6 bytes, "
               "300MiB = 300×2^20).", metavar="SIZE"),
    LintOption(("--max-transfer-size",), "max_transfer_size", "Fail when the compressed pull size exceeds SIZE.",
               metavar="SIZE"),
    LintOption(("--max-layers",), "max_layers", "Fail when the image has more than N layers.", metavar="N"),
    LintOption(("--min-efficiency",), "min_efficiency", "Fail below this dive efficiency (0.95 or 95%).",
               metavar="RATIO"),
    LintOption(("--max-wasted",), "max_wasted", "Fail above this many dive wasted bytes.", metavar="SIZE"),
    LintOption(("--max-user-wasted-percent",), "max_user_wasted_percent",
               "Fail above this dive user-wasted ratio (0.1 or 10%).", metavar="RATIO"),
    LintOption(("--dive-ci",), "dive_ci", "Read gates from a dive .dive-ci file (lowestEfficiency, "
               "highestWastedBytes, highestUserWastedPercent).", path="file", metavar="FILE"),
    LintOption(("--fail-on",), "fail_on", "Exit 1 when an image finding is at or above this severity "
               "(default: none).", choices=FAIL_LEVELS),
    LintOption(("--select",), "select", "Only these image rules (repeat or comma-separate).", multiple=True,
               metavar="ID_OR_NAME"),
    LintOption(("--ignore",), "ignore", "Skip these image rules (repeat or comma-separate).", multiple=True,
               metavar="ID_OR_NAME"),
    LintOption(("-c", "--config"), "config_path", "Config file (default: nearest .imagelint.yaml or "
               "pyproject.toml [tool.imagelint]).", path="file"),
    LintOption(("--rules",), "rules_dirs", "Extra rule directory.", multiple=True, path="dir", metavar="DIR"),
    LintOption(("--top",), "top", "How many largest files/dirs and waste items.", int_range=(1, 1000)),
    LintOption(("--no-hash",), "no_hash", "Do not hash file contents (faster; no duplicate/rewrite detection).",
               is_flag=True, default=False),
    LintOption(("--no-fast-path",), "no_fast_path", "Always stream `docker save` instead of reading overlay2 "
               "layers.", is_flag=True, default=False),
    LintOption(("--no-color",), "no_color", "No ANSI colours (also NO_COLOR=1).", is_flag=True, default=False),
)


def run_inspect(images: tuple, dockerfile, platform, fmt, max_size, max_transfer_size, max_layers, min_efficiency,
                max_wasted, max_user_wasted_percent, dive_ci, fail_on, select, ignore, config_path, rules_dirs, top,
                no_hash: bool, no_fast_path: bool, no_color: bool) -> None:
    """The body of ``imagelint inspect``; always ends with sys.exit(exit code)."""
    from .engine import fails
    from .image import ImageError
    from .inspect import InspectConfigError, check_config_section, gate_limits, inspect_image
    from .inspect_report import render_inspect
    from .report import use_color

    config, rules, linter = load_linter(config_path, rules_dirs, select, ignore, scope="image")
    section = config.inspect or {}
    try:
        check_config_section(section, config.source or "config")
        if isinstance(section.get("dive-ci"), str):  # like rules-dirs: relative to the config file
            section = dict(section, **{"dive-ci": os.path.join(config.base_dir, section["dive-ci"])})
        limits = gate_limits(section, dive_ci, {
            "max-size": max_size, "max-transfer-size": max_transfer_size, "max-layers": max_layers,
            "min-efficiency": min_efficiency, "max-wasted": max_wasted,
            "max-user-wasted-percent": max_user_wasted_percent})
    except InspectConfigError as e:
        _err(str(e))
        sys.exit(EXIT_BAD_INPUT)
    fail_on = fail_on or section.get("fail-on", "none")
    top = top or int(section.get("top", 10))
    platform = platform or section.get("platform")
    hash_content = not no_hash and section.get("hash-content", True)
    if dockerfile:  # a bad --dockerfile is one error, not one per image
        from .engine import InputError, read_dockerfile
        try:
            read_dockerfile(dockerfile)
        except InputError as e:
            _err(str(e))
            sys.exit(EXIT_BAD_INPUT)
    results, errors = [], []
    for ref in images:
        try:
            results.append(inspect_image(ref, linter, limits, dockerfile=dockerfile, platform=platform, top=top,
                                         hash_content=hash_content, fast=not no_fast_path))
        except ImageError as e:
            errors.append((ref, str(e)))
            _err(str(e))
    out = render_inspect(fmt, results, linter.active, errors, color=use_color(no_color or config.no_color), top=top)
    try:  # file names in images need not be UTF-8 (kept surrogate-escaped): show them, never crash
        sys.stdout.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError):
        pass
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    if errors:
        sys.exit(EXIT_BAD_INPUT)
    failed = any(r.gates_failed for r in results) or fails([f for r in results for f in r.findings], fail_on)
    sys.exit(EXIT_FINDINGS if failed else EXIT_CLEAN)


