"""``registry:REF``: read an image straight from a registry over the OCI distribution API v2.

No engine is involved. Only the standard library speaks HTTP (http.client, so that redirects and
the Authorization header are under our control). Manifests and the config are small and read
whole (with a size cap); layer blobs are streamed through :func:`layerstream.read_layer` while
their sha256 is checked, so no blob is ever held in memory or written to disk.

Transfer (compressed) sizes come from the manifest's layer descriptors: exact, and known without
downloading anything (:func:`fetch_manifest_only`).

Auth follows what docker does: try anonymously; on 401 read the ``WWW-Authenticate`` challenge,
``Bearer`` → fetch a token from the realm (with credentials when we have some), ``Basic`` → send
credentials. Credentials come from the docker client config (``$DOCKER_CONFIG/config.json`` or
``~/.docker/config.json``): ``credHelpers``, ``credsStore``, then ``auths``.

Plain HTTP is used for localhost/127.0.0.1/[::1] and for the hosts listed in
``IMAGELINT_INSECURE_REGISTRIES`` (comma-separated ``host[:port]``); HTTPS with the system CA
bundle everywhere else.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import platform as _platform
import re
import shutil
import socket
import ssl
import subprocess
import urllib.parse
import urllib.request

from ..image import Image, ImageError, Layer

__all__ = ["load_registry", "fetch_manifest_only", "parse_reference", "Reference", "RegistryClient",
           "parse_challenge", "parse_platform", "default_platform", "docker_config_path",
           "lookup_credentials", "RegistryError", "DigestMismatchError"]

DEFAULT_TIMEOUT = 30.0
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"  # how `docker login` stores Docker Hub

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                     "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
ACCEPT = ", ".join((MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST))
CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")

# Layer media types we can read (compression is sniffed from the bytes by layerstream anyway).
LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
)
# Layers a registry usually does not hold (fetched from `urls`, e.g. Windows base layers).
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)

MAX_MANIFEST_BYTES = 4 << 20  # the limit the distribution registry itself applies
MAX_CONFIG_BYTES = 32 << 20
MAX_TOKEN_BYTES = 1 << 20
MAX_REDIRECTS = 5
CHUNK = 1 << 20
HELPER_TIMEOUT = 30

_HOST_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
              "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
              "riscv64": "riscv64"}


class RegistryError(ImageError):
    """A registry refused or failed a request (auth, not found, network, protocol)."""


class DigestMismatchError(RegistryError):
    """A blob or manifest did not hash to the digest that names it."""


# --- references ----------------------------------------------------------------------------------

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


class Reference:
    """A parsed image reference: registry (as written, e.g. ``docker.io``), API host, repository,
    tag and/or digest."""

    __slots__ = ("registry", "host", "repository", "tag", "digest")

    def __init__(self, registry: str, repository: str, tag: str = None, digest: str = None):
        self.registry = registry
        self.host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.repository = repository
        self.tag = tag
        self.digest = digest

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"


def parse_reference(ref: str) -> Reference:
    """Parse ``[host[:port]/]repo[:tag][@digest]`` the way docker does: the first component is a
    registry only when it has a ``.`` or ``:`` or is ``localhost``; docker.io is the default and
    single names get ``library/``; the tag defaults to ``latest`` unless a digest pins the image."""
    text = ref.strip()
    if text.startswith("registry:"):
        text = text[len("registry:"):]
    if "://" in text:
        raise ImageError(f"{ref!r}: give the image as host/repo:tag, without a URL scheme")
    if not text:
        raise ImageError("empty image reference")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ImageError(f"{ref!r}: invalid digest {digest!r} (expected e.g. sha256:<64 hex digits>)")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, remainder = first, rest
    else:
        registry, remainder = DOCKER_HUB, text
    if registry in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        registry = DOCKER_HUB
    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ImageError(f"{ref!r}: invalid tag {tag!r}")
    if registry == DOCKER_HUB and "/" not in remainder:
        remainder = "library/" + remainder
    if not _REPO_RE.match(remainder):
        raise ImageError(f"{ref!r}: invalid repository name {remainder!r} "
                         "(lowercase letters, digits and . _ - separators only)")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, remainder, tag, digest)


# --- platforms -----------------------------------------------------------------------------------

def default_platform() -> str:
    """linux/<host architecture> (linux/amd64 when the architecture is unknown)."""
    machine = _platform.machine().lower()
    arch = _HOST_ARCH.get(machine, "amd64")
    if machine == "armv7l":
        return "linux/arm/v7"
    if machine == "armv6l":
        return "linux/arm/v6"
    return f"linux/{arch}"


def parse_platform(text: str) -> tuple:
    """``os/arch[/variant]`` → (os, arch, variant or None); 'aarch64'/'x86_64' accepted as aliases."""
    parts = [p.strip().lower() for p in (text or "").split("/")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64")
    os_name, arch = parts[0], _HOST_ARCH.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else None
    return os_name, arch, variant


def _normal_variant(arch: str, variant):
    # arm64 images are v8 unless marked otherwise; 32-bit arm defaults to v7 (containerd's rule).
    if arch == "arm64" and variant in (None, "", "v8"):
        return "v8"
    if arch == "arm" and not variant:
        return "v7"
    return variant or None


def _format_platform(plat: dict) -> str:
    text = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
    if plat.get("variant"):
        text += f"/{plat['variant']}"
    return text


# --- credentials ---------------------------------------------------------------------------------

def docker_config_path() -> str:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json (it need not exist)."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def _load_docker_config() -> dict:
    path = docker_config_path()
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read docker config {path}: {exc}; fix or remove it") from None
    if not isinstance(data, dict):
        raise ImageError(f"docker config {path} is not a JSON object; fix or remove it")
    return data


def _auth_keys(registry: str) -> list:
    """Keys under which docker may have stored credentials for ``registry``."""
    if registry == DOCKER_HUB:
        return [DOCKER_HUB_AUTH_KEY, "index.docker.io", "docker.io", DOCKER_HUB_API, "https://index.docker.io/v1"]
    return [registry, f"https://{registry}", f"http://{registry}"]


def _strip_server(key: str) -> str:
    """'https://host:5000/v1/' → 'host:5000' (docker matches auths keys this way too)."""
    key = key.strip()
    if "://" in key:
        key = key.split("://", 1)[1]
    return key.split("/", 1)[0]


def _run_helper(helper: str, server: str, origin: str):
    """(username, secret) from ``docker-credential-<helper> get``, or None when it has none."""
    program = f"docker-credential-{helper}"
    path = shutil.which(program)
    if not path:
        raise ImageError(f"credential helper {program} (from {origin} in {docker_config_path()}) "
                         "is not on PATH: install it or remove it from the docker config")
    try:
        done = subprocess.run([path, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ImageError(f"credential helper {program} did not answer within {HELPER_TIMEOUT} s "
                         "(is it waiting for a keyring unlock?)") from None
    except OSError as exc:
        raise ImageError(f"cannot run credential helper {program}: {exc}") from None
    out = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        message = (out or done.stderr.decode("utf-8", "replace").strip()).splitlines()
        first = message[0] if message else f"exit status {done.returncode}"
        if "credentials not found" in first.lower():
            return None
        raise ImageError(f"credential helper {program} failed for {server}: {first}")
    try:
        data = json.loads(out)
        return data.get("Username") or "", data.get("Secret") or ""
    except (ValueError, AttributeError):
        raise ImageError(f"credential helper {program} printed something that is not its JSON answer") from None


class Credentials:
    """What the docker config gives for one registry: username/password, or an identity token."""

    __slots__ = ("username", "password", "identity_token", "origin")

    def __init__(self, username: str = "", password: str = "", identity_token: str = "", origin: str = ""):
        self.username = username
        self.password = password
        self.identity_token = identity_token
        self.origin = origin  # where they came from, for error messages

    def basic_header(self):
        if not self.username and not self.password:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def lookup_credentials(registry: str):
    """Credentials for ``registry`` (as written in the reference, e.g. ``docker.io`` or
    ``127.0.0.1:5000``) from the docker config, or None."""
    config = _load_docker_config()
    if not config:
        return None
    keys = _auth_keys(registry)
    helpers = config.get("credHelpers") or {}
    helper, origin = None, ""
    for key, name in helpers.items():
        if _strip_server(key) in [_strip_server(k) for k in keys] and name:
            helper, origin = name, f"credHelpers[{key!r}]"
            break
    if helper is None and config.get("credsStore"):
        helper, origin = config["credsStore"], "credsStore"
    if helper:
        server = DOCKER_HUB_AUTH_KEY if registry == DOCKER_HUB else registry
        found = _run_helper(helper, server, origin)
        if found is not None:
            username, secret = found
            if username == "<token>":  # docker's marker for an identity (refresh) token
                return Credentials(identity_token=secret, origin=f"docker-credential-{helper}")
            return Credentials(username, secret, origin=f"docker-credential-{helper}")
    auths = config.get("auths") or {}
    wanted = {_strip_server(k) for k in keys}
    for key, entry in auths.items():
        if _strip_server(key) not in wanted or not isinstance(entry, dict):
            continue
        username, password = entry.get("username") or "", entry.get("password") or ""
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode("utf-8")
                username, _, password = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ImageError(f"auths[{key!r}].auth in {docker_config_path()} is not base64 'user:password'; "
                                 f"run `docker login {registry}` again") from None
        token = entry.get("identitytoken") or ""
        if username or password or token:
            return Credentials(username, password, token, origin=f"auths[{key!r}] in {docker_config_path()}")
    return None


# --- challenges ----------------------------------------------------------------------------------

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_SCHEME_RE = re.compile(r"(?:^|,)\s*([A-Za-z][A-Za-z0-9_-]*)\s+(?=[A-Za-z0-9_.-]+\s*=)")


def parse_challenge(header: str) -> list:
    """``WWW-Authenticate`` value → [(scheme lowercased, {param: value})], in order.

    Quoted values may contain commas (``scope="repository:a:pull,push"``)."""
    challenges = []
    if not header:
        return challenges
    positions = [(m.start(1), m.end(), m.group(1)) for m in _SCHEME_RE.finditer(header)]
    if not positions:  # a bare scheme such as "Basic"
        word = header.strip().split()[0] if header.strip() else ""
        return [(word.lower(), {})] if word else []
    for i, (_start, params_at, scheme) in enumerate(positions):
        end = positions[i + 1][0] if i + 1 < len(positions) else len(header)
        params = {}
        for m in _PARAM_RE.finditer(header[params_at:end]):
            value = m.group(2)
            if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[m.group(1).lower()] = value
        challenges.append((scheme.lower(), params))
    return challenges


# --- HTTP ----------------------------------------------------------------------------------------

def _insecure_hosts() -> set:
    text = os.environ.get("IMAGELINT_INSECURE_REGISTRIES", "")
    return {h.strip().lower() for h in text.split(",") if h.strip()}


def _split_hostport(netloc: str) -> tuple:
    """'host:port' / '[::1]:5000' / 'host' → (host without brackets, port or None)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        host = netloc[1:end]
        rest = netloc[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, _, port = netloc.partition(":")
    return host, int(port) if port.isdigit() else None


def is_insecure(registry: str) -> bool:
    """Plain HTTP for loopback registries and those listed in IMAGELINT_INSECURE_REGISTRIES."""
    host, _port = _split_hostport(registry)
    if host.lower() in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        return True
    listed = _insecure_hosts()
    return registry.lower() in listed or host.lower() in listed


def _proxy_for(scheme: str, host: str):
    """The proxy URL for a request, or None (never for loopback registries, nor hosts in NO_PROXY)."""
    if host.lower() in ("localhost", "::1") or host.startswith("127."):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme)
    if not proxy:
        return None
    try:
        if urllib.request.proxy_bypass(host):
            return None
    except OSError:  # proxy_bypass may resolve names; a failure just means "no bypass"
        pass
    return proxy


