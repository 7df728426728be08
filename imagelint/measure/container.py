"""Time a container start under a Fargate task's limits: create → start → ready.

The container runs the way an untrusted image should: the task's CPU (``nano_cpus``)
and a hard memory limit without swap (Fargate memory is a hard limit), no added
capabilities, not privileged, ``no-new-privileges``, and no network at all. Network
probes (``tcp:``/``http:``) still work without a network: a probe thread enters the
container's network namespace (``setns`` on ``/proc/<pid>/ns/net``) and connects to
127.0.0.1 there. That needs root and an engine on this machine; otherwise the
container gets the host network and the result says so.

Readiness is polled every ~20 ms. Peak memory during start-up comes from the
container's cgroup (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``), else from
the stats API. The container is always removed, also on Ctrl-C.
"""
from __future__ import annotations

import ctypes
import os
import re
import socket
import threading
import time

__all__ = ["Probe", "parse_probe", "StartError", "StartTiming", "timed_start", "LABEL", "POLL_SECONDS"]

LABEL = "imagelint.measure"  # value: the session's run id; only containers we created carry it
POLL_SECONDS = 0.02
_CLONE_NEWNET = 0x40000000
_TAIL_LINES = 10


class StartError(RuntimeError):
    """The container did not get ready; one line for the user.

    ``kind``: ``timeout``, ``crash``, ``oom``, ``missing``, ``disk``, ``engine``.
    ``timing``: the partial :class:`StartTiming` (create/start times, peak memory, exit code).
    """

    def __init__(self, message: str, kind: str, timing: "StartTiming" = None):
        super().__init__(message)
        self.kind = kind
        self.timing = timing


class Probe:
    """A readiness probe: ``exit``, ``log:REGEX``, ``tcp:PORT`` or ``http:PORT/PATH``."""

    __slots__ = ("kind", "text", "regex", "port", "path")

    def __init__(self, kind: str, text: str, regex=None, port: int = None, path: str = None):
        self.kind = kind
        self.text = text
        self.regex = regex
        self.port = port
        self.path = path

    @property
    def needs_network(self) -> bool:
        return self.kind in ("tcp", "http")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Probe({self.text!r})"


def parse_probe(text) -> Probe:
    """``exit`` | ``log:REGEX`` | ``tcp:PORT`` | ``http:PORT[/PATH]``; ValueError with a one-line hint."""
    if isinstance(text, Probe):
        return text
    raw = (text or "exit").strip()
    kind, sep, arg = raw.partition(":")
    kind = kind.lower()
    hint = "use --ready exit, log:REGEX, tcp:PORT or http:PORT/PATH"
    if kind == "exit" and not sep:
        return Probe("exit", "exit")
    if kind == "log" and sep:
        if not arg:
            raise ValueError(f"readiness probe {raw!r}: log: needs a regular expression; {hint}")
        try:
            return Probe("log", raw, regex=re.compile(arg))
        except re.error as e:
            raise ValueError(f"readiness probe {raw!r}: bad regular expression: {e}") from None
    if kind in ("tcp", "http") and sep:
        port_text, slash, path = arg.partition("/")
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(f"readiness probe {raw!r}: {port_text!r} is not a port number; {hint}") from None
        if kind == "tcp":
            if slash:
                raise ValueError(f"readiness probe {raw!r}: tcp: takes only a port; {hint}")
            return Probe("tcp", raw, port=port)
        return Probe("http", raw, port=port, path="/" + path)
    raise ValueError(f"unknown readiness probe {raw!r}; {hint}")


