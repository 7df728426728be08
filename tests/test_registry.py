"""registry:REF — reading images straight from a registry (imagelint/sources/registry.py).

Engine-marked tests use a real Debian docker-registry (conftest fixtures ``local_registry`` and
``auth_registry``) with images pushed by skopeo; the rest use small in-process servers
(tests/registry.py) for auth flows, redirects and misbehaving registries.
"""
import base64
import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import tracemalloc
import uuid

import pytest

from imagelint.image import ImageError
from imagelint.sources import load_image
from imagelint.sources.registry import (fetch_manifest_only, is_insecure, load_registry, lookup_credentials,
                                        parse_challenge, parse_platform, parse_reference, RegistryClient)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry import (AuthProxy, FakeRegistry, StallServer, engine_unavailable, free_port, layer_tar,  # noqa: E402
                      sha256, skopeo_copy, write_docker_archive, write_oci_index_layout)

LAYER1 = layer_tar({"bin": None, "bin/tool": b"#!/bin/sh\necho hi\n" * 50, "etc": None,
                    "etc/config": b"a=1\n", "etc/big": bytes(range(256)) * 400})
LAYER2 = layer_tar({"etc": None, "etc/big": ("whiteout",), "bin/link": ("symlink", "tool"),
                    "app": None, "app/data.bin": b"\x00" * 20000})


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No real docker config, insecure list or timeout override leaks into a test."""
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.delenv("IMAGELINT_INSECURE_REGISTRIES", raising=False)
    monkeypatch.delenv("IMAGELINT_REGISTRY_TIMEOUT", raising=False)
    return config_dir


def write_docker_config(config_dir, data: dict) -> None:
    (config_dir / "config.json").write_text(json.dumps(data))


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def entry_tuples(image) -> list:
    return [[(e.path, e.kind, e.size, e.mode, e.uid, e.gid, e.linkname, e.digest) for e in layer.entries]
            for layer in image.layers]


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message, message
    assert "Traceback" not in message
    return message


# --- pure parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize("ref, registry, host, repo, tag, digest", [
    ("busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", None),
    ("user/app:1.2", "docker.io", "registry-1.docker.io", "user/app", "1.2", None),
    ("docker.io/library/debian:12", "docker.io", "registry-1.docker.io", "library/debian", "12", None),
    ("index.docker.io/nginx", "docker.io", "registry-1.docker.io", "library/nginx", "latest", None),
    ("localhost/app", "localhost", "localhost", "app", "latest", None),
    ("localhost:5000/a/b/c:v1", "localhost:5000", "localhost:5000", "a/b/c", "v1", None),
    ("ghcr.io/owner/img", "ghcr.io", "ghcr.io", "owner/img", "latest", None),
    ("[::1]:5000/x:y", "[::1]:5000", "[::1]:5000", "x", "y", None),
    ("registry:127.0.0.1:5000/x@sha256:" + "a" * 64, "127.0.0.1:5000", "127.0.0.1:5000", "x", None, "sha256:" + "a" * 64),
    ("r.example.com/x:t@sha256:" + "b" * 64, "r.example.com", "r.example.com", "x", "t", "sha256:" + "b" * 64),
])
def test_parse_reference(ref, registry, host, repo, tag, digest):
    parsed = parse_reference(ref)
    assert (parsed.registry, parsed.host, parsed.repository, parsed.tag, parsed.digest) == \
        (registry, host, repo, tag, digest)


@pytest.mark.parametrize("ref", ["", "UPPER/case", "https://r.example.com/x", "x@sha256:short", "x:bad tag", "a//b"])
def test_parse_reference_rejects(ref):
    with pytest.raises(ImageError):
        parse_reference(ref)


def test_parse_challenge():
    header = ('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
              'scope="repository:a/b:pull,push"')
    assert parse_challenge(header) == [("bearer", {"realm": "https://auth.example.com/token",
                                                   "service": "registry.example.com",
                                                   "scope": "repository:a/b:pull,push"})]
    assert parse_challenge('Basic realm="Registry Realm"') == [("basic", {"realm": "Registry Realm"})]
    assert parse_challenge("basic") == [("basic", {})]
    assert parse_challenge('Basic realm="x", Bearer realm="https://t/",service=s') == [
        ("basic", {"realm": "x"}), ("bearer", {"realm": "https://t/", "service": "s"})]


def test_parse_platform_and_insecure(monkeypatch):
    assert parse_platform("linux/amd64") == ("linux", "amd64", None)
    assert parse_platform("linux/aarch64") == ("linux", "arm64", None)
    assert parse_platform("linux/arm/v7") == ("linux", "arm", "v7")
    with pytest.raises(ImageError, match="os/arch"):
        parse_platform("amd64")
    assert is_insecure("localhost:5000") and is_insecure("127.0.0.1:1") and is_insecure("[::1]:5000")
    assert not is_insecure("r.example.com:5000")
    monkeypatch.setenv("IMAGELINT_INSECURE_REGISTRIES", "r.example.com:5000, other.example")
    assert is_insecure("r.example.com:5000") and is_insecure("other.example")
    assert not is_insecure("r.example.com:6000")
    assert RegistryClient("r.example.com:5000").base == "http://r.example.com:5000"
    assert RegistryClient("ghcr.io").base == "https://ghcr.io"


# --- credentials ---------------------------------------------------------------------------------

def test_credentials_from_auths(clean_env):
    write_docker_config(clean_env, {"auths": {
        "https://index.docker.io/v1/": {"auth": basic_auth("hubuser", "hubpw")},
        "r.example.com:5000": {"username": "u", "password": "p:w"},
        "https://tok.example.com": {"auth": "", "identitytoken": "refresh-123"},
    }})
    hub = lookup_credentials("docker.io")
    assert (hub.username, hub.password) == ("hubuser", "hubpw")
    other = lookup_credentials("r.example.com:5000")
    assert (other.username, other.password) == ("u", "p:w")
    assert lookup_credentials("tok.example.com").identity_token == "refresh-123"
    assert lookup_credentials("nothing.example.com") is None


def test_bad_docker_config_is_one_line(clean_env):
    (clean_env / "config.json").write_text("{not json")
    with pytest.raises(ImageError) as excinfo:
        lookup_credentials("r.example.com")
    assert "config.json" in one_line_error(excinfo)


@pytest.fixture
def helper_path(tmp_path, monkeypatch):
    """A temp dir on PATH holding docker-credential-test, which logs its stdin and answers."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "helper.log"
    script = bindir / "docker-credential-test"
    script.write_text(f"""#!{sys.executable}
import json, sys
server = sys.stdin.read().strip()
open({str(log)!r}, "a").write(sys.argv[1] + " " + server + "\\n")
if server.startswith("unknown"):
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps({{"ServerURL": server, "Username": "helperuser", "Secret": "helper-secret"}}))
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_credential_helper(clean_env, helper_path):
    write_docker_config(clean_env, {"credsStore": "test", "credHelpers": {"r2.example.com": "missing-helper"}})
    creds = lookup_credentials("r.example.com:5000")
    assert (creds.username, creds.password) == ("helperuser", "helper-secret")
    lookup_credentials("docker.io")
    assert helper_path.read_text().splitlines() == ["get r.example.com:5000", "get https://index.docker.io/v1/"]
    assert lookup_credentials("unknown.example.com") is None
    with pytest.raises(ImageError) as excinfo:
        lookup_credentials("r2.example.com")
    message = one_line_error(excinfo)
    assert "docker-credential-missing-helper" in message and "PATH" in message


# --- in-process servers: auth flows, redirects, failures -----------------------------------------

def test_bearer_anonymous_token_and_manifest_only():
    with FakeRegistry() as backend, AuthProxy(backend.port) as proxy:
        manifest = backend.add_image("team/app", "1", [LAYER1, LAYER2])
        image = fetch_manifest_only(f"{proxy.host}/team/app:1")
        assert [layer.compressed_size for layer in image.layers] == [d["size"] for d in manifest["layers"]]
        assert all(layer.compressed_size_exact and not layer.entries for layer in image.layers)
        assert image.compressed_size == sum(d["size"] for d in manifest["layers"])
        assert image.layers[1].created_by == "/bin/sh -c step 1"
        # no layer blob was downloaded, only manifest and config
        blob_paths = [p for p, _a, _x in backend.requests if "/blobs/" in p]
        assert blob_paths == [f"/v2/team/app/blobs/{manifest['config']['digest']}"]
        # one token fetched (cached for the second request), anonymous, with the repository scope
        assert proxy.token_requests == [(None, "imagelint-test", ["repository:team/app:pull"])]


def test_bearer_with_credentials_and_redirected_blobs(clean_env):
    with FakeRegistry() as backend, FakeRegistry() as cdn, AuthProxy(backend.port, {"alice": "pw"}) as proxy:
        manifest = backend.add_image("team/app", "1", [LAYER1, LAYER2])
        for desc in manifest["layers"]:  # layer blobs live on "S3": the registry redirects there
            path = f"/v2/team/app/blobs/{desc['digest']}"
            cdn.routes["/s3/" + desc["digest"]] = backend.routes[path]
            backend.routes[path] = (307, {"Location": f"http://{cdn.host}/s3/{desc['digest']}?sig=1"}, b"")

        with pytest.raises(ImageError) as excinfo:  # no credentials
            load_registry(f"{proxy.host}/team/app:1")
        message = one_line_error(excinfo)
        assert "401" in message and f"docker login {proxy.host}" in message

        write_docker_config(clean_env, {"auths": {proxy.host: {"auth": basic_auth("alice", "wrong")}}})
        with pytest.raises(ImageError) as excinfo:
            load_registry(f"{proxy.host}/team/app:1")
        assert "rejected" in one_line_error(excinfo)

        write_docker_config(clean_env, {"auths": {proxy.host: {"auth": basic_auth("alice", "pw")}}})
        image = load_registry(f"{proxy.host}/team/app:1")
        assert [len(layer.entries) for layer in image.layers] == [5, 5]
        assert proxy.token_requests[-1][0] == "alice"
        # the CDN got the blob requests, and never the registry's Authorization header
        assert len(cdn.requests) == 2
        assert all(auth is None for _path, auth, _accept in cdn.requests)
        assert any(auth and auth.startswith("Bearer ") for _path, auth in proxy.requests if "/manifests/" in _path)


def test_identity_token(clean_env):
    with FakeRegistry() as backend, AuthProxy(backend.port, {"bob": "pw"}) as proxy:
        backend.add_image("team/app", "1", [LAYER1])
        proxy.refresh_tokens["refresh-xyz"] = "bob"
        write_docker_config(clean_env, {"auths": {f"https://{proxy.host}": {"identitytoken": "refresh-xyz"}}})
        image = load_registry(f"{proxy.host}/team/app:1")
        assert len(image.layers) == 1 and proxy.token_requests[-1][0] == "bob"


def test_credential_helper_feeds_token_server(clean_env, helper_path):
    with FakeRegistry() as backend, AuthProxy(backend.port, {"helperuser": "helper-secret"}) as proxy:
        backend.add_image("team/app", "1", [LAYER1])
        write_docker_config(clean_env, {"credHelpers": {proxy.host: "test"}})
        image = fetch_manifest_only(f"{proxy.host}/team/app:1")
        assert len(image.layers) == 1 and proxy.token_requests[-1][0] == "helperuser"
        assert helper_path.read_text().split() == ["get", proxy.host]


def test_platform_selection_and_missing_platform():
    with FakeRegistry() as reg:
        amd = reg.add_image("m", "amd", [LAYER1], arch="amd64")
        arm = reg.add_image("m", "arm", [LAYER1, LAYER2], arch="arm64", variant="v8")
        descs = []
        for manifest, plat in ((amd, {"os": "linux", "architecture": "amd64"}),
                               (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})):
            body = json.dumps(manifest).encode()
            descs.append({"mediaType": manifest["mediaType"], "digest": sha256(body), "size": len(body), "platform": plat})
        descs.append({"mediaType": amd["mediaType"], "digest": descs[0]["digest"], "size": descs[0]["size"],
                      "platform": {"os": "unknown", "architecture": "unknown"},
                      "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
        reg.add_manifest("m", "multi", {"schemaVersion": 2, "manifests": descs},
                         media_type="application/vnd.docker.distribution.manifest.list.v2+json")
        assert fetch_manifest_only(f"{reg.host}/m:multi", "linux/amd64").platform == "linux/amd64"
        arm_image = fetch_manifest_only(f"{reg.host}/m:multi", "linux/arm64")
        assert (arm_image.platform, len(arm_image.layers)) == ("linux/arm64/v8", 2)
        with pytest.raises(ImageError) as excinfo:
            fetch_manifest_only(f"{reg.host}/m:multi", "linux/s390x")
        message = one_line_error(excinfo)
        assert "linux/s390x" in message and "linux/amd64, linux/arm64/v8" in message and "--platform" in message
        assert "unknown" not in message
        with pytest.raises(ImageError, match="single-platform linux/amd64"):
            fetch_manifest_only(f"{reg.host}/m:amd", "linux/arm64")


def test_not_found_messages():
    with FakeRegistry() as reg:
        with pytest.raises(ImageError) as excinfo:
            load_registry(f"{reg.host}/no/such:tag")
        message = one_line_error(excinfo)
        assert "404" in message and reg.host in message and "does not exist" in message and "no/such:tag" in message


def test_connection_refused():
    port = free_port()
    with pytest.raises(ImageError) as excinfo:
        load_registry(f"127.0.0.1:{port}/x:1")
    message = one_line_error(excinfo)
    assert "unreachable" in message and f"127.0.0.1:{port}" in message and "refused" in message


def test_timeout():
    with StallServer() as server:
        started = time.monotonic()
        with pytest.raises(ImageError) as excinfo:
            load_registry(f"{server.host}/x:1", timeout=0.5)
        assert time.monotonic() - started < 5
    message = one_line_error(excinfo)
    assert "timeout" in message and "0.5 s" in message and server.host in message


def test_timeout_from_environment(monkeypatch):
    monkeypatch.setenv("IMAGELINT_REGISTRY_TIMEOUT", "0.3")
    with StallServer() as server:
        with pytest.raises(ImageError, match="0.3 s"):
            fetch_manifest_only(f"{server.host}/x:1")


def test_tls_error_is_one_line():
    with FakeRegistry() as reg:  # plain HTTP server spoken to over TLS
        client = RegistryClient(reg.host, timeout=5)
        client.scheme, client.base = "https", f"https://{reg.host}"
        with pytest.raises(ImageError) as excinfo:
            client.open("GET", "/v2/", "")
    message = one_line_error(excinfo)
    assert "TLS" in message and "IMAGELINT_INSECURE_REGISTRIES" in message


@pytest.mark.parametrize("served", ["valid-other-layer", "garbage", "truncated"])
def test_digest_mismatch(served):
    with FakeRegistry() as reg:
        manifest = reg.add_image("x", "1", [LAYER1])
        desc = manifest["layers"][0]
        path = f"/v2/x/blobs/{desc['digest']}"
        good = reg.routes[path][2]
        wrong = {"valid-other-layer": gzip.compress(LAYER2, mtime=0)[:len(good)].ljust(len(good), b"\0"),
                 "garbage": os.urandom(len(good)),
                 "truncated": good[:-10]}[served]
        reg.routes[path] = (200, {}, wrong)
        with pytest.raises(ImageError) as excinfo:
            load_registry(f"{reg.host}/x:1")
    message = one_line_error(excinfo)
    assert desc["digest"] in message and ("digest mismatch" in message or "truncated" in message)


def test_config_digest_mismatch():
    with FakeRegistry() as reg:
        manifest = reg.add_image("x", "1", [LAYER1])
        path = f"/v2/x/blobs/{manifest['config']['digest']}"
        status, headers, body = reg.routes[path]
        reg.routes[path] = (status, headers, body.replace(b"amd64", b"arm64"))
        with pytest.raises(ImageError) as excinfo:
            fetch_manifest_only(f"{reg.host}/x:1")
    assert "digest mismatch" in one_line_error(excinfo)


def test_pinned_manifest_digest_checked():
    with FakeRegistry() as reg:
        reg.add_image("x", "1", [LAYER1])
        wrong = "sha256:" + "0" * 64
        reg.routes[f"/v2/x/manifests/{wrong}"] = reg.routes["/v2/x/manifests/1"]
        with pytest.raises(ImageError, match="digest mismatch"):
            fetch_manifest_only(f"{reg.host}/x@{wrong}")


@pytest.mark.parametrize("layer_type, expected", [
    ("application/vnd.example.layer+weird", "unsupported media type 'application/vnd.example.layer+weird'"),
    ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "foreign/non-distributable"),
    ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "encrypted"),
])
def test_unsupported_layer_types(layer_type, expected):
    with FakeRegistry() as reg:
        reg.add_image("x", "1", [LAYER1], layer_media_type=layer_type)
        with pytest.raises(ImageError) as excinfo:
            load_registry(f"{reg.host}/x:1")
        assert expected in one_line_error(excinfo)
        assert not any("/blobs/" in p and "config" not in p for p, _a, _x in reg.requests[2:])


def test_unsupported_manifest_and_config_types():
    with FakeRegistry() as reg:
        reg.add_manifest("x", "weird", {"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"})
        with pytest.raises(ImageError) as excinfo:
            load_registry(f"{reg.host}/x:weird")
        assert "unsupported manifest media type 'application/vnd.example.thing+json'" in one_line_error(excinfo)
        reg.add_manifest("x", "v1", {"schemaVersion": 1, "name": "x", "fsLayers": []},
                         media_type="application/vnd.docker.distribution.manifest.v1+prettyjws")
        with pytest.raises(ImageError, match="schema 1"):
            load_registry(f"{reg.host}/x:v1")
        manifest = reg.add_image("x", "chart", [LAYER1])
        manifest["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
        reg.add_manifest("x", "chart", manifest)
        with pytest.raises(ImageError, match="not a container image"):
            load_registry(f"{reg.host}/x:chart")


def test_uncompressed_layer_and_hash_content_off():
    with FakeRegistry() as reg:
        reg.add_image("x", "1", [LAYER1, LAYER2], compress=False)
        image = load_registry(f"{reg.host}/x:1", hash_content=False)
        assert [layer.media_type for layer in image.layers] == ["application/vnd.oci.image.layer.v1.tar"] * 2
        assert image.layers[0].compressed_size == len(LAYER1)
        assert all(e.digest is None for layer in image.layers for e in layer.entries)


def test_http_proxy_is_used_for_remote_registries(monkeypatch):
    with FakeRegistry() as reg:  # plays both the proxy and the registry behind it
        reg.add_image("x", "1", [LAYER1])
        monkeypatch.setenv("IMAGELINT_INSECURE_REGISTRIES", "registry.invalid:5000")
        monkeypatch.setenv("http_proxy", f"http://user:p%40ss@{reg.host}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        image = load_registry("registry.invalid:5000/x:1")
        assert len(image.layers[0].entries) == 5
        url, host, proxy_auth = reg.proxied[0]
        assert url == "http://registry.invalid:5000/v2/x/manifests/1" and host == "registry.invalid:5000"
        assert proxy_auth == "Basic " + basic_auth("user", "p@ss")
        monkeypatch.setenv("no_proxy", "registry.invalid")
        with pytest.raises(ImageError, match="cannot resolve"):
            load_registry("registry.invalid:5000/x:1")


def test_load_image_dispatch():
    with FakeRegistry() as reg:
        reg.add_image("x", "1", [LAYER1])
        image = load_image(f"registry:{reg.host}/x:1")
        assert image.source == "registry" and image.ref == f"registry:{reg.host}/x:1"


# --- the real registry ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pushed(local_registry, tmp_path_factory):
    """Images pushed to the local registry: a docker-archive image (gzip), a zstd one and a
    two-platform index."""
    tmp = tmp_path_factory.mktemp("registry-images")
    archive = str(tmp / "image.tar")
    write_docker_archive(archive, [LAYER1, LAYER2], repo_tag="imagelint-test/app:1")
    refs = {"archive": archive}
    refs["gzip"] = local_registry.push_archive(archive, "imagelint-test/app:1")
    # Unique content: skopeo would otherwise reuse a gzip blob it already pushed for the same layer.
    zstd_layers = [layer_tar({"z": None, f"z/data{i}": os.urandom(1000) + b"z" * 50000, "z/l": ("symlink", "data")})
                   for i in range(2)]
    zstd_archive = str(tmp / "zstd.tar")
    write_docker_archive(zstd_archive, zstd_layers, repo_tag="imagelint-test/zstd:1")
    refs["zstd_archive"] = zstd_archive
    refs["zstd"] = local_registry.push_archive(zstd_archive, "imagelint-test/zstd:1", "--dest-compress",
                                               "--dest-compress-format", "zstd", "--format", "oci")
    layout = str(tmp / "oci")
    write_oci_index_layout(layout, {"linux/amd64": [LAYER1], "linux/arm64/v8": [LAYER1, LAYER2]})
    skopeo_copy(f"oci:{layout}:multi", f"docker://{local_registry.host}/imagelint-test/multi:1", "--all")
    refs["multi"] = f"{local_registry.host}/imagelint-test/multi:1"
    return refs


def blob_sizes(registry, ref) -> list:
    """Sizes of the layer blobs as stored, by downloading them outside imagelint."""
    repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    _status, _headers, body = registry.get(f"/v2/{repo}/manifests/{tag}", {"Accept": accept})
    sizes = []
    for desc in json.loads(body)["layers"]:
        status, _headers, blob = registry.get(f"/v2/{repo}/blobs/{desc['digest']}")
        assert status == 200 and sha256(blob) == desc["digest"]
        sizes.append(len(blob))
    return sizes


@pytest.mark.engine
def test_registry_image_equals_archive_image(local_registry, pushed):
    from_registry = load_registry(pushed["gzip"])
    from_archive = load_image(f"docker-archive:{pushed['archive']}")
    assert from_registry.source == "registry"
    assert entry_tuples(from_registry) == entry_tuples(from_archive)
    assert [layer.size for layer in from_registry.layers] == [layer.size for layer in from_archive.layers]
    assert [layer.diff_id for layer in from_registry.layers] == [sha256(LAYER1), sha256(LAYER2)]
    assert from_registry.config["rootfs"] == from_archive.config["rootfs"]
    assert [layer.created_by for layer in from_registry.layers] == [layer.created_by for layer in from_archive.layers]
    assert from_registry.platform == "linux/amd64" and from_registry.repo_digest.startswith("sha256:")
    # transfer sizes: exact, straight from the manifest, equal to the stored blobs
    sizes = blob_sizes(local_registry, pushed["gzip"])
    assert [layer.compressed_size for layer in from_registry.layers] == sizes
    assert all(layer.compressed_size_exact for layer in from_registry.layers)
    assert from_registry.layers[0].media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    only_sizes = fetch_manifest_only(pushed["gzip"])
    assert [layer.compressed_size for layer in only_sizes.layers] == sizes
    assert all(not layer.entries for layer in only_sizes.layers)


@pytest.mark.engine
def test_zstd_image(local_registry, pushed):
    image = load_registry(pushed["zstd"])
    assert {layer.media_type for layer in image.layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert entry_tuples(image) == entry_tuples(load_image(f"docker-archive:{pushed['zstd_archive']}"))
    assert [layer.compressed_size for layer in image.layers] == blob_sizes(local_registry, pushed["zstd"])


@pytest.mark.engine
def test_manifest_list_platforms(pushed):
    amd = load_registry(pushed["multi"], platform="linux/amd64")
    assert (amd.platform, len(amd.layers)) == ("linux/amd64", 1)
    arm = load_registry(pushed["multi"], platform="linux/arm64")
    assert (arm.platform, len(arm.layers)) == ("linux/arm64/v8", 2)
    assert entry_tuples(arm)[1] == entry_tuples(load_registry(pushed["gzip"]))[1]
    assert amd.repo_digest == arm.repo_digest  # the index digest, what `docker pull` prints
    with pytest.raises(ImageError) as excinfo:
        load_registry(pushed["multi"], platform="windows/amd64")
    message = one_line_error(excinfo)
    assert "windows/amd64" in message and "linux/amd64, linux/arm64/v8" in message


@pytest.mark.engine
def test_real_registry_not_found(local_registry, pushed):
    for ref, needle in ((f"{local_registry.host}/imagelint-test/nope:1", "UNKNOWN"),
                        (f"{local_registry.host}/imagelint-test/app:nope", "MANIFEST_UNKNOWN")):
        with pytest.raises(ImageError) as excinfo:
            load_registry(ref)
        message = one_line_error(excinfo)
        assert "404" in message and "does not exist" in message and needle in message


@pytest.mark.engine
def test_basic_auth_registry(auth_registry, clean_env, tmp_path):
    archive = str(tmp_path / "a.tar")
    write_docker_archive(archive, [LAYER1, LAYER2])
    user, password = next(iter(auth_registry.users.items()))
    ref = auth_registry.push_archive(archive, "imagelint-test/private:1", creds=f"{user}:{password}")
    with pytest.raises(ImageError) as excinfo:
        load_registry(ref)
    message = one_line_error(excinfo)
    assert "401" in message and f"docker login {auth_registry.host}" in message
    write_docker_config(clean_env, {"auths": {auth_registry.host: {"auth": basic_auth(user, "wrong")}}})
    with pytest.raises(ImageError, match="rejected"):
        load_registry(ref)
    write_docker_config(clean_env, {"auths": {auth_registry.host: {"auth": basic_auth(user, password)}}})
    image = load_registry(ref)
    assert entry_tuples(image) == entry_tuples(load_image(f"docker-archive:{archive}"))


@pytest.mark.engine
def test_bearer_auth_in_front_of_real_registry(local_registry, pushed, clean_env):
    with AuthProxy(local_registry.port, {"carol": "pw"}) as proxy:
        write_docker_config(clean_env, {"auths": {proxy.host: {"username": "carol", "password": "pw"}}})
        image = load_registry(f"{proxy.host}/imagelint-test/app:1")
        assert entry_tuples(image) == entry_tuples(load_registry(pushed["gzip"]))
        assert proxy.token_requests == [("carol", "imagelint-test", ["repository:imagelint-test/app:pull"])]


@pytest.mark.engine
def test_large_layer_bounded_memory(local_registry, tmp_path):
    """A 48 MiB layer streams through with a small peak of Python allocations."""
    size = 48 << 20
    archive = str(tmp_path / "big.tar")
    payload = hashlib.sha256(uuid.uuid4().bytes).digest() * (size // 32)  # repetitive: compresses well
    write_docker_archive(archive, [layer_tar({"big": None, "big/file": payload})])
    del payload
    ref = local_registry.push_archive(archive, "imagelint-test/big:1")
    tracemalloc.start()
    try:
        image = load_registry(ref)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.layers[0].size == size
    assert peak < 12 << 20, f"peak Python allocations {peak >> 20} MiB while streaming a {size >> 20} MiB layer"


@pytest.mark.engine
def test_engine_built_image_via_registry(local_registry, tmp_path):
    """An image built by the local engine, saved, pushed with skopeo: registry read == archive read."""
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode != 0:
        engine_unavailable("the Docker engine is not reachable")
    if not os.path.exists("/bin/busybox"):
        engine_unavailable("/bin/busybox (Debian busybox-static) is missing")
    context = tmp_path / "ctx"
    context.mkdir()
    shutil.copy("/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /data /tmp && '
        '/bin/busybox dd if=/dev/zero of=/data/zero bs=1024 count=300 && /bin/busybox ln -s zero /data/link"]\n'
        'RUN ["/bin/busybox", "rm", "/data/zero"]\n')
    tag = f"imagelint-test-registry-{uuid.uuid4().hex[:10]}:1"
    try:
        subprocess.run([docker, "build", "-q", "--network", "none", "-t", tag, str(context)], check=True,
                       capture_output=True, timeout=300, env=dict(os.environ, DOCKER_BUILDKIT="0"))
        archive = str(tmp_path / "engine.tar")
        subprocess.run([docker, "save", "-o", archive, tag], check=True, capture_output=True, timeout=300)
        ref = local_registry.push_archive(archive, "imagelint-test/engine:1")
        from_registry = load_registry(ref)
        from_archive = load_image(f"docker-archive:{archive}")
        assert len(from_registry.layers) == 3
        assert entry_tuples(from_registry) == entry_tuples(from_archive)
        assert from_registry.layers[2].entries and any(e.kind == "whiteout" for e in from_registry.layers[2].entries)
        assert from_registry.layers[1].created_by == from_archive.layers[1].created_by
        assert from_registry.compressed_size == sum(blob_sizes(local_registry, ref))
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)