class _ProxiedHTTPConnection(http.client.HTTPConnection):
    """Plain-HTTP request through a forward proxy: absolute-URI target plus Proxy-Authorization."""

    proxy_headers: dict = {}

    def putrequest(self, method, url, *args, **kwargs):
        super().putrequest(method, url, *args, **kwargs)
        for key, value in self.proxy_headers.items():
            self.putheader(key, value)


class _Response:
    """An open HTTP response plus its connection (closed together) and the URL it came from."""

    def __init__(self, conn, response, url: str):
        self.conn = conn
        self.response = response
        self.url = url
        self.status = response.status

    def header(self, name: str, default=None):
        return self.response.getheader(name, default)

    def read(self, n: int = -1) -> bytes:
        return self.response.read(n)

    def read_capped(self, limit: int, what: str) -> bytes:
        """The whole body, refusing more than ``limit`` bytes (manifests, configs, tokens, errors)."""
        length = self.header("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise RegistryError(f"{what} is {int(length)} bytes, more than the {limit} allowed")
        data = self.response.read(limit + 1)
        if len(data) > limit:
            raise RegistryError(f"{what} is larger than the {limit} bytes allowed")
        return data

    def close(self) -> None:
        try:
            self.response.close()
        finally:
            self.conn.close()


class RegistryClient:
    """Talks to one registry: connections, redirects, the auth dance and error messages."""

    def __init__(self, registry: str, timeout: float = DEFAULT_TIMEOUT):
        self.registry = registry  # as in the reference (docker.io, host:port)
        self.host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.scheme = "http" if is_insecure(self.host) else "https"
        self.base = f"{self.scheme}://{self.host}"
        self.timeout = timeout
        self._tokens: dict = {}  # scope → bearer token
        self._basic = None  # Authorization header once the registry asked for Basic
        self._credentials = False  # False: not looked up yet
        self._ssl = None

    # -- low level

    def _ssl_context(self):
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # system CA bundle (SSL_CERT_FILE honoured)
        return self._ssl

    def _describe(self, netloc: str) -> str:
        if netloc.lower() == self.host.lower():
            return f"registry {self.registry}" + (f" ({self.host})" if self.host != self.registry else "")
        return f"{netloc} (reached from registry {self.registry})"

    def _connect(self, url: str):
        """(connection, request target, split URL); HTTP(S)_PROXY / NO_PROXY are honoured like curl."""
        parts = urllib.parse.urlsplit(url)
        host, port = _split_hostport(parts.netloc)
        if parts.scheme not in ("http", "https"):
            raise RegistryError(f"{self._describe(parts.netloc)}: unsupported URL scheme in {url!r}")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        proxy = _proxy_for(parts.scheme, host)
        if proxy is None:
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl_context())
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            return conn, target, parts
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        proxy_headers = {}
        if proxy_parts.username is not None:
            raw = f"{urllib.parse.unquote(proxy_parts.username)}:{urllib.parse.unquote(proxy_parts.password or '')}"
            proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        if parts.scheme == "https":
            # TLS to the registry inside a CONNECT tunnel through the proxy.
            conn = http.client.HTTPSConnection(proxy_parts.hostname, proxy_parts.port or 80, timeout=self.timeout,
                                               context=self._ssl_context())
            conn.set_tunnel(host, port or 443, headers=proxy_headers)
            return conn, target, parts
        conn = _ProxiedHTTPConnection(proxy_parts.hostname, proxy_parts.port or 80, timeout=self.timeout)
        conn.proxy_headers = proxy_headers
        return conn, f"http://{parts.netloc}{target}", parts

    def _network_error(self, exc: BaseException, parts, during: str = "connecting") -> RegistryError:
        where = parts.netloc
        who = self._describe(where)
        if isinstance(exc, ConnectionRefusedError):
            return RegistryError(f"{who} unreachable at {where}: connection refused (is it running? "
                                 "is the host:port right?)")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return RegistryError(f"{who} did not answer within {self.timeout:g} s while {during} (timeout); "
                                 "check the network, or raise the limit with IMAGELINT_REGISTRY_TIMEOUT=SECONDS")
        if isinstance(exc, socket.gaierror):
            return RegistryError(f"cannot resolve the host name of {who}: {exc.strerror or exc}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return RegistryError(f"TLS certificate of {who} not trusted: {exc.verify_message or exc}; "
                                 "add its CA to the system bundle or point SSL_CERT_FILE at it")
        if isinstance(exc, ssl.SSLError):
            return RegistryError(f"TLS error talking to {who}: {exc.reason or exc}; if it serves plain "
                                 "HTTP, list it in IMAGELINT_INSECURE_REGISTRIES")
        if isinstance(exc, http.client.RemoteDisconnected):
            return RegistryError(f"{who} closed the connection without answering while {during}")
        if isinstance(exc, http.client.HTTPException):
            return RegistryError(f"{who} sent an invalid HTTP response while {during}: "
                                 f"{type(exc).__name__} {exc}".rstrip())
        if isinstance(exc, OSError):
            return RegistryError(f"cannot reach {who} at {where} while {during}: {exc.strerror or exc}")
        return RegistryError(f"{who}: {exc}")

    def _send(self, method: str, url: str, headers: dict, body: bytes = None) -> _Response:
        """One request, no redirects followed; network failures become RegistryError."""
        conn, target, parts = self._connect(url)
        during = "connecting"
        try:
            conn.connect()
            during = "waiting for an answer"
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._network_error(exc, parts, during) from None
        return _Response(conn, response, url)

    def _same_origin(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme == self.scheme and parts.netloc.lower() == self.host.lower()

    def open(self, method: str, path: str, scope: str, accept: str = None, what: str = "") -> _Response:
        """Request ``path`` on the registry with auth, following redirects. Authorization is only
        ever sent to the registry's own origin, never to a redirect target elsewhere (S3, a CDN)."""
        url = self.base + path
        retried_auth = False
        redirects = 0
        while True:
            headers = {"User-Agent": "imagelint", "Accept-Encoding": "identity"}
            if accept:
                headers["Accept"] = accept
            if self._same_origin(url):
                auth = self._authorization(scope)
                if auth:
                    headers["Authorization"] = auth
            response = self._send(method, url, headers)
            if response.status in (301, 302, 303, 307, 308):
                location = response.header("Location")
                response.close()
                redirects += 1
                if not location or redirects > MAX_REDIRECTS:
                    raise RegistryError(f"registry {self.registry}: too many or empty redirects for {what or path}")
                url = urllib.parse.urljoin(url, location)
                if response.status == 303:
                    method = "GET"
                continue
            if response.status == 401 and self._same_origin(url) and not retried_auth:
                challenge = response.header("WWW-Authenticate") or ""
                response.read_capped(1 << 16, "error body")
                response.close()
                retried_auth = True
                self._answer_challenge(challenge, scope)
                continue
            return response

    # -- auth

    def credentials(self):
        if self._credentials is False:
            self._credentials = lookup_credentials(self.registry)
        return self._credentials

    def _authorization(self, scope: str):
        token = self._tokens.get(scope)
        if token:
            return f"Bearer {token}"
        return self._basic

    def _answer_challenge(self, header: str, scope: str) -> None:
        challenges = parse_challenge(header)
        schemes = dict(challenges)
        self._tokens.pop(scope, None)  # an expired token: fetch a fresh one
        if "bearer" in schemes:
            self._tokens[scope] = self._fetch_token(schemes["bearer"], scope)
            return
        if "basic" in schemes:
            creds = self.credentials()
            header_value = creds.basic_header() if creds else None
            if not header_value:
                raise self._denied(401, "", "the registry wants a username and password and none are configured")
            if self._basic == header_value:
                raise self._denied(401, "", f"the credentials from {creds.origin} were rejected")
            self._basic = header_value
            return
        raise self._denied(401, "", f"unsupported auth challenge {header!r}" if header else "no auth challenge given")

    def _fetch_token(self, params: dict, scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.registry} sent a Bearer challenge without a realm")
        realm_parts = urllib.parse.urlsplit(realm)
        if realm_parts.scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.registry}: token realm {realm!r} is not an http(s) URL")
        creds = self.credentials()
        # Never send credentials in clear text, except to a loopback/insecure-listed token server.
        if creds and realm_parts.scheme == "http" and not is_insecure(realm_parts.netloc):
            creds = None
        query = {}
        if params.get("service"):
            query["service"] = params["service"]
        scopes = [s for s in (params.get("scope"), scope) if s]
        headers = {"User-Agent": "imagelint", "Accept": "application/json"}
        if creds and creds.identity_token:
            # docker's OAuth2 refresh-token flow for identity tokens.
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "imagelint", "service": params.get("service", ""), "scope": " ".join(dict.fromkeys(scopes))}
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = self._send("POST", realm, headers, urllib.parse.urlencode(form).encode())
        else:
            if creds and creds.basic_header():
                headers["Authorization"] = creds.basic_header()
            url = realm + ("&" if realm_parts.query else "?") + urllib.parse.urlencode(
                list(query.items()) + [("scope", s) for s in dict.fromkeys(scopes)])
            response = self._send("GET", url, headers)
        try:
            body = response.read_capped(MAX_TOKEN_BYTES, f"token answer from {realm_parts.netloc}")
        except (OSError, http.client.HTTPException) as exc:
            raise self._network_error(exc, realm_parts, "fetching a token") from None
        finally:
            response.close()
        if response.status in (401, 403):
            detail = (f"the credentials from {creds.origin} were rejected by the token server {realm_parts.netloc}"
                      if creds else f"the token server {realm_parts.netloc} refused an anonymous token")
            raise self._denied(response.status, "", detail)
        if response.status != 200:
            raise RegistryError(f"token server {realm_parts.netloc} for registry {self.registry} answered "
                                f"HTTP {response.status}{_error_detail(body)}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(f"token server {realm_parts.netloc} for registry {self.registry} sent no token")
        return token

    def _denied(self, status: int, body, detail: str = "") -> RegistryError:
        word = "unauthorized" if status == 401 else "denied"
        extra = f": {detail}" if detail else _error_detail(body, prefix=": ")
        return RegistryError(f"registry {self.registry} refused access ({status} {word}){extra}; run "
                             f"`docker login {self.registry}` or check {docker_config_path()}")


def _error_detail(body, prefix: str = " - ") -> str:
    """The first error of a distribution-API JSON error body, e.g. ' - MANIFEST_UNKNOWN: manifest unknown'."""
    if not body:
        return ""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError):
        text = body[:200].decode("utf-8", "replace").strip() if isinstance(body, bytes) else str(body)[:200]
    text = " ".join(text.split())
    return f"{prefix}{text}" if text else ""


