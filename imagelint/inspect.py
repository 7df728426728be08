"""`imagelint inspect`: load an image, analyse it, run image rules, check CI gates."""
from __future__ import annotations

from .gate import DIVE_DEFAULTS, GATES, GateError, evaluate, parse_gate_value, read_dive_ci
from .image import ImageError

__all__ = ["InspectResult", "inspect_image", "gate_limits", "INSPECT_SCHEMA_VERSION", "InspectConfigError"]

INSPECT_SCHEMA_VERSION = 1
# keys accepted in the config file's `inspect:` section
CONFIG_KEYS = set(GATES) | {"fail-on", "top", "dive-ci", "platform", "hash-content"}


class InspectConfigError(ValueError):
    """Bad `inspect:` config or gate value; one line for the user."""


class InspectResult:
    """Everything `inspect` learnt about one image."""

    def __init__(self, image, view, dive, waste, stats, findings, gates, dockerfile=None):
        self.image = image
        self.view = view
        self.dive = dive  # analysis.DiveMetrics
        self.waste = waste  # analysis.WasteReport
        self.stats = stats  # analysis.ImageStats
        self.findings = findings
        self.gates = gates  # gate.GateResult list
        self.dockerfile = dockerfile

    @property
    def gates_failed(self) -> bool:
        return any(g.status == "fail" for g in self.gates)

    def measured(self) -> dict:
        """Quantities the gates compare, keyed like the gates."""
        pct = self.dive.user_wasted_percent
        return {
            "max-size": self.stats.size,
            "max-transfer-size": self.stats.transfer_size,
            "max-layers": self.stats.layer_count,
            "min-efficiency": self.dive.efficiency,
            "max-wasted": self.dive.wasted_bytes,
            "max-user-wasted-percent": pct if pct == pct and pct not in (float("inf"),) else None,
        }

    def layer_rows(self) -> list:
        """Per layer: stats plus the Dockerfile line / base-image origin."""
        rows = []
        for st in self.stats.layers:
            d = st.to_dict()
            src = self.view.layer_source(st.index)
            d["from_base_image"] = bool(src is not None and src.from_base)
            if src is not None and src.instruction is not None:
                d["dockerfile_line"] = src.instruction.start_line
                d["dockerfile_end_line"] = src.instruction.end_line
                d["line_certain"] = src.certain
            else:  # same keys either way: the JSON schema does not change shape per layer
                d["dockerfile_line"] = None
                d["dockerfile_end_line"] = None
                d["line_certain"] = False
            rows.append(d)
        return rows

    def to_dict(self, top: int = 20) -> dict:
        img = self.image
        stats = self.stats.to_dict()
        return {
            "ref": img.ref,
            "source": img.source,
            "id": img.id,
            "repo_digest": img.repo_digest,
            "platform": img.platform,
            "dockerfile": self.dockerfile,
            "totals": {
                "size": self.stats.size,
                "final_size": self.stats.final_size,
                "transfer_size": self.stats.transfer_size,
                "transfer_size_exact": self.stats.transfer_exact,
                "layers": self.stats.layer_count,
                "files": self.stats.file_count,
            },
            "layers": self.layer_rows(),
            "dive": self.dive.to_dict(),
            "waste": self.waste.to_dict(limit=top),
            "largest_files": stats["largest_files"],
            "largest_dirs": stats["largest_dirs"],
            "findings": [f.to_dict() for f in self.findings],
            "gates": [g.to_dict() for g in self.gates],
            "passed": not self.gates_failed,
        }


def gate_limits(config_section: dict, dive_ci: str = None, cli: dict = None) -> dict:
    """Limits from config `inspect:` < `--dive-ci FILE` < command-line flags."""
    limits: dict = {}
    try:
        for key, value in (config_section or {}).items():
            if key in GATES:
                limits[key] = parse_gate_value(key, value)
        path = dive_ci or (config_section or {}).get("dive-ci")
        if path:
            # keys the file sets beat the config; dive's defaults only fill keys neither sets
            limits.update(read_dive_ci(path, defaults=False))
            for key, value in DIVE_DEFAULTS.items():
                limits.setdefault(key, value)
        for key, value in (cli or {}).items():
            if value is not None:
                limits[key] = parse_gate_value(key, value)
    except GateError as e:
        raise InspectConfigError(str(e)) from None
    return limits


def check_config_section(section: dict, source: str) -> None:
    """Unknown keys and wrongly typed non-gate values → InspectConfigError (gates are read by gate_limits)."""
    if section is not None and not isinstance(section, dict):
        raise InspectConfigError(f"{source}: inspect: expected a mapping of settings")
    for key, value in (section or {}).items():
        if key not in CONFIG_KEYS:
            raise InspectConfigError(f"{source}: inspect: unknown key {key!r} (known: {', '.join(sorted(CONFIG_KEYS))})")
        where = f"{source}: inspect: {key}"
        if key == "fail-on" and value not in ("error", "warning", "info", "style", "none"):
            raise InspectConfigError(f"{where}: {value!r} is not one of error, warning, info, style, none")
        if key == "top" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000):
            raise InspectConfigError(f"{where}: {value!r} must be a whole number from 1 to 1000")
        if key == "hash-content" and not isinstance(value, bool):
            raise InspectConfigError(f"{where}: {value!r} must be true or false")
        if key in ("dive-ci", "platform") and not isinstance(value, str):
            raise InspectConfigError(f"{where}: {value!r} must be a string")


def inspect_image(ref: str, linter, limits: dict, dockerfile: str = None, platform: str = None, top: int = 10,
                  hash_content: bool = True, fast: bool = True) -> InspectResult:
    """Load ``ref``, analyse it and evaluate rules and gates. Raises ImageError on bad input."""
    from .analysis import dive_metrics, image_stats, waste_report
    from .imageview import ImageView
    from .sources import load_image

    df = None
    if dockerfile:
        from .dockerfile import parse
        from .engine import InputError, read_dockerfile
        try:
            df = parse(read_dockerfile(dockerfile), dockerfile)
        except InputError as e:
            raise ImageError(str(e)) from None
    image = load_image(ref, platform=platform, hash_content=hash_content, fast=fast)
    view = ImageView(image, df)
    # `docker save` stores a layer identical to an earlier one (same diff_id) as a symlink,
    # which dive reads as an empty layer; mirror that so dive's numbers match for every source
    seen, repeated = set(), set()
    for layer in image.layers:
        if layer.diff_id and layer.diff_id in seen:
            repeated.add(layer.index)
        seen.add(layer.diff_id)
    dive = dive_metrics(image, dive_empty_layers=repeated)
    waste = waste_report(image)
    view._waste = waste
    if waste.final is not None:
        view._final = waste.final
    stats = image_stats(image, top=top, final=view.final)
    findings = linter.lint_image(view, dockerfile or ref)
    result = InspectResult(image, view, dive, waste, stats, findings, [], dockerfile)
    estimates = set() if stats.transfer_exact else {"max-transfer-size"}
    result.gates = evaluate(limits, result.measured(), estimates)
    return result
