"""A throwaway Docker engine: truly cold pulls, like Fargate's (which caches nothing).

Everything lives in one temp dir that carries an ``owner`` file with our PID:
data root, exec root, pidfile and unix socket. The engine runs without a bridge
network and without iptables. Teardown stops the engine, kills any process
whose command line names the temp dir (containerd, shims), unmounts what is
still mounted below it and deletes it. If measure itself is killed, the engine
gets SIGTERM from the kernel (PR_SET_PDEATHSIG), and the next run removes temp
dirs whose owner is dead — only dirs with our marker, which imagelint created.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time

__all__ = ["ThrowawayEngine", "EngineStartError", "can_start_engine", "reap_stale_engines"]

PREFIX = "imagelint-dockerd-"
OWNER_FILE = "owner"
_PR_SET_PDEATHSIG = 1


class EngineStartError(RuntimeError):
    """The throwaway engine cannot be started; the message says why and what to do."""


def can_start_engine(dockerd: str = "dockerd") -> tuple:
    """(True, '') when a throwaway engine can be started here, else (False, reason)."""
    if os.geteuid() != 0:
        return False, "not root (a private dockerd needs root)"
    if shutil.which(dockerd) is None:
        return False, f"{dockerd} is not installed (Debian: apt-get install docker.io)"
    return True, ""


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _mounts_under(path: str) -> list:
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4:
                    mnt = fields[4].replace("\\040", " ")
                    if mnt == path or mnt.startswith(path.rstrip("/") + "/"):
                        out.append(mnt)
    except OSError:
        pass
    return sorted(out, key=len, reverse=True)  # deepest first


def _umount(path: str) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(path.encode(), 2)  # MNT_DETACH
    except (OSError, AttributeError):
        subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _processes_naming(path: str) -> list:
    """PIDs whose command line mentions ``path`` (our engine, its containerd and shims)."""
    me = os.getpid()
    pids = []
    needle = path.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if needle in f.read():
                    pids.append(int(name))
        except OSError:
            continue
    return pids


def _teardown_dir(path: str, proc=None, grace: float = 20.0) -> None:
    """Stop everything that runs from ``path``, unmount below it, delete it."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _processes_naming(path)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + (5 if sig == signal.SIGTERM else 2)
        while time.monotonic() < deadline and _processes_naming(path):
            time.sleep(0.1)
    for mnt in _mounts_under(path):
        _umount(mnt)
    shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def reap_stale_engines(tmp: str = None) -> list:
    """Remove throwaway-engine dirs left by an imagelint run that was killed (owner PID dead)."""
    tmp = tmp or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        path = os.path.join(tmp, name)
        try:
            with open(os.path.join(path, OWNER_FILE), encoding="utf-8") as f:
                owner = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # not ours (no marker): never touch it
        if owner != os.getpid() and not _pid_alive(owner):
            _teardown_dir(path)
            removed.append(path)
    return removed


class ThrowawayEngine:
    """``with ThrowawayEngine() as engine: docker.DockerClient(base_url=engine.url)``."""

    def __init__(self, dockerd: str = "dockerd", start_timeout: float = 60.0, extra_args: tuple = ()):
        self.dockerd = dockerd
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.dir = None
        self.proc = None
        self.log_path = None

    @property
    def url(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    def start(self) -> "ThrowawayEngine":
        ok, why = can_start_engine(self.dockerd)
        if not ok:
            raise EngineStartError(f"cannot start a private Docker engine: {why}; "
                                   "use --engine current to measure with your own engine")
        reap_stale_engines()
        # short path: unix socket paths (containerd's included) must stay under 108 bytes
        self.dir = tempfile.mkdtemp(prefix=PREFIX, dir="/tmp")
        with open(os.path.join(self.dir, OWNER_FILE), "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        self.log_path = os.path.join(self.dir, "dockerd.log")
        args = [self.dockerd, "--data-root", f"{self.dir}/root", "--exec-root", f"{self.dir}/exec",
                "--pidfile", f"{self.dir}/docker.pid", "-H", self.url, "--bridge=none", "--iptables=false",
                "--ip-masq=false", "--cgroup-parent", f"imagelint-{os.getpid()}", *self.extra_args]
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_set_pdeathsig)
        except OSError as e:
            log.close()
            self.stop()
            raise EngineStartError(f"cannot run {self.dockerd}: {e.strerror}") from None
        log.close()
        deadline = time.monotonic() + self.start_timeout
        sock = f"{self.dir}/docker.sock"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise EngineStartError(f"the private dockerd exited during start-up: {tail}")
            if os.path.exists(sock) and self._answers():
                return self
            time.sleep(0.2)
        tail = self._log_tail()
        self.stop()
        raise EngineStartError(f"the private dockerd did not answer within {self.start_timeout:.0f} s: {tail}")

    def _answers(self) -> bool:
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(f"{self.dir}/docker.sock")
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(64)
        except OSError:
            return False
        finally:
            s.close()

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1][-300:] if lines else "(no output)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.dir is None:
            return
        path, self.dir = self.dir, None
        _teardown_dir(path, self.proc)
        self.proc = None

    def __enter__(self) -> "ThrowawayEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