# --- digests -------------------------------------------------------------------------------------

def _hasher(digest: str, what: str):
    algorithm, _, hexpart = digest.partition(":")
    if algorithm not in ("sha256", "sha512") or not hexpart:
        raise RegistryError(f"{what}: unsupported digest {digest!r} (only sha256 and sha512 are checked)")
    return hashlib.new(algorithm)


class _VerifiedBlob:
    """Forward-only reader over a blob response: hashes and counts the compressed bytes as they
    pass, and at the end (or on close) checks them against the descriptor's size and digest."""

    def __init__(self, client: RegistryClient, response: _Response, digest: str, size, what: str):
        self.client = client
        self.response = response
        self.digest = digest
        self.size = size
        self.what = what
        self.hash = _hasher(digest, what)
        self.count = 0
        self.done = False

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        if n is None or n < 0:
            n = CHUNK  # never read a whole blob in one call
        # Reading one byte past the declared size reveals a blob that is too long.
        if self.size is not None:
            n = min(n, self.size + 1 - self.count)
        try:
            data = self.response.read(n) if n > 0 else b""
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, http.client.IncompleteRead):
                self.count += len(exc.partial)
                raise DigestMismatchError(f"{self.what}: the download ended after {self.count} of "
                                          f"{self.size if self.size is not None else '?'} bytes "
                                          "(connection cut); try again") from None
            parts = urllib.parse.urlsplit(self.response.url)
            raise self.client._network_error(exc, parts, f"downloading {self.what}") from None
        self.count += len(data)
        self.hash.update(data)
        if self.size is not None and self.count > self.size:
            raise DigestMismatchError(f"{self.what}: the registry sent more than the {self.size} bytes the "
                                      f"manifest declares; blob {self.digest} is corrupt or was replaced")
        if not data:
            self.done = True
            self.verify()
        return data

    def verify(self) -> None:
        if self.size is not None and self.count != self.size:
            raise DigestMismatchError(f"{self.what}: got {self.count} bytes, the manifest declares {self.size}; "
                                      f"blob {self.digest} is truncated or corrupt in the registry")
        actual = f"{self.hash.name}:{self.hash.hexdigest()}"
        if actual != self.digest:
            raise DigestMismatchError(f"{self.what}: digest mismatch: expected {self.digest}, got {actual}; "
                                      "the registry (or something between) served wrong data")

    def drain(self) -> None:
        """Read what the layer reader left (tar padding, trailing bytes) so the digest can be checked."""
        while not self.done:
            self.read(CHUNK)

    def close(self) -> None:
        self.response.close()


