"""Images from ``docker save`` archives (classic and OCI layouts), ``docker save`` streams and OCI
image layout directories.

Layouts understood:

* classic ``docker save`` (docker ≤ 24): ``manifest.json`` + ``<id>/layer.tar`` + ``<config>.json``;
  duplicate layers are symlinks to another ``layer.tar``.
* OCI-layout ``docker save`` (docker ≥ 25): ``manifest.json`` + ``index.json`` + ``oci-layout`` +
  ``blobs/sha256/…``; also any tarred OCI layout (``skopeo copy … oci-archive:``, no manifest.json).
* OCI image layout directories (``index.json``, image indexes / manifest lists with platforms).

Layer blobs may be plain tar, gzip or zstd (sniffed). Nothing is extracted; each layer is streamed
once through :func:`imagelint.sources.layerstream.read_layer`. Blobs stored under
``blobs/<alg>/<hex>`` are checked against their digest (and descriptor size) while they stream,
so a corrupt blob is reported rather than half-analysed.

Transfer (compressed) sizes: exact (``compressed_size_exact=True``) when the layer is stored
compressed (gzip/zstd media type or, without a descriptor, a gzip/zstd member): the blob size is
then what a registry transfers. An uncompressed layer (classic ``layer.tar``, docker ≥ 25's
``…layer.v1.tar`` blobs) gets ``compressed_size=None``: a registry push would compress it, and
that size is not known without compressing — reports say "unknown".
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import tarfile

from imagelint.image import Image, ImageError, Layer, normalise_path
from imagelint.sources.platforms import (_parse_platform, _platform_matches, _platform_of,  # noqa: F401
                                         _platform_text, host_platform)
from imagelint.sources.layerstream import LayerReadError, LayerReadResult, open_decompressed, read_layer_info, \
    sniff_compression

__all__ = ["load_docker_archive", "load_save_stream", "load_oci_layout", "IterStream", "host_platform"]

MAX_JSON = 64 << 20  # manifests and configs are kilobytes; anything bigger is not one
MAX_ARCHIVE_MEMBERS = 100_000  # a docker save has a few files per layer; bounds the member index
MAX_INDEX_DEPTH = 4

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
CONFIG_TYPES = {"application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json"}
# layer media type -> compression
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
}
FOREIGN_TYPES = {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                 "application/vnd.docker.image.rootfs.foreign.diff.tar"}
# media type given to layers that have no descriptor (classic docker save), from the sniffed compression
SNIFFED_TYPES = {"tar": "application/vnd.oci.image.layer.v1.tar",
                 "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
                 "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$")
_BLOB_PATH = re.compile(r"^blobs/(sha256|sha384|sha512)/([0-9a-f]+)$")


# --- small helpers ---------------------------------------------------------------------------------

class IterStream(io.RawIOBase):
    """A read-only, non-seekable file object over an iterator of byte chunks (e.g. the docker SDK's
    ``image.save()`` generator). close() closes the iterator too (releases the HTTP response)."""

    def __init__(self, chunks):
        super().__init__()
        self._chunks = iter(chunks)
        self._buf = memoryview(b"")
        self._close_chunks = getattr(chunks, "close", None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buf:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            self._buf = memoryview(chunk)
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed and self._close_chunks is not None:
            try:
                self._close_chunks()
            except Exception:  # closing a half-read HTTP stream may complain; nothing to do about it
                pass
        super().close()


def _read_config(config_path: str, config_bytes: bytes, where: str) -> dict:
    """The image config from an archive member: size/digest checked, JSON, a mapping."""
    _check_bytes(config_path, config_bytes, where)
    config = _json(config_bytes, config_path, where)
    if not isinstance(config, dict):
        raise ImageError(f"{where}: config {config_path} is not an image config")
    return config


def _blob_path(digest, where: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ImageError(f"{where}: invalid digest {digest!r} in a descriptor: the archive or layout is corrupt")
    alg, hexpart = digest.split(":", 1)
    return f"blobs/{alg}/{hexpart}"


def _expected_digest(path: str):
    """(algorithm, hex) for a content-addressed blob path, else None."""
    m = _BLOB_PATH.match(path)
    return (m.group(1), m.group(2)) if m else None


def _check_bytes(path: str, data: bytes, where: str) -> None:
    expected = _expected_digest(path)
    if expected and hashlib.new(expected[0], data).hexdigest() != expected[1]:
        raise ImageError(f"{where}: blob {path} is corrupt (its content does not match its {expected[0]} digest): "
                         "re-create the archive or layout")


def _json(data: bytes, path: str, where: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{where}: {path} is not valid JSON ({exc}): the archive or layout is corrupt") from None


class _VerifyingReader:
    """Pass-through reader that hashes and counts what flows through, to check a blob afterwards."""

    def __init__(self, fileobj, algorithm: str):
        self._fileobj = fileobj
        self._hash = hashlib.new(algorithm)
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._fileobj.read(size)
        self._hash.update(data)
        self.count += len(data)
        return data

    def finish(self) -> str:
        while self.read(1 << 20):
            pass
        return self._hash.hexdigest()


def _read_blob_layer(fileobj, path: str, hash_content: bool, where: str) -> LayerReadResult:
    """Stream one layer member/blob; blobs named by digest are verified as they pass."""
    expected = _expected_digest(path)
    if expected is None:
        return read_layer_info(fileobj, hash_content=hash_content, name=path)
    reader = _VerifyingReader(fileobj, expected[0])
    result = read_layer_info(reader, hash_content=hash_content, name=path)
    if reader.finish() != expected[1]:
        raise LayerReadError(f"{where}: layer blob {path} is corrupt (its content does not match its "
                             f"{expected[0]} digest): re-create the archive or layout")
    return result


# --- stores: where the files of an archive/layout come from ------------------------------------

class _Store:
    """Access to the files of an archive or layout by normalised path."""

    where = ""

    def has(self, path: str) -> bool:
        raise NotImplementedError

    def size(self, path: str):
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes:
        raise NotImplementedError

    def read_layer(self, path: str, hash_content: bool) -> LayerReadResult:
        raise NotImplementedError

    def json(self, path: str):
        data = self.read_bytes(path)
        _check_bytes(path, data, self.where)
        return _json(data, path, self.where)


def _link_target(member_path: str, info: tarfile.TarInfo) -> str:
    if info.issym():
        return normalise_path(posixpath.join(posixpath.dirname(member_path), info.linkname))
    return normalise_path(info.linkname)  # hard link: relative to the archive root


class _TarIndexStore(_Store):
    """A seekable, uncompressed archive: index the members once, then read any of them."""

    def __init__(self, fileobj, where: str):
        self.where = where
        try:
            self._tar = tarfile.TarFile(fileobj=fileobj, mode="r")
        except tarfile.TarError as exc:
            raise ImageError(f"{where}: not a tar archive ({exc}); expected a `docker save` archive") from None
        self._members = {}
        self._links = {}
        count = 0
        while True:
            try:
                info = self._tar.next()
            except tarfile.TarError as exc:
                raise ImageError(f"{where}: damaged tar archive ({exc}): re-create it") from None
            if info is None:
                break
            self._tar.members.clear()  # our own index holds what we need
            count += 1
            if count > MAX_ARCHIVE_MEMBERS:
                raise ImageError(f"{where}: more than {MAX_ARCHIVE_MEMBERS} members: not a `docker save` archive")
            path = normalise_path(info.name)
            if info.issym() or info.islnk():
                self._links[path] = _link_target(path, info)
            elif info.isreg():
                self._members[path] = info

    def _resolve(self, path: str):
        for _ in range(16):  # docker writes one level of symlink; a loop is an error
            if path in self._members:
                return self._members[path]
            if path not in self._links:
                return None
            path = self._links[path]
        raise ImageError(f"{self.where}: symlink loop at {path}: the archive is corrupt")

    def has(self, path):
        return self._resolve(path) is not None

    def size(self, path):
        info = self._resolve(path)
        return info.size if info is not None else None

    def read_bytes(self, path):
        info = self._resolve(path)
        if info is None:
            raise ImageError(f"{self.where}: {path} is missing from the archive")
        if info.size > MAX_JSON:
            raise ImageError(f"{self.where}: {path} is {info.size} bytes, too large for a manifest or config")
        try:
            data = self._tar.extractfile(info).read()
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"{self.where}: cannot read {path} ({exc}): the archive is damaged") from None
        return data

    def read_layer(self, path, hash_content):
        info = self._resolve(path)
        if info is None:
            raise ImageError(f"{self.where}: {path} is missing from the archive")
        return _read_blob_layer(self._tar.extractfile(info), path, hash_content, self.where)


class _StreamStore(_Store):
    """A non-seekable archive read in one pass: layer members become entries as they pass (the
    manifest may come after them), small JSON files are kept; never any layer bytes."""

    def __init__(self, where: str):
        self.where = where
        self._json = {}
        self._layers = {}
        self._errors = {}
        self._links = {}
        self._sizes = {}

    def consume(self, stream, hash_content: bool) -> "_StreamStore":
        try:
            decompressed, _ = open_decompressed(stream)
            tar = tarfile.open(fileobj=decompressed, mode="r|", bufsize=1 << 20)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise ImageError(f"{self.where}: not a tar archive ({exc}); expected `docker save` output") from None
        count = 0
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise ImageError(f"{self.where}: damaged tar archive ({exc}): re-create it") from None
            if info is None:
                break
            tar.members.clear()  # TarFile keeps every TarInfo otherwise
            count += 1
            if count > MAX_ARCHIVE_MEMBERS:
                raise ImageError(f"{self.where}: more than {MAX_ARCHIVE_MEMBERS} members: not a `docker save` archive")
            path = normalise_path(info.name)
            if info.issym() or info.islnk():
                self._links[path] = _link_target(path, info)
                continue
            if not info.isreg():
                continue
            self._sizes[path] = info.size
            member = tar.extractfile(info)
            json_name = path.endswith(".json") or posixpath.basename(path) in ("repositories", "oci-layout")
            try:
                head = member.peek(1)[:1]
                if (json_name or head in (b"{", b"[")) and info.size <= MAX_JSON:
                    self._json[path] = member.read()
                    if len(self._json[path]) != info.size:
                        raise tarfile.ReadError("unexpected end of data")
                    continue
                if json_name:
                    continue  # an oversized .json: an error only if something needs it
                self._layers[path] = _read_blob_layer(member, path, hash_content, self.where)
            except ImageError as exc:
                self._errors[path] = exc  # reported only if the manifest lists this member
            except (tarfile.TarError, EOFError, OSError) as exc:
                self._errors[path] = ImageError(f"{self.where}: cannot read {path} ({exc}): the stream is truncated or damaged")
        return self

    def _resolve(self, path: str) -> str:
        for _ in range(16):
            if path in self._sizes or path not in self._links:
                return path
            path = self._links[path]
        raise ImageError(f"{self.where}: symlink loop at {path}: the archive is corrupt")

    def has(self, path):
        return self._resolve(path) in self._sizes

    def size(self, path):
        return self._sizes.get(self._resolve(path))

    def read_bytes(self, path):
        path = self._resolve(path)
        if path in self._errors:
            raise self._errors[path]
        if path in self._json:
            return self._json[path]
        if path in self._sizes:
            raise ImageError(f"{self.where}: {path} is not a JSON document of at most {MAX_JSON} bytes")
        raise ImageError(f"{self.where}: {path} is missing from the archive")

    def read_layer(self, path, hash_content):
        path = self._resolve(path)
        if path in self._errors:
            raise self._errors[path]
        if path in self._layers:
            return self._layers[path]
        if path in self._json:  # looked like JSON but is listed as a layer: parse the kept bytes
            return _read_blob_layer(io.BytesIO(self._json[path]), path, hash_content, self.where)
        raise ImageError(f"{self.where}: {path} is missing from the archive")


class _DirStore(_Store):
    """An OCI image layout directory."""

    def __init__(self, root: str, where: str):
        self.root = root
        self.where = where

    def _full(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))  # path is normalised: cannot climb out

    def has(self, path):
        return os.path.isfile(self._full(path))

    def size(self, path):
        try:
            return os.path.getsize(self._full(path))
        except OSError:
            return None

    def read_bytes(self, path):
        full = self._full(path)
        try:
            if os.path.getsize(full) > MAX_JSON:
                raise ImageError(f"{self.where}: {path} is too large for a manifest or config")
            with open(full, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise ImageError(f"{self.where}: {path} is missing from the OCI layout") from None
        except OSError as exc:
            raise ImageError(f"{self.where}: cannot read {path}: {exc.strerror or exc}") from None

    def read_layer(self, path, hash_content):
        try:
            f = open(self._full(path), "rb")
        except FileNotFoundError:
            raise ImageError(f"{self.where}: {path} is missing from the OCI layout") from None
        except OSError as exc:
            raise ImageError(f"{self.where}: cannot read {path}: {exc.strerror or exc}") from None
        with f:
            return _read_blob_layer(f, path, hash_content, self.where)


# --- public loaders -------------------------------------------------------------------------------

def load_docker_archive(path: str, hash_content: bool = True, ref_name: str = None, platform: str = None) -> Image:
    """An image from a ``docker save`` archive (classic or OCI layout; plain, gzip or zstd tar), or
    from any tarred OCI layout. ``ref_name`` picks one image of a multi-image archive (a RepoTag
    or OCI ref name); ``platform`` (e.g. linux/arm64) picks from a multi-platform OCI index."""
    if ref_name is None and not os.path.exists(path):
        path, ref_name = _split_name(path, os.path.isfile)  # docker-archive:PATH:NAME, as skopeo spells it
    where = f"docker-archive {path}"
    if not os.path.exists(path):
        raise ImageError(f"{where}: no such file; create one with `docker save IMAGE -o FILE`")
    if os.path.isdir(path):
        raise ImageError(f"{where}: is a directory; for an OCI image layout use oci:{path}")
    image = Image(f"docker-archive:{path}" + (f":{ref_name}" if ref_name else ""), "docker-archive")
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ImageError(f"{where}: cannot open: {exc.strerror or exc}") from None
    with f:
        compression = sniff_compression(f.read(4))
        f.seek(0)
        if compression == "tar":
            store = _TarIndexStore(f, where)
        else:  # `docker save | gzip`: no random access, read it in one pass
            store = _StreamStore(where).consume(f, hash_content)
        return _assemble(store, image, hash_content, ref_name, platform)


def load_save_stream(stream, ref: str, hash_content: bool = True, platform: str = None) -> Image:
    """An image from a non-seekable ``docker save`` stream (e.g. ``IterStream(image.save())``),
    read in one pass. ``ref`` is the image that was saved: it names the Image and picks the image
    when the stream holds several."""
    where = f"`docker save` stream of {ref}"
    store = _StreamStore(where).consume(stream, hash_content)
    image = Image(ref, "engine")
    return _assemble(store, image, hash_content, ref, platform)


def load_oci_layout(path: str, platform: str = None, hash_content: bool = True, ref_name: str = None) -> Image:
    """An image from an OCI image layout directory. ``path`` may end in ``:NAME`` (an
    org.opencontainers.image.ref.name) like skopeo's ``oci:DIR:NAME``; ``platform`` (e.g.
    linux/arm64) picks from an image index; without it the only image or the host's is taken."""
    if ref_name is None and not os.path.isdir(path):
        path, ref_name = _split_name(path, os.path.isdir)
    where = f"oci {path}"
    if not os.path.exists(path):
        raise ImageError(f"{where}: no such directory; create an OCI layout with e.g. "
                         "`skopeo copy docker-daemon:IMAGE oci:DIR`")
    if not os.path.isdir(path):
        raise ImageError(f"{where}: not a directory; for a `docker save` archive use docker-archive:{path}")
    store = _DirStore(path, where)
    if not store.has("index.json"):
        raise ImageError(f"{where}: no index.json: not an OCI image layout")
    image = Image(f"oci:{path}" + (f":{ref_name}" if ref_name else ""), "oci")
    return _assemble(store, image, hash_content, ref_name, platform)


