"""The command line: exit codes, selection, inputs, formats, rules/explain, user rules.

Most tests run the click app in-process (CliRunner); a few run the real
``python -m imagelint`` in a subprocess (stdin, exit codes, colours on a tty).
Linting is restricted with --select to IL1002/IL0001 wherever the outcome must
not depend on the rest of the (growing) rule pack.
"""
import json
import os
import subprocess
import sys

import pytest

from imagelint.cli import main
from conftest import cli_runner as _runner

BAD = "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n"
GOOD = ("FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl \\\n"
        "    && rm -rf /var/lib/apt/lists/*\n")
SEL = ["--select", "IL1002,IL0001"]

CURL_SH_RULE = """\
id: IL9001
name: curl-pipe-sh
severity: error
category: security
title: a script downloaded with curl is piped into a shell
message: "`curl ... | sh` runs unreviewed code at build time"
fix: download the script, check its checksum, then run it
rationale: |
  The script can change between builds, which breaks reproducibility and the build cache.
examples:
  bad: |
    FROM debian:bookworm-slim
    RUN curl -fsSL https://get.example.com | sh
  good: |
    FROM debian:bookworm-slim
    RUN curl -fsSLo /tmp/i.sh https://get.example.com && sha256sum -c i.sha256 && sh /tmp/i.sh
match:
  instruction: RUN
  args-regex: 'curl[^|;&]*\\|\\s*(ba)?sh\\b'
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An isolated working directory: config discovery stops at its .git, caches go to tmp."""
    d = tmp_path / "work"
    d.mkdir()
    (d / ".git").mkdir()
    monkeypatch.chdir(d)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return d


def run(*args, input=None):
    return _runner().invoke(main, list(args), input=input, catch_exceptions=False)


def sub(*args, input=None, cwd=None, env=None):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "imagelint", *args], input=input, capture_output=True,
                          text=True, cwd=cwd, env=e, timeout=60)


def one_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- exit codes -------------------------------------------------------------------

def test_exit_1_on_findings_0_when_clean(work):
    (work / "Dockerfile").write_text(BAD)
    (work / "Good.Dockerfile").write_text(GOOD)
    r = run("lint", *SEL, "Dockerfile")
    assert r.exit_code == 1
    assert "Dockerfile:2 IL1002 info:" in r.stdout and "[apt-lists-not-removed]" in r.stdout
    assert "fix: end the same RUN" in r.stdout
    r = run("lint", *SEL, "Good.Dockerfile")
    assert r.exit_code == 0, r.stdout
    assert r.stdout == ""


def test_default_path_is_dockerfile_in_cwd(work):
    r = run("lint", *SEL)
    assert r.exit_code == 2 and "no Dockerfile here" in r.stderr
    (work / "Dockerfile").write_text(BAD)
    assert run("lint", *SEL).exit_code == 1


@pytest.mark.parametrize("level,code", [("error", 0), ("warning", 0), ("info", 1), ("style", 1), ("none", 0)])
def test_fail_on_levels(work, level, code):
    (work / "Dockerfile").write_text(BAD)  # one info finding
    r = run("lint", *SEL, "--fail-on", level, "Dockerfile")
    assert r.exit_code == code
    assert "IL1002" in r.stdout  # findings are printed whatever the threshold


def test_fail_on_none_never_fails_even_on_errors(work):
    (work / "Dockerfile").write_text("FROM a\nRUNN x\n")
    r = run("lint", *SEL, "--fail-on", "none", "Dockerfile")
    assert r.exit_code == 0 and "IL0001 error" in r.stdout


def test_fail_on_invalid_choice_is_usage_error(work):
    (work / "Dockerfile").write_text(BAD)
    assert run("lint", "--fail-on", "fatal", "Dockerfile").exit_code == 2


# -- selection ------------------------------------------------------------------

