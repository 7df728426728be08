"""The Fargate cold-start estimate of a measured image, every term shown, with cost and what-ifs.

Inputs: the image's layers (compressed size and media type from the manifest; uncompressed tar bytes
and entry count from reading each layer once, streamed; the zstd size from re-compressing that same
stream at level 3), this machine's :class:`~imagelint.measure.calibrate.Calibration`, the measured
container start and app readiness (under the task's limits), and the Fargate parameters of
``imagelint/data/fargate.json`` (:class:`~imagelint.fargate.FargateData`) plus a few model knobs
(:data:`MODEL_PARAMS`). ``--param KEY=VALUE`` overrides either kind.

    cold start = provisioning + registry round trips + downloads + extraction not hidden by downloads
                 + container start + app readiness
    billed     = everything from the first download on (provisioning is free), ≥ 60 s

The pull itself is :func:`imagelint.estimate.simulate_pull` (3-slot download queue, serial
extraction overlapped with downloads) at Fargate rates: per-connection rate bounded by the task's
burst bandwidth, and the locally measured extraction rates scaled to the task's vCPU (gzip one core,
zstd about two, a fractional task throttled to its share — per-file costs scaled the same way).
"""
from __future__ import annotations

import math

from imagelint.estimate import LayerSpec, Rates, simulate_pull, scale_rates
from imagelint.fargate import FargateData, FargateDataError, TaskSize, cost_per_launch, parse_task_size

__all__ = ["MODEL_PARAMS", "LayerInfo", "Settings", "SettingsError", "Estimate", "resolve_settings",
           "read_layer_facts", "fargate_rates", "local_rates", "estimate", "what_ifs", "oom_risk",
           "predict_local", "neighbour_sizes", "codec_of", "NO_LIMIT_BANDWIDTH"]

NO_LIMIT_BANDWIDTH = 1e15  # bytes/s: "no task-wide cap" (local pulls)

MODEL_PARAMS = {
    "cpu_speed_ratio": {
        "value": 1.0, "unit": "x",
        "what": "speed of one Fargate vCPU relative to one core of this machine (extraction and readiness)",
        "source": "imagelint default: assumed equal (not published; calibrate against real tasks)"},
    "oom_warn_ratio": {
        "value": 0.8, "unit": "fraction",
        "what": "flag an OOM risk when start-up peak memory exceeds this share of the task's memory",
        "source": "imagelint default"},
    "memory_headroom": {
        "value": 0.2, "unit": "fraction",
        "what": "headroom above the measured peak when recommending a task size",
        "source": "imagelint default"},
    "days_per_month": {
        "value": 30, "unit": "days", "what": "days in the per-month cost", "source": "imagelint default"},
}

_CONFIG_KEYS = ("params", "region", "arch", "spot", "task-size", "launches-per-day", "fargate-data")


class SettingsError(FargateDataError):
    """A bad --param, task size, region, architecture or config value; one line."""


def codec_of(media_type: str, sniffed: str = None) -> str:
    if sniffed in ("gzip", "zstd"):
        return sniffed
    if sniffed == "tar":
        return "none"
    mt = (media_type or "").lower()
    if "zstd" in mt:
        return "zstd"
    if mt.endswith(".tar") or mt.endswith("tar"):
        return "none"
    return "gzip"


class LayerInfo:
    """A layer's facts for the model: sizes (bytes), entries, codec, and its zstd-3 size if measured."""

    __slots__ = ("index", "digest", "media_type", "codec", "compressed", "uncompressed", "files", "created_by",
                 "zstd_compressed", "exact")

    def __init__(self, index: int, digest: str, compressed: int, uncompressed: int, files: int, codec: str = "gzip",
                 media_type: str = None, created_by: str = None, zstd_compressed: int = None, exact: bool = True):
        self.index = index
        self.digest = digest
        self.media_type = media_type
        self.codec = codec
        self.compressed = int(compressed or 0)
        self.uncompressed = int(uncompressed or 0)  # decompressed tar bytes (what extraction processes)
        self.files = int(files or 0)  # tar entries: files, dirs, links (each costs a create on extract)
        self.created_by = created_by
        self.zstd_compressed = zstd_compressed
        self.exact = exact  # compressed size from the manifest (True) or estimated

    def spec(self, codec: str = None) -> LayerSpec:
        if codec == "zstd" and self.zstd_compressed is not None:
            return LayerSpec(self.index, self.zstd_compressed, self.uncompressed, self.files, "zstd")
        return LayerSpec(self.index, self.compressed, self.uncompressed, self.files, codec or self.codec)

    def to_dict(self) -> dict:
        return {"index": self.index, "digest": self.digest, "media_type": self.media_type, "codec": self.codec,
                "compressed": self.compressed, "compressed_exact": self.exact, "uncompressed": self.uncompressed,
                "files": self.files, "zstd_compressed": self.zstd_compressed, "created_by": self.created_by}