class StartTiming:
    """One container start. Times are monotonic-clock stamps (``time.monotonic()``):
    ``create_begin`` → ``created`` (create call done) → ``started`` (start call done) →
    ``ready`` (probe succeeded). ``*_seconds`` are the differences."""

    def __init__(self, ref: str, probe: Probe, warm: bool = False):
        self.ref = ref
        self.probe = probe
        self.warm = warm  # True: the image was already present (second start, warm page cache)
        self.task = None  # task size label, e.g. "0.25x0.5"
        self.vcpu = None
        self.memory_limit = None  # bytes, hard limit (memory + swap)
        self.network = "none"  # "none", or "host" when a network probe could not enter the namespace
        self.container_id = None
        self.create_begin = None
        self.created = None
        self.started = None
        self.ready = None
        self.peak_memory = None  # bytes, cgroup high-water mark while starting (incl. page cache)
        self.peak_source = None  # "cgroup-v1", "cgroup-v2", "stats" or None (exited before it could be read)
        self.exit_code = None  # only when the container exited (exit probe, crash, OOM)
        self.oom_killed = False
        self.notes: list = []

    @property
    def create_seconds(self) -> float:
        return _diff(self.created, self.create_begin)

    @property
    def start_seconds(self) -> float:
        return _diff(self.started, self.created)

    @property
    def ready_seconds(self) -> float:
        """From the start call returning until the probe succeeded (the app's own start-up)."""
        return _diff(self.ready, self.started)

    @property
    def total_seconds(self) -> float:
        """create + start + ready."""
        return _diff(self.ready, self.create_begin)

    @property
    def memory_ratio(self):
        """Peak memory / limit (None when unknown): near 1 means OOM risk on Fargate."""
        if self.peak_memory is None or not self.memory_limit:
            return None
        return self.peak_memory / self.memory_limit

    def to_dict(self, t0: float = None) -> dict:
        """JSON-ready. With ``t0`` (a monotonic stamp, e.g. the pull's start) the stamps are
        given as offsets in seconds from it under ``at``, for a waterfall."""
        d = {"ref": self.ref, "warm": self.warm, "probe": self.probe.text, "task": self.task, "vcpu": self.vcpu,
             "memory_limit": self.memory_limit, "network": self.network,
             "create_seconds": _r(self.create_seconds), "start_seconds": _r(self.start_seconds),
             "ready_seconds": _r(self.ready_seconds), "total_seconds": _r(self.total_seconds),
             "peak_memory": self.peak_memory, "peak_source": self.peak_source,
             "memory_ratio": _r(self.memory_ratio), "exit_code": self.exit_code, "oom_killed": self.oom_killed,
             "notes": list(self.notes)}
        if t0 is not None:
            d["at"] = {k: _r(None if v is None else v - t0) for k, v in (
                ("create_begin", self.create_begin), ("created", self.created), ("started", self.started),
                ("ready", self.ready))}
        return d


def _diff(a, b):
    return None if a is None or b is None else a - b


def _r(v):
    return None if v is None else round(v, 6)


# --- cgroup memory -------------------------------------------------------------------------------

