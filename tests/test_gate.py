"""imagelint.gate (sizes, ratios, evaluation, dive's .dive-ci) and inspect.gate_limits precedence.
No engine needed."""
import math

import pytest

from imagelint.gate import (DIVE_DEFAULTS, GATES, GateError, evaluate, format_bytes, parse_gate_value, parse_ratio,
                            parse_size, read_dive_ci)
from imagelint.inspect import CONFIG_KEYS, InspectConfigError, check_config_section, gate_limits


# --- sizes: go-humanize's ParseBytes table (what dive uses) -----------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("42", 42), ("42b", 42), ("42B", 42), (" 42 B ", 42),
    ("1k", 1000), ("1kB", 1000), ("1KB", 1000), ("1kb", 1000),
    ("1Ki", 1024), ("1KiB", 1024), ("1kib", 1024),
    ("300MB", 300_000_000), ("300 MB", 300_000_000), ("300mb", 300_000_000), ("300M", 300_000_000),
    ("300MiB", 300 * 2**20), ("300 mib", 300 * 2**20), ("300Mi", 300 * 2**20),
    ("1GB", 10**9), ("1G", 10**9), ("1.5GiB", 3 * 2**29), ("1Gi", 2**30),
    ("2TB", 2 * 10**12), ("1TiB", 2**40), ("1T", 10**12), ("1Ti", 2**40),
    ("20MB", 20_000_000),
    ("4.35MB", 4_350_000),  # exact, not 4,349,999 (float rounding)
    ("0.1kB", 100), ("1.0005kB", 1000),  # fractions of a byte are dropped
    (300, 300), (0, 0), (1.9, 1),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_mb_and_mib_differ_by_the_binary_factor():
    assert parse_size("300MiB") - parse_size("300MB") == 300 * (2**20 - 10**6) == 14_572_800


@pytest.mark.parametrize("bad", ["", "MB", "300XB", "3 00MB", "-5MB", "1e6", "1,000", "ten", "300MBs", "0x10",
                                 True, False, -1, float("nan")])
def test_parse_size_errors(bad):
    with pytest.raises(GateError) as e:
        parse_size(bad, "max-size")
    assert str(e.value).startswith("max-size:")


def test_parse_size_error_says_which_unit_is_which():
    with pytest.raises(GateError, match=r"300MB \(10\^6 bytes\) or 300MiB \(2\^20 bytes\)"):
        parse_size("300 megs")


# --- ratios ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("0.9", 0.9), ("90%", 0.9), (" 90 % ", 0.9), ("100%", 1.0), ("0%", 0.0), ("0", 0.0), ("1", 1.0),
    (0.95, 0.95), (1, 1.0), ("12.5%", 0.125), (".5", 0.5),
])
def test_parse_ratio(value, expected):
    assert math.isclose(parse_ratio(value), expected)


@pytest.mark.parametrize("bad", ["95", "1.01", "101%", "-0.1", "-5%", "abc", "%", "", None, "nan", True, [0.5]])
def test_parse_ratio_errors(bad):
    with pytest.raises(GateError) as e:
        parse_ratio(bad, "min-efficiency")
    assert str(e.value).startswith("min-efficiency:")


# --- gate values ------------------------------------------------------------------------------------

@pytest.mark.parametrize("off", ["", "disabled", "off", "OFF", "false", "none", " Disabled ", None, False])
@pytest.mark.parametrize("key", sorted(GATES))
def test_disabled_values(key, off):
    assert parse_gate_value(key, off) is None


@pytest.mark.parametrize("key, value, expected", [
    ("max-size", "300MB", 300_000_000), ("max-transfer-size", "1GiB", 2**30), ("max-wasted", "20MB", 20_000_000),
    ("max-layers", "30", 30), ("max-layers", 30, 30), ("min-efficiency", "95%", 0.95),
    ("max-user-wasted-percent", "0.1", 0.1),
])
def test_parse_gate_value(key, value, expected):
    assert parse_gate_value(key, value) == expected


@pytest.mark.parametrize("key, value", [("max-layers", "-1"), ("max-layers", "2.5"), ("max-layers", 2.5),
                                        ("max-layers", True), ("max-layers", "many"), ("max-size", "big"),
                                        ("min-efficiency", "2")])
def test_parse_gate_value_errors(key, value):
    with pytest.raises(GateError, match=key):
        parse_gate_value(key, value)


# --- evaluate -------------------------------------------------------------------------------------

MEASURED = {"max-size": 300_000_001, "max-transfer-size": 120_000_000, "max-layers": 12, "min-efficiency": 0.93,
            "max-wasted": 5_000_000, "max-user-wasted-percent": 0.25}


def by_key(results):
    return {r.key: r for r in results}