# --- settings ---------------------------------------------------------------------------------------

class Settings:
    """Everything the model runs on, with where each value came from."""

    def __init__(self, data: FargateData, task: TaskSize, region: str, arch: str, spot: bool,
                 launches_per_day, model_params: dict, sources: dict):
        self.data = data
        self.task = task
        self.region = region
        self.arch = arch
        self.spot = spot
        self.launches_per_day = launches_per_day
        self.model_params = model_params
        self.sources = sources  # setting or parameter name → where its value came from

    def param(self, key: str):
        if key in self.model_params:
            return self.model_params[key]
        return self.data.param(key)

    def parameters(self) -> dict:
        """Every parameter in use: value, unit and source (for the JSON report)."""
        out = {}
        for key, p in self.data.raw["params"].items():
            out[key] = {"value": self.data.param(key), "unit": p.get("unit"),
                        "source": self.sources.get(key) or self.data.source_of(key)}
        for key, p in MODEL_PARAMS.items():
            out[key] = {"value": self.model_params[key], "unit": p["unit"],
                        "source": self.sources.get(key) or p["source"]}
        return out

    def to_dict(self) -> dict:
        return {"task": self.task.label, "vcpu": self.task.vcpu, "memory_gb": self.task.memory_gb,
                "region": self.region, "arch": self.arch, "spot": self.spot,
                "launches_per_day": self.launches_per_day, "fargate_data": self.data.path,
                "sources": {k: v for k, v in self.sources.items() if k in (
                    "task", "region", "arch", "spot", "launches_per_day", "fargate_data")},
                "parameters": self.parameters()}


def _parse_value(text):
    if isinstance(text, (int, float, list, dict)):
        return text
    import json
    t = str(text).strip()
    try:
        return json.loads(t)
    except ValueError:
        raise SettingsError(f"parameter value {text!r} is not a number (or JSON list/object)") from None


def _split_param(item: str) -> tuple:
    key, sep, value = str(item).partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"--param {item!r}: write KEY=VALUE, e.g. --param per_connection_mb_s=60")
    return key.strip(), value.strip()


def _bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1", "on"):
        return True
    if str(value).lower() in ("false", "no", "0", "off"):
        return False
    raise SettingsError(f"{where}: expected true or false, got {value!r}")