def _split_name(path: str, exists) -> tuple:
    """'PATH:NAME' -> (PATH, NAME) at the first colon where PATH exists (NAME may hold colons)."""
    at = path.find(":")
    while at > 0:
        if exists(path[:at]):
            return path[:at], path[at + 1:] or None
        at = path.find(":", at + 1)
    return path, None


# --- assembly -------------------------------------------------------------------------------------

def _assemble(store: _Store, image: Image, hash_content: bool, ref_name, platform) -> Image:
    want = _parse_platform(platform) if platform else None
    if store.has("manifest.json"):
        _assemble_docker(store, image, hash_content, ref_name)
    elif store.has("index.json"):
        _assemble_oci(store, image, hash_content, ref_name, want)
    else:
        raise ImageError(f"{store.where}: neither manifest.json nor index.json found: not a `docker save` "
                         "archive or OCI layout")
    have = _platform_of(image.config)
    image.platform = _platform_text(have) if have else None
    if want and have and not _platform_matches(want, have):
        raise ImageError(f"{store.where}: the image is {image.platform}, not {platform}")
    image.attach_history()
    return image


def _ref_matches(wanted: str, names) -> bool:
    """Does a user's image reference name one of ``names`` (RepoTags, OCI ref names)?"""
    if not wanted:
        return False
    candidates = {wanted}
    last = wanted.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in wanted:
        candidates.add(wanted + ":latest")
    for c in list(candidates):
        for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
            if c.startswith(prefix):
                candidates.add(c[len(prefix):])
        if "/" not in c:
            candidates.add("docker.io/library/" + c)
    return any(n in candidates for n in names if isinstance(n, str))