def _cgroup_peak_file(pid: int, container_id: str):
    """(path, source) of the file holding the container's peak memory, or (None, None)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, None
    if container_id and not any(container_id[:12] in line for line in lines):
        return None, None  # the pid is not the container's (engine in another pid namespace/VM)
    v2 = None
    for line in lines:
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            candidate = f"/sys/fs/cgroup/memory{path}/memory.max_usage_in_bytes"
            if os.path.exists(candidate):
                return candidate, "cgroup-v1"
        if hier == "0" and controllers == "":
            v2 = path
    if v2 is not None:
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            candidate = f"{base}{v2}/memory.peak"
            if os.path.exists(candidate):
                return candidate, "cgroup-v2"
    return None, None


def _read_int(path: str):
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None  # the cgroup disappears when the container exits


class _StatsSampler(threading.Thread):
    """Fallback peak memory: the highest usage the stats API streams (about once a second)."""

    def __init__(self, api, container_id: str):
        super().__init__(daemon=True, name="imagelint-stats")
        self.api = api
        self.container_id = container_id
        self.peak = None
        self.stream = None

    def run(self) -> None:
        try:
            self.stream = self.api.stats(self.container_id, stream=True, decode=True)
            for sample in self.stream:
                mem = sample.get("memory_stats") or {}
                value = mem.get("max_usage") or mem.get("usage")
                if value:
                    self.peak = max(self.peak or 0, int(value))
        except Exception:  # the container went away; nothing more to sample
            pass

    def close(self) -> None:
        _close_quietly(self.stream)


def _close_quietly(stream) -> None:
    if stream is None:
        return
    try:
        stream.close()
    except Exception:
        pass


# --- probes --------------------------------------------------------------------------------------

class _ProbeThread(threading.Thread):
    """Runs one probe until it succeeds or ``stop`` is set; ``ready_at`` is the monotonic stamp."""

    def __init__(self, name: str):
        super().__init__(daemon=True, name=name)
        self.stop_event = threading.Event()
        self.ready_event = threading.Event()
        self.ready_at = None
        self.error = None

    def succeed(self) -> None:
        self.ready_at = time.monotonic()
        self.ready_event.set()

    def stop(self) -> None:
        self.stop_event.set()


class _NetworkProbe(_ProbeThread):
    """tcp:/http: probe of 127.0.0.1:PORT — inside the container's network namespace when ``pid``
    is given (this thread alone moves there; setns on a thread does not affect the others)."""

    def __init__(self, probe: Probe, pid: int = None):
        super().__init__("imagelint-probe")
        self.probe = probe
        self.pid = pid

    def _enter_netns(self) -> bool:
        try:
            fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
        except OSError as e:
            self.error = f"cannot open the container's network namespace: {e.strerror}"
            return False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                self.error = f"cannot enter the container's network namespace: {os.strerror(ctypes.get_errno())}"
                return False
        finally:
            os.close(fd)
        return True

    def _try_once(self) -> bool:
        import http.client
        if self.probe.kind == "tcp":
            try:
                with socket.create_connection(("127.0.0.1", self.probe.port), timeout=1.0):
                    return True
            except OSError:
                return False
        conn = http.client.HTTPConnection("127.0.0.1", self.probe.port, timeout=2.0)
        try:
            conn.request("GET", self.probe.path, headers={"User-Agent": "imagelint-measure"})
            status = conn.getresponse().status
            return 200 <= status < 300
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def run(self) -> None:
        if self.pid is not None and not self._enter_netns():
            return
        while not self.stop_event.is_set():
            if self._try_once():
                self.succeed()
                return
            self.stop_event.wait(POLL_SECONDS)


class _LogProbe(_ProbeThread):
    """log:REGEX — follows the container's output and matches it line by line."""

    def __init__(self, api, container_id: str, probe: Probe):
        super().__init__("imagelint-logs")
        self.api = api
        self.container_id = container_id
        self.probe = probe
        self.stream = None
        self.finished = threading.Event()  # the log stream ended (container stopped)

    def _match(self, line: bytes) -> bool:
        return bool(self.probe.regex.search(line.decode("utf-8", "replace")))

    def run(self) -> None:
        buffer = b""
        try:
            self.stream = self.api.logs(self.container_id, stdout=True, stderr=True, stream=True, follow=True)
            for chunk in self.stream:
                if self.stop_event.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if any(self._match(line) for line in lines):
                    self.succeed()
                    return
                if len(buffer) > 1 << 16:  # a huge line without newline: match what we have
                    if self._match(buffer):
                        self.succeed()
                        return
                    buffer = buffer[-4096:]
            if buffer and self._match(buffer):
                self.succeed()
        except Exception as e:  # stream closed under us when the container is removed
            if not self.stop_event.is_set():
                self.error = f"log stream failed: {e}"
        finally:
            self.finished.set()

    def stop(self) -> None:
        super().stop()
        _close_quietly(self.stream)


# --- the start -----------------------------------------------------------------------------------

def _task_limits(task_size):
    """(label, vcpu, memory bytes) from a TaskSize, a '0.25x0.5' string or None (no limits)."""
    if task_size is None:
        return None, None, None
    if isinstance(task_size, str):
        from imagelint.fargate import parse_task_size
        task_size = parse_task_size(task_size)
    return task_size.label, task_size.vcpu, task_size.memory_bytes


def _engine_is_local(api) -> bool:
    """A unix-socket engine (the SDK spells it http+docker://localhost): its pids are in /proc here."""
    url = str(getattr(api, "base_url", "") or "")
    return url.startswith(("http+docker://localhost", "http+unix://", "unix://"))


