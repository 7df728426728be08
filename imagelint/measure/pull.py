"""Time a real pull from the engine's progress stream, layer by layer.

The engine reports, per layer (short blob id): ``Pulling fs layer``, ``Waiting``,
``Downloading`` (with byte progress), ``Verifying Checksum``, ``Download complete``,
``Extracting``, ``Pull complete`` — or ``Already exists`` when the layer is cached.
We stamp each with a monotonic clock: download start = first ``Downloading``,
download end = ``Download complete``, extract start = first ``Extracting``,
extract end = ``Pull complete``.
"""
from __future__ import annotations

import time

__all__ = ["LayerTiming", "PullTiming", "PullError", "timed_pull", "split_ref"]


class PullError(RuntimeError):
    """The pull failed: not found, unauthorised, unreachable, disk full... one line."""


class LayerTiming:
    __slots__ = ("id", "index", "download_start", "download_end", "extract_start", "extract_end", "total_bytes",
                 "cached")

    def __init__(self, layer_id: str, index: int):
        self.id = layer_id
        self.index = index
        self.download_start = None
        self.download_end = None
        self.extract_start = None
        self.extract_end = None
        self.total_bytes = None  # compressed bytes the engine reported downloading
        self.cached = False  # 'Already exists': the engine had it; the pull was not cold

    def to_dict(self, t0: float = 0.0) -> dict:
        def rel(v):
            return None if v is None else round(v - t0, 6)
        return {"id": self.id, "index": self.index, "download_start": rel(self.download_start),
                "download_end": rel(self.download_end), "extract_start": rel(self.extract_start),
                "extract_end": rel(self.extract_end), "total_bytes": self.total_bytes, "cached": self.cached}


class PullTiming:
    def __init__(self, ref: str):
        self.ref = ref
        self.start = None
        self.end = None
        self.layers: list = []  # in the order the engine announced them (manifest order)
        self.digest = None

    @property
    def seconds(self) -> float:
        return (self.end or 0.0) - (self.start or 0.0)

    @property
    def cold(self) -> bool:
        return not any(lay.cached for lay in self.layers)

    def to_dict(self) -> dict:
        return {"ref": self.ref, "seconds": self.seconds, "digest": self.digest, "cold": self.cold,
                "layers": [lay.to_dict(self.start or 0.0) for lay in self.layers]}


def split_ref(ref: str) -> tuple:
    """``host:5000/a/b:tag`` → (``host:5000/a/b``, ``tag``); digests stay on the repository."""
    if "@" in ref:
        return ref, None
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def _classify(message: str, ref: str) -> str:
    m = message.lower()
    if "not found" in m or "manifest unknown" in m or "does not exist" in m:
        return f"image {ref} not found in its registry: {message}"
    if ("unauthorized" in m or "authentication required" in m or "denied" in m
            or "no basic auth credentials" in m):
        return f"registry refused {ref} (401/403): log in with `docker login` or fix ~/.docker/config.json: {message}"
    if "no space left" in m:
        return f"disk full while pulling {ref}: {message}"
    if "connection refused" in m or "no such host" in m or "timeout" in m or "dial tcp" in m:
        return f"registry for {ref} unreachable: {message}"
    return f"pull of {ref} failed: {message}"


def timed_pull(api, ref: str, timeout: float = 1800.0, on_event=None) -> PullTiming:
    """Pull ``ref`` through a docker SDK APIClient and time each layer.

    ``on_event(timing, event)`` is called for progress display. Raises PullError.
    """
    import docker.errors

    repo, tag = split_ref(ref)
    timing = PullTiming(ref)
    by_id: dict = {}
    clock = time.monotonic
    timing.start = clock()
    try:
        stream = api.pull(repo, tag=tag, stream=True, decode=True)
        for event in stream:
            now = clock()
            if now - timing.start > timeout:
                raise PullError(f"pull of {ref} did not finish within {timeout:.0f} s")
            if "error" in event or "errorDetail" in event:
                msg = (event.get("errorDetail") or {}).get("message") or event.get("error") or "unknown error"
                raise PullError(_classify(str(msg), ref))
            status = event.get("status", "")
            lid = event.get("id")
            if status.startswith("Digest:"):
                timing.digest = status.split(":", 1)[1].strip()
            if not lid or status.startswith("Pulling from"):
                if on_event:
                    on_event(timing, event)
                continue
            lay = by_id.get(lid)
            if lay is None:
                if status not in ("Pulling fs layer", "Waiting", "Already exists", "Downloading",
                                  "Verifying Checksum", "Download complete", "Extracting", "Pull complete"):
                    continue
                lay = by_id[lid] = LayerTiming(lid, len(timing.layers))
                timing.layers.append(lay)
            if status == "Already exists":
                lay.cached = True
            elif status == "Downloading":
                if lay.download_start is None:
                    lay.download_start = now
                total = (event.get("progressDetail") or {}).get("total")
                if total:
                    lay.total_bytes = total
            elif status in ("Verifying Checksum", "Download complete"):
                if lay.download_start is None:
                    lay.download_start = now
                if status == "Download complete" or lay.download_end is None:
                    lay.download_end = now
            elif status == "Extracting":
                if lay.extract_start is None:
                    lay.extract_start = now
                    if lay.download_end is None:
                        lay.download_end = now
            elif status == "Pull complete":
                lay.extract_end = now
                if lay.extract_start is None:
                    lay.extract_start = lay.download_end or now
            if on_event:
                on_event(timing, event)
    except docker.errors.NotFound as e:
        raise PullError(_classify(str(e.explanation or e), ref)) from None
    except docker.errors.APIError as e:
        raise PullError(_classify(str(e.explanation or e), ref)) from None
    except docker.errors.DockerException as e:
        raise PullError(f"engine error while pulling {ref}: {e}") from None
    timing.end = clock()
    for lay in timing.layers:  # small layers may skip some events
        if not lay.cached:
            lay.download_start = lay.download_start or timing.start
            lay.download_end = lay.download_end or lay.download_start
            lay.extract_start = lay.extract_start or lay.download_end
            lay.extract_end = lay.extract_end or timing.end
    return timing