def _assemble_docker(store: _Store, image: Image, hash_content: bool, ref_name) -> None:
    where = store.where
    listing = store.json("manifest.json")
    if not isinstance(listing, list) or not listing or not all(
            isinstance(e, dict) and isinstance(e.get("Config"), str) and isinstance(e.get("Layers"), list)
            for e in listing):
        raise ImageError(f"{where}: manifest.json is not a `docker save` manifest (a list of Config/Layers)")
    if len(listing) == 1:
        entry = listing[0]
    else:
        matches = [e for e in listing if _ref_matches(ref_name, e.get("RepoTags") or [])]
        if len(matches) != 1:
            names = ", ".join(t for e in listing for t in (e.get("RepoTags") or ["<untagged>"]))
            raise ImageError(f"{where}: holds {len(listing)} images ({names}); name one, e.g. "
                             f"docker-archive:PATH:NAME")
        entry = matches[0]

    config_path = normalise_path(entry["Config"])
    if not store.has(config_path):
        raise ImageError(f"{where}: config {entry['Config']} listed in manifest.json is missing from the archive")
    config_bytes = store.read_bytes(config_path)
    image.config = _read_config(config_path, config_bytes, where)
    image.id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()

    layer_paths = [normalise_path(p) if isinstance(p, str) else "" for p in entry["Layers"]]
    descriptors = [None] * len(layer_paths)
    if store.has("index.json"):  # docker >= 25: the OCI manifest has exact media types and sizes
        found = _find_manifest_for_config(store, image.id)
        if found is not None:
            digest, manifest = found
            image.manifest = manifest
            image.repo_digest = digest
            if len(manifest.get("layers") or []) == len(layer_paths):
                descriptors = manifest["layers"]
    diff_ids = _diff_ids(image.config, len(layer_paths), where)
    sources = entry.get("LayerSources") or {}
    for i, path in enumerate(layer_paths):
        descriptor = descriptors[i]
        if descriptor is None and diff_ids[i] in sources:
            descriptor = sources[diff_ids[i]]  # only foreign (Windows) layers are listed here
        if descriptor is not None:
            _check_layer_media_type(descriptor, i, where)
        if not path or not store.has(path):
            raise ImageError(f"{where}: layer {i} ({entry['Layers'][i]}) listed in manifest.json is missing "
                             "from the archive: re-create it with `docker save`")
    cache = {}
    for i, path in enumerate(layer_paths):
        descriptor = descriptors[i] if isinstance(descriptors[i], dict) else None
        image.layers.append(_make_layer(store, i, path, descriptor, diff_ids[i], hash_content, cache))