def _tail_logs(api, container_id: str) -> str:
    try:
        raw = api.logs(container_id, stdout=True, stderr=True, tail=_TAIL_LINES)
    except Exception:
        return "(logs unavailable)"
    lines = [line.strip()[:200] for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    return " | ".join(lines[-_TAIL_LINES:]) if lines else "(no output)"


def _bigger_task_hint(label: str, memory_limit: int) -> str:
    try:
        from imagelint.fargate import FargateData, parse_task_size
        current = parse_task_size(label)
        bigger = [s for s in FargateData().valid_sizes()
                  if s.memory_bytes > memory_limit and s.vcpu >= current.vcpu]
        if bigger:
            best = min(bigger, key=lambda s: (s.memory_gb, s.vcpu))
            return f"try a bigger task, e.g. --task-size {best.label}"
    except Exception:
        pass
    return "try a bigger --task-size"


def _classify_engine_error(message: str, ref: str, phase: str) -> StartError:
    low = message.lower()
    if "no space left" in low:
        return StartError(f"disk full while trying to {phase} a container of {ref}: {message}", "disk")
    if "no such image" in low or ("not found" in low and "image" in low):
        return StartError(f"image {ref} is not present in the measuring engine: {message}", "missing")
    return StartError(f"engine error during container {phase} of {ref}: {message}", "engine")


def _remove_container(api, container_id: str) -> None:
    """Force-remove; a second Ctrl-C while removing does not leave the container behind."""
    interrupted = None
    for _ in range(3):
        try:
            api.remove_container(container_id, force=True, v=True)
            break
        except KeyboardInterrupt as e:
            interrupted = e
            continue
        except Exception as e:
            if "no such container" in str(e).lower() or "is already in progress" in str(e).lower():
                break
            time.sleep(0.2)
    if interrupted is not None:
        raise interrupted


def timed_start(client, image_ref: str, task_size, probe="exit", ready_timeout: float = 60.0,
                run_id: str = "manual", warm: bool = False, command=None, on_created=None,
                labels: dict = None) -> StartTiming:
    """Create, start and wait for readiness of one container of ``image_ref``, timed.

    ``client``: a docker SDK DockerClient (or APIClient) of the engine holding the image.
    ``task_size``: a :class:`imagelint.fargate.TaskSize` or ``'0.25x0.5'`` — its vCPU becomes
    ``nano_cpus`` and its memory a hard limit (memory = memory+swap). ``probe``: a :class:`Probe` or
    its text. ``run_id`` becomes the ``imagelint.measure`` label, which marks the container as ours.
    ``warm`` only tags the result (the caller starts it with the image already present).
    ``on_created(container_id)`` is called as soon as the container exists (for a cleanup ledger);
    ``labels`` are added to the container's labels; ``command`` overrides the image's CMD.

    Returns a :class:`StartTiming`; raises :class:`StartError` (timeout, crash, oom, missing, disk,
    engine). The container is removed before this returns or raises, also on KeyboardInterrupt.
    """
    import docker.errors

    api = getattr(client, "api", client)
    probe = parse_probe(probe)
    timing = StartTiming(image_ref, probe, warm=warm)
    timing.task, timing.vcpu, timing.memory_limit = _task_limits(task_size)

    use_setns = probe.needs_network and os.geteuid() == 0 and _engine_is_local(api)
    if probe.needs_network and not use_setns:
        timing.network = "host"
        timing.notes.append("network probe without root (or with a remote engine): the container ran with the "
                            "host network instead of none")
    host_config = {"network_mode": timing.network, "privileged": False, "cap_add": None,
                   "security_opt": ["no-new-privileges"]}
    if timing.vcpu:
        host_config["nano_cpus"] = int(round(timing.vcpu * 1e9))
    if timing.memory_limit:
        host_config["mem_limit"] = timing.memory_limit
        host_config["memswap_limit"] = timing.memory_limit  # no swap: Fargate memory is a hard limit

    container_id = None
    clock = time.monotonic
    try:
        timing.create_begin = clock()
        try:
            created = api.create_container(image_ref, command=command,
                                           labels=dict(labels or {}, **{LABEL: str(run_id)}),
                                           host_config=api.create_host_config(**host_config))
        except docker.errors.ImageNotFound as e:
            raise StartError(f"image {image_ref} is not present in the measuring engine: {e.explanation or e}",
                             "missing", timing) from None
        except docker.errors.APIError as e:
            err = _classify_engine_error(str(e.explanation or e), image_ref, "create")
            err.timing = timing
            raise err from None
        container_id = created["Id"]
        timing.container_id = container_id[:12]
        timing.created = clock()
        if on_created is not None:
            on_created(container_id)
        try:
            api.start(container_id)
        except docker.errors.APIError as e:
            err = _classify_engine_error(str(e.explanation or e), image_ref, "start")
            err.timing = timing
            raise err from None
        timing.started = clock()
        _wait_ready(api, container_id, timing, probe, ready_timeout, use_setns)
        return timing
    finally:
        if container_id is not None:
            _remove_container(api, container_id)


def _wait_ready(api, container_id: str, timing: StartTiming, probe: Probe, ready_timeout: float,
                use_setns: bool) -> None:
    clock = time.monotonic
    state = api.inspect_container(container_id)["State"]
    pid = state.get("Pid") or None
    peak_file, peak_source = (None, None)
    if pid and _engine_is_local(api):
        peak_file, peak_source = _cgroup_peak_file(pid, container_id)
    sampler = None
    if peak_file is None and state.get("Running"):
        sampler = _StatsSampler(api, container_id)
        sampler.start()

    probe_thread = None
    if probe.needs_network:
        if use_setns and not pid:
            pass  # exited already; the state check below reports it
        else:
            probe_thread = _NetworkProbe(probe, pid if use_setns else None)
            probe_thread.start()
    elif probe.kind == "log":
        probe_thread = _LogProbe(api, container_id, probe)
        probe_thread.start()

    def read_peak() -> None:
        if peak_file is not None:
            value = _read_int(peak_file)
            if value is not None:
                timing.peak_memory = max(timing.peak_memory or 0, value)
                timing.peak_source = peak_source

    deadline = timing.started + ready_timeout
    try:
        while True:
            read_peak()
            if probe_thread is not None and probe_thread.ready_event.is_set():
                timing.ready = probe_thread.ready_at
                return
            state = api.inspect_container(container_id)["State"]
            if not state.get("Running") and state.get("Status") != "created":
                now = clock()
                timing.exit_code = state.get("ExitCode")
                timing.oom_killed = bool(state.get("OOMKilled"))
                if probe_thread is not None and probe.kind == "log":
                    probe_thread.finished.wait(1.0)  # the app may have printed the line just before exiting
                    if probe_thread.ready_event.is_set():
                        timing.ready = probe_thread.ready_at
                        return
                if probe.kind == "exit" and timing.exit_code == 0 and not timing.oom_killed:
                    timing.ready = now
                    return
                _raise_exited(api, container_id, timing, probe)
            if probe.needs_network and probe_thread is not None and probe_thread.error \
                    and not probe_thread.is_alive():
                # an app that just exited takes its namespace with it: report the exit, not the probe
                if _still_running(api, container_id):
                    raise StartError(f"{timing.ref}: readiness probe {probe.text} failed: {probe_thread.error}",
                                     "engine", timing)
                continue
            if clock() > deadline:
                tail = _tail_logs(api, container_id)
                raise StartError(f"{timing.ref}: not ready within {ready_timeout:g} s (probe {probe.text}); "
                                 f"last log lines: {tail}", "timeout", timing)
            time.sleep(POLL_SECONDS)
    finally:
        read_peak()
        if probe_thread is not None:
            probe_thread.stop()
        if sampler is not None:
            sampler.close()
            if timing.peak_memory is None and sampler.peak is not None:
                timing.peak_memory, timing.peak_source = sampler.peak, "stats"


def _still_running(api, container_id: str, settle: float = 0.5) -> bool:
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if not api.inspect_container(container_id)["State"].get("Running"):
            return False
        time.sleep(POLL_SECONDS)
    return True


def _raise_exited(api, container_id: str, timing: StartTiming, probe: Probe) -> None:
    tail = _tail_logs(api, container_id)
    code = timing.exit_code
    if timing.oom_killed or (code == 137 and timing.memory_limit and timing.peak_memory
                             and timing.peak_memory >= 0.95 * timing.memory_limit):
        timing.oom_killed = True
        limit = f"{timing.memory_limit / 2**20:.0f} MiB" if timing.memory_limit else "its"
        hint = _bigger_task_hint(timing.task, timing.memory_limit) if timing.task else "raise the memory limit"
        raise StartError(f"{timing.ref}: killed for running out of memory (OOM) under the task's {limit} hard "
                         f"memory limit (task {timing.task}); {hint}; last log lines: {tail}", "oom", timing)
    why = "exited" if probe.kind == "exit" else "exited before it was ready"
    raise StartError(f"{timing.ref}: the app {why} with code {code} (probe {probe.text}); last log lines: {tail}",
                     "crash", timing)