# --- the API -------------------------------------------------------------------------------------

class _Session:
    """One reference being read: the client plus manifest/blob fetching for its repository."""

    def __init__(self, ref: str, timeout: float):
        self.ref = parse_reference(ref)
        self.client = RegistryClient(self.ref.registry, timeout=timeout)
        self.scope = f"repository:{self.ref.repository}:pull"
        self.name = f"{self.ref.registry}/{self.ref.repository}"

    def _check(self, response: _Response, what: str, kind: str) -> None:
        if response.status == 200:
            return
        body = b""
        try:
            body = response.read_capped(1 << 16, "error body")
        except (RegistryError, OSError, http.client.HTTPException):
            pass
        response.close()
        status = response.status
        if status in (401, 403):
            detail = _error_detail(body, prefix="")
            creds = self.client._credentials or None
            if creds and self.client._basic:
                detail = f"the credentials from {creds.origin} were rejected"
            elif creds and self.scope in self.client._tokens:
                detail = (f"the credentials from {creds.origin} do not grant pull access to "
                          f"{self.ref.repository}" + (f" ({detail})" if detail else ""))
            if self.ref.registry == DOCKER_HUB:
                detail = (detail + "; " if detail else "") + "Docker Hub also answers this for repositories that do not exist"
            raise self.client._denied(status, body, detail)
        if status == 404:
            if kind == "manifest":
                raise RegistryError(f"{what} not found in registry {self.ref.registry} (404): the name or tag does not "
                                    f"exist{_error_detail(body, prefix=' - ')}")
            raise RegistryError(f"{what} is missing from registry {self.ref.registry} (404){_error_detail(body)}")
        if status == 429:
            raise RegistryError(f"registry {self.ref.registry} is rate limiting (429 too many requests) while fetching "
                                f"{what}; wait, or `docker login {self.ref.registry}` for a higher limit")
        raise RegistryError(f"registry {self.ref.registry} answered HTTP {status} {response.response.reason} for "
                            f"{what}{_error_detail(body)}")

    def manifest(self, reference: str, expected_digest: str = None, what: str = None) -> tuple:
        """(media type, parsed JSON, digest) of a manifest or index."""
        if not what:
            what = f"{self.name}@{reference}" if ":" in reference else f"{self.name}:{reference}"
        path = f"/v2/{self.ref.repository}/manifests/{reference}"
        response = self.client.open("GET", path, self.scope, accept=ACCEPT, what=what)
        try:
            self._check(response, what, "manifest")
            try:
                body = response.read_capped(MAX_MANIFEST_BYTES, f"manifest of {what}")
            except (OSError, http.client.HTTPException) as exc:
                raise self.client._network_error(exc, urllib.parse.urlsplit(response.url), "reading a manifest") from None
            header_type = (response.header("Content-Type") or "").split(";")[0].strip()
        finally:
            response.close()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if expected_digest:
            hasher = _hasher(expected_digest, what)
            hasher.update(body)
            actual = f"{hasher.name}:{hasher.hexdigest()}"
            if actual != expected_digest:
                raise DigestMismatchError(f"manifest of {what}: digest mismatch: expected {expected_digest}, got {actual}")
            digest = expected_digest
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise RegistryError(f"manifest of {what} from registry {self.ref.registry} is not valid JSON ({exc})") from None
        media_type = data.get("mediaType") or header_type
        if media_type in ("application/json", "", "text/plain"):
            # OCI manifests may omit mediaType; tell index from manifest by shape.
            media_type = MT_OCI_INDEX if "manifests" in data else MT_OCI_MANIFEST if "layers" in data else media_type
        if media_type in MT_DOCKER_SCHEMA1 or data.get("schemaVersion") == 1:
            raise ImageError(f"{what} uses the deprecated Docker schema 1 manifest ({media_type}); "
                             "re-push it with a current docker or skopeo to get schema 2 / OCI")
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            raise ImageError(f"{what}: unsupported manifest media type {media_type!r} "
                             "(not an OCI/Docker image manifest or index)")
        return media_type, data, digest

    def blob(self, descriptor: dict, what: str) -> _VerifiedBlob:
        digest = descriptor.get("digest") or ""
        size = descriptor.get("size")
        if not isinstance(size, int) or size < 0:
            size = None
        hasher_check = _hasher(digest, what)  # fail before downloading when the digest is unusable
        del hasher_check
        path = f"/v2/{self.ref.repository}/blobs/{digest}"
        response = self.client.open("GET", path, self.scope, what=what)
        self._check(response, f"{what} ({digest})", "blob")
        return _VerifiedBlob(self.client, response, digest, size, what)

    def read_small_blob(self, descriptor: dict, what: str, limit: int) -> bytes:
        size = descriptor.get("size")
        if isinstance(size, int) and size > limit:
            raise RegistryError(f"{what} is {size} bytes, more than the {limit} allowed")
        blob = self.blob(descriptor, what)
        try:
            parts = []
            total = 0
            while True:
                data = blob.read(CHUNK)
                if not data:
                    break
                total += len(data)
                if total > limit:
                    raise RegistryError(f"{what} is larger than the {limit} bytes allowed")
                parts.append(data)
            return b"".join(parts)
        finally:
            blob.close()

    def resolve(self, platform: str) -> tuple:
        """Follow an index to the platform's manifest: (manifest JSON, platform text, top digest)."""
        media_type, data, top_digest = self.manifest(self.ref.reference, self.ref.digest)
        chosen_platform = None
        depth = 0
        while media_type in INDEX_TYPES:
            depth += 1
            if depth > 3:
                raise ImageError(f"{self.ref}: indexes nested too deep")
            descriptor = _choose_platform(data, platform, str(self.ref))
            chosen_platform = _format_platform(descriptor.get("platform") or {})
            media_type, data, _digest = self.manifest(descriptor["digest"], descriptor["digest"],
                                                      what=f"{self.name}@{descriptor['digest']} ({chosen_platform})")
        return data, chosen_platform, top_digest


