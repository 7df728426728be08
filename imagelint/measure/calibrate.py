"""This machine's pull rates, fitted from real cold pulls.

Two rates feed the model (``imagelint.estimate``):

* per-connection download rate: compressed bytes / (download end - download start) of layers big
  enough that the fixed cost of a request does not dominate (median over layers);
* the extraction cost of a layer, ``seconds = per_layer + uncompressed_bytes / rate + files × per_file``,
  fitted by non-negative least squares over every layer of every measured cold pull (no numpy: the
  3×3 normal equations are solved directly, over each subset of free variables — with three unknowns
  the active-set search is eight tiny solves).

Besides those: the local fixed cost from the pull's start to the first download (manifest and
config round trips, ``registry_s``) and the local create+start time of a container
(``container_start_s``), so that the model can predict a whole local pull+start.

Calibrations are stored in the cache dir (``measure-calibration.json``) under the identity of the
machine and engine that produced them, and reused by later runs on the same machine and engine.
"""
from __future__ import annotations

import io
import json
import math
import os
import platform
import statistics
import tarfile
import tempfile
import time

__all__ = ["Calibration", "ExtractSample", "DownloadSample", "CalibrationError", "nnls", "fit_extraction",
           "fit_download_rate", "samples_from_pull", "median_samples", "calibrate", "default_calibration", "machine_identity",
           "identity_key", "cache_path", "load_calibration", "save_calibration", "build_calibration_image",
           "codec_decompress_seconds_per_byte", "CALIBRATION_VERSION", "MIN_DOWNLOAD_BYTES"]

CALIBRATION_VERSION = 1
MIN_DOWNLOAD_BYTES = 4 << 20  # smaller downloads are dominated by per-request latency
CACHE_FILE = "measure-calibration.json"


class CalibrationError(ValueError):
    """Not enough (or unusable) measurements, or a bad calibration file; one line."""


class ExtractSample:
    """One layer's measured extraction: uncompressed tar bytes, file count, seconds."""

    __slots__ = ("uncompressed", "files", "seconds", "compressed", "codec", "key")

    def __init__(self, uncompressed: int, files: int, seconds: float, compressed: int = 0, codec: str = "gzip",
                 key: str = None):
        self.uncompressed = int(uncompressed)
        self.files = int(files)
        self.seconds = float(seconds)
        self.compressed = int(compressed)
        self.codec = codec
        self.key = key  # the layer's digest: samples of one layer over several runs share it


class DownloadSample:
    __slots__ = ("compressed", "seconds")

    def __init__(self, compressed: int, seconds: float):
        self.compressed = int(compressed)
        self.seconds = float(seconds)


class Calibration:
    """Rates measured on this machine (or defaults, then ``source`` says so)."""

    def __init__(self, per_connection_bytes_per_s: float, extract_bytes_per_s: dict, per_file_s: float,
                 per_layer_s: float, registry_s: float = 0.0, container_start_s: float = None,
                 identity: dict = None, source: str = "measured", created: str = None, fit: dict = None):
        self.per_connection_bytes_per_s = float(per_connection_bytes_per_s)
        self.extract_bytes_per_s = {k: float(v) for k, v in extract_bytes_per_s.items()}
        self.per_file_s = float(per_file_s)
        self.per_layer_s = float(per_layer_s)
        self.registry_s = float(registry_s)
        self.container_start_s = None if container_start_s is None else float(container_start_s)
        self.identity = dict(identity or {})
        self.source = source
        self.created = created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.fit = dict(fit or {})

    @property
    def measured(self) -> bool:
        return self.source != "default"

    def to_dict(self) -> dict:
        return {"version": CALIBRATION_VERSION, "source": self.source, "created": self.created,
                "identity": self.identity,
                "per_connection_bytes_per_s": self.per_connection_bytes_per_s,
                "extract_bytes_per_s": self.extract_bytes_per_s, "per_file_s": self.per_file_s,
                "per_layer_s": self.per_layer_s, "registry_s": self.registry_s,
                "container_start_s": self.container_start_s, "fit": self.fit}

    @classmethod
    def from_dict(cls, d: dict, where: str = "calibration") -> "Calibration":
        try:
            if d.get("version") != CALIBRATION_VERSION:
                raise CalibrationError(f"{where}: calibration version {d.get('version')!r}, expected "
                                       f"{CALIBRATION_VERSION}; re-run with --calibrate")
            return cls(d["per_connection_bytes_per_s"], d["extract_bytes_per_s"], d["per_file_s"], d["per_layer_s"],
                       d.get("registry_s", 0.0), d.get("container_start_s"), d.get("identity"),
                       d.get("source", "measured"), d.get("created"), d.get("fit"))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            if isinstance(e, CalibrationError):
                raise
            raise CalibrationError(f"{where}: not a valid imagelint calibration ({e})") from None

    def __repr__(self) -> str:
        return (f"Calibration(download {self.per_connection_bytes_per_s / 1e6:.0f} MB/s, gzip "
                f"{self.extract_bytes_per_s.get('gzip', 0) / 1e6:.0f} MB/s, {self.per_file_s * 1e3:.3f} ms/file, "
                f"{self.per_layer_s * 1e3:.0f} ms/layer, {self.source})")


