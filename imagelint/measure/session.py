"""A measuring session: truly cold pulls and timed starts of images, and guaranteed cleanup.

    with MeasureSession(engine="auto", push_to=None, on_progress=None) as session:
        result = session.measure("127.0.0.1:5000/api:2.3", runs=3, task_size="0.5x1", probe="http:8080/health")
        result.to_dict()

Engines: ``private`` is a throwaway dockerd of our own (:class:`ThrowawayEngine`), where every pull
is cold because we delete every image in it before each pull; ``current`` is the user's engine
(DOCKER_HOST), where only images this session pulled are removed between runs, and a warning says
so when layers stay cached because other images share them; ``auto`` picks ``private`` when a
dockerd can be started here and falls back to ``current`` with a warning.

Everything the session creates — containers, pulled images, tags, the private engine, temp dirs
— goes into a :class:`Ledger` the moment it is created, and ``__exit__`` removes all of it, also on
Ctrl-C, SIGTERM (turned into KeyboardInterrupt while the session is open) and exceptions, and
nothing else. If the process is SIGKILLed, the private engine dies with it (PDEATHSIG) and the next
session reaps its directory and, in the user's engine, containers left with our label whose owner
process is gone (same host and boot only).

Faults per image (image not found, registry unreachable or 401, engine missing, dockerd not
startable, app never ready, app crash, OOM, disk full) are recorded on that image's
:class:`ImageMeasurement` (``error``, one line) so the other images are still measured.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import uuid

from imagelint.measure.container import LABEL, StartError, StartTiming, parse_probe, timed_start
from imagelint.measure.dockerd import EngineStartError, ThrowawayEngine, can_start_engine, reap_stale_engines
from imagelint.measure.pull import PullError, PullTiming, split_ref, timed_pull

__all__ = ["MeasureSession", "ImageMeasurement", "Ledger", "MeasureError", "stats", "reap_stale_containers",
           "reap_stale_cgroups", "OWNER_LABEL"]

OWNER_LABEL = "imagelint.measure.owner"  # host:boot-id:pid:start-time of the session that made the container


class MeasureError(RuntimeError):
    """A one-line fault of one image (push failed, tag clash, engine unreachable...)."""


def stats(values) -> dict:
    """``{"median", "min", "max", "n"}`` of the numbers in ``values`` (None values skipped), or None."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