def _choose_platform(index: dict, platform: str, ref: str) -> dict:
    wanted = platform or default_platform()
    os_name, arch, variant = parse_platform(wanted)
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict) and m.get("digest")]
    images = []
    for m in manifests:
        plat = m.get("platform") or {}
        annotations = m.get("annotations") or {}
        # BuildKit attestation manifests carry platform unknown/unknown: not images.
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        if plat.get("os") == "unknown" and plat.get("architecture") == "unknown":
            continue
        images.append(m)
    matches = []
    for m in images:
        plat = m.get("platform") or {}
        if plat.get("os") != os_name or _HOST_ARCH.get(plat.get("architecture"), plat.get("architecture")) != arch:
            continue
        have = _normal_variant(arch, plat.get("variant"))
        if variant is not None and have != _normal_variant(arch, variant):
            continue
        matches.append(m)
    if not matches:
        available = ", ".join(sorted({_format_platform(m.get("platform") or {}) for m in images})) or "none"
        raise ImageError(f"{ref} has no {wanted} image; platforms available: {available}; "
                         "choose one with --platform")
    if variant is None:
        # Prefer the default variant (arm64 → v8, arm → v7) over others when none was asked for.
        preferred = [m for m in matches if _normal_variant(arch, (m.get("platform") or {}).get("variant"))
                     == _normal_variant(arch, None)]
        if preferred:
            return preferred[0]
    return matches[0]