def test_evaluate_pass_and_fail_on_each_side_of_the_limit():
    limits = {"max-size": 300_000_000, "max-transfer-size": 120_000_000, "max-layers": 11, "min-efficiency": 0.93,
              "max-wasted": 5_000_001, "max-user-wasted-percent": 0.2}
    got = by_key(evaluate(limits, MEASURED))
    assert {k: r.status for k, r in got.items()} == {
        "max-size": "fail",  # one byte over
        "max-transfer-size": "pass",  # equal to the limit passes (dive: strict >)
        "max-layers": "fail", "min-efficiency": "pass",  # equal passes (dive: strict <)
        "max-wasted": "pass", "max-user-wasted-percent": "fail"}
    assert got["max-size"].message == ("uncompressed image size 300.0 MB (300,000,001 B) > limit 300.0 MB "
                                       "(300,000,000 B)")
    assert got["min-efficiency"].message == "dive efficiency score 93.00% ≥ limit 93.00%"
    assert got["max-layers"].message == "number of layers 12 > limit 11"
    assert got["max-size"].to_dict() == {"gate": "max-size", "limit": 300_000_000, "value": 300_000_001,
                                         "status": "fail", "message": got["max-size"].message, "estimate": False}


def test_evaluate_min_efficiency_fails_below():
    (r,) = evaluate({"min-efficiency": 0.95}, MEASURED)
    assert r.status == "fail" and r.message == "dive efficiency score 93.00% < limit 95.00%"


def test_evaluate_skips_unknown_values_and_ignores_disabled_gates():
    results = evaluate({"max-transfer-size": 10, "max-size": None, "max-user-wasted-percent": 0.1},
                       {"max-transfer-size": None, "max-user-wasted-percent": None})
    assert [(r.key, r.status) for r in results] == [("max-transfer-size", "skip"), ("max-user-wasted-percent", "skip")]
    assert "unknown for this source" in results[0].message


def test_evaluate_labels_estimates():
    (r,) = evaluate({"max-transfer-size": 100_000_000}, MEASURED, {"max-transfer-size"})
    assert r.estimate is True and r.status == "fail"
    assert r.message == "compressed (pull) size 120.0 MB (120,000,000 B) (estimate) > limit 100.0 MB (100,000,000 B)"
    (r,) = evaluate({"max-transfer-size": 100_000_000}, MEASURED)
    assert r.estimate is False and "(estimate)" not in r.message


def test_evaluate_nothing_to_check():
    assert evaluate({}, MEASURED) == []


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_500_000, "1.5 MB"),
                                     (2 * 10**9, "2.0 GB"), (3 * 10**15, "3000.0 TB"), (None, "unknown")])
def test_format_bytes_is_decimal(n, text):
    assert format_bytes(n) == text


# --- .dive-ci ---------------------------------------------------------------------------------------