@pytest.mark.parametrize("args,expected", [
    (["--select", "IL1002"], {"IL1002"}),
    (["--select", "apt-lists-not-removed"], {"IL1002"}),
    (["--select", "il1002"], {"IL1002"}),
    (["--select", "IL1002,invalid-dockerfile"], {"IL1002", "IL0001"}),
    (["--select", "IL1002", "--select", "IL0001"], {"IL1002", "IL0001"}),
    (["--select", "IL1002,IL0001", "--ignore", "IL1002"], {"IL0001"}),
    (["--select", "IL1002,IL0001", "--ignore", "apt-lists-not-removed"], {"IL0001"}),
    (["--select", "IL1002,IL0001", "--ignore", "IL1002", "--ignore", "IL0001"], set()),
    (["--select", "IL1002,IL0001", "--ignore", "IL1002, IL0001"], set()),
])
def test_select_and_ignore(work, args, expected):
    (work / "Dockerfile").write_text("FROM a\nRUNN x\nRUN apt-get update\n")
    r = run("lint", "-f", "json", *args, "Dockerfile")
    got = {f["rule"] for f in json.loads(r.stdout)["findings"]}
    assert got == expected
    assert r.exit_code == (1 if expected else 0)


def test_ignore_without_select_drops_the_rule(work):
    (work / "Dockerfile").write_text(BAD)
    r = run("lint", "-f", "json", "--ignore", "IL1002", "Dockerfile")
    assert "IL1002" not in {f["rule"] for f in json.loads(r.stdout)["findings"]}


@pytest.mark.parametrize("opt", ["--select", "--ignore"])
def test_unknown_rule_is_one_line_and_exit_2(work, opt):
    (work / "Dockerfile").write_text(BAD)
    r = run("lint", opt, "IL1002,no-such-rule", "Dockerfile")
    assert r.exit_code == 2
    assert one_line(r.stderr) == "imagelint: unknown rule 'no-such-rule'; `imagelint rules` lists them"
    assert r.stdout == ""


# -- inputs -----------------------------------------------------------------------

def test_directory_search(work):
    names = ["Dockerfile", "Dockerfile.prod", "api.Dockerfile", "Containerfile", "sub/deeper/Dockerfile",
             "node_modules/pkg/Dockerfile", ".git/Dockerfile", "Dockerfile.dockerignore", "README.md",
             "notes.txt", ".venv/Dockerfile"]
    for n in names:
        p = work / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(BAD)
    r = run("lint", "-f", "json", "--select", "IL1002", ".")
    files = sorted({f["file"].replace(os.sep, "/") for f in json.loads(r.stdout)["findings"]})
    assert files == sorted(["./Dockerfile", "./Dockerfile.prod", "./api.Dockerfile", "./Containerfile",
                            "./sub/deeper/Dockerfile"])
    assert r.exit_code == 1


def test_directory_without_dockerfile_is_exit_2_but_others_are_linted(work):
    (work / "empty").mkdir()
    (work / "Dockerfile").write_text(BAD)
    r = run("lint", *SEL, "empty", "Dockerfile")
    assert r.exit_code == 2
    assert one_line(r.stderr).startswith("imagelint: empty: no Dockerfile")
    assert "Dockerfile:2 IL1002" in r.stdout


def test_stdin(work):
    r = run("lint", *SEL, "-", input=BAD)
    assert r.exit_code == 1
    assert r.stdout.startswith("-:2 IL1002")
    r = run("lint", *SEL, "--stdin-filename", "services/api/Dockerfile", "-", input=BAD)
    assert r.stdout.startswith("services/api/Dockerfile:2 IL1002")
    assert run("lint", *SEL, "-", input=GOOD).exit_code == 0


def test_stdin_subprocess(work):
    r = sub("lint", *SEL, "-f", "json", "-", input=BAD, cwd=work)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert [(f["rule"], f["file"], f["line"]) for f in doc["findings"]] == [("IL1002", "-", 2)]
    r = sub("lint", *SEL, "-", input=GOOD, cwd=work)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_subprocess_exit_codes(work):
    (work / "Dockerfile").write_text(BAD)
    (work / "Good.Dockerfile").write_text(GOOD)
    assert sub("lint", *SEL, "Good.Dockerfile", cwd=work).returncode == 0
    r = sub("lint", *SEL, "Dockerfile", cwd=work)
    assert r.returncode == 1 and "IL1002" in r.stdout
    r = sub("lint", *SEL, "missing/Dockerfile", "Dockerfile", cwd=work)
    assert r.returncode == 2
    assert one_line(r.stderr).startswith("imagelint: missing/Dockerfile: no such file")
    assert "IL1002" in r.stdout
    r = sub("lint", "--select", "nope", "Dockerfile", cwd=work)
    assert r.returncode == 2 and one_line(r.stderr).startswith("imagelint: unknown rule 'nope'")
    r = sub("--version", cwd=work)
    assert r.returncode == 0 and "imagelint" in r.stdout