def _check_layer_type(media_type: str, index: int, ref: str, allow_foreign: bool) -> None:
    if media_type in LAYER_TYPES:
        return
    if media_type in FOREIGN_LAYER_TYPES:
        if allow_foreign:
            return
        raise ImageError(f"{ref}: layer {index} is a foreign/non-distributable layer ({media_type}) that the "
                         "registry does not hold; imagelint cannot read it")
    if "encrypted" in (media_type or ""):
        raise ImageError(f"{ref}: layer {index} is encrypted ({media_type}); imagelint cannot read encrypted layers")
    raise ImageError(f"{ref}: layer {index} has unsupported media type {media_type!r}")


def _build_image(session: _Session, ref: str, manifest: dict, config: dict, config_digest: str,
                 top_digest: str, chosen_platform, allow_foreign: bool) -> Image:
    image = Image(ref, "registry")
    image.manifest = manifest
    image.config = config
    image.id = config_digest
    image.repo_digest = top_digest
    plat = {"os": config.get("os"), "architecture": config.get("architecture"), "variant": config.get("variant")}
    image.platform = chosen_platform or (_format_platform(plat) if plat["os"] else None)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    descriptors = manifest.get("layers")
    if not isinstance(descriptors, list):
        raise ImageError(f"{ref}: the manifest has no layer list")
    if diff_ids and len(diff_ids) != len(descriptors):
        raise ImageError(f"{ref}: the manifest lists {len(descriptors)} layers but the config {len(diff_ids)} "
                         "diff_ids; the image is inconsistent")
    for i, desc in enumerate(descriptors):
        if not isinstance(desc, dict) or not desc.get("digest"):
            raise ImageError(f"{ref}: layer {i} has no digest in the manifest")
        media_type = desc.get("mediaType") or ""
        _check_layer_type(media_type, i, ref, allow_foreign)
        size = desc.get("size")
        exact = isinstance(size, int) and size >= 0
        layer = Layer(i, diff_id=diff_ids[i] if i < len(diff_ids) else None, digest=desc["digest"],
                      media_type=media_type, compressed_size=size if exact else None, compressed_size_exact=exact)
        image.layers.append(layer)
    image.attach_history()
    return image