def write(tmp_path, text, name=".dive-ci"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_dive_ci_with_dives_example_file(tmp_path):
    # dive's own .dive-ci example
    path = write(tmp_path, "rules:\n  # If the efficiency is measured below X%, mark as failed.\n"
                           "  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n  highestUserWastedPercent: 0.20\n")
    assert read_dive_ci(path) == {"min-efficiency": 0.95, "max-wasted": 20_000_000, "max-user-wasted-percent": 0.2}


def test_dive_ci_missing_keys_take_dives_defaults(tmp_path):
    assert DIVE_DEFAULTS == {"min-efficiency": 0.9, "max-wasted": None, "max-user-wasted-percent": 0.1}
    path = write(tmp_path, "rules:\n  highestWastedBytes: 1MiB\n")
    assert read_dive_ci(path) == {"min-efficiency": 0.9, "max-wasted": 2**20, "max-user-wasted-percent": 0.1}
    assert read_dive_ci(path, defaults=False) == {"max-wasted": 2**20}
    assert read_dive_ci(write(tmp_path, "rules:\n", "empty-rules")) == DIVE_DEFAULTS
    assert read_dive_ci(write(tmp_path, "", "empty")) == DIVE_DEFAULTS


def test_dive_ci_kebab_case_keys_and_top_level_rules(tmp_path):
    path = write(tmp_path, "lowest-efficiency: 90%\nhighest-wasted-bytes: '5 MB'\nhighest-user-wasted-percent: 5%\n")
    assert read_dive_ci(path) == {"min-efficiency": 0.9, "max-wasted": 5_000_000, "max-user-wasted-percent": 0.05}


@pytest.mark.parametrize("value", ["disabled", "off", "false", '""', "''", "Disabled"])
def test_dive_ci_disabled_values(tmp_path, value):
    # `off`/`false` unquoted are YAML booleans; both spellings disable the rule
    path = write(tmp_path, f"rules:\n  lowestEfficiency: {value}\n  highestUserWastedPercent: {value}\n")
    assert read_dive_ci(path) == {"min-efficiency": None, "max-wasted": None, "max-user-wasted-percent": None}


@pytest.mark.parametrize("text, message", [
    ("rules:\n  lowestEfficiency: 1.5\n", "lowestEfficiency: 1.5 must be between 0 and 1"),
    ("rules:\n  lowestEfficiency: on\n", "lowestEfficiency: True is not a number"),
    ("rules:\n  highestWastedBytes: lots\n", "highestWastedBytes: 'lots' is not a size"),
    ("rules:\n  highestUserWastedPercent: -0.1\n", "must be between 0 and 1"),
    ("rules:\n  maxLayers: 10\n", "unknown dive rule 'maxLayers'"),
    ("rules:\n  - lowestEfficiency\n", "expected a 'rules:' mapping"),
    ("just a string\n", "expected a 'rules:' mapping"),
    ("rules: [unclosed\n", "invalid YAML"),
])
def test_dive_ci_bad_values_and_unknown_keys(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(GateError) as e:
        read_dive_ci(path)
    assert message in str(e.value) and str(e.value).startswith(path)
    assert "\n" not in str(e.value)


def test_dive_ci_missing_file(tmp_path):
    with pytest.raises(GateError, match="cannot read the dive CI file"):
        read_dive_ci(str(tmp_path / "nope"))


# --- precedence: config `inspect:` < --dive-ci < flags ---------------------------------------------

def test_gate_limits_precedence(tmp_path):
    dive = write(tmp_path, "rules:\n  lowestEfficiency: 0.8\n  highestWastedBytes: 10MB\n")
    config = {"max-size": "300MB", "min-efficiency": 0.5, "max-wasted": "1MB", "max-user-wasted-percent": "30%",
              "fail-on": "warning"}
    assert gate_limits(config) == {"max-size": 300_000_000, "min-efficiency": 0.5, "max-wasted": 1_000_000,
                                   "max-user-wasted-percent": 0.3}
    # the file's keys beat the config; a key it leaves out keeps the config's value (not dive's default)
    assert gate_limits(config, dive) == {"max-size": 300_000_000, "min-efficiency": 0.8, "max-wasted": 10_000_000,
                                         "max-user-wasted-percent": 0.3}
    cli = {"max-size": "300MiB", "min-efficiency": "99%", "max-wasted": None, "max-layers": "5"}
    assert gate_limits(config, dive, cli) == {"max-size": 300 * 2**20, "min-efficiency": 0.99,
                                              "max-wasted": 10_000_000, "max-user-wasted-percent": 0.3,
                                              "max-layers": 5}


def test_gate_limits_dive_defaults_fill_only_unset_keys(tmp_path):
    dive = write(tmp_path, "rules:\n  highestWastedBytes: 10MB\n")
    assert gate_limits({}, dive) == {"min-efficiency": 0.9, "max-wasted": 10_000_000, "max-user-wasted-percent": 0.1}


def test_gate_limits_dive_ci_from_the_config_section(tmp_path):
    dive = write(tmp_path, "rules:\n  lowestEfficiency: 0.7\n")
    assert gate_limits({"dive-ci": dive})["min-efficiency"] == 0.7
    other = write(tmp_path, "rules:\n  lowestEfficiency: 0.6\n", "other")
    assert gate_limits({"dive-ci": dive}, other)["min-efficiency"] == 0.6  # --dive-ci wins


def test_gate_limits_a_flag_can_disable_a_configured_gate():
    assert gate_limits({"max-size": "1MB"}, None, {"max-size": "off"}) == {"max-size": None}


@pytest.mark.parametrize("config, cli, message", [
    ({"max-size": "huge"}, {}, "max-size: 'huge' is not a size"),
    ({}, {"min-efficiency": "150%"}, "min-efficiency: '150%' must be between 0 and 1"),
    ({}, {"max-layers": "x"}, "max-layers: 'x' is not a whole number"),
])
def test_gate_limits_errors(config, cli, message):
    with pytest.raises(InspectConfigError, match=message):
        gate_limits(config, None, cli)


def test_gate_limits_dive_ci_error_is_an_inspect_config_error(tmp_path):
    with pytest.raises(InspectConfigError, match="cannot read the dive CI file"):
        gate_limits({}, str(tmp_path / "missing"))


# --- config section ---------------------------------------------------------------------------------

def test_config_section_keys():
    assert CONFIG_KEYS == set(GATES) | {"fail-on", "top", "dive-ci", "platform", "hash-content"}
    check_config_section({k: None for k in GATES} | {"fail-on": "error", "top": 5, "dive-ci": "x",
                                                      "platform": "linux/arm64", "hash-content": False}, "cfg")


@pytest.mark.parametrize("section, message", [
    ({"max-sise": "1MB"}, "cfg: inspect: unknown key 'max-sise' (known: dive-ci, fail-on,"),
    ({"fail-on": "bad"}, "cfg: inspect: fail-on: 'bad' is not one of error, warning, info, style, none"),
    ({"top": "ten"}, "cfg: inspect: top: 'ten' must be a whole number from 1 to 1000"),
    ({"top": 0}, "top: 0 must be a whole number"),
    ({"hash-content": "no"}, "hash-content: 'no' must be true or false"),
    ({"platform": 5}, "platform: 5 must be a string"),
    (["max-size"], "cfg: inspect: expected a mapping"),
])
def test_config_section_errors(section, message):
    with pytest.raises(InspectConfigError) as e:
        check_config_section(section, "cfg")
    assert message in str(e.value)