# -- formats ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt,check", [
    ("json", lambda out: json.loads(out)["findings"][0]["rule"] == "IL1002"),
    ("sarif", lambda out: json.loads(out)["runs"][0]["results"][0]["ruleId"] == "IL1002"),
    ("github", lambda out: out.startswith("::notice file=Dockerfile,line=2,endLine=2,")),
    ("checkstyle", lambda out: out.startswith("<?xml") and 'source="imagelint.IL1002"' in out),
    ("tty", lambda out: out.startswith("Dockerfile:2 IL1002 info:")),
])
def test_formats(work, fmt, check):
    (work / "Dockerfile").write_text(BAD)
    r = run("lint", *SEL, "--format", fmt, "Dockerfile")
    assert r.exit_code == 1
    assert check(r.stdout), r.stdout
    assert "\033[" not in r.stdout


def test_clean_json_still_prints_a_document(work):
    (work / "Dockerfile").write_text(GOOD)
    r = run("lint", *SEL, "-f", "json", "Dockerfile")
    assert r.exit_code == 0 and json.loads(r.stdout)["findings"] == []


def _run_on_tty(args, cwd, env=None):
    """Run the CLI with stdout on a pseudo-terminal; returns the bytes written."""
    import pty
    master, slave = pty.openpty()
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.Popen([sys.executable, "-m", "imagelint", *args], stdout=slave, stderr=subprocess.PIPE,
                         cwd=cwd, env=e)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=60)
    os.close(master)
    return p.returncode, out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pty")
def test_color_on_tty_and_no_color(work):
    (work / "Dockerfile").write_text(BAD)
    code, out = _run_on_tty(["lint", *SEL, "Dockerfile"], work)
    assert code == 1 and b"\033[36minfo\033[0m" in out
    code, out = _run_on_tty(["lint", *SEL, "--no-color", "Dockerfile"], work)
    assert code == 1 and b"IL1002 info:" in out and b"\033[" not in out
    code, out = _run_on_tty(["lint", *SEL, "Dockerfile"], work, env={"NO_COLOR": "1"})
    assert code == 1 and b"IL1002 info:" in out and b"\033[" not in out


def test_use_color_rules(monkeypatch):
    from imagelint.report import use_color

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(False, Tty())
    assert not use_color(True, Tty())
    assert not use_color(False, object())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(False, Tty())


# -- rules and explain ------------------------------------------------------------

def test_rules_table(work):
    r = run("rules")
    assert r.exit_code == 0
    header = r.stdout.splitlines()[0].split()
    assert header[:6] == ["id", "name", "severity", "category", "scope", "hadolint"]
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("IL1002"))
    assert "apt-lists-not-removed" in row and "DL3009" in row and "info" in row


def test_rules_json_has_every_rule_with_hadolint_code(work):
    from imagelint.rules import load_rule_dirs
    r = run("rules", "--format", "json")
    assert r.exit_code == 0
    docs = json.loads(r.stdout)
    assert [d["id"] for d in docs] == [x.id for x in load_rule_dirs([])]
    by_id = {d["id"]: d for d in docs}
    assert by_id["IL1002"]["hadolint"] == "DL3009"
    assert by_id["IL0001"]["hadolint"] == "DL1000"
    for d in docs:
        assert {"id", "name", "severity", "category", "scope", "title", "message", "fix", "rationale",
                "hadolint", "examples", "options", "effective_severity", "enabled"} <= set(d)


def test_rules_json_shows_config_severity(work):
    (work / ".imagelint.yaml").write_text("rules:\n  IL1002: error\n  IL0001: off\n")
    docs = {d["id"]: d for d in json.loads(run("rules", "-f", "json").stdout)}
    assert docs["IL1002"]["severity"] == "info" and docs["IL1002"]["effective_severity"] == "error"
    assert docs["IL0001"]["enabled"] is False and docs["IL1002"]["enabled"] is True


@pytest.mark.parametrize("key", ["IL1002", "apt-lists-not-removed", "il1002"])
def test_explain(work, key):
    r = run("explain", key)
    assert r.exit_code == 0
    out = r.stdout
    assert out.startswith("IL1002 apt-lists-not-removed (info, size, scope dockerfile)")
    assert "hadolint equivalent: DL3009" in out
    assert "Fix: end the same RUN" in out
    assert "Bad:\n    FROM debian:bookworm-slim" in out and "Good:" in out
    assert "/var/lib/apt/lists" in out