def _diff_ids(config: dict, count: int, where: str) -> list:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config.get("rootfs"), dict) else None
    if not isinstance(diff_ids, list):
        return [None] * count
    if len(diff_ids) != count:
        raise ImageError(f"{where}: the config lists {len(diff_ids)} layers (rootfs.diff_ids) but the manifest "
                         f"{count}: the archive is inconsistent")
    return [d if isinstance(d, str) else None for d in diff_ids]


def _check_layer_media_type(descriptor, index: int, where: str) -> None:
    if not isinstance(descriptor, dict):
        raise ImageError(f"{where}: layer {index} has an invalid descriptor")
    media_type = descriptor.get("mediaType")
    if media_type in LAYER_TYPES:
        return
    if isinstance(media_type, str) and "+encrypted" in media_type:
        raise ImageError(f"{where}: layer {index} is encrypted ({media_type}); decrypt the image first "
                         "(e.g. skopeo copy --decryption-key KEY ...)")
    if media_type in FOREIGN_TYPES:
        raise ImageError(f"{where}: layer {index} is a Windows foreign layer ({media_type}) whose content is "
                         "not in the image: Windows images are not supported")
    raise ImageError(f"{where}: layer {index} has unsupported media type {media_type!r}; "
                     "imagelint reads tar, tar+gzip and tar+zstd layers")