def default_calibration() -> Calibration:
    """Prior rates for when nothing was measured (a 2-core VM with overlay2, measured once by hand):
    labelled ``default`` everywhere they are used."""
    return Calibration(per_connection_bytes_per_s=200e6, extract_bytes_per_s={"gzip": 120e6, "zstd": 250e6,
                                                                                "none": 400e6},
                       per_file_s=0.0005, per_layer_s=0.055, registry_s=0.05, container_start_s=0.3,
                       identity=machine_identity(), source="default")


# --- linear algebra (no numpy) -----------------------------------------------------------------------

def _solve(matrix: list, vector: list):
    """Gaussian elimination with partial pivoting; None when singular."""
    n = len(vector)
    a = [list(row) + [vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-300:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= f * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        s = a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))
        x[r] = s / a[r][r]
    return x


def nnls(rows: list, targets: list) -> list:
    """Minimise ||A x - b|| subject to x >= 0, for a handful of columns.

    Tries every subset of columns left free (the others fixed at zero), solves its normal
    equations and keeps the feasible solution with the smallest residual. Columns are scaled to
    unit norm first, so bytes (~1e8) and counts (~1e3) do not wreck the conditioning."""
    ncols = len(rows[0]) if rows else 0
    norms = [math.sqrt(sum(r[j] ** 2 for r in rows)) or 1.0 for j in range(ncols)]
    scaled = [[r[j] / norms[j] for j in range(ncols)] for r in rows]
    best, best_res = [0.0] * ncols, sum(t * t for t in targets)
    for mask in range(1, 1 << ncols):
        cols = [j for j in range(ncols) if mask >> j & 1]
        ata = [[sum(r[i] * r[j] for r in scaled) for j in cols] for i in cols]
        atb = [sum(r[i] * t for r, t in zip(scaled, targets)) for i in cols]
        sol = _solve(ata, atb)
        if sol is None or any(v < 0 for v in sol):
            continue
        x = [0.0] * ncols
        for j, v in zip(cols, sol):
            x[j] = v
        res = sum((sum(r[j] * x[j] for j in range(ncols)) - t) ** 2 for r, t in zip(scaled, targets))
        if res < best_res - 1e-15:
            best, best_res = x, res
    return [best[j] / norms[j] for j in range(ncols)]


def fit_extraction(samples: list) -> dict:
    """Fit ``seconds = per_layer + bytes × per_byte + files × per_file`` (all ≥ 0).

    Returns per_layer_s, bytes_per_s (1/per_byte; inf when the byte term is zero), per_file_s and
    fit statistics (n, r2, mean absolute error)."""
    if len(samples) < 3:
        raise CalibrationError(f"need at least 3 measured layers to fit the extraction model, have {len(samples)}")
    rows = [[1.0, float(s.uncompressed), float(s.files)] for s in samples]
    targets = [s.seconds for s in samples]
    per_layer, per_byte, per_file = nnls(rows, targets)
    predicted = [per_layer + per_byte * r[1] + per_file * r[2] for r in rows]
    mean = sum(targets) / len(targets)
    ss_tot = sum((t - mean) ** 2 for t in targets) or 1e-12
    ss_res = sum((t - p) ** 2 for t, p in zip(targets, predicted))
    return {"per_layer_s": per_layer, "bytes_per_s": (1.0 / per_byte) if per_byte > 0 else float("inf"),
            "per_file_s": per_file, "n": len(samples), "r2": 1.0 - ss_res / ss_tot,
            "mean_abs_error_s": sum(abs(t - p) for t, p in zip(targets, predicted)) / len(targets)}


