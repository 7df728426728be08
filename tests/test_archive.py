"""imagelint.sources.archive: `docker save` archives (classic and OCI layouts), save streams and
OCI layout directories, built in the test (no engine), plus one engine test against real
`docker save` / skopeo output."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid

import pytest

from imagelint.image import ImageError
from imagelint.sources.archive import (IterStream, host_platform, load_docker_archive, load_oci_layout,
                                       load_save_stream)

zstandard = pytest.importorskip("zstandard")


# --- building images -----------------------------------------------------------------------------

def layer_tar(files) -> bytes:
    """files: list of (name, data | ('symlink'|'hardlink'|'dir', target))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[data[0]]
                info.linkname = data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


LAYERS = [
    [("bin", ("dir", "")), ("bin/busybox", b"B" * 4000), ("etc/passwd", b"root:x:0:0\n")],
    [("app", ("dir", "")), ("app/main.py", b"print(1)\n"), ("app/link", ("symlink", "main.py")),
     ("app/hard", ("hardlink", "app/main.py"))],
    [("etc/.wh.passwd", b""), ("tmp/.wh..wh..opq", b""), ("tmp/x", b"x")],
]


def compress(data: bytes, how: str) -> bytes:
    return {"tar": lambda d: d, "gzip": gzip.compress,
            "zstd": lambda d: zstandard.ZstdCompressor().compress(d)}[how](data)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_config(layer_tars, arch="amd64", os_="linux", variant=None) -> bytes:
    history = [{"created_by": "/bin/sh -c #(nop) ADD rootfs"}, {"created_by": "ENV A=1", "empty_layer": True},
               {"created_by": "COPY app /app"}, {"created_by": "RUN rm /etc/passwd"}][: 1 + len(layer_tars)]
    config = {"architecture": arch, "os": os_, "config": {"Env": ["A=1"]},
              "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in layer_tars]}, "history": history}
    if variant:
        config["variant"] = variant
    return json.dumps(config).encode()


def add(tf, name, data=None, link=None, hard=None):
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tf.addfile(info)
    elif hard is not None:
        info.type, info.linkname = tarfile.LNKTYPE, hard
        tf.addfile(info)
    else:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def classic_archive(layers=LAYERS, how="tar", manifest_first=False, duplicate_last=False, tags=("app:1",),
                    extra_manifest_entries=()) -> bytes:
    """docker 20.10 `docker save`: <id>/layer.tar, <config>.json, manifest.json, repositories."""
    tars = [layer_tar(files) for files in layers]
    config = make_config(tars + ([tars[-1]] if duplicate_last else []))
    ids = [hashlib.sha256(b"v1-%d" % i).hexdigest() for i in range(len(tars) + duplicate_last)]
    paths = [f"{i}/layer.tar" for i in ids]
    manifest = [{"Config": hashlib.sha256(config).hexdigest() + ".json", "RepoTags": list(tags), "Layers": paths}]
    manifest += list(extra_manifest_entries)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        if manifest_first:
            add(tf, "manifest.json", json.dumps(manifest).encode())
        add(tf, manifest[0]["Config"], config)
        for n, (layer_id, t) in enumerate(reversed(list(zip(ids, tars)))):  # archive order != layer order
            add(tf, f"{layer_id}/VERSION", b"1.0")
            add(tf, f"{layer_id}/json", b'{"id": "%s"}' % layer_id.encode())
            add(tf, f"{layer_id}/layer.tar", compress(t, how))
        if duplicate_last:
            add(tf, f"{ids[-1]}/layer.tar", link=f"../{ids[len(tars) - 1]}/layer.tar")
        add(tf, "repositories", b"{}")
        if not manifest_first:
            add(tf, "manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


class Blobs:
    """An OCI layout being built: blobs by digest plus index.json."""

    def __init__(self):
        self.blobs = {}

    def put(self, data: bytes) -> dict:
        digest = sha256(data)
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def image(self, layers=LAYERS, how="gzip", arch="amd64", variant=None, layer_media_type=None) -> dict:
        tars = [layer_tar(files) for files in layers]
        config = self.put(make_config(tars, arch=arch, variant=variant))
        config["mediaType"] = "application/vnd.oci.image.config.v1+json"
        suffix = {"tar": "", "gzip": "+gzip", "zstd": "+zstd"}[how]
        descriptors = []
        for t in tars:
            d = self.put(compress(t, how))
            d["mediaType"] = layer_media_type or "application/vnd.oci.image.layer.v1.tar" + suffix
            descriptors.append(d)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config, "layers": descriptors}
        d = self.put(json.dumps(manifest).encode())
        d["mediaType"] = manifest["mediaType"]
        d["platform"] = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        return d

    def index(self, descriptors) -> dict:
        d = self.put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": descriptors}).encode())
        d["mediaType"] = "application/vnd.oci.image.index.v1+json"
        return d

    def files(self, top_descriptors) -> dict:
        out = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
               "index.json": json.dumps({"schemaVersion": 2, "manifests": top_descriptors}).encode()}
        for digest, data in self.blobs.items():
            out["blobs/sha256/" + digest.split(":")[1]] = data
        return out

    def write_dir(self, root, top_descriptors):
        for name, data in self.files(top_descriptors).items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        return str(root)