def resolve_settings(task_size: str = None, region: str = None, arch: str = None, spot: bool = None,
                     launches_per_day=None, params=(), fargate_data: str = None, config: dict = None,
                     config_source: str = "config", image_arch: str = None) -> Settings:
    """Command line over config (``measure:`` section) over defaults; validates task size, region
    and architecture against the data file. ``image_arch`` (the image's architecture) is the
    default for ``arch``."""
    config = dict(config or {})
    for key in config:
        if key not in _CONFIG_KEYS:
            raise SettingsError(f"{config_source}: measure.{key}: unknown key (known: {', '.join(_CONFIG_KEYS)})")
    sources = {}

    def pick(name: str, cli_value, cfg_key: str, default, default_source: str = "default"):
        if cli_value is not None:
            sources[name] = "command line"
            return cli_value
        if config.get(cfg_key) is not None:
            sources[name] = f"{config_source} (measure.{cfg_key})"
            return config[cfg_key]
        sources[name] = default_source
        return default

    data_path = pick("fargate_data", fargate_data, "fargate-data", None, "built-in imagelint/data/fargate.json")
    try:
        data = FargateData(data_path)
    except FargateDataError as e:
        raise SettingsError(str(e)) from None
    model_params = {k: p["value"] for k, p in MODEL_PARAMS.items()}
    cfg_params = config.get("params") or {}
    if not isinstance(cfg_params, dict):
        raise SettingsError(f"{config_source}: measure.params: expected a mapping of parameter: value")
    overrides = [(k, v, f"{config_source} (measure.params)") for k, v in cfg_params.items()]
    overrides += [(*_split_param(p), "command line (--param)") for p in params or ()]
    for key, value, where in overrides:
        if key in MODEL_PARAMS:
            v = _parse_value(value)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise SettingsError(f"parameter {key}: expected a non-negative number, got {value!r}")
            model_params[key] = v
        else:
            try:
                data.override(key, value if isinstance(value, str) else _json(value))
            except FargateDataError as e:
                if key not in data.raw["params"]:
                    known = sorted(list(data.raw["params"]) + list(MODEL_PARAMS))
                    raise SettingsError(f"unknown parameter {key!r} (known: {', '.join(known)})") from None
                raise SettingsError(str(e)) from None
        sources[key] = where

    size_text = pick("task", task_size, "task-size", "0.5x1")
    try:
        task = data.check_size(parse_task_size(str(size_text)))
    except FargateDataError as e:
        raise SettingsError(str(e)) from None
    default_arch = "x86"
    arch_source = "default"
    if image_arch in ("arm64", "arm", "aarch64"):
        default_arch, arch_source = "arm", "the image's architecture"
    arch_value = str(pick("arch", arch, "arch", default_arch, arch_source)).lower()
    arch_value = {"amd64": "x86", "x86_64": "x86", "x86-64": "x86", "arm64": "arm", "aarch64": "arm",
                  "graviton": "arm"}.get(arch_value, arch_value)
    if arch_value not in ("x86", "arm"):
        raise SettingsError(f"architecture {arch_value!r}: use x86 or arm")
    region_value = str(pick("region", region, "region", "us-east-1"))
    spot_value = _bool(pick("spot", spot, "spot", False), "spot")
    try:
        data.rates(region_value, arch_value, spot_value)
    except FargateDataError as e:
        raise SettingsError(str(e)) from None
    lpd = pick("launches_per_day", launches_per_day, "launches-per-day", None)
    if lpd is not None:
        try:
            lpd = float(lpd)
            if lpd < 0 or math.isnan(lpd):
                raise ValueError
        except (TypeError, ValueError):
            raise SettingsError(f"launches per day {lpd!r}: expected a non-negative number") from None
    return Settings(data, task, region_value, arch_value, spot_value, lpd, model_params, sources)


def _json(value) -> str:
    import json
    return json.dumps(value)


# --- layer facts --------------------------------------------------------------------------------------

class _Tee:
    """Forward-only reader that counts the bytes passing through and feeds a zstd compressor."""

    def __init__(self, source, zstd_level: int = None):
        self.source = source
        self.bytes = 0
        self.zstd_bytes = 0
        self._z = None
        if zstd_level is not None:
            import zstandard
            self._z = zstandard.ZstdCompressor(level=zstd_level).compressobj()

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        if data:
            self.bytes += len(data)
            if self._z is not None:
                self.zstd_bytes += len(self._z.compress(data))
        return data

    def finish(self) -> int:
        if self._z is not None:
            self.zstd_bytes += len(self._z.flush())
            self._z = None
        return self.zstd_bytes


def _count_layer(blob, zstd: bool, name: str) -> tuple:
    """(codec, uncompressed tar bytes, entries, zstd-3 bytes or None) of one layer blob, streamed once."""
    from imagelint.sources.layerstream import _drain, open_decompressed, read_layer_info
    stream, codec = open_decompressed(blob)
    tee = _Tee(stream, 3 if zstd else None)
    info = read_layer_info(tee, hash_content=False, name=name)  # a plain tar now: sniffed as 'tar'
    _drain(tee)
    return codec, tee.bytes, len(info.entries), (tee.finish() if zstd else None)