def _make_layer(store: _Store, index: int, path: str, descriptor, diff_id, hash_content: bool, cache: dict) -> Layer:
    if path not in cache:
        cache[path] = store.read_layer(path, hash_content)
    result = cache[path]
    blob_size = store.size(path)
    if descriptor is not None:
        media_type = descriptor.get("mediaType")
        declared = descriptor.get("size")
        if isinstance(declared, int) and blob_size is not None and declared != blob_size:
            raise ImageError(f"{store.where}: layer {index} blob {path} has {blob_size} bytes but its descriptor "
                             f"says {declared}: the blob is truncated or corrupt")
        compressed = LAYER_TYPES.get(media_type) in ("gzip", "zstd")
        size = declared if isinstance(declared, int) else blob_size
        layer = Layer(index, diff_id=diff_id, digest=descriptor.get("digest"), media_type=media_type,
                      compressed_size=size if compressed else None, compressed_size_exact=compressed)
    else:
        compressed = result.compression != "tar"
        layer = Layer(index, diff_id=diff_id, digest=None, media_type=SNIFFED_TYPES[result.compression],
                      compressed_size=blob_size if compressed else None, compressed_size_exact=compressed)
    # A layer listed twice (docker dedups by symlink) is read once; each Layer gets its own list.
    layer.entries = list(result.entries) if ("used", path) in cache else result.entries
    cache[("used", path)] = True
    return layer