class ImageMeasurement:
    """What was measured for one image over ``runs`` runs.

    ``ref``: as the user wrote it; ``pulled_ref``: what was pulled (the ``--push-to`` copy, if any);
    ``engine``: ``private`` or ``current``; ``pulls``: one :class:`PullTiming` per run (cold);
    ``cold_starts``: one :class:`StartTiming` per run right after that pull; ``warm_starts``: one per
    run with the image already present; ``error``: one line when the image failed (``error_kind``:
    not-found, unauthorized, unreachable, disk, timeout, crash, oom, missing, engine, push, other);
    ``warnings``: one-line notes (pull not fully cold, network fallback...).
    """

    def __init__(self, ref: str, runs: int = 0, task: str = None, probe: str = None, engine: str = None):
        self.ref = ref
        self.pulled_ref = None
        self.pushed = False  # True when --push-to copied the local image to a registry first
        self.engine = engine
        self.task = task
        self.probe = probe
        self.runs = runs
        self.pulls: list = []
        self.cold_starts: list = []
        self.warm_starts: list = []
        self.error = None
        self.error_kind = None
        self.failed_start = None  # the partial StartTiming of a failed start (peak memory, exit code)
        self.warnings: list = []

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def ok(self) -> bool:
        return self.error is None

    # -- summaries: each is stats() of the per-run values -------------------------------------
    def pull_seconds(self):
        return stats(p.seconds for p in self.pulls)

    def cold_start_seconds(self):
        """create + start + ready of the start right after each cold pull."""
        return stats(s.total_seconds for s in self.cold_starts)

    def warm_start_seconds(self):
        return stats(s.total_seconds for s in self.warm_starts)

    def cold_ready_seconds(self):
        """The app's own start-up (start call done → probe succeeded) after a cold pull."""
        return stats(s.ready_seconds for s in self.cold_starts)

    def cold_total_seconds(self):
        """Pull + cold start, per run (the local analogue of a Fargate cold start minus provisioning)."""
        return stats(p.seconds + s.total_seconds for p, s in zip(self.pulls, self.cold_starts)
                     if s.total_seconds is not None)

    @property
    def peak_memory(self):
        """Highest start-up memory seen in any start (bytes), or None."""
        starts = self.cold_starts + self.warm_starts + ([self.failed_start] if self.failed_start else [])
        peaks = [s.peak_memory for s in starts if s.peak_memory is not None]
        return max(peaks) if peaks else None

    @property
    def memory_limit(self):
        starts = self.cold_starts + self.warm_starts + ([self.failed_start] if self.failed_start else [])
        return next((s.memory_limit for s in starts if s.memory_limit), None)

    @property
    def oom_killed(self) -> bool:
        starts = self.cold_starts + self.warm_starts + ([self.failed_start] if self.failed_start else [])
        return any(s.oom_killed for s in starts)

    def to_dict(self) -> dict:
        """JSON-ready. Cold starts carry ``at`` offsets from the start of their run's pull."""
        cold = []
        for i, s in enumerate(self.cold_starts):
            t0 = self.pulls[i].start if i < len(self.pulls) else None
            cold.append(s.to_dict(t0))
        return {"ref": self.ref, "pulled_ref": self.pulled_ref, "pushed": self.pushed, "engine": self.engine,
                "task": self.task, "probe": self.probe, "runs": self.runs, "error": self.error,
                "error_kind": self.error_kind, "warnings": list(self.warnings),
                "pulls": [p.to_dict() for p in self.pulls], "cold_starts": cold,
                "warm_starts": [s.to_dict() for s in self.warm_starts],
                "failed_start": self.failed_start.to_dict() if self.failed_start else None,
                "summary": {"pull_seconds": self.pull_seconds(), "cold_start_seconds": self.cold_start_seconds(),
                            "cold_ready_seconds": self.cold_ready_seconds(),
                            "warm_start_seconds": self.warm_start_seconds(),
                            "cold_total_seconds": self.cold_total_seconds(), "peak_memory": self.peak_memory,
                            "memory_limit": self.memory_limit, "oom_killed": self.oom_killed}}


class Ledger:
    """Everything the session created, recorded the moment it exists (before, when the creating
    call could be interrupted half-way). ``kind``: container, image, tag, engine, tempdir;
    ``where``: ``private``/``current`` engine or ``local`` (files)."""

    def __init__(self):
        self.items: list = []
        self._lock = threading.Lock()

    def add(self, kind: str, where: str, ident) -> None:
        with self._lock:
            if (kind, where, ident) not in self.items:
                self.items.append((kind, where, ident))

    def discard(self, kind: str, where: str, ident) -> None:
        with self._lock:
            if (kind, where, ident) in self.items:
                self.items.remove((kind, where, ident))

    def has(self, kind: str, where: str, ident) -> bool:
        return (kind, where, ident) in self.items

    def of(self, kind: str, where: str = None) -> list:
        return [i for k, w, i in list(self.items) if k == kind and (where is None or w == where)]

    def __len__(self) -> int:
        return len(self.items)


# --- owners of labelled containers (for reaping after a SIGKILL) --------------------------------

def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_tag() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{_boot_id()}:{pid}:{_start_time(pid)}"


def _owner_dead(owner: str) -> bool:
    """True only when the owner was a process of this host and boot that no longer exists."""
    try:
        host, boot, pid, start = owner.rsplit(":", 3)
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or boot != _boot_id() or pid == os.getpid():
        return False
    now = _start_time(pid)
    return now is None or now != start


def reap_stale_containers(client) -> list:
    """Remove containers carrying our label whose owning imagelint process (same host, same boot)
    is gone — left by a session that was SIGKILLed. Returns their ids."""
    api = getattr(client, "api", client)
    removed = []
    try:
        found = api.containers(all=True, filters={"label": OWNER_LABEL})
    except Exception:
        return removed
    for c in found:
        owner = (c.get("Labels") or {}).get(OWNER_LABEL, "")
        if _owner_dead(owner):
            try:
                api.remove_container(c["Id"], force=True, v=True)
                removed.append(c["Id"])
            except Exception:
                pass
    return removed