def oci_save_archive(with_manifest_json=True, manifest_json_first=False, how="tar") -> bytes:
    """docker >= 25 `docker save`: an OCI layout plus manifest.json (layers uncompressed)."""
    blobs = Blobs()
    d = blobs.image(how=how)
    d.pop("platform")
    d["annotations"] = {"io.containerd.image.name": "docker.io/library/app:1", "org.opencontainers.image.ref.name": "1"}
    manifest = json.loads(blobs.blobs[d["digest"]])
    files = blobs.files([d])
    entry = [{"Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1], "RepoTags": ["app:1"],
              "Layers": ["blobs/sha256/" + x["digest"].split(":")[1] for x in manifest["layers"]]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        if with_manifest_json and manifest_json_first:
            add(tf, "manifest.json", json.dumps(entry).encode())
        for name, data in sorted(files.items()):
            add(tf, name, data)
        if with_manifest_json and not manifest_json_first:
            add(tf, "manifest.json", json.dumps(entry).encode())
    return buf.getvalue()


def entry_rows(image):
    return [[(e.path, e.kind, e.size, e.linkname, e.digest) for e in layer.entries] for layer in image.layers]


EXPECTED_PATHS = [["bin", "bin/busybox", "etc/passwd"], ["app", "app/main.py", "app/link", "app/hard"],
                  ["etc/passwd", "tmp", "tmp/x"]]


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Nothing may appear outside the test's temp dir (nothing is ever extracted)."""
    work = tmp_path / "work"
    work.mkdir()
    parent_before = sorted(os.listdir(tmp_path.parent))
    monkeypatch.chdir(work)
    yield tmp_path
    assert os.listdir(work) == []
    assert sorted(os.listdir(tmp_path.parent)) == parent_before
    assert not os.path.exists("/imagelint-evil")


# --- classic docker save ---------------------------------------------------------------------------

@pytest.mark.parametrize("manifest_first", [False, True])
def test_classic_archive(tmp_path, manifest_first):
    path = write(tmp_path, "save.tar", classic_archive(manifest_first=manifest_first))
    image = load_docker_archive(path)
    assert image.source == "docker-archive" and image.platform == "linux/amd64"
    assert [[e.path for e in layer.entries] for layer in image.layers] == EXPECTED_PATHS  # manifest order
    assert [layer.created_by for layer in image.layers] == ["/bin/sh -c #(nop) ADD rootfs", "COPY app /app",
                                                             "RUN rm /etc/passwd"]
    assert image.id == sha256(make_config([layer_tar(f) for f in LAYERS]))
    assert [layer.diff_id for layer in image.layers] == [sha256(layer_tar(f)) for f in LAYERS]
    for layer in image.layers:  # uncompressed layer.tar: the transfer size is unknown, not guessed
        assert layer.compressed_size is None and layer.compressed_size_exact is False
        assert layer.media_type == "application/vnd.oci.image.layer.v1.tar"
    assert image.compressed_size is None
    kinds = {e.path: (e.kind, e.linkname) for e in image.layers[1].entries}
    assert kinds["app/link"] == ("symlink", "main.py") and kinds["app/hard"] == ("hardlink", "app/main.py")
    assert [(e.path, e.kind) for e in image.layers[2].entries] == [("etc/passwd", "whiteout"), ("tmp", "opaque"),
                                                                   ("tmp/x", "file")]
    assert image.layers[0].entries[1].digest == hashlib.blake2b(b"B" * 4000, digest_size=20).digest()


@pytest.mark.parametrize("how", ["gzip", "zstd"])
def test_classic_archive_with_compressed_layer_members(tmp_path, how):
    data = classic_archive(how=how)
    image = load_docker_archive(write(tmp_path, "save.tar", data))
    assert [[e.path for e in layer.entries] for layer in image.layers] == EXPECTED_PATHS
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        sizes = {m.name: m.size for m in tf if m.name.endswith("layer.tar")}
    for layer in image.layers:
        assert layer.compressed_size_exact is True and layer.compressed_size in sizes.values()
        assert layer.media_type.endswith("+" + how)


def test_duplicate_layer_symlink_is_read_once_and_kept_twice(tmp_path):
    image = load_docker_archive(write(tmp_path, "save.tar", classic_archive(duplicate_last=True)))
    assert len(image.layers) == 4
    assert entry_rows(image)[3] == entry_rows(image)[2]
    assert image.layers[3].entries is not image.layers[2].entries


def test_gzipped_archive_and_stream_equal_seekable(tmp_path):
    data = classic_archive()
    seekable = load_docker_archive(write(tmp_path, "save.tar", data))
    gzipped = load_docker_archive(write(tmp_path, "save.tar.gz", gzip.compress(data)))
    chunks = (data[i:i + 1000] for i in range(0, len(data), 1000))
    streamed = load_save_stream(IterStream(chunks), "app:1")
    assert streamed.source == "engine" and streamed.ref == "app:1"
    assert entry_rows(seekable) == entry_rows(gzipped) == entry_rows(streamed)
    assert seekable.id == gzipped.id == streamed.id
    assert [layer.created_by for layer in streamed.layers] == [layer.created_by for layer in seekable.layers]


def test_stream_with_manifest_after_layers_keeps_no_layer_bytes():
    data = classic_archive(manifest_first=False, layers=LAYERS + [[("big.bin", os.urandom(3 << 20))]])
    image = load_save_stream(io.BufferedReader(IterStream([data])), "app:1")
    assert image.layers[-1].entries[0].size == 3 << 20


def test_multi_image_archive_needs_a_name(tmp_path):
    other = {"Config": "nope.json", "RepoTags": ["other:2"], "Layers": []}
    path = write(tmp_path, "save.tar", classic_archive(extra_manifest_entries=[other]))
    with pytest.raises(ImageError, match=r"holds 2 images \(app:1, other:2\)"):
        load_docker_archive(path)
    assert len(load_docker_archive(path, ref_name="app:1").layers) == 3
    assert len(load_docker_archive(path + ":app:1").layers) == 3  # docker-archive:PATH:NAME
    assert len(load_save_stream(IterStream([open(path, "rb").read()]), "docker.io/library/app:1").layers) == 3


# --- OCI layouts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("manifest_json_first", [False, True])
def test_docker25_oci_save_archive(tmp_path, manifest_json_first):
    data = oci_save_archive(manifest_json_first=manifest_json_first)
    for image in (load_docker_archive(write(tmp_path, "save.tar", data)),
                  load_save_stream(IterStream([data[i:i + 4096] for i in range(0, len(data), 4096)]), "app:1")):
        assert [[e.path for e in layer.entries] for layer in image.layers] == EXPECTED_PATHS
        assert image.manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert image.repo_digest.startswith("sha256:")
        for layer, descriptor in zip(image.layers, image.manifest["layers"]):
            assert layer.digest == descriptor["digest"] == layer.diff_id  # uncompressed blobs
            assert layer.media_type == "application/vnd.oci.image.layer.v1.tar"
            assert layer.compressed_size is None  # uncompressed: a push would compress it
        assert image.layers[1].created_by == "COPY app /app"


@pytest.mark.parametrize("how", ["gzip", "zstd"])
def test_oci_archive_without_manifest_json(tmp_path, how):
    """A tarred OCI layout (`skopeo copy ... oci-archive:`) with compressed layers."""
    data = oci_save_archive(with_manifest_json=False, how=how)
    image = load_docker_archive(write(tmp_path, "oci.tar", data))
    assert [[e.path for e in layer.entries] for layer in image.layers] == EXPECTED_PATHS
    for layer, descriptor in zip(image.layers, image.manifest["layers"]):
        assert layer.compressed_size == descriptor["size"] and layer.compressed_size_exact
    assert image.compressed_size == sum(d["size"] for d in image.manifest["layers"])


def test_oci_layout_directory(tmp_path):
    blobs = Blobs()
    d = blobs.image(how="zstd")
    d["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    root = blobs.write_dir(tmp_path / "layout", [d])
    image = load_oci_layout(root)
    assert image.source == "oci" and image.repo_digest == d["digest"]
    assert [[e.path for e in layer.entries] for layer in image.layers] == EXPECTED_PATHS
    assert all(layer.compressed_size_exact for layer in image.layers)
    assert [layer.created_by for layer in image.layers][2] == "RUN rm /etc/passwd"
    assert entry_rows(load_oci_layout(root + ":v1")) == entry_rows(image)
    with pytest.raises(ImageError, match="no image named 'v2'.*v1"):
        load_oci_layout(root + ":v2")


def _multi_platform_layout(tmp_path, platforms):
    blobs = Blobs()
    descriptors = []
    for n, plat in enumerate(platforms):
        os_, arch, *variant = plat.split("/")
        layers = [[("arch.txt", plat.encode())]] + LAYERS[1:]
        descriptors.append(blobs.image(layers=layers, arch=arch, variant=variant[0] if variant else None))
    attestation = blobs.image()
    attestation["platform"] = {"os": "unknown", "architecture": "unknown"}
    attestation["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
    index = blobs.index(descriptors + [attestation])
    index["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    return blobs.write_dir(tmp_path / "multi", [index])


def test_platform_selection(tmp_path):
    host = host_platform()
    other = "linux/s390x" if host != "linux/s390x" else "linux/ppc64le"
    root = _multi_platform_layout(tmp_path, [other, "linux/arm64", "linux/arm/v7", host])
    first = lambda image: image.layers[0].entries[0].digest  # noqa: E731
    assert load_oci_layout(root, platform="linux/arm64").platform == "linux/arm64"
    assert first(load_oci_layout(root, platform="linux/arm64")) == hashlib.blake2b(b"linux/arm64", digest_size=20).digest()
    assert load_oci_layout(root, platform="arm64/v8").platform == "linux/arm64"
    assert load_oci_layout(root, platform="linux/arm/v7").platform == "linux/arm/v7"
    assert load_oci_layout(root).platform == host  # the host's, when there is a choice
    with pytest.raises(ImageError, match=r"no image for platform linux/mips64le; available: .*linux/arm64"):
        load_oci_layout(root, platform="linux/mips64le")
    ambiguous = _multi_platform_layout(tmp_path / "b", [p for p in ("linux/s390x", "linux/ppc64le") if p != host])
    if host not in ("linux/s390x", "linux/ppc64le"):
        with pytest.raises(ImageError, match=r"several platforms \(linux/ppc64le, linux/s390x\).*--platform"):
            load_oci_layout(ambiguous)
    single = _multi_platform_layout(tmp_path / "c", ["linux/s390x"])
    assert load_oci_layout(single).platform == "linux/s390x"  # the only one, whatever the host
    with pytest.raises(ImageError, match="no image for platform linux/arm64"):
        load_oci_layout(single, platform="linux/arm64")


# --- bad and hostile input -------------------------------------------------------------------------

def test_clear_errors_for_bad_paths(tmp_path, sandbox):
    with pytest.raises(ImageError, match="no such file"):
        load_docker_archive(str(tmp_path / "missing.tar"))
    with pytest.raises(ImageError, match="is a directory; for an OCI image layout use oci:"):
        load_docker_archive(str(tmp_path))
    with pytest.raises(ImageError, match="not a tar archive"):
        load_docker_archive(write(tmp_path, "x.tar", b"hello, not a tar\n" * 100))
    with pytest.raises(ImageError, match="no such directory"):
        load_oci_layout(str(tmp_path / "nope"))
    with pytest.raises(ImageError, match="no index.json: not an OCI image layout"):
        load_oci_layout(str(tmp_path / "work"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        add(tf, "hello.txt", b"hi")
    with pytest.raises(ImageError, match="neither manifest.json nor index.json"):
        load_docker_archive(write(tmp_path, "plain.tar", buf.getvalue()))
    with pytest.raises(ImageError, match="neither manifest.json nor index.json"):
        load_save_stream(IterStream([buf.getvalue()]), "x:1")


def _rewrite(data: bytes, drop=(), replace=None, extra=()) -> bytes:
    """Copy an archive, dropping/replacing members and appending extra (name, data|link) ones."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            if any(m.name.endswith(d) for d in drop):
                continue
            body = src.extractfile(m).read() if m.isreg() else None
            if replace and m.name in replace:
                body = replace[m.name]
                m.size = len(body)
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
        for name, value in extra:
            if isinstance(value, tuple):
                add(dst, name, **{value[0]: value[1]})
            else:
                add(dst, name, value)
    return out.getvalue()


def test_missing_layer_and_config(tmp_path, sandbox):
    data = classic_archive()
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(data)).extractfile("manifest.json").read())
    missing = manifest[0]["Layers"][1]
    broken = _rewrite(data, drop=[missing])
    with pytest.raises(ImageError, match=f"layer 1 \\({missing}\\) listed in manifest.json is missing"):
        load_docker_archive(write(tmp_path, "a.tar", broken))
    with pytest.raises(ImageError, match="layer 1 .* is missing"):
        load_save_stream(IterStream([broken]), "app:1")
    with pytest.raises(ImageError, match="config .* listed in manifest.json is missing"):
        load_docker_archive(write(tmp_path, "b.tar", _rewrite(data, drop=[manifest[0]["Config"]])))


def test_corrupt_layer_member_is_named(tmp_path, sandbox):
    data = classic_archive(how="gzip")
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(data)).extractfile("manifest.json").read())
    target = manifest[0]["Layers"][0]
    good = tarfile.open(fileobj=io.BytesIO(data)).extractfile(target).read()
    for bad in (good[: len(good) // 2], good[:20] + bytes(len(good) - 20)):
        broken = _rewrite(data, replace={target: bad})
        with pytest.raises(ImageError, match=f"cannot read layer {target}"):
            load_docker_archive(write(tmp_path, "c.tar", broken))
        with pytest.raises(ImageError, match=f"cannot read layer {target}"):
            load_save_stream(IterStream([broken]), "app:1")


def test_truncated_archive_and_stream(tmp_path, sandbox):
    data = classic_archive()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 11000):
        with pytest.raises(ImageError):
            load_docker_archive(write(tmp_path, "t.tar", data[:cut]))
        with pytest.raises(ImageError):
            load_save_stream(IterStream([data[:cut]]), "app:1")


def test_corrupt_blob_in_oci_layout(tmp_path, sandbox):
    blobs = Blobs()
    d = blobs.image(how="gzip")
    root = blobs.write_dir(tmp_path / "layout", [d])
    manifest = json.loads(blobs.blobs[d["digest"]])
    layer_path = os.path.join(root, "blobs", "sha256", manifest["layers"][1]["digest"].split(":")[1])
    original = open(layer_path, "rb").read()
    # same length, different bytes inside the gzip header's mtime: decompresses fine, digest differs
    with open(layer_path, "wb") as f:
        f.write(original[:4] + b"\x01\x02\x03\x04" + original[8:])
    with pytest.raises(ImageError, match=r"layer blob blobs/sha256/\w+ is corrupt"):
        load_oci_layout(root)
    with open(layer_path, "wb") as f:
        f.write(original + b"\0" * 10)
    with pytest.raises(ImageError, match="is corrupt|descriptor says"):
        load_oci_layout(root)
    os.unlink(layer_path)
    with pytest.raises(ImageError, match="layer 1 blob .* listed in the manifest is missing"):
        load_oci_layout(root)
    config_path = os.path.join(root, "blobs", "sha256", manifest["config"]["digest"].split(":")[1])
    with open(config_path, "ab") as f:
        f.write(b" ")
    with pytest.raises(ImageError, match="is corrupt"):
        load_oci_layout(root)


@pytest.mark.parametrize("media_type, message", [
    ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "Windows foreign layer"),
    ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "is encrypted"),
    ("application/vnd.example.weird", "unsupported media type"),
])
def test_unsupported_layer_media_types(tmp_path, media_type, message):
    blobs = Blobs()
    root = blobs.write_dir(tmp_path / "layout", [blobs.image(layer_media_type=media_type)])
    with pytest.raises(ImageError, match=message):
        load_oci_layout(root)


def test_not_a_container_image_and_bad_digests(tmp_path, sandbox):
    blobs = Blobs()
    config = blobs.put(b"{}")
    config["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    helm = blobs.put(json.dumps({"schemaVersion": 2, "config": config, "layers": []}).encode())
    helm["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    root = blobs.write_dir(tmp_path / "helm", [helm])
    with pytest.raises(ImageError, match="not a container image"):
        load_oci_layout(root)
    hostile = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../etc/passwd",
               "size": 10}
    root = Blobs().write_dir(tmp_path / "hostile", [hostile])
    with pytest.raises(ImageError, match="invalid digest"):
        load_oci_layout(root)


def test_hostile_archive_member_names(tmp_path, sandbox):
    """`../`, absolute names, symlink loops and hard links to missing members in the outer tar."""
    data = classic_archive()
    manifest = json.loads(tarfile.open(fileobj=io.BytesIO(data)).extractfile("manifest.json").read())
    evil = _rewrite(data, extra=[("../../imagelint-evil", b"x"), ("/imagelint-evil", b"x"),
                                 ("loop/a", ("link", "b")), ("loop/b", ("link", "a"))])
    image = load_docker_archive(write(tmp_path, "evil.tar", evil))
    assert [[e.path for e in layer.entries] for layer in image.layers] == EXPECTED_PATHS
    load_save_stream(IterStream([evil]), "app:1")

    first = manifest[0]["Layers"][0]
    looped = _rewrite(data, drop=[first], extra=[(first, ("link", "../loop/layer.tar")),
                                                 ("loop/layer.tar", ("link", "../" + first))])
    with pytest.raises(ImageError, match="symlink loop"):
        load_docker_archive(write(tmp_path, "loop.tar", looped))
    with pytest.raises(ImageError, match="symlink loop"):
        load_save_stream(IterStream([looped]), "app:1")

    dangling = _rewrite(data, drop=[first], extra=[(first, ("hard", "nowhere/layer.tar"))])
    with pytest.raises(ImageError, match="layer 0 .* is missing"):
        load_docker_archive(write(tmp_path, "hard.tar", dangling))

    dotted = _rewrite(data, drop=["manifest.json"], extra=[("../manifest.json", json.dumps(manifest).encode())])
    assert len(load_docker_archive(write(tmp_path, "dotted.tar", dotted)).layers) == 3


def test_too_many_archive_members(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("x")
        for i in range(100_001):
            info.name = f"f{i}"
            tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(ImageError, match="more than 100000 members"):
        load_docker_archive(write(tmp_path, "many.tar", buf.getvalue()))


def test_iterstream_closes_its_iterator():
    closed = []

    def chunks():
        try:
            yield b"abc"
            yield b"def"
        finally:
            closed.append(True)

    stream = IterStream(chunks())
    assert stream.read(2) == b"ab"
    stream.close()
    assert closed == [True]


# --- the real engine -------------------------------------------------------------------------------

def _engine_or_fail():
    problem = None
    if not shutil.which("docker"):
        problem = "the docker CLI is not on PATH"
    else:
        probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
        if probe.returncode != 0:
            problem = "the Docker engine is not reachable: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    if not problem and not shutil.which("skopeo"):
        problem = "skopeo is not installed"
    if not problem and not os.path.exists("/bin/busybox"):
        problem = "/bin/busybox (busybox-static) is missing"
    if problem:
        if os.environ.get("IMAGELINT_TEST_ENGINE") == "0" and os.environ.get("CI") != "true":
            pytest.skip(problem)
        pytest.fail(problem)


@pytest.fixture(scope="module")
def engine_image(tmp_path_factory):
    _engine_or_fail()
    tag = f"imagelint-test-archive-{uuid.uuid4().hex[:10]}:1"
    ctx = tmp_path_factory.mktemp("ctx")
    shutil.copy("/bin/busybox", ctx / "busybox")
    step = ("/bin/busybox mkdir -p /data /tmp && echo hello > /data/a && /bin/busybox ln /data/a /data/hard "
            "&& /bin/busybox ln -s a /data/sym && /bin/busybox mkfifo /data/fifo")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        f"RUN {json.dumps(['/bin/busybox', 'sh', '-c', step])}\n"
        'ENV X=1\n'
        f"RUN {json.dumps(['/bin/busybox', 'sh', '-c', '/bin/busybox rm /data/a && /bin/busybox rm -rf /tmp && /bin/busybox mkdir /tmp && echo x > /tmp/y'])}\n")
    build = subprocess.run(["docker", "build", "-q", "--network", "none", "-t", tag, str(ctx)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    try:
        yield tag
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


@pytest.mark.engine
def test_engine_save_and_skopeo_layouts_agree(engine_image, tmp_path):
    saved = tmp_path / "save.tar"
    subprocess.run(["docker", "save", engine_image, "-o", str(saved)], check=True)
    images = {"docker-archive": load_docker_archive(str(saved))}
    for name, extra in (("oci-gzip", ["--dest-compress"]),
                        ("oci-zstd", ["--dest-compress", "--dest-compress-format", "zstd"])):
        subprocess.run(["skopeo", "copy", "-q", *extra, f"docker-daemon:{engine_image}",
                        f"oci:{tmp_path / name}:img"], check=True)
        images[name] = load_oci_layout(str(tmp_path / name))
    subprocess.run(["skopeo", "copy", "-q", f"docker-daemon:{engine_image}", f"oci-archive:{tmp_path / 'oci.tar'}:img"],
                   check=True)
    images["oci-archive"] = load_docker_archive(str(tmp_path / "oci.tar"))
    docker = pytest.importorskip("docker")
    client = docker.from_env()
    try:
        stream = IterStream(client.images.get(engine_image).save())
        images["sdk-stream"] = load_save_stream(stream, engine_image)
        stream.close()
    finally:
        client.close()

    reference = images["docker-archive"]
    assert len(reference.layers) == 3
    assert [(e.path, e.kind) for e in reference.layers[1].entries] == [
        ("data", "dir"), ("data/a", "file"), ("data/fifo", "fifo"), ("data/hard", "hardlink"),
        ("data/sym", "symlink"), ("tmp", "dir")]
    assert ("data/a", "whiteout") in [(e.path, e.kind) for e in reference.layers[2].entries]
    assert ("tmp", "opaque") in [(e.path, e.kind) for e in reference.layers[2].entries]
    assert reference.layers[2].created_by and "rm /data/a" in reference.layers[2].created_by
    rows = entry_rows(reference)
    for name, image in images.items():
        assert entry_rows(image) == rows, name
        assert [layer.diff_id for layer in image.layers] == [layer.diff_id for layer in reference.layers], name
        assert image.platform == reference.platform, name
    for name in ("oci-gzip", "oci-zstd"):
        assert all(layer.compressed_size_exact and layer.compressed_size > 0 for layer in images[name].layers)
    assert images["sdk-stream"].id == reference.id