def fit_download_rate(samples: list, min_bytes: int = MIN_DOWNLOAD_BYTES):
    """Median per-layer rate (bytes/s) of downloads of at least ``min_bytes``; None if there are none."""
    rates = [s.compressed / s.seconds for s in samples if s.compressed >= min_bytes and s.seconds > 0]
    return statistics.median(rates) if rates else None


def samples_from_pull(pull, layers: list) -> tuple:
    """(extract samples, download samples, registry seconds) of one cold :class:`PullTiming`.

    ``layers``: the image's layers (objects with ``digest``, ``compressed``, ``uncompressed``,
    ``files``, ``codec``), matched to the engine's short layer ids by digest. A layer's extraction
    time is counted the way the model schedules it: from the moment it could start (downloaded, and
    the previous layer extracted) to its ``Pull complete`` — so the engine's per-layer set-up before
    its first ``Extracting`` event is included. A pull with cached layers gives no extract samples
    (extraction of the layer after a cached one would look too long)."""
    by_short = {}
    for lay in layers:
        digest = getattr(lay, "digest", None) or ""
        by_short[digest.split(":")[-1][:12]] = lay
    extract, download = [], []
    first_download = None
    prev_end = None
    cold = not any(lt.cached for lt in pull.layers)
    for lt in pull.layers:
        lay = by_short.get(lt.id)
        if lt.cached or lt.extract_end is None or lt.download_end is None:
            continue
        if lt.download_start is not None:
            first_download = lt.download_start if first_download is None else min(first_download, lt.download_start)
        could_start = lt.download_end if prev_end is None else max(lt.download_end, prev_end)
        prev_end = lt.extract_end
        if lay is None:
            continue
        if cold:
            extract.append(ExtractSample(lay.uncompressed, lay.files, max(lt.extract_end - could_start, 0.0),
                                         lay.compressed, lay.codec, key=lay.digest))
        if lt.download_start is not None:
            download.append(DownloadSample(lay.compressed, lt.download_end - lt.download_start))
    registry_s = (first_download - pull.start) if (first_download is not None and pull.start is not None) else None
    return extract, download, registry_s


def median_samples(samples: list) -> list:
    """One sample per layer (``key``): the median duration over runs. A slow first run (fresh
    engine, cold page cache) then does not drag the fit."""
    groups = {}
    for s in samples:
        groups.setdefault(s.key or id(s), []).append(s)
    out = []
    for group in groups.values():
        first = group[0]
        out.append(ExtractSample(first.uncompressed, first.files, statistics.median(g.seconds for g in group),
                                 first.compressed, first.codec, key=first.key))
    return out