# --- helpers ---------------------------------------------------------------------------------------

def _exists(api, ref: str):
    """The image's inspect dict in that engine, or None."""
    import docker.errors
    try:
        return api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.NotFound:
        return None


def _push_target(ref: str, registry: str) -> str:
    """``api:2.3`` + ``127.0.0.1:5000`` → ``127.0.0.1:5000/api:2.3`` (registry host of ``ref`` dropped)."""
    registry = registry.rstrip("/")
    for scheme in ("https://", "http://"):
        if registry.startswith(scheme):
            registry = registry[len(scheme):]
    name = ref
    if "@" in name:
        name, _, digest = name.partition("@")
        tag = "sha256-" + digest.split(":")[-1][:16]
        repo = name.rsplit(":", 1)[0] if name.rfind(":") > name.rfind("/") else name
    else:
        repo, tag = split_ref(name)
    first, slash, rest = repo.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        repo = rest
    if repo.startswith("library/"):
        repo = repo[len("library/"):]
    return f"{registry}/{repo}:{tag}"


def _classify_push(message: str, target: str) -> str:
    m = message.lower()
    if "unauthorized" in m or "authentication required" in m or "denied" in m:
        return f"--push-to: registry refused {target} (401/403): run `docker login` for it: {message}"
    if "connection refused" in m or "no such host" in m or "dial tcp" in m or "timeout" in m:
        return f"--push-to: registry unreachable for {target}: {message}"
    if "server gave http response to https client" in m:
        return (f"--push-to: {target} is a plain-HTTP registry; use 127.0.0.1:PORT or add it to the "
                f"engine's insecure-registries: {message}")
    if "no space left" in m:
        return f"--push-to: disk full while pushing {target}: {message}"
    return f"--push-to: push of {target} failed: {message}"


def _pull_error_kind(message: str) -> str:
    m = message.lower()
    for needle, kind in (("not found in its registry", "not-found"), ("registry refused", "unauthorized"),
                         ("disk full", "disk"), ("unreachable", "unreachable"), ("did not finish", "timeout")):
        if needle in m:
            return kind
    return "pull"


def _track_streams(api, sink: list) -> None:
    """Remember every streaming response of this (session-owned) API client, so that cleanup can
    close them: an interrupted pull whose connection stays open would go on in the engine and leave
    an image behind after we looked; closing it makes the engine cancel the pull."""
    original = api._post

    def _post(url, **kwargs):
        response = original(url, **kwargs)
        if kwargs.get("stream"):
            sink.append(response)
        return response
    api._post = _post


def _one_line(text) -> str:
    return " ".join(str(text).split())


