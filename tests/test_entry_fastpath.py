"""The console script's click-free path for ``imagelint lint`` (imagelint._entry, imagelint.lintcmd).

The fast parser must read every argv it accepts exactly as click does, and hand
everything else (help, usage errors, odd values) to click.
"""
import os
import subprocess
import sys

import click
import pytest

from imagelint.cli import lint
from imagelint.lintcmd import LINT_OPTIONS, parse_lint_args


def click_params(args):
    ctx = lint.make_context("lint", list(args))
    return dict(ctx.params)


@pytest.fixture
def work(tmp_path, monkeypatch):
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "cfg.yaml").write_text("fail-on: error\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("args", [
    [],
    ["Dockerfile"],
    ["-"],
    ["a", "b", "c/Dockerfile"],
    ["-f", "json", "Dockerfile"],
    ["-fjson", "Dockerfile"],
    ["--format=sarif", "x"],
    ["--format", "github", "--format", "checkstyle"],  # last one wins
    ["Dockerfile", "--fail-on", "none"],  # options after paths
    ["--select", "IL1002", "--select", "IL0001,IL4001", "--ignore=apt-lists-not-removed"],
    ["--select="],
    ["-c", "cfg.yaml", "--rules", "rules", "--rules=rules"],
    ["--config=missing.yaml", "--rules", "missing-dir"],  # missing paths: click only checks existing ones
    ["--no-color", "--stdin-filename", "svc/Dockerfile", "-"],
    ["--", "-weird-name", "--format"],
    ["--stdin-filename", "-"],
])
def test_fast_parser_reads_argv_like_click(work, args):
    fast = parse_lint_args(args)
    assert fast is not None, args
    assert fast == click_params(args)


@pytest.mark.parametrize("args", [
    ["--help"],
    ["-h"],
    ["--version"],
    ["-f", "bogus"],
    ["--format=JSON"],  # choices are case-sensitive in click
    ["--fail-on"],  # missing value
    ["--no-color=yes"],
    ["--unknown"],
    ["-x"],
    ["-c", "rules"],  # a directory where a file is wanted
    ["--rules", "Dockerfile"],  # a file where a directory is wanted
    ["--select", "-x"],  # a dash value: left to click
])
def test_fast_parser_leaves_the_rest_to_click(work, args):
    assert parse_lint_args(args) is None
    if args[0] in ("--help", "-h", "--version", "--select"):
        return
    with pytest.raises(click.UsageError):
        click_params(args)


def test_every_option_is_in_click_from_the_table():
    names = {p.name for p in lint.params}
    assert {o.dest for o in LINT_OPTIONS} | {"paths"} == names


def _run(args, cwd, stdin=None):
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env["XDG_CACHE_HOME"] = str(cwd / ".cache")
    return subprocess.run([sys.executable, "-m", "imagelint", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_fast_path_does_not_import_click(work):
    code = ("import sys; sys.argv = ['imagelint', 'lint', '--select', 'IL1002', 'Dockerfile']\n"
            "from imagelint._entry import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, 'click' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "XDG_CACHE_HOME": str(work / ".cache")})
    assert p.stdout.split() == ["0", "False"], p.stderr


def test_fast_path_and_click_path_agree(work):
    (work / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y curl\n")
    fast = _run(["lint", "--select", "IL1002", "-f", "json", "Dockerfile"], work)
    slow = _run(["lint", "--select", "IL1002", "-f", "json", "Dockerfile", "--format", "bogus"], work)
    assert slow.returncode == 2 and "Invalid value" in slow.stderr  # went through click
    via_click = subprocess.run(
        [sys.executable, "-c", "from imagelint.cli import main; main()", "lint", "--select", "IL1002", "-f",
         "json", "Dockerfile"], cwd=work, capture_output=True, text=True, timeout=60,
        env={**os.environ, "XDG_CACHE_HOME": str(work / ".cache")})
    assert fast.returncode == via_click.returncode == 1
    assert fast.stdout == via_click.stdout and '"IL1002"' in fast.stdout
    assert fast.stderr == via_click.stderr == ""


def test_fast_path_errors_are_one_line_exit_2(work):
    p = _run(["lint", "--select", "no-such-rule", "Dockerfile"], work)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["imagelint: unknown rule 'no-such-rule'; `imagelint rules` lists them"]
    p = _run(["lint", "missing/Dockerfile"], work)
    assert p.returncode == 2 and p.stderr.startswith("imagelint: missing/Dockerfile: no such file")


# --- inspect: the same mechanism, its own table ------------------------------------------------

def inspect_click_params(args):
    from imagelint.cli import inspect as inspect_cmd

    ctx = inspect_cmd.make_context("inspect", list(args))
    params = dict(ctx.params)
    params["args"] = params.pop("images")
    return params


@pytest.mark.parametrize("args", [
    ["img:1"],
    ["a", "docker-archive:x.tar", "registry:127.0.0.1:5000/a:b"],
    ["img", "--dockerfile", "Dockerfile", "-f", "json", "--top", "25"],
    ["img", "--max-size", "300MB", "--max-transfer-size=1GiB", "--max-layers", "20", "--min-efficiency", "95%"],
    ["--max-wasted", "20MB", "--max-user-wasted-percent", "0.1", "--fail-on", "warning", "img"],
    ["img", "--select", "IL6001", "--ignore=IL6015,IL6016", "-c", "cfg.yaml", "--rules", "rules"],
    ["img", "--no-hash", "--no-fast-path", "--no-color", "--platform", "linux/arm64"],
])
def test_inspect_fast_parser_reads_argv_like_click(work, args):
    from imagelint.inspectcmd import INSPECT_OPTIONS
    from imagelint.lintcmd import parse_args

    fast = parse_args(args, INSPECT_OPTIONS)
    assert fast is not None, args
    assert fast == inspect_click_params(args)


@pytest.mark.parametrize("args", [["inspect"], ["inspect", "--help"], ["inspect", "x", "--top", "0"],
                                  ["inspect", "x", "--top", "many"], ["inspect", "x", "-f", "table"]])
def test_inspect_fast_path_leaves_the_rest_to_click(work, args):
    from imagelint._entry import _fast_call

    assert _fast_call(args[0], args[1:]) is None


def test_inspect_options_all_reach_click():
    from imagelint.cli import inspect as inspect_cmd
    from imagelint.inspectcmd import INSPECT_OPTIONS

    names = {p.name for p in inspect_cmd.params}
    assert {o.dest for o in INSPECT_OPTIONS} | {"images"} == names
