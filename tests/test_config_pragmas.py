"""Configuration files and inline ignore pragmas.

Uses only IL1002 (apt-lists-not-removed, hadolint DL3009) and IL0001
(invalid-dockerfile) from the built-in pack, plus a user rule with options
written here, so the tests do not depend on the rest of the pack.
"""
import json
import textwrap

import pytest

from imagelint.cli import main
from imagelint.config import Config, ConfigError, find_config, load_config
from imagelint.engine import Linter
from imagelint.rules import RuleError, load_rule_dirs
from conftest import cli_runner as _runner

RULES = load_rule_dirs([])
APT = "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
BAD = "FROM debian:bookworm-slim\n" + APT


@pytest.fixture
def work(tmp_path, monkeypatch):
    d = tmp_path / "repo"
    d.mkdir()
    (d / ".git").mkdir()  # config discovery stops here
    monkeypatch.chdir(d)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (d / "Dockerfile").write_text(BAD)
    return d


def lint_cli(*args):
    r = _runner().invoke(main, ["lint", "-f", "json", *args], catch_exceptions=False)
    findings = json.loads(r.stdout)["findings"] if r.stdout.strip().startswith("{") else None
    return r, findings


def error_line(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def lint(text, config=None, select=("IL1002", "IL0001")):
    cfg = Config.from_mapping(config or {}, "/project/.imagelint.yaml")
    return [(f.rule.id, f.line, f.severity) for f in Linter(RULES, cfg, select=list(select)).lint_text(text)]


def dedent(s):
    return textwrap.dedent(s).lstrip("\n")


# -- discovery ----------------------------------------------------------------------

def test_imagelint_yaml_discovered_from_cwd_and_parents(work, monkeypatch):
    (work / ".imagelint.yaml").write_text("rules:\n  apt-lists-not-removed: error\n")
    r, f = lint_cli("--select", "IL1002", "Dockerfile")
    assert r.exit_code == 1 and f[0]["severity"] == "error"
    sub = work / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert find_config() == str(work / ".imagelint.yaml")
    r, f = lint_cli("--select", "IL1002", "../../Dockerfile")
    assert f[0]["severity"] == "error"


def test_yml_extension(work):
    (work / ".imagelint.yml").write_text("fail-on: error\n")
    r, f = lint_cli("--select", "IL1002", "Dockerfile")
    assert r.exit_code == 0 and len(f) == 1


def test_discovery_stops_at_the_repository_root(tmp_path, monkeypatch):
    (tmp_path / ".imagelint.yaml").write_text("fail-on: none\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    monkeypatch.chdir(repo)
    assert find_config() is None
    assert load_config().source is None


def test_pyproject_tool_imagelint(work):
    (work / "pyproject.toml").write_text(dedent("""
        [project]
        name = "x"

        [tool.imagelint]
        fail-on = "error"
        ignore = ["IL0001"]

        [tool.imagelint.rules]
        apt-lists-not-removed = "warning"
    """))
    r, f = lint_cli("Dockerfile")
    assert [(x["rule"], x["severity"]) for x in f if x["rule"] in ("IL1002", "IL0001")] == [("IL1002", "warning")]
    assert r.exit_code == 0  # fail-on error


def test_pyproject_without_section_is_skipped(work):
    (work / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_config() is None


def test_imagelint_yaml_wins_over_pyproject_in_the_same_directory(work):
    (work / "pyproject.toml").write_text("[tool.imagelint]\nfail-on = 'none'\n")
    (work / ".imagelint.yaml").write_text("fail-on: style\n")
    assert find_config() == str(work / ".imagelint.yaml")


def test_config_option(work, tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("rules:\n  IL1002: style\n")
    (work / ".imagelint.yaml").write_text("rules:\n  IL1002: error\n")
    r, f = lint_cli("--select", "IL1002", "--config", str(other), "Dockerfile")
    assert f[0]["severity"] == "style"
    r, f = lint_cli("--select", "IL1002", "-c", "missing.yaml", "Dockerfile")
    assert r.exit_code == 2 and error_line(r) == "imagelint: missing.yaml: config file not found"


def test_config_option_with_pyproject(work, tmp_path):
    p = tmp_path / "pyproject.toml"
    p.write_text("[tool.imagelint]\nfail-on = 'none'\n")
    r, f = lint_cli("--select", "IL1002", "-c", str(p), "Dockerfile")
    assert r.exit_code == 0 and len(f) == 1


# -- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("content,expect", [
    ("colour: true\n", "unknown key 'colour'"),
    ("fail-on: fatal\n", "fail-on: 'fatal' is not one of"),
    ("format: xml\n", "format: 'xml' is not one of"),
    ("rules:\n  IL1002: fatal\n", "rules.IL1002: 'fatal' is not one of"),
    ("rules:\n  no-such-rule: error\n", "rules: unknown rule 'no-such-rule'"),
    ("select: [no-such-rule]\n", "select: unknown rule 'no-such-rule'"),
    ("ignore: [no-such-rule]\n", "ignore: unknown rule 'no-such-rule'"),
    ("rules:\n  IL1002: {max-size: 3}\n", "rules.IL1002: unknown option 'max-size'"),
    ("thresholds:\n  no-such-option: 3\n", "thresholds: unknown option 'no-such-option'"),
    ("thresholds: 3\n", "thresholds: expected a mapping"),
    ("disable-ignore-pragma: sometimes\n", "disable-ignore-pragma: expected true or false"),
    ("- a list\n", "must be a mapping"),
    ("rules: [\n", "invalid YAML at line"),
])
def test_config_errors_name_the_key_and_exit_2(work, content, expect):
    (work / ".imagelint.yaml").write_text(content)
    r, _ = lint_cli("--select", "IL1002", "Dockerfile")
    assert r.exit_code == 2
    line = error_line(r)
    assert ".imagelint.yaml" in line and expect in line, line
    assert r.stdout == ""


def test_pyproject_unknown_key(work):
    (work / "pyproject.toml").write_text("[tool.imagelint]\nfail_on = 'error'\n")
    r, _ = lint_cli("Dockerfile")
    assert r.exit_code == 2 and "pyproject.toml: unknown key 'fail_on'" in error_line(r)


def test_invalid_toml(work):
    (work / "pyproject.toml").write_text("[tool.imagelint\n")
    r, _ = lint_cli("Dockerfile")
    assert r.exit_code == 2 and "pyproject.toml: invalid TOML" in error_line(r)


def test_config_error_class():
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        Config.from_mapping({"nope": 1}, "x.yaml")


# -- severities, off, select/ignore ---------------------------------------------------

@pytest.mark.parametrize("setting,expected", [
    ("error", [("IL1002", 2, "error")]),
    ("style", [("IL1002", 2, "style")]),
    ("off", []),
    (False, []),
    ({"severity": "warning"}, [("IL1002", 2, "warning")]),
    ({"severity": "off"}, []),
    ({"severity": False}, []),  # YAML 1.1 reads an unquoted `off` as false
])
def test_rule_severity_settings(setting, expected):
    for key in ("IL1002", "apt-lists-not-removed"):
        assert lint("FROM a\n" + APT, {"rules": {key: setting}}) == expected


def test_off_from_yaml_file(work):
    (work / ".imagelint.yaml").write_text("rules:\n  apt-lists-not-removed: off\n  IL0001:\n    severity: off\n")
    r, f = lint_cli("--select", "IL1002,IL0001", "Dockerfile")
    assert r.exit_code == 0 and f == []


def test_select_and_ignore_in_config():
    text = "FROM a\nRUNN x\n" + APT
    assert {x[0] for x in lint(text, {"select": ["IL0001"]}, select=())} == {"IL0001"}
    assert {x[0] for x in lint(text, {"select": "IL1002, invalid-dockerfile"}, select=())} == {"IL1002", "IL0001"}
    assert {x[0] for x in lint(text, {"ignore": ["apt-lists-not-removed"]})} == {"IL0001"}


def test_cli_select_overrides_config_select_and_ignores_add_up(work):
    (work / "Dockerfile").write_text("FROM a\nRUNN x\n" + APT)
    (work / ".imagelint.yaml").write_text("select: [IL0001]\n")
    r, f = lint_cli("--select", "IL1002", "Dockerfile")
    assert {x["rule"] for x in f} == {"IL1002"}
    (work / ".imagelint.yaml").write_text("ignore: [IL0001]\n")
    r, f = lint_cli("--select", "IL0001,IL1002", "--ignore", "IL1002", "Dockerfile")
    assert f == [] and r.exit_code == 0


def test_fail_on_and_format_from_config_and_flag_wins(work):
    (work / ".imagelint.yaml").write_text("fail-on: warning\nformat: github\n")
    r = _runner().invoke(main, ["lint", "--select", "IL1002", "Dockerfile"])
    assert r.exit_code == 0 and r.stdout.startswith("::notice ")
    r = _runner().invoke(main, ["lint", "--select", "IL1002", "--fail-on", "info", "-f", "tty", "Dockerfile"])
    assert r.exit_code == 1 and r.stdout.startswith("Dockerfile:2 IL1002")


# -- options (a user rule with a Python check) -----------------------------------------

OPTION_RULE = """\
id: IL9002
name: too-many-runs
severity: warning
category: layers
title: too many RUN instructions
message: too many RUN instructions
fix: merge RUN instructions
rationale: each RUN is a layer.
examples:
  bad: "FROM a\\nRUN a\\nRUN b\\nRUN c\\n"
  good: "FROM a\\nRUN a\\n"
options:
  max-runs: 2
check: il_test_option_check:check
"""
OPTION_CHECK = '''
from imagelint.rules import Problem

def check(df, ctx):
    runs = list(df.walk("RUN"))
    if len(runs) > ctx.options["max-runs"]:
        yield Problem.at(runs[ctx.options["max-runs"]], f"{len(runs)} RUN > {ctx.options['max-runs']}")
'''


@pytest.fixture
def option_rules(tmp_path, monkeypatch):
    d = tmp_path / "user-rules"
    d.mkdir()
    (d / "IL9002-too-many-runs.yaml").write_text(OPTION_RULE)
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "il_test_option_check.py").write_text(OPTION_CHECK)
    monkeypatch.syspath_prepend(str(mod))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return load_rule_dirs([str(d)])


RUNS = "FROM a\nRUN a\nRUN b\nRUN c\nRUN d\n"


@pytest.mark.parametrize("config,line", [
    ({}, 4),                                             # default max-runs 2 → third RUN
    ({"thresholds": {"max-runs": 3}}, 5),
    ({"rules": {"too-many-runs": {"max-runs": 1}}}, 3),
    ({"rules": {"IL9002": {"max-runs": 1, "severity": "error"}}, "thresholds": {"max-runs": 3}}, 3),
    ({"thresholds": {"max-runs": 4}}, None),
])
def test_options_via_rules_and_thresholds(option_rules, config, line):
    cfg = Config.from_mapping(config, "/p/.imagelint.yaml")
    found = Linter(option_rules, cfg, select=["IL9002"]).lint_text(RUNS)
    assert [f.line for f in found] == ([line] if line else [])


def test_option_severity_with_options(option_rules):
    cfg = Config.from_mapping({"rules": {"IL9002": {"max-runs": 1, "severity": "error"}}}, "/p/.imagelint.yaml")
    linter = Linter(option_rules, cfg, select=["IL9002"])
    assert [f.severity for f in linter.lint_text(RUNS)] == ["error"]
    assert linter.options_for(linter.resolve("IL9002")) == {"max-runs": 1}


def test_unknown_option_of_a_rule_with_options(option_rules):
    cfg = Config.from_mapping({"rules": {"IL9002": {"max-run": 1}}}, "/p/.imagelint.yaml")
    with pytest.raises(RuleError, match=r"rules.IL9002: unknown option 'max-run' \(options of IL9002: max-runs\)"):
        Linter(option_rules, cfg)


# -- inline pragmas ----------------------------------------------------------------------

def test_ignore_on_line_above_applies_to_that_instruction_only():
    text = "FROM a\n# imagelint ignore=IL1002\n" + APT + APT
    assert lint(text) == [("IL1002", 4, "info")]


@pytest.mark.parametrize("pragma", [
    "# imagelint ignore=IL1002",
    "# imagelint ignore=apt-lists-not-removed",
    "# imagelint ignore=IL1002,apt-lists-not-removed",
    "# imagelint ignore=IL0001,IL1002",
    "# imagelint ignore=IL0001, IL1002",
    "#imagelint ignore=il1002",
    "# imagelint ignore = IL1002",
    "# imagelint ignore=IL1002  # apt lists are needed at run time here",
])
def test_ignore_pragma_spellings(pragma):
    assert lint(f"FROM a\n{pragma}\n{APT}") == []


def test_ignore_pragma_for_another_rule_does_not_silence():
    assert lint("FROM a\n# imagelint ignore=IL0001\n" + APT) == [("IL1002", 3, "info")]
    assert lint("FROM a\n# imagelint ignore=no-such-rule\n" + APT) == [("IL1002", 3, "info")]


def test_ignore_pragma_covers_a_continued_instruction():
    text = "FROM a\n# imagelint ignore=IL1002\nRUN apt-get update \\\n  && apt-get install -y curl\n" + APT
    assert lint(text) == [("IL1002", 5, "info")]


def test_ignore_pragma_inside_a_continued_instruction_is_for_that_instruction():
    # regression: it used to silence the *next* instruction instead
    text = "FROM a\nRUN apt-get update \\\n  # imagelint ignore=IL1002\n  && apt-get install -y curl\n" + APT
    assert lint(text) == [("IL1002", 5, "info")]


def test_ignore_pragma_skips_blank_and_comment_lines():
    text = "FROM a\n# imagelint ignore=IL1002\n\n# why: lists are needed later\n" + APT + APT
    assert lint(text) == [("IL1002", 6, "info")]


def test_pragma_after_the_last_instruction_does_nothing():
    assert lint("FROM a\n" + APT + "# imagelint ignore=IL1002\n") == [("IL1002", 2, "info")]


def test_global_ignore():
    for pragma in ("# imagelint global ignore=IL1002", "# imagelint global ignore=apt-lists-not-removed"):
        text = f"{pragma}\nFROM a\n{APT}FROM b\n{APT}"
        assert lint(text) == []
    # anywhere in the file
    assert lint(f"FROM a\n{APT}{APT}# imagelint global ignore=IL1002\n") == []


def test_stage_ignore_above_from():
    a = APT.strip()
    text = f"FROM a AS one\n{a}\n# imagelint stage ignore=IL1002\nFROM one AS two\n{a}\n{a}\nFROM two\n{a}\n"
    # every stage ships (each is built FROM the one before); only stage `two` (lines 4-6) is silenced
    assert lint(text) == [("IL1002", 2, "info"), ("IL1002", 8, "info")]


def test_hadolint_ignore_for_rules_that_declare_the_code():
    assert lint("FROM a\n# hadolint ignore=DL3009\n" + APT + APT) == [("IL1002", 4, "info")]
    assert lint("FROM a\n# hadolint ignore=DL3008,DL3009\n" + APT) == []
    assert lint("FROM a\n# hadolint ignore=dl3009\n" + APT) == []
    # a DL code no rule declares silences nothing
    assert lint("FROM a\n# hadolint ignore=DL3015\n" + APT) == [("IL1002", 3, "info")]
    # imagelint ids are not hadolint codes
    assert lint("FROM a\n# hadolint ignore=IL1002\n" + APT) == [("IL1002", 3, "info")]


def test_hadolint_global_ignore():
    assert lint("# hadolint global ignore=DL3009\nFROM a\n" + APT + APT) == []


def test_hadolint_ignore_of_dl1000_silences_il0001():
    assert lint("FROM a\n# hadolint ignore=DL1000\nRUNN x\n") == []


def test_disable_ignore_pragma():
    text = "# imagelint global ignore=IL1002\nFROM a\n# hadolint ignore=DL3009\n" + APT
    assert lint(text) == []
    assert lint(text, {"disable-ignore-pragma": True}) == [("IL1002", 4, "info")]


def test_disable_ignore_pragma_from_file(work):
    (work / "Dockerfile").write_text("FROM a\n# imagelint ignore=IL1002\n" + APT)
    r, f = lint_cli("--select", "IL1002", "Dockerfile")
    assert f == [] and r.exit_code == 0
    (work / ".imagelint.yaml").write_text("disable-ignore-pragma: true\n")
    r, f = lint_cli("--select", "IL1002", "Dockerfile")
    assert [x["line"] for x in f] == [3] and r.exit_code == 1


def test_pragma_like_text_in_heredoc_body_is_not_a_pragma():
    text = "FROM a\nCOPY <<EOF /etc/x\n# imagelint global ignore=IL1002\nEOF\n" + APT
    assert lint(text) == [("IL1002", 5, "info")]