def codec_decompress_seconds_per_byte(sample_bytes: int = 16 << 20) -> dict:
    """In-process decompression cost per uncompressed byte for gzip and zstd (level 3) on this CPU,
    on half random, half text data (a typical layer mix). Used to derive the zstd extraction rate
    from the measured gzip one: same write cost, different decompression cost."""
    import zlib
    half = sample_bytes // 2
    text = b"".join(b"%d some text of a typical layer /usr/lib/x86_64-linux-gnu/%d\n" % (i, i * 7)
                    for i in range(half // 48))[:half]
    data = os.urandom(half) + text
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    gz_blob = gz.compress(data) + gz.flush()
    out = {}
    t0 = time.perf_counter()
    zlib.decompress(gz_blob, 47)
    out["gzip"] = (time.perf_counter() - t0) / len(data)
    try:
        import zstandard
        z_blob = zstandard.ZstdCompressor(level=3).compress(data)
        dec = zstandard.ZstdDecompressor()
        t0 = time.perf_counter()
        dec.decompress(z_blob, max_output_size=len(data) + 1)
        out["zstd"] = (time.perf_counter() - t0) / len(data)
    except ImportError:
        out["zstd"] = out["gzip"] * 0.3  # zstd decodes ~3x faster than zlib (facebook/zstd README)
    out["none"] = 0.0
    return out


def calibrate(pulls_with_layers: list, container_starts: list = (), identity: dict = None,
              image: str = None) -> Calibration:
    """A :class:`Calibration` from cold pulls: ``[(PullTiming, layers), ...]`` and the measured
    create+start seconds of containers (``container_starts``)."""
    extract, download, registry = [], [], []
    for pull, layers in pulls_with_layers:
        e, d, r = samples_from_pull(pull, layers)
        extract += e
        download += d
        if r is not None:
            registry.append(max(r, 0.0))
    fit = fit_extraction(median_samples(extract))
    rate = fit_download_rate(download)
    if rate is None:
        big = max((s.compressed for s in download), default=0)
        raise CalibrationError(f"no downloaded layer of at least {MIN_DOWNLOAD_BYTES >> 20} MiB (largest "
                               f"{big} bytes): cannot measure the download rate; calibrate with a bigger image")
    gzip_rate = fit["bytes_per_s"]
    # Split the byte cost into decompression and writing, then swap in zstd's decompression.
    codec = codec_decompress_seconds_per_byte()
    per_byte = 0.0 if math.isinf(gzip_rate) else 1.0 / gzip_rate
    write = max(per_byte - codec["gzip"], per_byte * 0.2)
    rates = {"gzip": gzip_rate,
             "zstd": 1.0 / (write + codec["zstd"]) if write + codec["zstd"] > 0 else float("inf"),
             "none": 1.0 / write if write > 0 else float("inf")}
    starts = [s for s in container_starts if s is not None]
    fit_info = {k: fit[k] for k in ("n", "r2", "mean_abs_error_s")}
    fit_info.update({"download_samples": len([s for s in download if s.compressed >= MIN_DOWNLOAD_BYTES]),
                     "codec_seconds_per_byte": codec, "image": image})
    return Calibration(rate, rates, fit["per_file_s"], fit["per_layer_s"],
                       statistics.median(registry) if registry else 0.0,
                       statistics.median(starts) if starts else None,
                       identity or machine_identity(), "measured", fit=fit_info)


# --- identity and persistence ------------------------------------------------------------------------

def machine_identity(engine_info: dict = None) -> dict:
    """What a calibration is valid for: host, CPU, cores, kernel, and the engine (version, storage)."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ident = {"host": platform.node(), "cpu": cpu or platform.processor(), "cores": os.cpu_count() or 1,
             "kernel": platform.release()}
    if engine_info:
        ident["engine_version"] = engine_info.get("ServerVersion")
        ident["storage_driver"] = engine_info.get("Driver")
    return ident


def identity_key(identity: dict) -> str:
    return "|".join(str(identity.get(k, "")) for k in ("host", "cpu", "cores", "kernel", "engine_version",
                                                        "storage_driver"))


def cache_path() -> str:
    from imagelint.yamlcache import cache_dir
    return os.path.join(cache_dir(), CACHE_FILE)


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read the calibration file: {e.strerror}") from None
    except ValueError as e:
        raise CalibrationError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: not an imagelint calibration file")
    return data


def load_calibration(path: str = None, identity: dict = None):
    """An explicit file (``--calibration FILE``: one calibration, any machine), or the cache entry for
    ``identity`` (None when there is none or it does not match)."""
    if path:
        data = _read_json(path)
        if "entries" in data:  # a copy of the cache file: take the matching or the only entry
            entries = data["entries"] or {}
            pick = entries.get(identity_key(identity)) if identity else None
            if pick is None and len(entries) == 1:
                pick = next(iter(entries.values()))
            if pick is None:
                raise CalibrationError(f"{path}: no calibration for this machine and engine in the file")
            data = pick
        return Calibration.from_dict(data, path)
    cache = cache_path()
    if not os.path.isfile(cache) or identity is None:
        return None
    try:
        data = _read_json(cache)
        entry = (data.get("entries") or {}).get(identity_key(identity))
        return Calibration.from_dict(entry, cache) if entry else None
    except CalibrationError:
        return None  # a stale or damaged cache is not the user's problem: measure again


def save_calibration(calib: Calibration, path: str = None) -> str:
    """Write ``calib`` to ``path`` (one calibration) or into the cache file under its identity."""
    if path:
        target, data = path, calib.to_dict()
    else:
        target = cache_path()
        try:
            data = _read_json(target) if os.path.isfile(target) else {}
        except CalibrationError:
            data = {}
        data.setdefault("version", CALIBRATION_VERSION)
        data.setdefault("entries", {})[identity_key(calib.identity)] = calib.to_dict()
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, target)  # atomic: a parallel run never reads half a file
    return target


# --- the calibration image ---------------------------------------------------------------------------

def _text(n: int, seed: int) -> bytes:
    """``n`` bytes of compressible, log-like text."""
    line_parts = []
    i, size = seed, 0
    while size < n:
        line = b"%08d /usr/share/lib%d/module_%d.py status=ok value=%d\n" % (i, i % 97, i % 1013, i * 31 % 100003)
        line_parts.append(line)
        size += len(line)
        i += 1
    return b"".join(line_parts)[:n]


def _layer_specs(scale: float = 1.0) -> list:
    """Calibration layers chosen to separate the three extraction terms: many small files, big
    incompressible bytes, big compressible bytes, a mix, and a near-empty layer."""
    mb = 1 << 20
    s = scale
    return [
        ("small-files", [("f", 3000, 1024, "text")]),
        ("random", [("r", 3, int(16 * mb * s), "random")]),
        ("text", [("t", 8, int(6 * mb * s), "text")]),
        ("mixed", [("m", 600, 32 * 1024, "random"), ("n", 600, 32 * 1024, "text")]),
        ("tiny", [("x", 1, 100, "text")]),
        ("tiny-dir", [("y", 40, 300, "text")]),  # near-empty layers pin the per-layer cost
        ("tiny-bin", [("z", 1, 256 * 1024, "random")]),
        ("many-files", [("e", 6000, 200, "text")]),
        ("big-random", [("b", 1, int(40 * mb * s), "random")]),
    ]


def _layer_tar(path: str, name: str, groups: list, seed: int) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo(f"cal/{name}")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(d)
        for prefix, count, size, kind in groups:
            for i in range(count):
                data = os.urandom(size) if kind == "random" else _text(size, seed + i * 17)
                info = tarfile.TarInfo(f"cal/{name}/{prefix}{i:05d}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))


def build_calibration_image(client, tag: str, busybox: str = "/bin/busybox", scale: float = 1.0) -> str:
    """Load a generated calibration image into the engine of ``client`` as ``tag`` (``docker load`` of
    a docker-archive written to a temp dir, removed afterwards). Its command is ``busybox true`` when
    a static busybox exists (so its start can be timed), else none."""
    import hashlib
    workdir = tempfile.mkdtemp(prefix="imagelint-calibration-")
    try:
        layer_files = []
        if os.path.isfile(busybox):
            path = os.path.join(workdir, "layer-busybox.tar")
            with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
                info = tar.gettarinfo(busybox, arcname="bin/busybox")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(busybox, "rb") as f:
                    tar.addfile(info, f)
            layer_files.append(path)
        for n, (name, groups) in enumerate(_layer_specs(scale)):
            path = os.path.join(workdir, f"layer-{name}.tar")
            _layer_tar(path, name, groups, seed=n * 100003)
            layer_files.append(path)
        diff_ids, names = [], []
        for path in layer_files:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            diff_ids.append("sha256:" + h.hexdigest())
            names.append(h.hexdigest() + "/layer.tar")
        config = {"architecture": _engine_arch(), "os": "linux", "created": "2024-01-01T00:00:00Z",
                  "config": {"Cmd": ["/bin/busybox", "true"] if os.path.isfile(busybox) else None,
                             "Labels": {"imagelint.calibration": "1"}},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"imagelint calibration {os.path.basename(p)}"}
                              for p in layer_files]}
        config_bytes = json.dumps(config).encode()
        config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
        archive = os.path.join(workdir, "image.tar")
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(config_name)
            info.size = len(config_bytes)
            tar.addfile(info, io.BytesIO(config_bytes))
            for path, name in zip(layer_files, names):
                tar.add(path, arcname=name)
            manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
        api = getattr(client, "api", client)
        with open(archive, "rb") as f:
            for _ in api.load_image(f, quiet=True):
                pass
        return tag
    finally:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


def _engine_arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)
