"""Bad input never ends in a traceback: one clear line on stderr, exit 2, other inputs still linted.

Plus property tests: ``parse()`` and linting with every rule loaded never raise.
"""
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagelint.cli import main
from imagelint.config import Config
from imagelint.dockerfile import parse
from imagelint.engine import Linter
from imagelint.rules import load_rule_dirs
from conftest import cli_runner as _runner

GOODISH = "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n"
SEL = ["--select", "IL1002,IL0001"]


@pytest.fixture
def work(tmp_path, monkeypatch):
    d = tmp_path / "w"
    d.mkdir()
    (d / ".git").mkdir()
    (d / "Dockerfile").write_text(GOODISH)  # the "other input" that must still be linted
    monkeypatch.chdir(d)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return d


def lint_json(*args):
    r = _runner().invoke(main, ["lint", "-f", "json", *SEL, *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.stderr
    return r, json.loads(r.stdout)


def only_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# -- unreadable inputs: exit 2, one line, the rest still linted ------------------------

def _binary(d):
    (d / "bin.Dockerfile").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    return "bin.Dockerfile", "binary file"


def _bad_utf8(d):
    (d / "latin1.Dockerfile").write_bytes("FROM a\nLABEL author=\"Jos\xe9\"\n".encode("latin-1"))
    return "latin1.Dockerfile", "latin1.Dockerfile:2: not valid UTF-8 (byte 0xe9)"


def _huge(d):
    with open(d / "huge.Dockerfile", "wb") as f:
        f.write(b"FROM a\n")
        f.write((b"# " + b"x" * 1021 + b"\n") * (10 * 1024))  # 10 MiB
    return "huge.Dockerfile", "larger than 5 MiB"


def _missing(d):
    return "nope/Dockerfile", "nope/Dockerfile: no such file"


def _empty_dir(d):
    (d / "empty").mkdir()
    (d / "empty" / "README.md").write_text("no Dockerfile here")
    return "empty", "empty: no Dockerfile"


@pytest.mark.parametrize("make", [_binary, _bad_utf8, _huge, _missing, _empty_dir])
def test_unreadable_input_is_one_line_and_exit_2(work, make):
    path, expect = make(work)
    r, doc = lint_json(path, "Dockerfile")
    assert r.exit_code == 2
    line = only_line(r.stderr)
    assert line.startswith("imagelint: ") and expect in line, line
    # the good input was linted all the same
    assert [(f["file"], f["rule"]) for f in doc["findings"]] == [("Dockerfile", "IL1002")]
    assert [e["file"] for e in doc["errors"]] == [path]


def test_binary_on_stdin(work):
    r = _runner().invoke(main, ["lint", *SEL, "-"], input=b"\x00\x01\x02")
    assert r.exit_code == 2 and "-: binary file" in only_line(r.stderr)


def test_utf8_bom_is_accepted(work):
    (work / "bom.Dockerfile").write_bytes(b"\xef\xbb\xbf" + GOODISH.encode())
    r, doc = lint_json("bom.Dockerfile")
    assert r.exit_code == 1 and [f["rule"] for f in doc["findings"]] == ["IL1002"]


def test_file_name_that_is_not_utf8(work):
    """os.walk gives such names with surrogates; every format must still print them."""
    d = os.fsencode(str(work / "odd"))
    os.mkdir(d)
    with open(os.path.join(d, b"Dockerfile.\xff"), "w") as f:
        f.write(GOODISH)
    for fmt in ("tty", "json", "sarif", "github", "checkstyle"):
        r = subprocess.run([sys.executable, "-m", "imagelint", "lint", "--select", "IL1002", "-f", fmt, "odd"],
                           capture_output=True, cwd=work, timeout=60)
        assert r.returncode == 1, (fmt, r.stderr)
        assert b"Traceback" not in r.stderr and b"IL1002" in r.stdout


# -- inputs that parse badly: IL0001 findings, not crashes -----------------------------

@pytest.mark.parametrize("text,line,expect", [
    ("", 1, "empty Dockerfile"),
    ("\n\n   \n", 1, "empty Dockerfile"),
    ("FROM a\nFOO bar\n", 2, "unknown instruction 'FOO'"),
    ("FROM a\nRUN echo \"unterminated\nCMD x\n", 2, "unterminated double quote"),
    ("FROM a\nRUN echo 'unterminated\n", 2, "unterminated single quote"),
    ("FROM a\nRUN <<EOF\napt-get update\n", 2, "heredoc <<EOF is never terminated"),
    ("FROM a\nCOPY <<EOF /x\nbody\n", 2, "heredoc <<EOF is never terminated"),
    ("FROM a\nCMD [\"a\", \n", 2, "not valid JSON"),
])
def test_malformed_dockerfiles_give_il0001(work, text, line, expect):
    (work / "bad.Dockerfile").write_text(text)
    r, doc = lint_json("bad.Dockerfile", "Dockerfile")
    assert r.exit_code == 1
    assert r.stderr == ""
    il1 = [f for f in doc["findings"] if f["rule"] == "IL0001"]
    assert il1 and il1[0]["file"] == "bad.Dockerfile" and il1[0]["line"] == line
    assert expect in il1[0]["message"], il1[0]["message"]
    assert ("Dockerfile", "IL1002") in [(f["file"], f["rule"]) for f in doc["findings"]]


def test_every_rule_survives_the_malformed_files(work):
    """Without --select: the whole (growing) pack runs on broken input without crashing."""
    texts = ["", "FROM\n", "FROM a\nRUN\n", "FROM a\nCOPY\n", "FROM a\nONBUILD\n", "FROM a\nRUN <<EOF\n",
             "FROM a\nRUN [\"sh\", \"-c\"]\n", "FROM a\nRUN []\n", "FROM a AS\n", "ARG\nFROM $X\n",
             "FROM a\nHEALTHCHECK\n", "FROM a\nENV\n", "FROM a\nSHELL []\n", "FROM a\nUSER\n",
             "FROM a\nWORKDIR\n", "FROM a\nEXPOSE\n", "FROM a\nADD\n", "FROM a\nLABEL\n", "FROM a\nARG\n",
             "FROM a\nCOPY --from= x y\n", "FROM a\nRUN --mount= x\n", "FROM a\nRUN --mount=type=cache x\n",
             "FROM a\nENTRYPOINT []\n", "FROM a\nCMD\n", "RUN x\n"]
    for i, t in enumerate(texts):
        (work / f"{i}.Dockerfile").write_text(t)
    r = _runner().invoke(main, ["lint", "-f", "json", *[f"{i}.Dockerfile" for i in range(len(texts))]])
    assert "Traceback" not in r.stderr and r.stderr == "", r.stderr
    assert r.exit_code == 1
    json.loads(r.stdout)


def test_crashing_check_is_one_line_not_a_traceback(work, tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "IL9003-boom.yaml").write_text(
        "id: IL9003\nname: boom\nseverity: error\ncategory: correctness\ntitle: t\nmessage: m\nfix: f\n"
        "rationale: r\nexamples: {bad: 'FROM a', good: 'FROM a'}\ncheck: il_test_boom:check\n")
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "il_test_boom.py").write_text("def check(df, ctx):\n    yield 1 / 0\n")
    monkeypatch.syspath_prepend(str(mods))
    r = _runner().invoke(main, ["lint", "--rules", str(rules), "--select", "IL9003", "Dockerfile"])
    assert r.exit_code == 2
    line = only_line(r.stderr)
    assert "rule IL9003 (boom) crashed: ZeroDivisionError" in line and "Traceback" not in r.stderr


def test_subprocess_never_prints_a_traceback(work):
    (work / "bin.Dockerfile").write_bytes(b"\x00" * 100)
    (work / "empty.Dockerfile").write_text("")
    r = subprocess.run([sys.executable, "-m", "imagelint", "lint", *SEL, "bin.Dockerfile", "missing",
                        "empty.Dockerfile", "Dockerfile"], capture_output=True, text=True, cwd=work, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # binary + missing
    assert "empty.Dockerfile:1 IL0001 error: empty Dockerfile" in r.stdout
    assert "Dockerfile:2 IL1002" in r.stdout


# -- properties ----------------------------------------------------------------------

ALL_RULES = load_rule_dirs([])
LINTER = Linter(ALL_RULES, Config())

FRAGMENTS = [
    "FROM ", "FROM debian:12 AS build\n", "RUN ", "CMD ", "COPY ", "ADD ", "ENV ", "ARG ", "ONBUILD ", "SHELL ",
    "HEALTHCHECK ", "ENTRYPOINT ", "USER ", "WORKDIR ", "LABEL ", "EXPOSE ", "VOLUME ", "STOPSIGNAL ",
    "MAINTAINER ", "from ", "run ", "\n", "\r\n", " \\\n", "\\", "`", "# escape=`\n", "# syntax=x\n",
    "# imagelint ignore=IL1002\n", "# hadolint global ignore=DL3009\n", "# imagelint stage ignore=\n", "#",
    "<<EOF", "<<-EOF", "<<'EOF'", '<<"EOF"', "EOF\n", "\tEOF\n", "<<", "<<<", '"', "'", "--mount=",
    "--mount=type=cache,target=/root/.cache ", "--from=", "--chown=", "--link ", "--platform=$X ", "[", "]",
    '["', '"]', '", "', "{", "}", "$(", ")", "(", "${", "$", "&&", "||", ";", "|", "&", ">", "2>&1",
    "apt-get update ", "apt-get install -y ", "pip install ", "npm install ", "apk add ", "curl -fsSL x | sh",
    "rm -rf /var/lib/apt/lists/* ", "sh -c ", "bash -euo pipefail -c ", "sudo ", "env A=1 ", "xargs ",
    "python3 -m pip ", "if ", "then ", "fi", "for x in ", "do ", "done", "=", "A=1 ", "AS ", "\x00", "\ufeff",
    "é", " ", "\t",
]
SHELL_FRAGMENTS = FRAGMENTS[FRAGMENTS.index("\""):]  # quotes, brackets, operators, commands
dockerish = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=40).map("".join)
PROP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lint_never_raises(text):
    df = parse(text)
    # parse() turns its own exceptions into an "internal parser error": that is a bug too
    assert not any("internal parser error" in m for _, m in df.errors), df.errors
    for ins in df.walk():
        ins.commands  # the shell splitter must not raise either (errors land in shell_error)
        ins.script
    findings = LINTER.lint_text(text, "Dockerfile", None)
    for f in findings:
        assert f.line >= 1 and f.end_line >= f.line and f.message and f.rule.id


@PROP
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    _lint_never_raises(text)


@PROP
@given(dockerish)
def test_dockerfile_fragments_never_raise(text):
    _lint_never_raises(text)


@PROP
@given(dockerish)
def test_dockerfile_fragments_after_a_from_never_raise(text):
    _lint_never_raises("FROM debian:bookworm-slim AS base\n" + text + "\nFROM base\n" + text)


@PROP
@given(st.lists(st.one_of(st.sampled_from(SHELL_FRAGMENTS), st.text(max_size=3)), max_size=30).map("".join))
def test_shell_splitter_raises_only_shell_syntax_error(script):
    from imagelint.shell import ShellSyntaxError, split_commands
    try:
        for c in split_commands(script):
            assert isinstance(c.argv, list) and all(isinstance(a, str) for a in c.argv)
    except ShellSyntaxError:
        pass
