"""Fargate parameters, task sizes and prices — all from ``imagelint/data/fargate.json``.

Nothing about Fargate is hard-coded elsewhere: the estimate and the cost read
their numbers from a :class:`FargateData`, which carries each value's source and
date and accepts overrides (``--param key=value``, config ``measure: {params: ...}``,
or a whole replacement file).
"""
from __future__ import annotations

import json
import math
import os

__all__ = ["FargateData", "FargateDataError", "TaskSize", "parse_task_size", "cost_per_launch",
           "DEFAULT_DATA_FILE"]

DEFAULT_DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fargate.json")


class FargateDataError(ValueError):
    """Bad data file, override, region, architecture or task size; one line for the user."""


class TaskSize:
    """A Fargate task size: vCPU and memory in GB (GiB as AWS counts task memory)."""

    __slots__ = ("vcpu", "memory_gb")

    def __init__(self, vcpu: float, memory_gb: float):
        self.vcpu = float(vcpu)
        self.memory_gb = float(memory_gb)

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 1024 ** 3)

    def __str__(self) -> str:
        return f"{_num(self.vcpu)} vCPU / {_num(self.memory_gb)} GB"

    @property
    def label(self) -> str:
        return f"{_num(self.vcpu)}x{_num(self.memory_gb)}"

    def __eq__(self, other) -> bool:
        return isinstance(other, TaskSize) and (self.vcpu, self.memory_gb) == (other.vcpu, other.memory_gb)

    def __hash__(self) -> int:
        return hash((self.vcpu, self.memory_gb))

    def __repr__(self) -> str:
        return f"TaskSize({self.label})"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def parse_task_size(text: str) -> TaskSize:
    """``0.5x1`` (vCPU x GB), also ``512x1024`` (CPU units x MiB, as task definitions write it)."""
    t = str(text).lower().replace(" ", "").replace("vcpu", "").replace("gb", "")
    sep = "x" if "x" in t else ("/" if "/" in t else None)
    if sep is None:
        raise FargateDataError(f"task size {text!r}: write VCPUxGB, e.g. 0.5x1 or 1x2 (or 512x1024 in CPU units x MiB)")
    a, _, b = t.partition(sep)
    try:
        cpu, mem = float(a), float(b)
    except ValueError:
        raise FargateDataError(f"task size {text!r}: write VCPUxGB, e.g. 0.5x1 or 1x2") from None
    if cpu >= 128:  # CPU units and MiB, as in a task definition
        cpu, mem = cpu / 1024, mem / 1024
    return TaskSize(cpu, mem)