class MeasureSession:
    """Context manager that measures images and removes everything it created on the way out.

    ``engine``: ``auto`` | ``private`` | ``current``. ``push_to``: a registry (``127.0.0.1:5000``) to copy
    images present in the user's engine to before pulling them. ``on_progress(ref, phase, run, detail)``:
    phase is one of ``engine``, ``push``, ``prepare``, ``pull``, ``start``, ``warm-start``, ``done``,
    ``cleanup``; ``run`` counts from 1 (0 outside runs); ``detail`` is a dict (for ``pull``:
    ``{"timing": PullTiming, "event": engine progress event}``, for ``push``: ``{"event": ...}``).
    ``session.warnings`` holds session-wide notes (e.g. the fallback to the user's engine).
    """

    def __init__(self, engine: str = "auto", push_to: str = None, on_progress=None, dockerd: str = "dockerd",
                 engine_start_timeout: float = 60.0):
        if engine not in ("auto", "private", "current"):
            raise ValueError(f"engine must be auto, private or current, not {engine!r}")
        self.engine_choice = engine
        self.push_to = push_to
        self.on_progress = on_progress
        self.dockerd = dockerd
        self.engine_start_timeout = engine_start_timeout
        self.run_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.owner = _owner_tag()
        self.ledger = Ledger()
        self.warnings: list = []
        self.engine_kind = None  # "private" or "current" once entered
        self.engine_error = None  # one line when no measuring engine is available
        self.engine = None  # the ThrowawayEngine
        self.client = None  # docker.DockerClient of the measuring engine
        self._user = None  # docker.DockerClient of the user's engine (lazy)
        self._streams: list = []  # streaming responses (pulls, pushes) to close on cleanup
        self._preexisting: dict = {}  # (where, ref) → image id present before we touched it (None: absent)
        self._old_handlers: dict = {}
        self._entered = False

    # -- context -------------------------------------------------------------------------------
    def __enter__(self) -> "MeasureSession":
        self._install_signal_handlers()
        self._entered = True
        try:
            self._setup_engine()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(propagating=exc_type is not None)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread

        def on_sigterm(signum, frame):
            raise KeyboardInterrupt("SIGTERM")
        try:
            self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_sigterm)
        except (ValueError, OSError):
            pass

    def _progress(self, ref: str, phase: str, run: int = 0, detail: dict = None) -> None:
        if self.on_progress is not None:
            self.on_progress(ref, phase, run, detail or {})

    def _setup_engine(self) -> None:
        import docker
        reap_stale_engines()
        reap_stale_cgroups()
        choice = self.engine_choice
        if choice in ("auto", "private"):
            ok, why = can_start_engine(self.dockerd)
            if ok:
                self._progress("", "engine", 0, {"engine": "private"})
                engine = ThrowawayEngine(self.dockerd, start_timeout=self.engine_start_timeout)
                self.ledger.add("engine", "private", engine)  # before start: a Ctrl-C in start is covered
                try:
                    engine.start()
                    self.engine = engine
                    self.client = docker.DockerClient(base_url=engine.url, timeout=300)
                    _track_streams(self.client.api, self._streams)
                    self.engine_kind = "private"
                    return
                except EngineStartError as e:
                    engine.stop()
                    self.ledger.discard("engine", "private", engine)
                    why = str(e)
                    if choice == "private":
                        self.engine_error = _one_line(why)
                        self.engine_kind = "private"
                        return
            elif choice == "private":
                self.engine_error = _one_line(f"cannot start a private Docker engine: {why}; "
                                              "use --engine current to measure with your own engine")
                self.engine_kind = "private"
                return
            self.warnings.append(_one_line(
                f"measuring with your own Docker engine, not a private one ({why}): layers that other images "
                "share stay cached, so pulls may not be fully cold"))
        self.engine_kind = "current"
        try:
            self.client = self._user_client()
        except MeasureError as e:
            self.engine_error = str(e)

    def _user_client(self):
        """The user's engine (DOCKER_HOST or the default socket); MeasureError when unreachable."""
        if self._user is None:
            import docker
            try:
                client = docker.from_env(timeout=300)
                client.ping()
                _track_streams(client.api, self._streams)
            except Exception as e:
                host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
                raise MeasureError(_one_line(f"cannot reach your Docker engine at {host}: {e}; start it or set "
                                             "DOCKER_HOST")) from None
            self._user = client
            reap_stale_containers(client)
        return self._user

    # -- temp dirs for callers (e.g. re-compressing layers) ------------------------------------------
    def make_temp_dir(self, prefix: str = "imagelint-measure-") -> str:
        """A temp dir that the session deletes on exit."""
        path = tempfile.mkdtemp(prefix=prefix)
        self.ledger.add("tempdir", "local", path)
        return path

    # -- measuring ---------------------------------------------------------------------------------
    def measure(self, ref: str, runs: int = 3, task_size="0.25x0.5", probe="exit", ready_timeout: float = 60.0,
                pull_timeout: float = 1800.0, command=None) -> ImageMeasurement:
        """Per run: make sure the image is absent, timed cold pull, timed cold start, warm start.

        ``task_size``: TaskSize or ``'0.5x1'``; ``probe``: Probe or ``exit``/``log:RE``/``tcp:P``/``http:P/PATH``;
        ``command`` overrides the image's CMD (tests). Faults end up in ``result.error``; only
        KeyboardInterrupt (Ctrl-C, SIGTERM) propagates, and ValueError for a bad probe or task size.
        """
        probe = parse_probe(probe)  # bad probe or task size: ValueError before anything runs
        if isinstance(task_size, str):
            from imagelint.fargate import parse_task_size
            task_size = parse_task_size(task_size)
        label = None if task_size is None else task_size.label
        result = ImageMeasurement(ref, runs=runs, task=label, probe=probe.text, engine=self.engine_kind)
        if not self._entered:
            raise RuntimeError("use MeasureSession as a context manager: with MeasureSession() as s: ...")
        if self.engine_error:
            result.error, result.error_kind = self.engine_error, "engine"
            return result
        try:
            pulled = result.pulled_ref = self._source_ref(ref, result)
            for run in range(1, runs + 1):
                self._progress(ref, "prepare", run)
                self._make_absent(pulled, result)
                pull = timed_pull(self.client.api, pulled, timeout=pull_timeout,
                                  on_event=lambda timing, event, run=run: self._progress(
                                      ref, "pull", run, {"timing": timing, "event": event}))
                result.pulls.append(pull)
                self._check_cold(pull, result)
                for warm in (False, True):
                    self._progress(ref, "warm-start" if warm else "start", run)
                    start = self._start(pulled, task_size, probe, ready_timeout, warm, command)
                    (result.warm_starts if warm else result.cold_starts).append(start)
                    for note in start.notes:
                        result.warn(note)
            self._progress(ref, "done", runs, {"result": result})
        except StartError as e:
            result.error, result.error_kind, result.failed_start = _one_line(e), e.kind, e.timing
        except PullError as e:
            result.error = self._pull_error_line(ref, str(e))
            result.error_kind = _pull_error_kind(result.error)
        except (MeasureError, EngineStartError) as e:
            result.error, result.error_kind = _one_line(e), "push" if "--push-to" in str(e) else "engine"
        except Exception as e:  # engine gone, disk full mid-way...: one line, the other images go on
            result.error, result.error_kind = _one_line(self._describe(e)), "other"
        if result.error:
            self._progress(ref, "done", 0, {"result": result})
        return result

    def _describe(self, e: Exception) -> str:
        text = str(getattr(e, "explanation", None) or e)
        if "no space left" in text.lower():
            return f"disk full: {text}"
        return f"{type(e).__name__}: {text}"

    def _pull_error_line(self, ref: str, message: str) -> str:
        message = _one_line(message)
        if _pull_error_kind(message) == "pull" and "no basic auth credentials" in message.lower():
            # (the engine's wording when the registry wants a login and the docker config has none)
            message = (f"registry refused {ref} (401/403): log in with `docker login` or fix "
                       f"~/.docker/config.json: {message}")
        if self.push_to is None and _pull_error_kind(message) in ("not-found", "unreachable", "unauthorized"):
            try:
                if _exists(self._user_client().api, ref) is not None:
                    message += (f"; {ref} exists in your local engine: add --push-to REGISTRY (e.g. a local "
                                "registry on 127.0.0.1:5000) to copy it there and time a real pull")
            except Exception:
                pass
        return message

    def _start(self, ref: str, task_size, probe, ready_timeout: float, warm: bool, command) -> StartTiming:
        where = self.engine_kind

        def created(container_id: str) -> None:
            self.ledger.add("container", where, container_id)

        try:
            return timed_start(self.client, ref, task_size, probe, ready_timeout=ready_timeout, run_id=self.run_id,
                               warm=warm, command=command, on_created=created,
                               labels={OWNER_LABEL: self.owner})
        finally:
            for cid in self.ledger.of("container", where):  # timed_start removed it; keep the ledger exact
                if not self._container_exists(cid):
                    self.ledger.discard("container", where, cid)

    def _container_exists(self, container_id: str) -> bool:
        import docker.errors
        try:
            self.client.api.inspect_container(container_id)
            return True
        except docker.errors.NotFound:
            return False
        except Exception:
            return True  # unknown: keep it in the ledger

    def _source_ref(self, ref: str, result: ImageMeasurement) -> str:
        """The reference to pull: ``ref``, or with --push-to and a local image, its pushed copy."""
        if not self.push_to:
            return ref
        user = self._user_client().api
        info = _exists(user, ref)
        if info is None:
            return ref  # not local: pull it from where it lives
        target = _push_target(ref, self.push_to)
        repo, tag = split_ref(target)
        existing = _exists(user, target)
        if existing is not None and existing["Id"] != info["Id"]:
            raise MeasureError(f"--push-to: {target} already names a different image in your engine; not "
                               "overwriting it — push to another registry or remove that tag")
        if existing is None:
            self._preexisting.setdefault(("current", target), None)
            self.ledger.add("tag", "current", target)  # before tagging: an interrupted tag call is covered
            user.tag(info["Id"], repo, tag)
        self._progress(ref, "push", 0, {"target": target})
        try:
            for event in user.push(repo, tag=tag, stream=True, decode=True):
                if "error" in event or "errorDetail" in event:
                    msg = (event.get("errorDetail") or {}).get("message") or event.get("error")
                    raise MeasureError(_one_line(_classify_push(str(msg), target)))
                self._progress(ref, "push", 0, {"target": target, "event": event})
        except MeasureError:
            raise
        except Exception as e:
            raise MeasureError(_one_line(_classify_push(str(getattr(e, "explanation", None) or e), target))) \
                from None
        result.pushed = True
        return target

    def _make_absent(self, ref: str, result: ImageMeasurement) -> None:
        """Make the next pull of ``ref`` cold (as far as this engine allows)."""
        api = self.client.api
        if self.engine_kind == "private":
            # every image in the private engine is ours: delete them all (another image measured
            # earlier may share layers) and prune, so each pull downloads and extracts every layer
            for img in api.images(all=True):
                try:
                    api.remove_image(img["Id"], force=True)
                except Exception:
                    pass  # a parent already removed with its child
            api.prune_images(filters={"dangling": False})
            left = api.images(all=True)
            if left:
                result.warn(f"{len(left)} image(s) could not be removed from the private engine; the pull may "
                            "not be fully cold")
            return
        key = ("current", ref)
        info = _exists(api, ref)
        if key not in self._preexisting:
            self._preexisting[key] = info["Id"] if info else None
        if info is None:
            self.ledger.add("image", "current", ref)  # the coming pull creates it: ours to remove
            return
        if self._preexisting[key] is None and (self.ledger.has("image", "current", ref)
                                               or self.ledger.has("tag", "current", ref)):
            try:
                api.remove_image(ref, force=False, noprune=False)
            except Exception as e:
                result.warn(_one_line(f"could not remove {ref} before the next pull: {e}"))
            self.ledger.add("image", "current", ref)
            return
        result.warn(f"{ref} was already in your engine and was not pulled by imagelint, so it is left alone: "
                    "its pulls are not cold (use the private engine, as root, for cold pulls)")

    def _check_cold(self, pull: PullTiming, result: ImageMeasurement) -> None:
        cached = sum(1 for lay in pull.layers if lay.cached)
        where = "the private engine" if self.engine_kind == "private" else "your engine"
        if not pull.layers:
            result.warn(f"the pull of {pull.ref} transferred no layers: the image is already in {where} (perhaps "
                        "under another name), so the pull was not cold")
        elif cached:
            result.warn(f"{cached} of {len(pull.layers)} layers of {pull.ref} were already in {where} (shared "
                        "with other images): the pull was not fully cold")

    # -- cleanup -----------------------------------------------------------------------------------
    def close(self, propagating: bool = False) -> None:
        """Remove everything in the ledger (idempotent). Ctrl-C/SIGTERM during cleanup are held back
        until it is done, then re-raised as KeyboardInterrupt unless an exception is already on its way."""
        received = []
        held = {}
        if threading.current_thread() is threading.main_thread():
            def hold(signum, frame):
                received.append(signum)
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    held[sig] = signal.signal(sig, hold)
                except (ValueError, OSError):
                    pass
        try:
            try:
                self._progress("", "cleanup", 0)
            except Exception:
                pass  # a failing progress display must not stop the cleanup
            self._cleanup()
        finally:
            for sig, old in held.items():
                signal.signal(sig, old)
            if signal.SIGTERM in self._old_handlers:
                old = self._old_handlers.pop(signal.SIGTERM)
                try:
                    signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)
                except (ValueError, OSError):
                    pass
            self._entered = False
        if received and not propagating:
            raise KeyboardInterrupt("signal during cleanup")

    def _cleanup(self) -> None:
        errors = []
        clients = {}
        if self.client is not None:
            clients[self.engine_kind] = self.client
        if self._user is not None:
            clients["current"] = self._user
        # 0. in-flight pulls/pushes: close their connections so the engine cancels them
        for response in self._streams:
            try:
                response.close()
            except Exception:
                pass
        self._streams.clear()
        # 1. containers: the ledger's, plus any with our run label (a create interrupted mid-call)
        for where, client in clients.items():
            ids = set(self.ledger.of("container", where))
            try:
                mine = client.api.containers(all=True, filters={"label": f"{LABEL}={self.run_id}"})
                ids.update(c["Id"] for c in mine)
            except Exception as e:
                errors.append(e)
            for cid in ids:
                try:
                    client.api.remove_container(cid, force=True, v=True)
                except Exception as e:
                    if "no such container" not in str(e).lower():
                        errors.append(e)
                self.ledger.discard("container", where, cid)
        # 2. images pulled and tags made in the user's engine (untag by name: never by id, never forced)
        user = clients.get("current")
        for kind in ("image", "tag"):
            for ref in self.ledger.of(kind, "current"):
                if user is not None and self._preexisting.get(("current", ref)) is None:
                    try:
                        if _exists(user.api, ref) is not None:
                            user.api.remove_image(ref, force=False, noprune=False)
                    except Exception as e:
                        errors.append(e)
                self.ledger.discard(kind, "current", ref)
        # 3. the private engine (its images and containers go with it)
        for engine in self.ledger.of("engine", "private"):
            try:
                if self.client is not None and self.engine_kind == "private":
                    self.client.close()
                engine.stop()
            except Exception as e:
                errors.append(e)
            self.ledger.discard("engine", "private", engine)
        if self.engine is not None:
            self.engine = None
            self.client = None
        _remove_engine_cgroups()
        # 4. temp dirs
        for path in self.ledger.of("tempdir", "local"):
            shutil.rmtree(path, ignore_errors=True)
            self.ledger.discard("tempdir", "local", path)
        for client in clients.values():
            try:
                client.close()
            except Exception:
                pass
        self._user = None
        if errors:
            self.warnings.append(_one_line(f"cleanup: {errors[0]}"))


