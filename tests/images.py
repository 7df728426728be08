"""Fixture images for tests and benchmarks: built from ``fixtures/images/<name>/`` with the local
engine, once per run, and removed at the end (see fixtures/images/README.md for the conventions).

Use through the session fixtures in conftest.py (``fixture_images``), or directly::

    with ImageBuilder() as builder:
        tag = builder.build("busybox-waste")

Only images this builder created are ever removed; a Debian base passed in through
``IMAGELINT_TEST_DEBIAN_BASE`` is reused as is and left alone.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_IMAGES = os.path.join(ROOT, "fixtures", "images")
BUSYBOX = "/bin/busybox"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
TAG_PREFIX = "imagelint-test-"
NETWORK_MARKER = "# fixture: network=host"
DEBIAN_SUITE = "bookworm"
# apt settings the base inherits from the host so that apt-get works inside builds exactly as on
# the host: a frozen snapshot mirror needs Check-Valid-Until off, a proxy needs Acquire::*::Proxy.
APT_HOST_KEYS = ("Acquire::",)


class EngineUnavailable(Exception):
    """The Docker engine (or a tool a fixture needs) is not there; message says what."""


class FixtureBuildError(Exception):
    """A fixture image failed to build; message carries the build log tail."""


def new_run_id() -> str:
    """Unique per test run: time, pid and randomness (tags of parallel runs never collide)."""
    return f"{time.strftime('%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def engine_client():
    """A docker SDK client that has answered a ping, or EngineUnavailable."""
    try:
        import docker
    except ImportError:
        raise EngineUnavailable("the docker SDK is missing: pip install 'imagelint[test]'") from None
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # DockerException, requests errors
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineUnavailable(f"the Docker engine at {host} is not reachable ({exc})") from None
    return client


class ImageBuilder:
    """Builds fixture images once per run and removes what it built (``cleanup()``, also at exit)."""

    def __init__(self, client=None, run_id: str = None):
        self.client = client or engine_client()
        self.run_id = run_id or new_run_id()
        self._built = {}  # fixture name -> tag
        self._created = []  # tags this builder created, in creation order
        self._debian_base = None
        self._closed = False
        atexit.register(self.cleanup)  # also on Ctrl-C / a test run killed by an exception

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> "ImageBuilder":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def tag_for(self, name: str) -> str:
        return f"{TAG_PREFIX}{name}:{self.run_id}"

    # -- Debian base -----------------------------------------------------------------------------
    def debian_base(self) -> str:
        """A Debian bookworm minbase image (mmdebstrap + docker import), made once per run."""
        if self._debian_base:
            return self._debian_base
        reuse = os.environ.get("IMAGELINT_TEST_DEBIAN_BASE")
        if reuse:
            self.client.images.get(reuse)  # fails loudly if it is not there
            self._debian_base = reuse
            return reuse
        if not shutil.which("mmdebstrap"):
            raise EngineUnavailable("mmdebstrap is not installed (apt-get install mmdebstrap); it makes the Debian "
                                    "base image, or set IMAGELINT_TEST_DEBIAN_BASE=IMAGE")
        tag = self.tag_for("debian-base")
        workdir = tempfile.mkdtemp(prefix="imagelint-test-debian-")
        try:
            tarball = os.path.join(workdir, "rootfs.tar")
            cmd = ["mmdebstrap", "--variant=minbase", "--quiet"]
            for hook in self._base_hooks(workdir):
                cmd.append("--customize-hook=" + hook)
            cmd += [DEBIAN_SUITE, tarball]
            mirror = self._host_sources()
            if mirror:
                cmd.append(mirror)  # the mirror the host's apt reaches (mmdebstrap reads the file)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise FixtureBuildError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr[-2000:]}")
            changes = [f"ENV PIP_CERT={CA_BUNDLE}", f"ENV NODE_EXTRA_CA_CERTS={CA_BUNDLE}",
                       f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}", "ENV LANG=C.UTF-8", 'CMD ["bash"]']
            with open(tarball, "rb") as f:
                # A generator makes requests send real chunked encoding (a file object is sent raw
                # under a chunked header, which the engine rejects: "header line too long").
                self.client.api.import_image_from_stream(iter(lambda: f.read(1 << 20), b""),
                                                         repository=tag.split(":")[0], tag=self.run_id,
                                                         changes=changes)
            self.client.images.get(tag)  # the import's result stream carries no error status: check
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self._created.append(tag)
        self._debian_base = tag
        return tag

    @staticmethod
    def _host_sources():
        for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
            if os.path.isfile(path) and os.path.getsize(path) > 0:
                return path
        return None

    @staticmethod
    def _base_hooks(workdir: str) -> list:
        hooks = []
        if os.path.isfile(CA_BUNDLE):
            # The host bundle: it may hold a TLS-intercepting proxy's CA that PyPI/npm traffic needs.
            hooks += ['mkdir -p "$1/etc/ssl/certs"', f"upload {CA_BUNDLE} {CA_BUNDLE}"]
        lines = []
        conf_dir = "/etc/apt/apt.conf.d"
        if os.path.isdir(conf_dir):
            for name in sorted(os.listdir(conf_dir)):
                try:
                    with open(os.path.join(conf_dir, name), encoding="utf-8") as f:
                        text = f.read()
                except (OSError, UnicodeError):
                    continue
                # single complete statements only (a block's first line alone would break apt)
                lines += [ln.strip() for ln in text.splitlines()
                          if ln.strip().startswith(APT_HOST_KEYS) and ln.strip().endswith(";")
                          and ln.count("{") == ln.count("}")]
        if lines:
            conf = os.path.join(workdir, "99imagelint-test-host")
            with open(conf, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            hooks.append(f"upload {conf} /etc/apt/apt.conf.d/99imagelint-test-host")
        return hooks

    # -- fixture images --------------------------------------------------------------------------
    def build(self, name: str) -> str:
        """Build ``fixtures/images/<name>`` (once per run); returns its tag."""
        if name in self._built:
            return self._built[name]
        src = os.path.join(FIXTURE_IMAGES, name)
        dockerfile = os.path.join(src, "Dockerfile")
        if not os.path.isfile(dockerfile):
            raise FixtureBuildError(f"no fixture image {name!r}: {dockerfile} is missing")
        with open(dockerfile, encoding="utf-8") as f:
            text = f.read()
        buildargs = {}
        if "DEBIAN_BASE" in text:
            buildargs["DEBIAN_BASE"] = self.debian_base()
        network = "host" if NETWORK_MARKER in text else "none"
        tag = self.tag_for(name)
        ctx = tempfile.mkdtemp(prefix=f"imagelint-test-ctx-{name}-")
        try:
            shutil.copytree(src, ctx, dirs_exist_ok=True, symlinks=True)
            if "COPY busybox" in text:
                if not os.path.exists(BUSYBOX):
                    raise EngineUnavailable(f"{BUSYBOX} is missing (apt-get install busybox-static)")
                shutil.copy2(BUSYBOX, os.path.join(ctx, "busybox"))
            self._build_context(ctx, tag, network, buildargs, name)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
        self._built[name] = tag
        return tag

    def build_dockerfile(self, name: str, dockerfile_text: str, files: dict = None, network: str = "none") -> str:
        """Build an ad-hoc Dockerfile (tests that generate their own); busybox is added when copied."""
        if name in self._built:
            return self._built[name]
        tag = self.tag_for(name)
        ctx = tempfile.mkdtemp(prefix=f"imagelint-test-ctx-{name}-")
        try:
            with open(os.path.join(ctx, "Dockerfile"), "w", encoding="utf-8") as f:
                f.write(dockerfile_text)
            for rel, content in (files or {}).items():
                path = os.path.join(ctx, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(content if isinstance(content, bytes) else content.encode())
            if "COPY busybox" in dockerfile_text:
                shutil.copy2(BUSYBOX, os.path.join(ctx, "busybox"))
            buildargs = {"DEBIAN_BASE": self.debian_base()} if "DEBIAN_BASE" in dockerfile_text else {}
            self._build_context(ctx, tag, network, buildargs, name)
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
        self._built[name] = tag
        return tag

    def _build_context(self, ctx: str, tag: str, network: str, buildargs: dict, name: str) -> None:
        import docker.errors
        try:
            self.client.images.build(path=ctx, tag=tag, network_mode=network, buildargs=buildargs or None,
                                     rm=True, forcerm=True, pull=False)
        except docker.errors.BuildError as exc:
            log = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log)
            raise FixtureBuildError(f"building fixture image {name!r} failed: {exc.msg}\n{log[-3000:]}") from None
        self._created.append(tag)

    # -- cleanup -----------------------------------------------------------------------------------
    def cleanup(self) -> list:
        """Remove every image this builder created (newest first); returns what failed to go."""
        if self._closed:
            return []
        self._closed = True
        failed = []
        for tag in reversed(self._created):
            try:
                self.client.images.remove(tag, force=True, noprune=False)
            except Exception as exc:  # already gone, or the engine went away: report, go on
                if "No such image" not in str(exc):
                    failed.append(f"{tag}: {exc}")
        self._created.clear()
        try:
            atexit.unregister(self.cleanup)
        except Exception:  # pragma: no cover
            pass
        return failed