def read_layer_facts(ref: str, zstd: bool = True, platform: str = None, on_layer=None) -> list:
    """:class:`LayerInfo` of every layer of ``ref`` in a registry (the reference that was pulled):
    exact compressed sizes from the manifest; each blob streamed once (never stored) to count its
    uncompressed bytes and entries and, with ``zstd``, re-compress it with zstd level 3.

    Raises :class:`imagelint.image.ImageError` when the registry cannot be read."""
    from imagelint.sources import registry as reg

    if zstd:
        try:
            import zstandard  # noqa: F401
        except ImportError:
            zstd = False
    session, image = reg._open_image(ref, platform, reg._timeout(None), allow_foreign=False)
    out = []
    seen = {}
    for layer in image.layers:
        if layer.digest in seen:  # the same blob twice: the engine pulls and extracts it once
            prev = seen[layer.digest]
            out.append(LayerInfo(layer.index, layer.digest, prev.compressed, prev.uncompressed, prev.files,
                                 prev.codec, layer.media_type, layer.created_by, prev.zstd_compressed))
            continue
        what = f"layer {layer.index} of {session.ref}"
        blob = session.blob({"digest": layer.digest, "size": layer.compressed_size}, what)
        try:
            codec, raw, entries, zsize = _count_layer(blob, zstd, f"{layer.index} ({layer.digest[:19]})")
            blob.drain()
        finally:
            blob.close()
        info = LayerInfo(layer.index, layer.digest, layer.compressed_size, raw, entries,
                         codec_of(layer.media_type, codec), layer.media_type, layer.created_by, zsize,
                         exact=bool(layer.compressed_size_exact))
        seen[layer.digest] = info
        out.append(info)
        if on_layer is not None:
            on_layer(info)
    return out


def layer_facts_from_image(image) -> list:
    """:class:`LayerInfo` from an already loaded :class:`imagelint.image.Image` (entries read, any
    source): uncompressed bytes are the tar content plus one 512-byte header per entry (estimate)."""
    out = []
    for layer in image.layers:
        raw = sum(e.size + 512 for e in layer.entries) + 1024
        out.append(LayerInfo(layer.index, layer.digest or layer.diff_id or "", layer.compressed_size or 0, raw,
                             len(layer.entries), codec_of(layer.media_type), layer.media_type, layer.created_by,
                             None, exact=bool(layer.compressed_size_exact)))
    return out


# --- rates ----------------------------------------------------------------------------------------------

def fargate_rates(settings: Settings, calib, task: TaskSize = None) -> Rates:
    """The model's rates for a Fargate task of ``task`` (default: the settings' task)."""
    task = task or settings.task
    speed = float(settings.param("cpu_speed_ratio"))
    extract = scale_rates(calib.extract_bytes_per_s, 1.0, task.vcpu, float(settings.param("gzip_cores")),
                          float(settings.param("zstd_cores")))
    extract = {k: v * speed for k, v in extract.items()}
    throttle = min(task.vcpu, 1.0) * speed  # per-file work is one core's, throttled on fractional tasks
    return Rates(per_connection=float(settings.param("per_connection_mb_s")) * 1e6,
                 bandwidth=settings.data.burst_bytes_per_s(task.vcpu),
                 concurrency=int(settings.param("concurrent_downloads")),
                 extract_bytes_per_s=extract, per_file_s=calib.per_file_s / throttle,
                 per_layer_s=calib.per_layer_s, registry_s=float(settings.param("registry_round_trips_seconds")))


def local_rates(calib, concurrency: int = 3) -> Rates:
    """This machine's rates as measured (no vCPU scaling, no task bandwidth cap)."""
    return Rates(per_connection=calib.per_connection_bytes_per_s, bandwidth=NO_LIMIT_BANDWIDTH,
                 concurrency=concurrency, extract_bytes_per_s=dict(calib.extract_bytes_per_s),
                 per_file_s=calib.per_file_s, per_layer_s=calib.per_layer_s, registry_s=calib.registry_s)


def _specs(layers: list, codec: str = None) -> list:
    """Model layers; a blob repeated in the manifest is pulled once, so it is modelled once."""
    seen, out = set(), []
    for lay in layers:
        if lay.digest and lay.digest in seen:
            continue
        seen.add(lay.digest)
        out.append(lay.spec(codec))
    return out


