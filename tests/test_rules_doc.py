"""docs/rules.md is generated from the rule pack; it must be current."""
import os

from click.testing import CliRunner

from conftest import ROOT
from imagelint.cli import main


def test_rules_doc_is_current():
    result = CliRunner().invoke(main, ["rules", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    with open(os.path.join(ROOT, "docs", "rules.md"), encoding="utf-8") as f:
        assert f.read() == result.output, "regenerate: imagelint rules --format markdown > docs/rules.md"
