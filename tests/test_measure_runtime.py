"""The measurement runtime: timed container starts under task limits, the measuring session
(private and user engines, --push-to, truly cold runs, per-image faults) and cleanup when
measure is interrupted (SIGINT, SIGTERM, SIGKILL) mid-pull and mid-start.

Needs the Docker engine, root (private dockerd) and Debian's docker-registry + skopeo.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import uuid

import pytest

from registry import engine_unavailable, free_port, skopeo_copy, write_docker_archive

from imagelint.measure.container import LABEL, StartError, parse_probe, timed_start
from imagelint.measure.dockerd import PREFIX, reap_stale_engines
from imagelint.measure.session import MeasureSession, _cgroup_dirs, _push_target, reap_stale_cgroups, stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UID = uuid.uuid4().hex[:8]
APP = f"imagelint-test-measure-app-{UID}:1"  # busybox, /www/health; CMD: sleep 0.3, READY, httpd :8080
BIG = f"imagelint-test-measure-big-{UID}:1"  # 2 layers x (3000 files + 40 MB random): pull takes seconds
DERIVED = f"imagelint-test-measure-derived-{UID}:1"  # FROM APP + one layer (shares APP's layers)
BUSYBOX = "/bin/busybox"

APP_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /www /tmp && echo ok > /www/health"]
CMD ["/bin/sh", "-c", "sleep 0.3; echo READY; exec httpd -f -p 8080 -h /www"]
"""
BIG_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /d1 && cd /d1 && i=0; while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done; /bin/busybox head -c 40000000 /dev/urandom > /d1/big"]
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /d2 && cd /d2 && i=0; while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done; /bin/busybox head -c 40000000 /dev/urandom > /d2/big"]
"""

pytestmark = pytest.mark.engine

TASK = "0.25x0.5"
HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/www"]


# --- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docker_client():
    try:
        import docker
        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as e:  # engine missing or SDK missing
        engine_unavailable(f"Docker engine not available: {e}")
    if os.geteuid() != 0:
        engine_unavailable("these tests need root (private dockerd, network namespaces)")
    yield client
    client.close()


def _build(client, tag: str, dockerfile: str) -> None:
    with tempfile.TemporaryDirectory(prefix="imagelint-test-measure-ctx-") as ctx:
        with open(os.path.join(ctx, "busybox"), "wb") as out, open(BUSYBOX, "rb") as src:
            out.write(src.read())
        os.chmod(os.path.join(ctx, "busybox"), 0o755)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(dockerfile)
        client.images.build(path=ctx, tag=tag, network_mode="none", rm=True, forcerm=True)


@pytest.fixture(scope="module")
def images(docker_client):
    """The locally built test images; removed at the end (only these tags)."""
    built = []
    try:
        for tag, dockerfile in ((APP, APP_DOCKERFILE), (BIG, BIG_DOCKERFILE),
                                (DERIVED, f"FROM {APP}\nRUN [\"/bin/sh\", \"-c\", \"echo derived > /derived\"]\n")):
            _build(docker_client, tag, dockerfile)
            built.append(tag)
        yield {name: docker_client.images.get(tag).id for name, tag in (("app", APP), ("big", BIG),
                                                                        ("derived", DERIVED))}
    finally:
        for tag in reversed(built):
            try:
                docker_client.images.remove(tag, force=True)
            except Exception:
                pass


def _fresh_archive(path: str, big: bool = False) -> None:
    """A docker-archive whose layers exist in no engine: busybox (mode 755, mtime 0 — a different
    layer than docker build makes) plus random bytes, so a pull into the user's engine is cold.
    ``big``: two more layers of 3000 files + 20 MB each, so that the pull takes seconds."""
    def tar(files):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, (data, mode) in files.items():
                info = tarfile.TarInfo(name)
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    t.addfile(info)
                else:
                    info.size, info.mode = len(data), mode
                    t.addfile(info, io.BytesIO(data))
        return buf.getvalue()
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    layers = [tar({"bin": (None, 0), "bin/busybox": (busybox, 0o755), "tmp": (None, 0)}),
              tar({"random": (os.urandom(256 * 1024) + uuid.uuid4().bytes, 0o644)})]
    if big:
        for n in range(2):
            files = {f"d{n}": (None, 0), f"d{n}/big": (os.urandom(20 * 2 ** 20), 0o644)}
            files.update({f"d{n}/f{i}": (b"%d\n" % i, 0o644) for i in range(3000)})
            layers.append(tar(files))
    write_docker_archive(path, layers, repo_tag="imagelint-test/fresh:1")


@pytest.fixture(scope="module")
def pushed(local_registry, images, tmp_path_factory):
    """The test images in the local registry (the user's engine does NOT hold these names)."""
    host = local_registry.host
    refs = {}
    for name, tag in (("app", APP), ("big", BIG), ("derived", DERIVED)):
        refs[name] = f"{host}/measure-{name}-{UID}:1"
        skopeo_copy(f"docker-daemon:{tag}", f"docker://{refs[name]}")
    archive = str(tmp_path_factory.mktemp("fresh") / "fresh.tar")
    _fresh_archive(archive)
    refs["fresh"] = local_registry.push_archive(archive, f"measure-fresh-{UID}:1")
    archive = str(tmp_path_factory.mktemp("freshbig") / "freshbig.tar")
    _fresh_archive(archive, big=True)
    refs["freshbig"] = local_registry.push_archive(archive, f"measure-freshbig-{UID}:1")
    os.unlink(archive)
    return refs


@pytest.fixture
def snapshot(docker_client, images):
    """Tags and ids in the user's engine before a test, checked afterwards: our images untouched,
    no tag with this run's names added."""
    def tags():
        out = {}
        for img in docker_client.api.images():
            for tag in img.get("RepoTags") or []:
                out[tag] = img["Id"]
        return out
    before = tags()
    yield before
    after = tags()
    for tag in (APP, BIG, DERIVED):
        assert after.get(tag) == before.get(tag), f"{tag} changed"
    added = {t for t in after if t not in before and UID in t}  # other suites share this engine
    assert not added, f"tags left in the user's engine: {added}"


def _labelled(client, run_id: str = None) -> list:
    value = f"{LABEL}={run_id}" if run_id else LABEL
    return client.api.containers(all=True, filters={"label": value})


# --- probes and container starts ------------------------------------------------------------------

def test_parse_probe():
    assert parse_probe("exit").kind == "exit"
    p = parse_probe("log:READY.*now")
    assert p.kind == "log" and p.regex.search("READY now")
    p = parse_probe("tcp:5432")
    assert (p.kind, p.port) == ("tcp", 5432)
    p = parse_probe("http:8080/health/z")
    assert (p.kind, p.port, p.path) == ("http", 8080, "/health/z")
    assert parse_probe("http:8080").path == "/"
    for bad in ("tcp:x", "tcp:0", "log:", "log:(", "ftp:21", "tcp:80/x", "exit:1"):
        with pytest.raises(ValueError) as err:
            parse_probe(bad)
        assert "\n" not in str(err.value)


def test_push_target_names():
    assert _push_target("api:2.3", "127.0.0.1:5000") == "127.0.0.1:5000/api:2.3"
    assert _push_target("ghcr.io/org/api:2", "127.0.0.1:5000/") == "127.0.0.1:5000/org/api:2"
    assert _push_target("library/x", "http://127.0.0.1:5000") == "127.0.0.1:5000/x:latest"
    assert _push_target("localhost:5001/a/b:c", "r:1") == "r:1/a/b:c"


def test_stats_helper():
    assert stats([3, 1, 2, None]) == {"median": 2, "min": 1, "max": 3, "n": 3}
    assert stats([]) is None


@pytest.mark.parametrize("probe,command,min_ready", [
    ("exit", ["true"], 0.0),
    ("log:^READY$", None, 0.25),
    ("tcp:8080", ["sh", "-c", "sleep 0.3; exec nc -ll -p 8080 -e true"], 0.25),
    ("http:8080/health", None, 0.25),
])
def test_each_probe_kind(docker_client, images, probe, command, min_ready):
    seen = {}

    def created(cid):
        seen["host"] = docker_client.api.inspect_container(cid)["HostConfig"]
        seen["labels"] = docker_client.api.inspect_container(cid)["Config"]["Labels"]
        seen["id"] = cid

    run_id = f"test-{UID}-probe"
    t = timed_start(docker_client, APP, TASK, probe, ready_timeout=20, run_id=run_id, command=command,
                    on_created=created)
    assert t.network == "none" and not t.notes
    assert 0 < t.create_seconds < 10 and 0 < t.start_seconds < 10
    # the app's 0.3 s sleep begins while the start call is still returning: it spans start + ready
    assert min_ready <= t.start_seconds + t.ready_seconds and t.ready_seconds < 10
    assert t.total_seconds == pytest.approx(t.create_seconds + t.start_seconds + t.ready_seconds)
    if probe != "exit":  # a running app: its cgroup's high-water mark
        assert t.peak_source == "cgroup-v1" or t.peak_source == "cgroup-v2"
        assert 100_000 < t.peak_memory < t.memory_limit
    else:
        assert t.exit_code == 0
    host = seen["host"]
    assert host["NanoCpus"] == 250_000_000
    assert host["Memory"] == host["MemorySwap"] == 512 * 2 ** 20
    assert host["NetworkMode"] == "none" and not host["Privileged"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert seen["labels"][LABEL] == run_id
    assert not _labelled(docker_client, run_id), "the container must be removed"
    json.dumps(t.to_dict(t.create_begin))


def test_network_probe_without_root_uses_host_network(docker_client, images, monkeypatch):
    import imagelint.measure.container as container
    monkeypatch.setattr(container.os, "geteuid", lambda: 1000)  # as if not root: no setns
    port = free_port()
    t = timed_start(docker_client, APP, TASK, f"tcp:{port}", ready_timeout=20, run_id=f"test-{UID}",
                    command=["nc", "-ll", "-p", str(port), "-e", "true"])
    assert t.network == "host" and "host network" in t.notes[0]
    assert t.to_dict()["network"] == "host"


def test_crash_message(docker_client, images):
    with pytest.raises(StartError) as err:
        timed_start(docker_client, APP, TASK, "http:8080/health", ready_timeout=20, run_id=f"test-{UID}",
                    command=["sh", "-c", "echo starting; echo 'config file missing' >&2; exit 3"])
    e = err.value
    assert e.kind == "crash" and e.timing.exit_code == 3
    msg = str(e)
    assert "\n" not in msg and "code 3" in msg and "config file missing" in msg and "starting" in msg
    assert not _labelled(docker_client, f"test-{UID}")


def test_exit_probe_nonzero_is_a_crash(docker_client, images):
    with pytest.raises(StartError) as err:
        timed_start(docker_client, APP, TASK, "exit", run_id=f"test-{UID}", command=["sh", "-c", "exit 3"])
    assert err.value.kind == "crash" and "code 3" in str(err.value)


def test_timeout_message(docker_client, images):
    started = time.monotonic()
    with pytest.raises(StartError) as err:
        timed_start(docker_client, APP, TASK, "http:8080/missing", ready_timeout=1.5, run_id=f"test-{UID}")
    assert time.monotonic() - started < 15
    msg = str(err.value)
    assert err.value.kind == "timeout" and "\n" not in msg
    assert "not ready within 1.5 s" in msg and "READY" in msg  # the last log lines
    assert not _labelled(docker_client, f"test-{UID}")


def test_oom_flag_and_message(docker_client, images):
    # dd holds a 700 MB buffer: more than the 512 MiB hard limit of a 0.25x0.5 task
    with pytest.raises(StartError) as err:
        timed_start(docker_client, APP, TASK, "exit", ready_timeout=30, run_id=f"test-{UID}",
                    command=["dd", "if=/dev/zero", "of=/dev/null", "bs=700M", "count=1"])
    e = err.value
    assert e.kind == "oom" and e.timing.oom_killed and e.timing.exit_code == 137
    assert "out of memory" in str(e) and "512 MiB" in str(e) and "--task-size 0.25x1" in str(e)
    # the same program fits a 1 GB task: peak memory recorded near its 700 MB
    t = timed_start(docker_client, APP, "0.25x1", "log:done", ready_timeout=30, run_id=f"test-{UID}",
                    command=["sh", "-c", "dd if=/dev/zero of=/dev/null bs=700M count=1; echo done; sleep 5"])
    assert not t.oom_killed and t.peak_memory > 700 * 10 ** 6
    assert 0.6 < t.memory_ratio < 1


def test_image_missing(docker_client):
    with pytest.raises(StartError) as err:
        timed_start(docker_client, f"imagelint-test-nope-{UID}:1", TASK, "exit", run_id=f"test-{UID}")
    assert err.value.kind == "missing" and "not present" in str(err.value)


def test_warm_flag(docker_client, images):
    t = timed_start(docker_client, APP, TASK, "exit", run_id=f"test-{UID}", warm=True, command=["true"])
    assert t.warm and t.to_dict()["warm"] is True


# --- sessions ----------------------------------------------------------------------------------

def test_private_session_truly_cold(pushed, docker_client, snapshot):
    events = []
    with MeasureSession(engine="private", on_progress=lambda ref, phase, run, d: events.append((phase, run))) as s:
        assert s.engine_kind == "private" and s.engine is not None
        engine_dir = s.engine.dir
        app = s.measure(pushed["app"], runs=2, task_size=TASK, probe="http:8080/health", ready_timeout=20)
        # DERIVED shares APP's layers: the private engine must forget them before each pull
        derived = s.measure(pushed["derived"], runs=2, task_size=TASK, probe="exit", command=["true"])
    assert not os.path.exists(engine_dir)
    for m in (app, derived):
        assert m.ok, m.error
        assert m.engine == "private" and m.pulled_ref == m.ref and not m.pushed
        assert len(m.pulls) == len(m.cold_starts) == len(m.warm_starts) == 2
        for pull in m.pulls:
            assert pull.cold and pull.layers and not any(lay.cached for lay in pull.layers)
            for lay in pull.layers:
                assert pull.start <= lay.download_start <= lay.download_end <= lay.extract_start \
                    <= lay.extract_end <= pull.end
        assert not m.warnings, m.warnings
        assert all(st.warm for st in m.warm_starts) and not any(st.warm for st in m.cold_starts)
        d = json.loads(json.dumps(m.to_dict()))
        assert d["summary"]["pull_seconds"]["n"] == 2
        assert d["cold_starts"][0]["at"]["create_begin"] >= d["pulls"][0]["seconds"] - 1e-6
        assert m.cold_total_seconds()["median"] > m.pull_seconds()["median"]
    assert len(derived.pulls[0].layers) == 3
    # the app sleeps 0.3 s before it listens (from inside the start call on)
    assert min(st.start_seconds + st.ready_seconds for st in app.cold_starts) >= 0.25
    assert ("pull", 1) in events and ("warm-start", 2) in events and ("done", 2) in events
    assert not _labelled(docker_client)


def test_current_engine_session(pushed, docker_client, snapshot):
    fresh, derived = pushed["fresh"], pushed["derived"]
    with MeasureSession(engine="current") as s:
        assert s.engine_kind == "current"
        m = s.measure(fresh, runs=2, task_size=TASK, probe="exit", command=["/bin/busybox", "true"])
        # measure pulled it itself, so it removed it before run 2: both pulls cold
        assert m.ok, m.error
        assert all(p.cold and p.layers for p in m.pulls), [p.to_dict() for p in m.pulls]
        assert not m.warnings
        assert docker_client.api.images(name=fresh.rsplit(":", 1)[0])  # present until the session ends
        # DERIVED's base layers are in the user's engine (APP was built there): warned, not removed
        shared = s.measure(derived, runs=1, task_size=TASK, probe="exit", command=["true"])
        assert shared.ok, shared.error
        assert any("already in your engine" in w for w in shared.warnings), shared.warnings
    for ref in (fresh, derived):
        assert not docker_client.api.images(name=ref.rsplit(":", 1)[0]), f"{ref} left in the user's engine"
    assert not _labelled(docker_client)


def test_current_engine_leaves_preexisting_image(docker_client, images, snapshot):
    with MeasureSession(engine="current") as s:
        m = s.measure(APP, runs=1, task_size=TASK, probe="exit", command=["true"])
    # APP is the user's own image and cannot be pulled: measure must not delete it, and says why
    assert m.error and m.error_kind in ("unreachable", "not-found")
    assert any("not pulled by imagelint" in w for w in m.warnings)
    assert docker_client.images.get(APP).id == images["app"]


def test_push_to_local_only_image(local_registry, docker_client, images, snapshot):
    target = f"{local_registry.host}/{APP}"
    with MeasureSession(engine="private", push_to=local_registry.host) as s:
        m = s.measure(APP, runs=1, task_size=TASK, probe="log:READY", ready_timeout=20)
        assert s.ledger.has("tag", "current", target)
    assert m.ok, m.error
    assert m.pushed and m.pulled_ref == target
    assert m.pulls[0].cold and len(m.pulls[0].layers) == 2
    # the tag it made is gone, the original is untouched, the copy is in the registry
    assert not docker_client.api.images(name=target.rsplit(":", 1)[0])
    assert docker_client.images.get(APP).id == images["app"]
    name, tag = APP.split(":")
    status, _, _ = local_registry.get(f"/v2/{name}/manifests/{tag}",
                                      {"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200


def test_local_only_image_without_push_to(docker_client, images, snapshot):
    with MeasureSession(engine="private") as s:
        m = s.measure(APP, runs=1)
    assert m.error and "--push-to" in m.error and "\n" not in m.error


def test_push_to_refuses_to_overwrite_a_tag(local_registry, docker_client, images, snapshot):
    target = f"{local_registry.host}/{APP}"
    repo, tag = target.rsplit(":", 1)
    docker_client.api.tag(images["big"], repo, tag)  # the user's own tag, another image
    try:
        with MeasureSession(engine="private", push_to=local_registry.host) as s:
            m = s.measure(APP, runs=1)
        assert m.error_kind == "push" and "different image" in m.error
        assert docker_client.images.get(target).id == images["big"]  # left alone
    finally:
        docker_client.api.remove_image(target)


def test_push_to_unreachable_registry(docker_client, images, snapshot):
    with MeasureSession(engine="private", push_to=f"127.0.0.1:{free_port()}") as s:
        m = s.measure(APP, runs=1)
    assert m.error_kind == "push" and "unreachable" in m.error, m.error


def test_pull_faults_are_per_image(local_registry, auth_registry, pushed, docker_client, snapshot):
    skopeo_copy(f"docker-daemon:{APP}", f"docker://{auth_registry.host}/locked-{UID}:1",
                creds="imagelint:test-password")
    with MeasureSession(engine="private") as s:
        missing = s.measure(f"{local_registry.host}/nothing-{UID}:1", runs=1)
        closed = s.measure(f"127.0.0.1:{free_port()}/x:1", runs=1)
        locked = s.measure(f"{auth_registry.host}/locked-{UID}:1", runs=1)
        good = s.measure(pushed["app"], runs=1, probe="exit", command=["true"])
        crash = s.measure(pushed["app"], runs=1, probe="exit", command=["sh", "-c", "echo oops; exit 3"])
    assert missing.error_kind == "not-found", missing.error
    assert closed.error_kind == "unreachable", closed.error
    assert locked.error_kind == "unauthorized" and "docker login" in locked.error, locked.error
    assert good.ok
    assert crash.error_kind == "crash" and "oops" in crash.error and crash.failed_start.exit_code == 3
    for m in (missing, closed, locked, crash):
        assert "\n" not in m.error
        json.dumps(m.to_dict())


def test_private_engine_not_startable(pushed, snapshot):
    with MeasureSession(engine="private", dockerd="/nonexistent/dockerd") as s:
        results = [s.measure(pushed["app"], runs=1), s.measure(pushed["big"], runs=1)]
    for m in results:
        assert m.error_kind == "engine" and "not installed" in m.error and "--engine current" in m.error


def test_auto_falls_back_to_current_engine_with_a_warning(pushed, docker_client, snapshot):
    with MeasureSession(engine="auto", dockerd="/nonexistent/dockerd") as s:
        assert s.engine_kind == "current"
        assert any("not a private one" in w for w in s.warnings)
        m = s.measure(pushed["fresh"], runs=1, probe="exit", command=["/bin/busybox", "true"])
    assert m.ok, m.error
    assert not docker_client.api.images(name=pushed["fresh"].rsplit(":", 1)[0])


def test_exception_inside_session_cleans_up(pushed, docker_client, snapshot):
    with pytest.raises(RuntimeError):
        with MeasureSession(engine="current") as s:
            s.measure(pushed["fresh"], runs=1, probe="exit", command=["/bin/busybox", "true"])
            tmp = s.make_temp_dir()
            raise RuntimeError("boom")
    assert not os.path.exists(tmp) and not len(s.ledger)
    assert not docker_client.api.images(name=pushed["fresh"].rsplit(":", 1)[0])


# --- kill tests: measure in a subprocess, killed mid-pull and mid-start -------------------------------

DRIVER = textwrap.dedent("""
    import json, sys
    from imagelint.measure.session import MeasureSession
    engine, ref, probe, command = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    said = set()

    def say(*words):
        print(*words, flush=True)

    def progress(ref, phase, run, detail):
        if phase == "pull":
            status = (detail.get("event") or {}).get("status", "")
            if status in ("Downloading", "Extracting") and ("pulling", run) not in said:
                said.add(("pulling", run))
                say("PHASE", "pulling", run)
        elif (phase, run) not in said:
            said.add((phase, run))
            say("PHASE", phase, run)

    with MeasureSession(engine=engine, on_progress=progress) as s:
        say("RUNID", s.run_id)
        say("ENGINEDIR", s.engine.dir if s.engine else "-")
        m = s.measure(ref, runs=2, task_size="0.25x0.5", probe=probe, ready_timeout=60, command=command)
        say("RESULT", m.error)
    say("DONE")
""")


def _processes_naming(text: str) -> list:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        out.append(int(name))
            except OSError:
                pass
    return out


def _processes_in_cgroup(fragment: str) -> list:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cgroup") as f:
                    if fragment in f.read():
                        out.append(int(name))
            except OSError:
                pass
    return out


class Driver:
    def __init__(self, tmp_path, engine: str, ref: str, probe: str, command):
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        self.proc = subprocess.Popen([sys.executable, str(script), engine, ref, probe, json.dumps(command)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines = []
        self.run_id = self.engine_dir = None

    def wait_for(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            line = line.strip()
            self.lines.append(line)
            if line.startswith("RUNID "):
                self.run_id = line.split()[1]
            if line.startswith("ENGINEDIR "):
                self.engine_dir = None if line.split()[1] == "-" else line.split()[1]
            if line.startswith(prefix):
                return line
        self.proc.kill()
        raise AssertionError(f"driver never said {prefix!r}: {self.lines} {self.proc.stderr.read()[-2000:]}")

    def engine_client(self):
        import docker
        return docker.DockerClient(base_url=f"unix://{self.engine_dir}/docker.sock", timeout=30)

    def finish(self, timeout: float = 90) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("measure did not exit after the signal")
        rest = self.proc.stdout.read()
        self.stderr = self.proc.stderr.read()
        self.lines += rest.split()
        return rc


def _wait_running_container(client, run_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.api.containers(filters={"label": f"{LABEL}={run_id}", "status": "running"}):
            return
        time.sleep(0.05)
    raise AssertionError("no running container of ours to interrupt")


SLOW_START = ["sh", "-c", "sleep 5; echo READY; exec httpd -f -p 8080 -h /www"]


@pytest.mark.parametrize("engine", ["private", "current"])
@pytest.mark.parametrize("phase", ["pull", "start"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_kill_cleans_up(tmp_path, pushed, docker_client, snapshot, engine, phase, sig):
    # freshbig: no layer of it is in the user's engine, so the pull there takes seconds too
    ref = pushed["freshbig"] if phase == "pull" else pushed["app"]
    command = ["/bin/busybox", "true"] if phase == "pull" else SLOW_START
    driver = Driver(tmp_path, engine, ref, "exit" if phase == "pull" else "log:READY", command)
    driver.wait_for("ENGINEDIR")
    measuring = driver.engine_client() if engine == "private" else docker_client
    if phase == "pull":
        driver.wait_for("PHASE pulling 1")
        time.sleep(0.3)
    else:
        driver.wait_for("PHASE start 1")
        _wait_running_container(measuring, driver.run_id)
    driver.proc.send_signal(sig)
    rc = driver.finish()
    assert rc != 0 and "DONE" not in driver.lines, driver.lines
    assert "KeyboardInterrupt" in driver.stderr
    _assert_clean(docker_client, driver, ref)


def _assert_clean(docker_client, driver, ref: str) -> None:
    assert not _labelled(docker_client, driver.run_id), "container left in the user's engine"
    assert not docker_client.api.images(name=ref.rsplit(":", 1)[0]), f"{ref} left in the user's engine"
    assert not _processes_in_cgroup(f"imagelint-{driver.proc.pid}"), "container processes left running"
    assert not _cgroup_dirs(driver.proc.pid), "the private engine's cgroup dirs are left"
    if driver.engine_dir:
        assert not os.path.exists(driver.engine_dir)
        assert not _processes_naming(driver.engine_dir)
    for name in os.listdir(tempfile.gettempdir()):  # no engine dir owned by the killed driver
        if name.startswith(PREFIX):
            try:
                with open(os.path.join(tempfile.gettempdir(), name, "owner")) as f:
                    assert int(f.read().split()[0]) != driver.proc.pid, name
            except OSError:
                pass


@pytest.mark.parametrize("phase", ["pull", "start"])
def test_sigkill_private_engine_reaped_next_run(tmp_path, pushed, docker_client, snapshot, phase):
    ref = pushed["big"] if phase == "pull" else pushed["app"]
    command = ["/bin/busybox", "true"] if phase == "pull" else SLOW_START
    driver = Driver(tmp_path, "private", ref, "exit" if phase == "pull" else "log:READY", command)
    driver.wait_for("ENGINEDIR")
    if phase == "pull":
        driver.wait_for("PHASE pulling 1")
        time.sleep(0.3)
    else:
        driver.wait_for("PHASE start 1")
        _wait_running_container(driver.engine_client(), driver.run_id)
    with open(os.path.join(driver.engine_dir, "docker.pid")) as f:
        dockerd_pid = int(f.read())
    driver.proc.send_signal(signal.SIGKILL)
    driver.finish()
    # PDEATHSIG: the kernel tells the private dockerd that its parent died; it shuts down
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and os.path.exists(f"/proc/{dockerd_pid}"):
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{dockerd_pid}"), "the private dockerd outlived measure"
    assert os.path.exists(driver.engine_dir)  # nobody cleaned up yet...
    reaped = reap_stale_engines()  # ...until the next run reaps it (MeasureSession does both)
    assert driver.engine_dir in reaped
    reap_stale_cgroups()
    _assert_clean(docker_client, driver, ref)


def test_sigkill_current_engine_container_reaped_next_run(tmp_path, pushed, docker_client, snapshot):
    driver = Driver(tmp_path, "current", pushed["app"], "log:READY", SLOW_START)
    driver.wait_for("PHASE start 1")
    _wait_running_container(docker_client, driver.run_id)
    driver.proc.send_signal(signal.SIGKILL)
    driver.finish()
    assert _labelled(docker_client, driver.run_id)  # a SIGKILL cannot clean up...
    try:
        with MeasureSession(engine="current"):
            pass  # ...the next session reaps containers whose owner process is gone
        assert not _labelled(docker_client, driver.run_id)
    finally:
        for c in _labelled(docker_client, driver.run_id):
            docker_client.api.remove_container(c["Id"], force=True)
        # the image the killed session pulled cannot be traced back to it: the test removes it
        if docker_client.api.images(name=pushed["app"].rsplit(":", 1)[0]):
            docker_client.api.remove_image(pushed["app"])