def _cgroup_dirs(pid: int) -> list:
    """``/sys/fs/cgroup/<hierarchy>/imagelint-<pid>`` dirs (the private dockerd's --cgroup-parent)."""
    base = "/sys/fs/cgroup"
    name = f"imagelint-{pid}"
    try:
        hierarchies = [os.path.join(base, d) for d in os.listdir(base)] + [base]
    except OSError:
        return []
    return [os.path.join(h, name) for h in hierarchies if os.path.isdir(os.path.join(h, name))]


def _remove_engine_cgroups(pid: int = None) -> None:
    """The private dockerd runs containers under cgroup parent ``imagelint-<pid of measure>`` and
    leaves those dirs behind; remove them. rmdir only succeeds on an empty cgroup (no processes, no
    children), so a cgroup still in use is never disturbed."""
    for path in _cgroup_dirs(os.getpid() if pid is None else pid):
        for sub, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):  # deepest first
            try:
                os.rmdir(sub)
            except OSError:
                pass


def reap_stale_cgroups() -> list:
    """Remove the empty ``imagelint-<pid>`` cgroup dirs of private engines whose measure process is
    gone (killed with SIGKILL). Returns the pids whose dirs were removed."""
    pids = set()
    for hierarchy in ("/sys/fs/cgroup",):
        try:
            for h in [os.path.join(hierarchy, d) for d in os.listdir(hierarchy)] + [hierarchy]:
                try:
                    names = os.listdir(h)
                except OSError:
                    continue
                for name in names:
                    if name.startswith("imagelint-") and name[10:].isdigit():
                        pids.add(int(name[10:]))
        except OSError:
            pass
    reaped = []
    for pid in sorted(pids):
        if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            _remove_engine_cgroups(pid)
            if not _cgroup_dirs(pid):
                reaped.append(pid)
    return reaped