def test_explain_unknown_rule(work):
    r = run("explain", "nope")
    assert r.exit_code == 2 and one_line(r.stderr) == "imagelint: unknown rule 'nope'; `imagelint rules` lists them"


# -- user rules -------------------------------------------------------------------

def _user_rules(work, text=CURL_SH_RULE, name="IL9001-curl-pipe-sh.yaml"):
    d = work / "my-rules"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


def test_user_rule_directory(work):
    _user_rules(work)
    (work / "Dockerfile").write_text("FROM a\nRUN curl -fsSL https://get.example.com | bash\nRUN curl -o x y\n")
    r = run("lint", "--rules", "my-rules", "--select", "IL9001", "-f", "json", "Dockerfile")
    assert r.exit_code == 1, r.stderr
    assert [(f["rule"], f["name"], f["line"], f["severity"]) for f in json.loads(r.stdout)["findings"]] == [
        ("IL9001", "curl-pipe-sh", 2, "error")]
    # selectable by name, listed and explained
    r = run("lint", "--rules", "my-rules", "--select", "curl-pipe-sh", "Dockerfile")
    assert r.exit_code == 1 and "IL9001 error" in r.stdout
    assert "IL9001" in run("rules", "--rules", "my-rules").stdout
    assert run("explain", "--rules", "my-rules", "curl-pipe-sh").stdout.startswith("IL9001 curl-pipe-sh")


def test_user_rule_directory_from_config(work):
    _user_rules(work)
    (work / ".imagelint.yaml").write_text("rules-dirs: [my-rules]\nselect: [IL9001]\n")
    (work / "Dockerfile").write_text("FROM a\nRUN curl -fsSL https://x | sh\n")
    r = run("lint", "Dockerfile")
    assert r.exit_code == 1 and "Dockerfile:2 IL9001" in r.stdout


def test_user_rule_examples_behave(work):
    """The documented examples of the test rule fire / stay silent (guards the regex above)."""
    import yaml
    from imagelint.config import Config
    from imagelint.engine import Linter
    from imagelint.rules import load_rule_dirs
    d = _user_rules(work)
    rules = load_rule_dirs([str(d)])
    linter = Linter(rules, Config(), select=["IL9001"])
    ex = yaml.safe_load(CURL_SH_RULE)["examples"]
    assert [f.line for f in linter.lint_text(ex["bad"])] == [2]
    assert linter.lint_text(ex["good"]) == []


@pytest.mark.parametrize("text,expect", [
    (CURL_SH_RULE.replace("fix: download", "fixx: download"), "unknown key 'fixx'"),
    (CURL_SH_RULE.replace("severity: error", "severity: fatal"), "severity 'fatal'"),
    (CURL_SH_RULE.replace("id: IL9001", "id: IL1002"), "'IL1002' is already used"),
    (CURL_SH_RULE.replace("category: security\n", "category: security\n  bad: [\n"), "invalid YAML"),
    (CURL_SH_RULE.replace("(ba)?sh", "(ba?sh"), "invalid regular expression"),
    ("- just\n- a list\n", "must be a YAML mapping"),
])
def test_bad_user_rule_file_is_one_line_and_exit_2(work, text, expect):
    _user_rules(work, text)
    (work / "Dockerfile").write_text(BAD)
    r = run("lint", "--rules", "my-rules", "Dockerfile")
    assert r.exit_code == 2
    line = one_line(r.stderr)
    assert "IL9001-curl-pipe-sh.yaml" in line and expect in line, line
    assert r.stdout == ""


def test_bad_user_rule_subprocess(work):
    _user_rules(work, CURL_SH_RULE.replace("(ba)?sh", "(ba?sh"))
    (work / "Dockerfile").write_text(BAD)
    r = sub("lint", "--rules", "my-rules", "Dockerfile", cwd=work)
    assert r.returncode == 2
    assert "invalid regular expression" in one_line(r.stderr)


def test_rules_dir_that_does_not_exist(work):
    (work / "Dockerfile").write_text(BAD)
    r = run("lint", "--rules", "nowhere", "Dockerfile")
    assert r.exit_code == 2
    assert "nowhere" in one_line(r.stderr)