def _open_image(ref: str, platform: str, timeout: float, allow_foreign: bool) -> tuple:
    session = _Session(ref, timeout)
    manifest, chosen_platform, top_digest = session.resolve(platform)
    config_desc = manifest.get("config") or {}
    config_type = config_desc.get("mediaType") or ""
    if config_type and config_type not in CONFIG_TYPES:
        raise ImageError(f"{session.ref} is not a container image: its config media type is {config_type!r}")
    if not config_desc.get("digest"):
        raise ImageError(f"{session.ref}: the manifest names no config blob")
    raw = session.read_small_blob(config_desc, f"config of {session.ref}", MAX_CONFIG_BYTES)
    try:
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise ImageError(f"config of {session.ref} is not valid JSON ({exc})") from None
    if platform and not chosen_platform:
        # A single-platform image: make sure it is the platform that was asked for.
        os_name, arch, variant = parse_platform(platform)
        have_arch = _HOST_ARCH.get(config.get("architecture"), config.get("architecture"))
        if config.get("os") != os_name or have_arch != arch or (
                variant and _normal_variant(arch, config.get("variant")) != _normal_variant(arch, variant)):
            have = _format_platform({"os": config.get("os"), "architecture": config.get("architecture"),
                                     "variant": config.get("variant")})
            raise ImageError(f"{session.ref} is a single-platform {have} image, not {platform}; "
                             f"drop --platform or use --platform {have}")
    image = _build_image(session, ref, manifest, config, config_desc["digest"], top_digest, chosen_platform,
                         allow_foreign)
    return session, image


