"""Test helpers for registry sources: a real local registry (Debian's ``docker-registry``), pushes
with skopeo, small in-process HTTP servers (token server + auth proxy, fake registry, servers that
misbehave) and writers for docker-archive tars and OCI layouts made in the test.

Everything listens on 127.0.0.1 only and lives in temp dirs removed at the end.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import warnings

import pytest

__all__ = ["LocalRegistry", "AuthProxy", "FakeRegistry", "StallServer", "free_port", "layer_tar",
           "write_docker_archive", "write_oci_index_layout", "skopeo_copy", "htpasswd_line", "need_tool",
           "sha256", "engine_unavailable"]


def engine_unavailable(reason: str):
    """Fail under CI=true (a missing engine/registry must never pass silently), skip otherwise when
    IMAGELINT_TEST_ENGINE=0, fail in every other case."""
    if os.environ.get("CI") != "true" and os.environ.get("IMAGELINT_TEST_ENGINE") == "0":
        pytest.skip(reason)
    pytest.fail(reason + " (set IMAGELINT_TEST_ENGINE=0 to skip engine/registry tests outside CI)")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        engine_unavailable(f"{name} is not installed (Debian package {name})")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- image writers ---------------------------------------------------------------------------------

def layer_tar(files: dict) -> bytes:
    """A layer tar from {path: bytes (file) | None (dir) | ('symlink', target) | ('whiteout',)}.
    Deterministic (mtime 0) so digests are stable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, value in files.items():
            info = tarfile.TarInfo(path)
            info.mtime = 0
            if value is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(value, tuple) and value[0] == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value[1], 0o777
                tar.addfile(info)
            elif isinstance(value, tuple) and value[0] == "whiteout":
                head, _, name = path.rpartition("/")
                info.name = (head + "/" if head else "") + ".wh." + name
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(b""))
            else:
                info.size, info.mode = len(value), 0o644
                tar.addfile(info, io.BytesIO(value))
    return buffer.getvalue()


def _config(layers: list, arch: str = "amd64", os_name: str = "linux", variant: str = None) -> dict:
    config = {"architecture": arch, "os": os_name, "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in layers]},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"/bin/sh -c step {i}"}
                          for i in range(len(layers))]}
    if variant:
        config["variant"] = variant
    return config


def write_docker_archive(path: str, layers: list, repo_tag: str = "imagelint-test/x:1", **config_args) -> dict:
    """A classic `docker save` tar from uncompressed layer tars; returns the config written."""
    config = _config(layers, **config_args)
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    members = {config_name: config_bytes}
    layer_names = []
    for layer in layers:
        name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
        members[name] = layer
        layer_names.append(name)
    members["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": [repo_tag],
                                            "Layers": layer_names}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return config


def write_oci_index_layout(directory: str, platforms: dict, tag: str = "multi") -> None:
    """An OCI layout whose ``tag`` is an image index with one image per platform
    ({'linux/amd64': [layer tar, ...], ...}), ready for ``skopeo copy --all oci:DIR:tag``."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data: bytes, media_type: str, **extra) -> dict:
        digest = sha256(data)
        with open(os.path.join(blobs, digest.split(":")[1]), "wb") as handle:
            handle.write(data)
        return dict({"mediaType": media_type, "digest": digest, "size": len(data)}, **extra)

    manifests = []
    for plat, layers in platforms.items():
        os_name, arch, *rest = plat.split("/")
        variant = rest[0] if rest else None
        config = put(json.dumps(_config(layers, arch, os_name, variant)).encode(),
                     "application/vnd.oci.image.config.v1+json")
        layer_descs = [put(gzip.compress(t, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip") for t in layers]
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config, "layers": layer_descs}
        platform = {"os": os_name, "architecture": arch}
        if variant:
            platform["variant"] = variant
        manifests.append(put(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json",
                             platform=platform))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    top = put(json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json",
              annotations={"org.opencontainers.image.ref.name": tag})
    with open(os.path.join(directory, "index.json"), "w") as handle:
        json.dump({"schemaVersion": 2, "manifests": [top]}, handle)
    with open(os.path.join(directory, "oci-layout"), "w") as handle:
        json.dump({"imageLayoutVersion": "1.0.0"}, handle)


def skopeo_copy(source: str, dest: str, *args: str, creds: str = None) -> None:
    command = [need_tool("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", *args]
    if creds:
        command += ["--dest-creds", creds]
    command += [source, dest]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"skopeo copy failed: {' '.join(command)}\n{done.stderr}")


def htpasswd_line(user: str, password: str) -> str:
    """An htpasswd bcrypt line (docker-registry only accepts bcrypt): libcrypt via the stdlib
    ``crypt`` module (Python < 3.13), else the ``bcrypt`` package, else apache2-utils' htpasswd."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        if hashed and hashed.startswith("$2"):
            return f"{user}:{hashed}"
    except (ImportError, ValueError, OSError):
        pass
    try:
        import bcrypt
        return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"
    except ImportError:
        pass
    if shutil.which("htpasswd"):
        done = subprocess.run(["htpasswd", "-nbB", user, password], capture_output=True, text=True, check=True)
        return done.stdout.strip()
    engine_unavailable("no bcrypt implementation for htpasswd (stdlib crypt, bcrypt package or apache2-utils)")