def _walk_index(store: _Store, index: dict, ref: str, depth: int, out: list, seen: set) -> None:
    """Collect (descriptor, ref name) of the image manifests an index reaches."""
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise ImageError(f"{store.where}: an image index has no 'manifests' list: the layout is corrupt")
    for descriptor in manifests:
        if not isinstance(descriptor, dict):
            continue
        annotations = descriptor.get("annotations") if isinstance(descriptor.get("annotations"), dict) else {}
        name = ref or annotations.get(REF_NAME) or annotations.get(CONTAINERD_NAME)
        media_type = descriptor.get("mediaType")
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue  # buildx provenance/SBOM, not an image
        platform = descriptor.get("platform")
        if isinstance(platform, dict) and platform.get("os") == "unknown":
            continue
        if media_type in INDEX_TYPES:
            digest = descriptor.get("digest")
            if depth >= MAX_INDEX_DEPTH or digest in seen:
                continue
            seen.add(digest)
            path = _blob_path(digest, store.where)
            if store.has(path):
                _walk_index(store, store.json(path), name, depth + 1, out, seen)
        elif media_type in MANIFEST_TYPES or media_type is None:
            names = {n for n in (ref, annotations.get(REF_NAME), annotations.get(CONTAINERD_NAME)) if n}
            out.append((descriptor, names))


def _find_manifest_for_config(store: _Store, config_digest: str):
    """(manifest digest, manifest) whose config is ``config_digest``, from index.json; else None."""
    candidates = []
    try:
        _walk_index(store, store.json("index.json"), None, 0, candidates, set())
    except ImageError:
        return None  # an unusable index.json: manifest.json alone still describes the image
    for descriptor, _ in candidates:
        try:
            path = _blob_path(descriptor.get("digest"), store.where)
            if not store.has(path):
                continue
            manifest = store.json(path)
        except ImageError:
            continue
        if isinstance(manifest, dict) and (manifest.get("config") or {}).get("digest") == config_digest:
            return descriptor.get("digest"), manifest
    return None


