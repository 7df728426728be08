"""CI gates for `imagelint inspect`: size budgets and dive-compatible waste limits.

Sizes accept decimal and binary units like go-humanize (which dive uses):
``MB`` = 1,000,000 bytes, ``MiB`` = 1,048,576; ``300MB``, ``1.5GiB``, ``20 mb``,
plain numbers are bytes. Ratios accept ``0.9`` or ``90%``.
"""
from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["parse_size", "parse_ratio", "Gate", "GateResult", "GATES", "evaluate", "read_dive_ci",
           "format_bytes", "GateError", "DIVE_DEFAULTS"]

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_DISABLED = ("", "disabled", "off", "false", "none")


class GateError(ValueError):
    """A gate value cannot be read; the message says which and why."""


def parse_size(value, what: str = "size") -> int:
    """``300MB`` → 300000000; ``1GiB`` → 1073741824; ints pass through."""
    if isinstance(value, bool):
        raise GateError(f"{what}: expected a size like 300MB or 1GiB, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise GateError(f"{what}: {value!r} must be a size of 0 bytes or more")
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise GateError(f"{what}: {value!r} is not a size; use e.g. 300MB (10^6 bytes) or 300MiB (2^20 bytes)")
    # Decimal, not float: 4.35MB must be 4,350,000 bytes, not 4,349,999
    return int(Decimal(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_ratio(value, what: str = "ratio") -> float:
    """``0.9`` or ``90%`` → 0.9 (must be within 0..1)."""
    if isinstance(value, bool):  # YAML's `on`/`yes` must not read as 100 %
        raise GateError(f"{what}: {value!r} is not a number like 0.9 or 90%")
    try:
        if isinstance(value, str) and value.strip().endswith("%"):
            r = float(value.strip()[:-1]) / 100
        else:
            r = float(value)
    except (TypeError, ValueError):
        raise GateError(f"{what}: {value!r} is not a number like 0.9 or 90%") from None
    if not 0 <= r <= 1:
        raise GateError(f"{what}: {value!r} must be between 0 and 1 (or 0% and 100%)")
    return r


def format_bytes(n) -> str:
    if n is None:
        return "unknown"
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Gate:
    """A named limit: key (config/CLI), how to read its value, and the measured quantity."""

    __slots__ = ("key", "kind", "compare", "describe")

    def __init__(self, key: str, kind: str, compare: str, describe: str):
        self.key = key  # e.g. 'max-size'
        self.kind = kind  # 'size' | 'ratio' | 'int'
        self.compare = compare  # 'max' (fail when value > limit) | 'min' (fail when value < limit)
        self.describe = describe


GATES = {g.key: g for g in (
    Gate("max-size", "size", "max", "uncompressed image size"),
    Gate("max-transfer-size", "size", "max", "compressed (pull) size"),
    Gate("max-layers", "int", "max", "number of layers"),
    Gate("min-efficiency", "ratio", "min", "dive efficiency score"),
    Gate("max-wasted", "size", "max", "dive wasted bytes"),
    Gate("max-user-wasted-percent", "ratio", "max", "dive user-wasted ratio"),
)}


def parse_gate_value(key: str, value):
    gate = GATES[key]
    if isinstance(value, str) and value.strip().lower() in _DISABLED:
        return None
    if value is None or value is False:
        return None
    if gate.kind == "size":
        return parse_size(value, key)
    if gate.kind == "ratio":
        return parse_ratio(value, key)
    try:
        if isinstance(value, (bool, float)):  # `on` or 2.5 layers are mistakes, not numbers
            raise ValueError
        n = int(value)
    except (TypeError, ValueError):
        raise GateError(f"{key}: {value!r} is not a whole number") from None
    if n < 0:
        raise GateError(f"{key}: must not be negative")
    return n


class GateResult:
    __slots__ = ("key", "limit", "value", "status", "message", "estimate")

    def __init__(self, key, limit, value, status, message, estimate=False):
        self.key = key
        self.limit = limit
        self.value = value
        self.status = status  # 'pass' | 'fail' | 'skip'
        self.message = message
        self.estimate = estimate

    def to_dict(self) -> dict:
        return {"gate": self.key, "limit": self.limit, "value": self.value, "status": self.status,
                "message": self.message, "estimate": self.estimate}


def _show(kind, v):
    if v is None:
        return "unknown"
    if kind == "size":
        return f"{format_bytes(v)} ({v:,} B)"
    if kind == "ratio":
        return f"{v * 100:.2f}%"
    return str(v)


def evaluate(limits: dict, measured: dict, estimates: set = frozenset()) -> list:
    """Check ``limits`` (key → parsed limit) against ``measured`` (key → value or None)."""
    results = []
    for key, limit in limits.items():
        if limit is None:
            continue
        gate = GATES[key]
        value = measured.get(key)
        if value is None:
            results.append(GateResult(key, limit, None, "skip",
                                      f"{gate.describe} is unknown for this source; gate not checked"))
            continue
        failed = value > limit if gate.compare == "max" else value < limit
        op = ">" if gate.compare == "max" else "<"
        ok_op = "≤" if gate.compare == "max" else "≥"
        est = key in estimates
        msg = (f"{gate.describe} {_show(gate.kind, value)}{' (estimate)' if est else ''} "
               f"{op if failed else ok_op} limit {_show(gate.kind, limit)}")
        results.append(GateResult(key, limit, value, "fail" if failed else "pass", msg, est))
    return results


_DIVE_KEYS = {
    "lowestEfficiency": "min-efficiency",
    "lowest-efficiency": "min-efficiency",
    "highestWastedBytes": "max-wasted",
    "highest-wasted-bytes": "max-wasted",
    "highestUserWastedPercent": "max-user-wasted-percent",
    "highest-user-wasted-percent": "max-user-wasted-percent",
}
DIVE_DEFAULTS = {"min-efficiency": 0.9, "max-wasted": None, "max-user-wasted-percent": 0.1}


def read_dive_ci(path: str, defaults: bool = True) -> dict:
    """Gate limits from a dive `.dive-ci` file (missing keys take dive's defaults unless
    ``defaults`` is False: then only the keys the file sets)."""
    try:
        import yaml
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise GateError(f"{path}: cannot read the dive CI file: {e.strerror}") from None
    except Exception as e:  # yaml.YAMLError; keep yaml out of the import path
        raise GateError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    rules = data.get("rules", data) if isinstance(data, dict) else None
    if rules is None and isinstance(data, dict):  # `rules:` left empty: dive's defaults
        rules = {}
    if not isinstance(rules, dict):
        raise GateError(f"{path}: expected a 'rules:' mapping as dive's .dive-ci has")
    limits = dict(DIVE_DEFAULTS) if defaults else {}
    for k, v in rules.items():
        key = _DIVE_KEYS.get(k)
        if key is None:
            raise GateError(f"{path}: unknown dive rule {k!r} (known: lowestEfficiency, highestWastedBytes, "
                            "highestUserWastedPercent)")
        try:
            limits[key] = parse_gate_value(key, v if not isinstance(v, str) else v.strip())
        except GateError as e:  # name the file and dive's key, not only ours
            raise GateError(f"{path}: {k}: {str(e).split(': ', 1)[-1]}") from None
    return limits