# --- the real registry -----------------------------------------------------------------------------

class LocalRegistry:
    """Debian's ``docker-registry serve`` on 127.0.0.1:<free port>, storage in a temp dir;
    optionally with htpasswd basic auth."""

    def __init__(self, users: dict = None):
        self.users = users or {}
        self.tmp = None
        self.process = None
        self.port = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LocalRegistry":
        binary = need_tool("docker-registry")
        self.tmp = tempfile.mkdtemp(prefix="imagelint-test-registry-")
        self.port = free_port()
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.tmp}/data",
                 "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}", "  secret: imagelint-test-secret"]
        if self.users:
            path = os.path.join(self.tmp, "htpasswd")
            with open(path, "w") as handle:
                for user, password in self.users.items():
                    handle.write(htpasswd_line(user, password) + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: imagelint-test", f"    path: {path}"]
        config = os.path.join(self.tmp, "config.yml")
        with open(config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(self.tmp, "registry.log"), "wb")
        self.process = subprocess.Popen([binary, "serve", config], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        engine_unavailable("docker-registry did not start (see its log)")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if getattr(self, "log", None):
            self.log.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def push_archive(self, archive: str, name: str, *args: str, creds: str = None) -> str:
        """Push a docker-archive tar as ``name`` (repo:tag); returns the registry: reference."""
        skopeo_copy(f"docker-archive:{archive}", f"docker://{self.host}/{name}", *args, creds=creds)
        return f"{self.host}/{name}"

    def get(self, path: str, headers: dict = None) -> tuple:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


# --- in-process servers --------------------------------------------------------------------------

class _Server:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> running a handler class in a thread."""

    handler_class = None

    def start(self):
        owner = self

        class Handler(self.handler_class):
            server_owner = owner

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        owner = self.server_owner
        owner.requests.append((self.path, self.headers.get("Authorization")))
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/token":
            return self._token(urllib.parse.parse_qs(parsed.query))
        if parsed.path.startswith("/v2/"):
            return self._proxy(parsed)
        self._reply(404, b"{}")

    def do_POST(self):
        """OAuth2 refresh-token grant, as docker uses it for identity tokens."""
        owner = self.server_owner
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        owner.requests.append((self.path, self.headers.get("Authorization")))
        user = owner.refresh_tokens.get((form.get("refresh_token") or [""])[0])
        if form.get("grant_type") != ["refresh_token"] or user is None:
            return self._reply(401, b'{"details":"invalid refresh token"}')
        scopes = " ".join(form.get("scope", [])).split()
        owner.token_requests.append((user, (form.get("service") or [None])[0], scopes))
        token = f"tok-{len(owner.tokens)}"
        owner.tokens[token] = (user, scopes)
        self._reply(200, json.dumps({"access_token": token}).encode(), {"Content-Type": "application/json"})

    def _reply(self, status: int, body: bytes, headers: dict = None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _token(self, query: dict):
        owner = self.server_owner
        auth = self.headers.get("Authorization") or ""
        user = None
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if owner.users.get(user) != password:
                return self._reply(401, b'{"details":"bad credentials"}')
        scopes = query.get("scope", [])
        owner.token_requests.append((user, query.get("service", [None])[0], scopes))
        token = f"tok-{len(owner.tokens)}"
        owner.tokens[token] = (user, scopes)
        self._reply(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                    {"Content-Type": "application/json"})

    def _proxy(self, parsed):
        owner = self.server_owner
        repo = parsed.path[4:].split("/manifests/")[0].split("/blobs/")[0]
        auth = self.headers.get("Authorization") or ""
        granted = owner.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        allowed = granted is not None and (granted[0] is not None or not owner.users) and \
            f"repository:{repo}:pull" in granted[1]
        if parsed.path != "/v2/" and not allowed:
            challenge = (f'Bearer realm="http://{owner.host}/token",service="imagelint-test",'
                         f'scope="repository:{repo}:pull"')
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            return self._reply(401, body, {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
        conn = http.client.HTTPConnection("127.0.0.1", owner.backend_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept",)}
        conn.request("GET", self.path, headers=headers)
        response = conn.getresponse()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() in ("content-type", "content-length", "docker-content-digest", "location"):
                self.send_header(key, value)
        self.end_headers()
        while True:  # stream, as a real registry would
            chunk = response.read(1 << 16)
            if not chunk:
                break
            self.wfile.write(chunk)
        conn.close()


class AuthProxy(_Server):
    """Token server plus Bearer-checking proxy in front of an anonymous registry: what Docker Hub,
    GHCR or ECR look like to a client. With ``users`` only authenticated tokens grant access."""

    handler_class = _ProxyHandler

    def __init__(self, backend_port: int, users: dict = None):
        self.backend_port = backend_port
        self.users = users or {}
        self.tokens = {}
        self.refresh_tokens = {}  # identity token → user
        self.requests = []
        self.token_requests = []


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        owner = self.server_owner
        path = self.path
        if path.startswith("http://"):  # we are being used as a forward proxy
            owner.proxied.append((path, self.headers.get("Host"), self.headers.get("Proxy-Authorization")))
            path = urllib.parse.urlsplit(path).path
        owner.requests.append((path, self.headers.get("Authorization"), self.headers.get("Accept")))
        path = path.split("?")[0]
        if path in owner.routes:
            status, headers, body = owner.routes[path]
            if callable(body):
                body = body(self)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeRegistry(_Server):
    """A registry made of canned answers: ``routes[path] = (status, headers, body)``. Handy for
    wrong blobs, odd media types, redirects and header checks."""

    handler_class = _FakeHandler

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.proxied = []  # (absolute URL, Host, Proxy-Authorization) when used as a forward proxy

    def add_manifest(self, repo: str, reference: str, manifest: dict, media_type: str = None) -> str:
        body = json.dumps(manifest).encode()
        media_type = media_type or manifest.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        digest = sha256(body)
        for ref in (reference, digest):
            self.routes[f"/v2/{repo}/manifests/{ref}"] = (200, {"Content-Type": media_type,
                                                                "Docker-Content-Digest": digest}, body)
        return digest

    def add_blob(self, repo: str, data: bytes, digest: str = None, served: bytes = None) -> dict:
        """Serve ``served`` (default: data) under ``digest`` (default: data's sha256)."""
        digest = digest or sha256(data)
        self.routes[f"/v2/{repo}/blobs/{digest}"] = (200, {"Content-Type": "application/octet-stream"},
                                                     data if served is None else served)
        return {"digest": digest, "size": len(data)}

    def add_image(self, repo: str, tag: str, layers: list, layer_media_type: str = None, compress=True,
                  **config_args) -> dict:
        """An OCI image of the given uncompressed layer tars; returns its manifest."""
        config = self.add_blob(repo, json.dumps(_config(layers, **config_args)).encode())
        config["mediaType"] = "application/vnd.oci.image.config.v1+json"
        descs = []
        for tar in layers:
            blob = gzip.compress(tar, mtime=0) if compress else tar
            desc = self.add_blob(repo, blob)
            desc["mediaType"] = layer_media_type or ("application/vnd.oci.image.layer.v1.tar+gzip" if compress
                                                     else "application/vnd.oci.image.layer.v1.tar")
            descs.append(desc)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config, "layers": descs}
        self.add_manifest(repo, tag, manifest)
        return manifest


class StallServer:
    """Accepts connections and never answers (for timeouts)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def http_get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())