def _assemble_oci(store: _Store, image: Image, hash_content: bool, ref_name, want) -> None:
    where = store.where
    candidates = []
    _walk_index(store, store.json("index.json"), None, 0, candidates, set())
    if not candidates:
        raise ImageError(f"{where}: index.json lists no image manifest")
    if ref_name:
        named = [c for c in candidates if _ref_matches(ref_name, c[1]) or ref_name in c[1]]
        if not named:
            names = sorted({n for _, ns in candidates for n in ns}) or ["<no names>"]
            raise ImageError(f"{where}: no image named {ref_name!r}; the layout has: {', '.join(names)}")
        candidates = named
    if want:
        fitting = [c for c in candidates if _platform_of(c[0].get("platform")) is None
                   or _platform_matches(want, _platform_of(c[0]["platform"]))]
        if not fitting:
            raise ImageError(f"{where}: no image for platform {_platform_text(want)}; available: "
                             f"{_platform_list(candidates)}")
        candidates = fitting
    chosen = _unique(candidates)
    if chosen is None and not want:
        host = _parse_platform(host_platform())
        chosen = _unique([c for c in candidates if _platform_of(c[0].get("platform")) is not None
                          and _platform_matches(host, _platform_of(c[0]["platform"]))])
    if chosen is None:
        platforms = {_platform_text(_platform_of(c[0].get("platform"))) for c in candidates}
        if len(platforms) > 1:
            raise ImageError(f"{where}: holds images for several platforms ({_platform_list(candidates)}); "
                             "choose one with --platform, e.g. --platform linux/arm64")
        names = sorted({n for _, ns in candidates for n in ns}) or ["<no names>"]
        raise ImageError(f"{where}: holds several images ({', '.join(names)}); name one, e.g. oci:DIR:NAME")
    descriptor = chosen
    if descriptor.get("mediaType") not in MANIFEST_TYPES and descriptor.get("mediaType") is not None:
        raise ImageError(f"{where}: unsupported manifest media type {descriptor.get('mediaType')!r}")
    manifest_path = _blob_path(descriptor.get("digest"), where)
    if not store.has(manifest_path):
        raise ImageError(f"{where}: manifest blob {manifest_path} is missing")
    manifest = store.json(manifest_path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list) \
            or not isinstance(manifest.get("config"), dict):
        raise ImageError(f"{where}: {manifest_path} is not an image manifest")
    image.manifest = manifest
    image.repo_digest = descriptor.get("digest")
    config_descriptor = manifest["config"]
    if config_descriptor.get("mediaType") not in CONFIG_TYPES:
        raise ImageError(f"{where}: not a container image (config media type "
                         f"{config_descriptor.get('mediaType')!r})")
    config_path = _blob_path(config_descriptor.get("digest"), where)
    if not store.has(config_path):
        raise ImageError(f"{where}: config blob {config_path} is missing")
    config_bytes = store.read_bytes(config_path)
    image.config = _read_config(config_path, config_bytes, where)
    image.id = config_descriptor.get("digest")

    layers = manifest["layers"]
    diff_ids = _diff_ids(image.config, len(layers), where)
    paths = []
    for i, descriptor in enumerate(layers):
        _check_layer_media_type(descriptor, i, where)
        path = _blob_path(descriptor.get("digest"), where)
        if not store.has(path):
            hint = " (a non-distributable layer: fetch it from its URLs first)" if "nondistributable" in \
                descriptor["mediaType"] else ""
            raise ImageError(f"{where}: layer {i} blob {path} listed in the manifest is missing{hint}")
        paths.append(path)
    cache = {}
    for i, (path, descriptor) in enumerate(zip(paths, layers)):
        image.layers.append(_make_layer(store, i, path, descriptor, diff_ids[i], hash_content, cache))


def _unique(candidates: list):
    digests = {c[0].get("digest") for c in candidates}
    return candidates[0][0] if len(digests) == 1 else None


def _platform_list(candidates: list) -> str:
    return ", ".join(sorted({_platform_text(_platform_of(c[0].get("platform"))) for c in candidates}))
