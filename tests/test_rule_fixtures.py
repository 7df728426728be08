"""One generic test for every rule case in fixtures/rules/*.yaml (sqlfluff style).

A fixture file names a rule and lists cases: a Dockerfile, the lines where the
rule must fire (``findings: []`` for silent cases), and optionally ``fixed`` (a
corrected Dockerfile that must be silent), ``files`` (build-context files written
next to the Dockerfile, e.g. .dockerignore), ``config`` (an .imagelint.yaml
mapping) and ``path`` (the Dockerfile's file name). Adding a case needs no code.
"""
import os

import pytest
import yaml

from conftest import FIXTURES
from imagelint.config import Config
from imagelint.engine import Linter
from imagelint.rules import load_rule_dirs

RULES = load_rule_dirs([])
FIXTURE_DIR = os.path.join(FIXTURES, "rules")
CASE_KEYS = {"name", "dockerfile", "findings", "fixed", "files", "config", "path"}


def _fixture_files():
    return sorted(f for f in os.listdir(FIXTURE_DIR) if f.endswith(".yaml"))


def _cases():
    for fname in _fixture_files():
        with open(os.path.join(FIXTURE_DIR, fname), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for i, case in enumerate(doc["cases"]):
            yield pytest.param(doc["rule"], case, id=f"{doc['rule']}::{case.get('name', i)}")


def run_rule(tmp_path, rule_key, text, files=None, config=None, path="Dockerfile"):
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    for name, content in (files or {}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    df_path = ctx / path
    df_path.write_text(text)
    cfg = Config.from_mapping(config or {}, str(ctx / ".imagelint.yaml"))
    linter = Linter(RULES, cfg, select=[rule_key])
    return linter.lint_text(text, str(df_path), str(ctx))


@pytest.mark.parametrize("rule_key,case", list(_cases()))
def test_case(tmp_path, rule_key, case):
    assert set(case) <= CASE_KEYS, f"unknown case keys {set(case) - CASE_KEYS}"
    findings = run_rule(tmp_path, rule_key, case["dockerfile"], case.get("files"), case.get("config"),
                        case.get("path", "Dockerfile"))
    got = sorted(f.line for f in findings)
    assert got == sorted(case["findings"]), "\n".join(f"{f.line}: {f.message}" for f in findings)
    for f in findings:
        assert f.message and f.fix, "every finding needs a message and a fix"
    if "fixed" in case:
        fixed = run_rule(tmp_path, rule_key, case["fixed"], case.get("files"), case.get("config"),
                         case.get("path", "Dockerfile"))
        assert fixed == [], [f"{f.line}: {f.message}" for f in fixed]


@pytest.mark.parametrize("rule", [r for r in RULES if r.scope == "dockerfile"], ids=lambda r: r.id)
def test_rule_examples(tmp_path, rule):
    """The documented bad example fires; the good one stays silent.

    ``examples: {config: {...}}`` gives the config both run with (rules that are
    off until configured, such as trusted registries). ``files`` gives build-context
    files for both, ``good-files`` replaces them for the good example (rules about
    .dockerignore and the context).
    """
    config = rule.examples.get("config")
    files = rule.examples.get("files")
    good_files = rule.examples.get("good-files", files)
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    assert run_rule(tmp_path / "bad", rule.id, rule.examples["bad"], files=files, config=config), \
        "bad example does not fire"
    assert run_rule(tmp_path / "good", rule.id, rule.examples["good"], files=good_files, config=config) == [], \
        "good example fires"


@pytest.mark.parametrize("rule", [r for r in RULES if r.scope == "dockerfile"], ids=lambda r: r.id)
def test_every_rule_has_cases(rule):
    """Each rule has a fixture file with at least one firing and one silent case."""
    docs = {}
    for fname in _fixture_files():
        with open(os.path.join(FIXTURE_DIR, fname), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        docs.setdefault(doc["rule"], []).extend(doc["cases"])
    cases = docs.get(rule.id, []) + docs.get(rule.name, [])
    assert any(c["findings"] for c in cases), f"{rule.id} has no firing case in fixtures/rules/"
    assert any(not c["findings"] for c in cases), f"{rule.id} has no silent case in fixtures/rules/"