def predict_local(layers: list, calib, concurrency: int = 3, start_s: float = None) -> dict:
    """The model's prediction of a LOCAL cold pull (+ container create/start) with this machine's rates."""
    timeline = simulate_pull(_specs(layers), local_rates(calib, concurrency))
    start = calib.container_start_s if start_s is None else start_s
    return {"pull_s": timeline.total, "start_s": start, "total_s": timeline.total + (start or 0.0),
            "timeline": timeline.to_dict()}


# --- the estimate ------------------------------------------------------------------------------------------

class Estimate:
    """One Fargate estimate: terms (each ``{"low", "high", "what"}``), timeline, billing and cost."""

    def __init__(self, name: str, label: str, task: TaskSize, codec: str):
        self.name = name  # "baseline", "zstd", "smaller-task", "bigger-task", "soci"
        self.label = label
        self.task = task
        self.codec = codec
        self.terms: dict = {}
        self.timeline = None
        self.rates = None
        self.total = (0.0, 0.0)
        self.billed_raw = (0.0, 0.0)
        self.billed = (0, 0)
        self.cost = (0.0, 0.0)
        self.per_month = None
        self.minimum_applied = False
        self.confidence = "medium"
        self.notes: list = []
        self.ready_scaled = False
        self.compressed = 0
        self.soci = None  # baseline only: whether SOCI lazy loading applies

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "task": self.task.label, "codec": self.codec,
                "confidence": self.confidence, "compressed_bytes": self.compressed,
                "terms": self.terms, "total_s": {"low": self.total[0], "high": self.total[1]},
                "billed_s_unrounded": {"low": self.billed_raw[0], "high": self.billed_raw[1]},
                "billed_s": {"low": self.billed[0], "high": self.billed[1]},
                "minimum_applied": self.minimum_applied,
                "cost_per_launch_usd": {"low": self.cost[0], "high": self.cost[1]},
                "cost_per_month_usd": None if self.per_month is None else {
                    "low": self.per_month[0], "high": self.per_month[1]},
                "ready_scaled": self.ready_scaled, "notes": list(self.notes), "soci": self.soci,
                "rates": self.rates.to_dict() if self.rates else None,
                "timeline": self.timeline.to_dict() if self.timeline else None}


def _term(low: float, high: float, what: str, source: str) -> dict:
    return {"low": low, "high": high, "what": what, "source": source}