def fetch_manifest_only(ref: str, platform: str = None, timeout: float = None) -> Image:
    """Config and layers with exact transfer sizes from the manifest; no layer is downloaded and
    layers have no entries. For callers that only need sizes."""
    _session, image = _open_image(ref, platform, _timeout(timeout), allow_foreign=True)
    return image


def load_registry(ref: str, platform: str = None, hash_content: bool = True,
                  timeout: float = None) -> Image:
    """Read an image from its registry: manifest (``platform`` picks from an index, default
    linux/<host arch>), config, and every layer's entries, streamed and digest-checked."""
    from .layerstream import LayerReadError, read_layer

    session, image = _open_image(ref, platform, _timeout(timeout), allow_foreign=False)
    for layer in image.layers:
        what = f"layer {layer.index} of {session.ref}"
        blob = session.blob({"digest": layer.digest, "size": layer.compressed_size}, what)
        try:
            try:
                layer.entries = read_layer(blob, hash_content=hash_content, name=f"{layer.index} ({layer.digest[:19]})")
            except LayerReadError:
                # Wrong bytes from the registry usually look like a corrupt tar: say which it is.
                blob.drain()
                raise
            blob.drain()
        finally:
            blob.close()
    return image


def _timeout(timeout) -> float:
    """Seconds for connecting and for each read: the argument, else IMAGELINT_REGISTRY_TIMEOUT, else 30."""
    if timeout is not None:
        return float(timeout)
    env = os.environ.get("IMAGELINT_REGISTRY_TIMEOUT")
    if env:
        try:
            value = float(env)
            if value > 0:
                return value
        except ValueError:
            pass
        raise ImageError(f"IMAGELINT_REGISTRY_TIMEOUT={env!r} is not a positive number of seconds")
    return DEFAULT_TIMEOUT
