"""The cold-start model: provisioning + registry + downloads + extraction + start + readiness.

Downloads: layers in manifest order, at most ``concurrency`` at a time, each
stream at ``min(per-connection rate, task bandwidth / active streams)``.
Extraction: serial in layer order and overlapped with downloads — layer i starts
when it is downloaded and layer i-1 is extracted — taking
``uncompressed / rate + files × per-file cost``. Measured here, per-file cost
dominates cold pulls (≈0.5 ms a file), so file counts are part of the model.
The decompression+write rate is measured on this machine and scaled to the
task's vCPU: gzip uses one core, zstd about two, and a fractional vCPU task is
throttled to its share.
"""
from __future__ import annotations

__all__ = ["LayerSpec", "Rates", "PullTimeline", "simulate_pull", "scale_rates", "cold_start"]


class LayerSpec:
    """What the model needs of a layer."""

    __slots__ = ("index", "compressed", "uncompressed", "files", "codec")

    def __init__(self, index: int, compressed: int, uncompressed: int, files: int, codec: str = "gzip"):
        self.index = index
        self.compressed = max(int(compressed), 0)
        self.uncompressed = max(int(uncompressed), 0)
        self.files = max(int(files), 0)
        self.codec = codec  # 'gzip' | 'zstd' | 'none'

    def to_dict(self) -> dict:
        return {"index": self.index, "compressed": self.compressed, "uncompressed": self.uncompressed,
                "files": self.files, "codec": self.codec}


class Rates:
    """Throughputs the model runs on (bytes/s, seconds)."""

    __slots__ = ("per_connection", "bandwidth", "concurrency", "extract_bytes_per_s", "per_file_s",
                 "per_layer_s", "registry_s")

    def __init__(self, per_connection: float, bandwidth: float, concurrency: int, extract_bytes_per_s: dict,
                 per_file_s: float, per_layer_s: float = 0.0, registry_s: float = 0.0):
        self.per_connection = float(per_connection)
        self.bandwidth = float(bandwidth)
        self.concurrency = max(int(concurrency), 1)
        self.extract_bytes_per_s = dict(extract_bytes_per_s)  # codec → uncompressed bytes/s
        self.per_file_s = float(per_file_s)
        self.per_layer_s = float(per_layer_s)  # fixed cost per layer (snapshot, mount, sync)
        self.registry_s = float(registry_s)  # token + manifest + config round trips

    def to_dict(self) -> dict:
        return {"per_connection_bytes_per_s": self.per_connection, "bandwidth_bytes_per_s": self.bandwidth,
                "concurrency": self.concurrency, "extract_bytes_per_s": self.extract_bytes_per_s,
                "per_file_s": self.per_file_s, "per_layer_s": self.per_layer_s, "registry_s": self.registry_s}


class PullTimeline:
    """Per layer: download start/end and extract start/end, seconds from the pull's start."""

    def __init__(self):
        self.layers: list = []  # dicts: index, download_start, download_end, extract_start, extract_end

    @property
    def total(self) -> float:
        return max((lay["extract_end"] for lay in self.layers), default=0.0)

    @property
    def download_time(self) -> float:
        return max((lay["download_end"] for lay in self.layers), default=0.0)

    def to_dict(self) -> dict:
        return {"total_s": self.total, "layers": self.layers}


def _downloads(layers: list, rates: Rates, offset: float) -> list:
    """Event simulation of the download queue; returns (start, end) per layer."""
    n = len(layers)
    remaining = [float(lay.compressed) for lay in layers]
    start = [None] * n
    end = [None] * n
    t = offset
    queue = list(range(n))
    active: list = []
    while queue or active:
        while queue and len(active) < rates.concurrency:
            i = queue.pop(0)
            start[i] = t
            if remaining[i] <= 0:
                end[i] = t
                continue
            active.append(i)
        if not active:
            continue
        speed = min(rates.per_connection, rates.bandwidth / len(active))
        if speed <= 0:
            raise ValueError("download speed must be positive")
        dt = min(remaining[i] for i in active) / speed
        t += dt
        still = []
        for i in active:
            remaining[i] -= speed * dt
            if remaining[i] <= 1e-6:
                end[i] = t
            else:
                still.append(i)
        active = still
    return list(zip(start, end))


def simulate_pull(layers: list, rates: Rates) -> PullTimeline:
    """Timeline of a pull of ``layers`` (in manifest order) at ``rates``."""
    timeline = PullTimeline()
    spans = _downloads(layers, rates, rates.registry_s)
    prev_end = rates.registry_s
    for lay, (d0, d1) in zip(layers, spans):
        rate = rates.extract_bytes_per_s.get(lay.codec) or rates.extract_bytes_per_s.get("gzip")
        work = lay.uncompressed / rate + lay.files * rates.per_file_s + rates.per_layer_s
        e0 = max(d1, prev_end)
        e1 = e0 + work
        prev_end = e1
        timeline.layers.append({"index": lay.index, "download_start": d0, "download_end": d1,
                                "extract_start": e0, "extract_end": e1})
    return timeline


def scale_rates(local_extract: dict, local_cores: float, vcpu: float, gzip_cores: float, zstd_cores: float) -> dict:
    """Scale a locally measured single-core decompression+write rate to a task's vCPU.

    ``local_extract`` holds per-codec rates measured with one core. gzip cannot use
    more than ``gzip_cores``, zstd about ``zstd_cores``; a fractional task (0.25,
    0.5 vCPU) is throttled to that share of a core.
    """
    out = {}
    for codec, rate in local_extract.items():
        usable = {"gzip": gzip_cores, "zstd": zstd_cores}.get(codec, 1.0)
        out[codec] = rate * min(vcpu, usable)
    return out


def cold_start(pull: PullTimeline, provisioning: tuple, container_start: float, ready: float) -> dict:
    """The terms of a Fargate cold start, each shown, low and high."""
    lo, hi = provisioning
    terms = {
        "provisioning_s": [lo, hi],
        "pull_s": pull.total,
        "container_start_s": container_start,
        "ready_s": ready,
    }
    billed = pull.total + container_start + ready  # billing starts with the download
    terms["total_s"] = [lo + billed, hi + billed]
    terms["billed_cold_start_s"] = billed
    return terms