def estimate(layers: list, settings: Settings, calib, start_s, ready_s, task: TaskSize = None, codec: str = None,
             name: str = "baseline", label: str = None, ready_label: str = "measured") -> Estimate:
    """Fargate cold start, billing and cost of ``layers`` for ``task`` (default: the settings' task).

    ``start_s``: measured local create+start (median); ``ready_s``: measured app readiness under the
    task's limits (median). ``codec``: ``zstd`` to model the zstd what-if."""
    task = task or settings.task
    data = settings.data
    specs = _specs(layers, codec)
    rates = fargate_rates(settings, calib, task)
    timeline = simulate_pull(specs, rates)
    est = Estimate(name, label or f"{task.label}, {codec or 'as built'}", task, codec or "as built")
    est.timeline, est.rates = timeline, rates
    est.compressed = sum(s.compressed for s in specs)
    prov = data.param("provisioning_seconds")
    prior = data.param("container_start_seconds")
    start_local = start_s if start_s is not None else (calib.container_start_s or 0.0)
    ready = float(ready_s or 0.0)
    download_span = max(timeline.download_time - rates.registry_s, 0.0)
    tail = max(timeline.total - max(timeline.download_time, rates.registry_s), 0.0)
    extract_work = sum(lay["extract_end"] - lay["extract_start"] for lay in timeline.layers)
    src = data.source_of
    est.terms = {
        "provisioning_s": _term(prov[0], prov[1], "capacity, microVM and ENI before the pull (not billed)",
                                src("provisioning_seconds")),
        "registry_s": _term(rates.registry_s, rates.registry_s, "token, manifest and config round trips",
                            src("registry_round_trips_seconds")),
        "download_s": _term(download_span, download_span,
                            f"{len(specs)} layers, {est.compressed / 1e6:.1f} MB compressed, "
                            f"{rates.concurrency} at a time at ≤{rates.per_connection / 1e6:.0f} MB/s each, "
                            f"task burst {rates.bandwidth * 8 / 1e9:.1f} Gbit/s",
                            f"{src('per_connection_mb_s')}; {src('task_burst_gbps')}"),
        "extract_tail_s": _term(tail, tail,
                                f"extraction not hidden under downloads (serial; {extract_work:.2f} s of "
                                f"extraction in all, {sum(s.files for s in specs)} entries)",
                                f"this machine's calibration ({calib.source}) scaled to {task.vcpu:g} vCPU"),
        "container_start_s": _term(max(start_local, prior[0]), max(start_local, prior[1]),
                                   f"create + start (measured here {start_local:.2f} s; Fargate prior as floor)",
                                   src("container_start_seconds")),
        "ready_s": _term(ready, ready, f"app readiness ({ready_label})", ready_label),
    }
    est.terms["pull_s"] = dict(_term(timeline.total, timeline.total, "registry + downloads + extraction (informational)",
                                     "model"), informational=True)
    est.terms["extract_work_s"] = dict(_term(extract_work, extract_work, "all extraction work incl. the part "
                                             "overlapped with downloads (informational)", "model"), informational=True)
    additive = [t for t in est.terms.values() if not t.get("informational")]
    est.total = (sum(t["low"] for t in additive), sum(t["high"] for t in additive))
    billed = [t for k, t in est.terms.items() if k != "provisioning_s" and not t.get("informational")]
    est.billed_raw = (sum(t["low"] for t in billed), sum(t["high"] for t in billed))
    costs = [cost_per_launch(data, task, b, settings.region, settings.arch, settings.spot) for b in est.billed_raw]
    est.billed = (costs[0]["billed_seconds"], costs[1]["billed_seconds"])
    est.minimum_applied = costs[0]["minimum_applied"]
    est.cost = (costs[0]["usd"], costs[1]["usd"])
    if settings.launches_per_day is not None:
        days = float(settings.param("days_per_month"))
        est.per_month = (est.cost[0] * settings.launches_per_day * days, est.cost[1] * settings.launches_per_day * days)
    threshold = float(settings.param("soci_threshold_bytes"))
    est.soci = {"applies": est.compressed > threshold, "compressed_bytes": est.compressed, "threshold_bytes": threshold}
    if not calib.measured:
        est.confidence = "low"
        est.notes.append("extraction rates are defaults, not measured on this machine (run with --calibrate)")
    return est


def neighbour_sizes(settings: Settings, task: TaskSize = None) -> tuple:
    """(smaller, bigger) valid task sizes: the next vCPU tier down/up, memory as close to the
    task's as that tier allows. None at either end."""
    task = task or settings.task
    sizes = settings.data.valid_sizes()
    tiers = sorted({s.vcpu for s in sizes})
    i = tiers.index(task.vcpu)

    def closest(vcpu: float) -> TaskSize:
        mems = sorted(s.memory_gb for s in sizes if s.vcpu == vcpu)
        if vcpu < task.vcpu:  # smaller tier: the most memory up to the task's
            below = [m for m in mems if m <= task.memory_gb]
            return TaskSize(vcpu, below[-1] if below else mems[0])
        above = [m for m in mems if m >= task.memory_gb]  # bigger tier: the least memory from the task's
        return TaskSize(vcpu, above[0] if above else mems[-1])

    smaller = closest(tiers[i - 1]) if i > 0 else None
    bigger = closest(tiers[i + 1]) if i + 1 < len(tiers) else None
    return smaller, bigger


def oom_risk(peak_memory, settings: Settings, task: TaskSize = None, oom_killed: bool = False) -> dict:
    """Peak start-up memory against the task's hard limit, and the smallest size that fits it."""
    task = task or settings.task
    warn = float(settings.param("oom_warn_ratio"))
    headroom = float(settings.param("memory_headroom"))
    out = {"peak_bytes": peak_memory, "limit_bytes": task.memory_bytes, "ratio": None, "risk": bool(oom_killed),
           "oom_killed": bool(oom_killed), "warn_ratio": warn, "recommended_task": None, "smallest_task": None, "note": None}
    if peak_memory is None:
        out["note"] = "peak memory was not measured"
        return out
    out["ratio"] = peak_memory / task.memory_bytes
    out["risk"] = out["risk"] or out["ratio"] > warn
    # recommended: keep the task's vCPU (readiness was measured with it), fit the memory;
    # smallest: the cheapest size of all that holds the peak
    fit = settings.data.smallest_fitting(peak_memory, min_vcpu=task.vcpu, headroom=headroom)
    cheapest = settings.data.smallest_fitting(peak_memory, headroom=headroom)
    out["recommended_task"] = fit.label if fit else None
    out["smallest_task"] = cheapest.label if cheapest else None
    if oom_killed:
        out["note"] = f"killed for running out of memory under {task.label}"
    elif out["risk"]:
        out["note"] = (f"peak {peak_memory / 2**20:.0f} MiB is {out['ratio']:.0%} of the task's "
                       f"{task.memory_gb:g} GB: OOM risk")
    if cheapest is None:
        out["note"] = (out["note"] + "; " if out["note"] else "") + "no valid Fargate size holds the peak with headroom"
    return out