class FargateData:
    """The parameters, task sizes and prices, with overrides applied."""

    def __init__(self, path: str = None, overrides: dict = None):
        self.path = path or DEFAULT_DATA_FILE
        try:
            with open(self.path, encoding="utf-8") as f:
                self.raw = json.load(f)
        except OSError as e:
            raise FargateDataError(f"{self.path}: cannot read the Fargate data file: {e.strerror}") from None
        except ValueError as e:
            raise FargateDataError(f"{self.path}: invalid JSON: {e}") from None
        for key in ("params", "task_sizes", "prices"):
            if key not in self.raw:
                raise FargateDataError(f"{self.path}: missing section {key!r}")
        self.overridden: dict = {}
        for k, v in (overrides or {}).items():
            self.override(k, v)

    # -- parameters ----------------------------------------------------------
    def override(self, key: str, value) -> None:
        params = self.raw["params"]
        if key not in params:
            raise FargateDataError(f"unknown Fargate parameter {key!r} (known: {', '.join(sorted(params))})")
        current = params[key]["value"]
        try:
            if isinstance(value, str):
                value = json.loads(value) if value.strip()[:1] in "[{" else (
                    float(value) if "." in value or "e" in value.lower() else int(value))
        except ValueError:
            raise FargateDataError(f"parameter {key}: {value!r} is not a number (or JSON list/object)") from None
        if isinstance(current, list) and not isinstance(value, list):
            value = [value, value]
        if isinstance(current, list) and (len(value) != 2 or value[0] > value[1]):
            raise FargateDataError(f"parameter {key}: expected [low, high], got {value!r}")
        self.overridden[key] = value

    def param(self, key: str):
        if key in self.overridden:
            return self.overridden[key]
        try:
            return self.raw["params"][key]["value"]
        except KeyError:
            raise FargateDataError(f"{self.path}: parameter {key!r} is missing") from None

    def source_of(self, key: str) -> str:
        if key in self.overridden:
            return "overridden on the command line or in config"
        p = self.raw["params"].get(key, {})
        return f"{p.get('source', 'unknown source')} (read {p.get('date', '?')})"

    def burst_bytes_per_s(self, vcpu: float) -> float:
        table = self.param("task_burst_gbps")
        keys = sorted(table, key=float)
        best = keys[0]
        for k in keys:
            if float(k) <= vcpu:
                best = k
        return table[best] * 1e9 / 8

    # -- task sizes ----------------------------------------------------------
    def valid_sizes(self) -> list:
        out = []
        for row in self.raw["task_sizes"]["sizes"]:
            out.extend(TaskSize(row["vcpu"], m) for m in row["memory_gb"])
        return out

    def check_size(self, size: TaskSize) -> TaskSize:
        if size not in self.valid_sizes():
            cpus = sorted({s.vcpu for s in self.valid_sizes()})
            mems = [_num(s.memory_gb) for s in self.valid_sizes() if s.vcpu == size.vcpu]
            hint = (f"valid memory for {_num(size.vcpu)} vCPU: {', '.join(mems)} GB" if mems
                    else f"valid vCPU: {', '.join(_num(c) for c in cpus)}")
            raise FargateDataError(f"task size {size.label} is not a valid Fargate size; {hint}")
        return size

    def smallest_fitting(self, memory_bytes: int, min_vcpu: float = 0.0, headroom: float = 0.2):
        """Smallest (cheapest) valid size whose memory holds ``memory_bytes`` plus headroom."""
        need = memory_bytes * (1 + headroom)
        fits = [s for s in self.valid_sizes() if s.memory_bytes >= need and s.vcpu >= min_vcpu]
        if not fits:
            return None
        return min(fits, key=lambda s: (s.vcpu * 10 + s.memory_gb, s.vcpu))

    # -- prices --------------------------------------------------------------
    def rates(self, region: str, arch: str = "x86", spot: bool = False) -> dict:
        regions = self.raw["prices"]["regions"]
        if region not in regions:
            raise FargateDataError(f"no Fargate prices for region {region!r} in {self.path} "
                                   f"(have: {', '.join(sorted(regions))}); add them to a copy of the file")
        arch = {"amd64": "x86", "x86_64": "x86", "arm64": "arm", "aarch64": "arm"}.get(arch, arch)
        if arch not in regions[region]:
            raise FargateDataError(f"no {arch} prices for {region} (have: x86, arm)")
        r = regions[region][arch]
        kind = "spot" if spot else "on_demand"
        return {"vcpu_hour": r[kind]["vcpu_hour"], "gb_hour": r[kind]["gb_hour"],
                "ephemeral_gb_hour": r.get("ephemeral_gb_hour", 0.0),
                "source": regions[region].get("source", ""), "date": regions[region].get("date", "")}


def cost_per_launch(data: FargateData, size: TaskSize, billed_seconds: float, region: str, arch: str = "x86",
                    spot: bool = False, ephemeral_gb: float = 20.0) -> dict:
    """Cost of one launch: billed per second, rounded up, with the one-minute minimum."""
    rates = data.rates(region, arch, spot)
    minimum = float(data.param("billing_minimum_seconds"))
    billed = max(minimum, math.ceil(billed_seconds))
    per_hour = size.vcpu * rates["vcpu_hour"] + size.memory_gb * rates["gb_hour"]
    per_hour += max(0.0, ephemeral_gb - float(data.param("ephemeral_free_gib"))) * rates["ephemeral_gb_hour"]
    return {
        "billed_seconds": billed,
        "minimum_applied": billed_seconds < minimum,
        "per_hour_usd": per_hour,
        "usd": billed / 3600.0 * per_hour,
        "rates": rates,
    }