def what_ifs(layers: list, settings: Settings, calib, start_s, ready_s, peak_memory=None) -> list:
    """Estimates that need no rebuild: zstd layers, a smaller and a bigger task, SOCI lazy loading."""
    out = []
    task = settings.task
    if all(lay.zstd_compressed is not None for lay in layers) and layers:
        z = estimate(layers, settings, calib, start_s, ready_s, codec="zstd", name="zstd",
                     label=f"zstd layers (level 3), {task.label}")
        before = sum(lay.compressed for lay in _unique(layers))
        z.notes.append(f"compressed {before / 1e6:.1f} MB → {z.compressed / 1e6:.1f} MB with zstd level 3 "
                       "(re-compressed here)")
        out.append(z)
    smaller, bigger = neighbour_sizes(settings)
    for name, size in (("smaller-task", smaller), ("bigger-task", bigger)):
        if size is None:
            continue
        scaled_ready = None if ready_s is None else ready_s * _ready_scale(task.vcpu, size.vcpu)
        e = estimate(layers, settings, calib, start_s, scaled_ready, task=size, name=name,
                     label=f"task {size.label}", ready_label=f"scaled by vCPU {task.vcpu:g}→{size.vcpu:g}, not measured")
        e.ready_scaled = True
        if peak_memory is not None and peak_memory * (1 + float(settings.param("memory_headroom"))) > size.memory_bytes:
            e.notes.append(f"{size.label} has less memory than the measured peak {peak_memory / 2**20:.0f} MiB "
                           "plus headroom: OOM risk")
        out.append(e)
    total = sum(lay.compressed for lay in _unique(layers))
    threshold = float(settings.param("soci_threshold_bytes"))
    if total > threshold:
        out.append(_soci(layers, settings, calib, start_s, ready_s))
    return out


def _ready_scale(vcpu_from: float, vcpu_to: float) -> float:
    """CPU-bound start-up: time scales with the inverse of the usable vCPU."""
    return vcpu_from / vcpu_to


def _unique(layers: list) -> list:
    seen, out = set(), []
    for lay in layers:
        if lay.digest not in seen:
            seen.add(lay.digest)
            out.append(lay)
    return out


def _soci(layers, settings, calib, start_s, ready_s) -> Estimate:
    """SOCI: indexed layers (≥ soci_min_layer_bytes) are lazily loaded — only the start-up working set
    (soci_startup_fraction of bytes and entries) is fetched before start; small layers are pulled whole."""
    fraction = float(settings.param("soci_startup_fraction"))
    min_layer = float(settings.param("soci_min_layer_bytes"))
    lazy = []
    for lay in _unique(layers):
        if lay.compressed >= min_layer:
            lazy.append(LayerInfo(lay.index, lay.digest, lay.compressed * fraction, lay.uncompressed * fraction,
                                  int(lay.files * fraction), lay.codec, lay.media_type, lay.created_by))
        else:
            lazy.append(lay)
    e = estimate(lazy, settings, calib, start_s, ready_s, name="soci", label=f"SOCI lazy loading, {settings.task.label}")
    e.confidence = "low"
    e.notes.append(f"image is over {float(settings.param('soci_threshold_bytes')) / 1e6:.0f} MB compressed: SOCI "
                   f"applies (ECR + SOCI index); assumes {fraction:.1%} of each indexed layer is read at start-up "
                   "— low confidence, and the app may stall later on lazily fetched files")
    return e
