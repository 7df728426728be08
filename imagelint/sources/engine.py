"""Images from the local Docker engine (docker SDK; ``DOCKER_HOST`` respected).

Two ways to read an image:

* ``docker save`` stream (any engine, any storage driver): the SDK's ``image.save()`` chunks are
  read in one pass by :func:`imagelint.sources.archive.load_save_stream` (classic layout from
  engines ≤ 24, OCI layout from ≥ 25). ``Image.source = 'engine'``.
* overlay2 fast path (``fast=True``): when the engine stores images with overlay2 *on this host*
  and imagelint may read its data root, the layers are read straight from the layer directories
  instead of through the engine's tar writer and HTTP stream, which is where ``docker save`` (and so
  dive) spends most of its time. ``Image.source = 'engine-overlay2'``.

The fast path must give exactly the entries ``docker save`` gives. It has two methods per layer:

1. **tar-split replay** (used whenever the layer store has it): for every layer the engine keeps
   ``layerdb/<chain id>/tar-split.json.gz``, the exact tar headers (and padding) of the layer as it
   was created or pulled, with each member's data left out. ``docker save`` rebuilds the layer tar
   from it and the files of the layer's ``diff`` directory; imagelint does the same, feeding the
   result straight into the tar-path parser (:func:`imagelint.sources.layerstream.read_layer`).
   Identical by construction, also for pulled/imported layers, whose order and link names
   (``./usr/bin/perl``) no walk could guess.
2. **directory walk** (:func:`walk_layer_dir`, when a layer has no tar-split): lists the ``diff``
   directory as docker's archive writer (``pkg/archive``, overlay whiteout format) would:
   depth first with siblings sorted by byte name (Go's ``filepath.Walk``), a directory before its
   children; character devices 0/0 → 'whiteout' (mode 0600); the xattr
   ``trusted.overlay.opaque=y`` (``user.overlay.opaque`` with ``userxattr``) → the dir entry then
   an 'opaque' entry (mode = the dir's 0777 bits); a non-directory with ``st_nlink > 1`` met again
   (same inode, same layer) → 'hardlink' (size 0, linkname = the first path); sockets skipped.
   This equals ``docker save`` for layers the engine built itself; for pulled/imported layers the
   order and link names follow the original tar instead.

Transfer sizes: an engine keeps no compressed blobs. The fast path *estimates* them
(``compressed_size_exact=False``): the first 8 KiB of a regular file are deflated (zlib level 6,
the level ``docker push`` uses for gzip) while the bytes sampled so far are under 256 KiB + 1 % of
the layer's file bytes seen so far (samples spread over the whole layer, cost bounded); each
sampled file counts its size × its own ratio, unsampled files the layer's mean sampled ratio, plus
48 bytes per entry for the gzip-compressed tar headers. Hard links, directories and the like cost only their
header. The ``docker save`` path reports the transfer size as unknown (None), as the archive
source does for uncompressed layers.

Nothing is extracted and links are never followed: directories are listed with ``os.scandir``,
files opened component by component with ``O_NOFOLLOW`` and hashed in chunks. Any failure of the
fast path (permissions, a layer removed meanwhile, a file shorter than its header) falls back to
``docker save`` with a debug log line.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import stat
import zlib

from imagelint.hashes import content_hash, sha256
from imagelint.image import Entry, Image, ImageError, Layer

__all__ = ["load_engine", "walk_layer_dir", "replay_tar_split", "LayerWalk", "DEFAULT_SOCKET"]

def _debug(fmt: str, *args) -> None:
    """Why the fast path was not taken, with IMAGELINT_DEBUG=1 (logging costs ~1 MB to import)."""
    if os.environ.get("IMAGELINT_DEBUG"):
        import sys
        print("imagelint: debug: " + fmt % args, file=sys.stderr)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
TAR_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"  # what the archive path gives a layer.tar
MAX_CONFIG = 64 << 20
CHUNK_SIZE = 1 << 18  # bounded reads when hashing; small, since peak memory is compared with dive

# transfer-size estimate (see the module docstring)
SAMPLE_PER_FILE = 8 << 10
SAMPLE_MIN = 256 << 10  # always sampled first
SAMPLE_FRACTION = 0.01  # then at most this share of the bytes seen so far
ESTIMATE_LEVEL = 6
HEADER_COMPRESSED_BYTES = 48


class _NoFastPath(Exception):
    """Internal: the overlay2 fast path does not apply here (message says why); use `docker save`."""


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or ""


def _host_text() -> str:
    host = _docker_host()
    return f"DOCKER_HOST={host}" if host else f"DOCKER_HOST unset, default {DEFAULT_SOCKET}"


def _short_reason(exc: BaseException) -> str:
    """The last meaningful line of an SDK/requests error (they nest whole reprs)."""
    text = str(exc).strip() or type(exc).__name__
    for marker in ("Connection refused", "No such file or directory", "Permission denied", "timed out",
                   "Name or service not known", "Connection reset"):
        if marker in text:
            return marker
    text = text.splitlines()[-1] if text else text
    return text if len(text) <= 160 else text[:157] + "..."


def _unreachable(exc: BaseException) -> ImageError:
    return ImageError(f"cannot reach the Docker engine ({_host_text()}): {_short_reason(exc)}; "
                      "start Docker, or set DOCKER_HOST to a running engine (or use registry:/docker-archive:)")


def load_engine(ref: str, hash_content: bool = True, fast: bool = True) -> Image:
    """Read image ``ref`` from the local engine: the overlay2 fast path when it applies and ``fast``
    is true, else a streamed ``docker save``. Raises ImageError (engine unreachable, unknown image,
    broken stream) with one line for the user."""
    if fast:
        image = _try_fast_path(ref, hash_content)
        if image is not None:
            return image
    try:
        import docker
        import docker.errors
    except ImportError:
        raise ImageError("reading images from the Docker engine needs the docker SDK: "
                         "pip install 'imagelint[image]'") from None
    try:
        client = docker.from_env(timeout=120)
    except docker.errors.DockerException as exc:
        raise _unreachable(exc) from None
    try:
        try:
            inspect = client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            raise _not_found(ref) from None
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                raise _not_found(ref) from None
            raise ImageError(f"the Docker engine refused to inspect {ref}: {exc.explanation or exc}") from None
        except docker.errors.DockerException as exc:
            raise _unreachable(exc) from None
        except Exception as exc:  # requests' ConnectionError and friends
            if _is_connection_error(exc):
                raise _unreachable(exc) from None
            raise
        return _load_saved(client, ref, inspect.get("Id") or ref, hash_content)
    finally:
        client.close()


def _not_found(ref: str) -> ImageError:
    return ImageError(f"image {ref} not found in the local engine ({_host_text()}); pull or build it, "
                      "or use registry:REF / docker-archive:PATH")


def _try_fast_path(ref: str, hash_content: bool):
    """The overlay2 fast path, or None (then `docker save`). It only applies to an engine on this
    host, i.e. a unix socket, which it queries with the standard library: the SDK and requests are
    not needed (nor imported: ~12 MB less peak memory). An unknown image is reported here."""
    host = _docker_host() or DEFAULT_SOCKET
    if not host.startswith("unix://"):
        _debug("overlay2 fast path not used for %s: DOCKER_HOST=%s is not a local socket", ref, host)
        return None
    socket_path = host[len("unix://"):]
    try:
        status, inspect = _unix_get_json(socket_path, "/images/" + _quote(ref) + "/json")
        if status == 404:
            raise _not_found(ref)
        if status != 200 or not isinstance(inspect, dict):
            return None  # let the SDK path report whatever this is
        status, info = _unix_get_json(socket_path, "/info")
        if status != 200 or not isinstance(info, dict):
            return None
        return _load_overlay2(info, ref, inspect, hash_content)
    except ImageError:
        raise
    except _NoFastPath as why:
        _debug("overlay2 fast path not used for %s: %s; falling back to docker save", ref, why)
    except Exception as exc:  # permission, a layer removed under us, odd metadata: never fatal
        _debug("overlay2 fast path failed for %s (%s: %s); falling back to docker save",
                  ref, type(exc).__name__, exc)
    return None


def _quote(ref: str) -> str:
    from urllib.parse import quote
    return quote(ref, safe="/:@")


def _unix_get_json(socket_path: str, path: str, timeout: float = 60.0) -> tuple:
    """(HTTP status, parsed JSON body or None) of a GET on the engine's unix socket.

    Plain HTTP/1.0 on a socket rather than http.client: that module pulls in ssl and
    email (~7 MB of memory and ~30 ms) for two small GETs. HTTP/1.0 makes the engine
    answer without chunking and close the connection at the end of the body.
    """
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("latin-1"))
        chunks, size = [], 0
        limit = MAX_CONFIG + 65536  # body limit plus room for the headers
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise _NoFastPath(f"engine answer to {path} is too large")
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise _NoFastPath(f"unexpected engine answer to {path}")
    status = int(status_line[1])
    if len(body) > MAX_CONFIG:
        raise _NoFastPath(f"engine answer to {path} is too large")
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def _is_connection_error(exc: BaseException) -> bool:
    try:
        import requests
    except ImportError:  # pragma: no cover - the SDK depends on requests
        return False
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def _load_saved(client, ref: str, image_id: str, hash_content: bool) -> Image:
    """The portable path: stream `docker save` of the image (by id: a tag moving meanwhile cannot
    change what is read) through the archive reader."""
    import docker.errors

    from imagelint.sources.archive import IterStream, load_save_stream

    try:
        chunks = client.api.get_image(image_id, chunk_size=CHUNK_SIZE)
    except docker.errors.APIError as exc:
        raise ImageError(f"the Docker engine could not save {ref}: {exc.explanation or exc}") from None
    stream = IterStream(chunks)
    try:
        image = load_save_stream(stream, ref, hash_content)
    except ImageError:
        raise
    except Exception as exc:
        if _is_connection_error(exc) or isinstance(exc, docker.errors.DockerException):
            raise ImageError(f"the `docker save` stream of {ref} broke off ({_short_reason(exc)}); "
                             "is the engine still running?") from None
        raise
    finally:
        stream.close()
    image.source = "engine"
    return image


# --- overlay2 fast path ---------------------------------------------------------------------------

def _driver_status(info: dict) -> dict:
    status = info.get("DriverStatus") or []
    return {str(k): str(v) for k, v in (p for p in status if isinstance(p, (list, tuple)) and len(p) == 2)}


def _chain_ids(diff_ids: list) -> list:
    chain = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else
                     "sha256:" + sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def _read_small(path: str, limit: int = MAX_CONFIG) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        # check the size first: read(limit + 1) would allocate the whole limit up front
        if os.fstat(f.fileno()).st_size > limit:
            raise _NoFastPath(f"{path} is larger than {limit} bytes")
        data = f.read()
    if len(data) > limit:
        raise _NoFastPath(f"{path} is larger than {limit} bytes")
    return data


def _layer_dirs(inspect: dict, root: str, diff_ids: list) -> list:
    """(diff directory, tar-split path) of each layer, base first. The directories come from
    GraphDriver.Data and are checked against the layer store (chain id → cache-id), so that a wrong
    order can never go unnoticed."""
    data = (inspect.get("GraphDriver") or {}).get("Data") or {}
    upper = data.get("UpperDir")
    if not upper:
        raise _NoFastPath("GraphDriver lists no UpperDir")
    lower = [d for d in (data.get("LowerDir") or "").split(":") if d]
    dirs = list(reversed(lower)) + [upper]  # LowerDir lists the top layer first
    if len(dirs) != len(diff_ids):
        raise _NoFastPath(f"GraphDriver lists {len(dirs)} layer dirs, the config {len(diff_ids)} diff_ids")
    layerdb = os.path.join(root, "image", "overlay2", "layerdb")
    result = []
    for i, (chain_id, diff_id) in enumerate(zip(_chain_ids(diff_ids), diff_ids)):
        algo, _, hexpart = chain_id.partition(":")
        entry = os.path.join(layerdb, algo, hexpart)
        cache_id = _read_small(os.path.join(entry, "cache-id"), 4096).decode().strip()
        recorded = _read_small(os.path.join(entry, "diff"), 4096).decode().strip()
        if recorded != diff_id:
            raise _NoFastPath(f"layer store entry for layer {i} records diff {recorded}, expected {diff_id}")
        expected = os.path.join(root, "overlay2", cache_id, "diff")
        if os.path.realpath(expected) != os.path.realpath(dirs[i]):
            raise _NoFastPath(f"layer {i}: GraphDriver dir {dirs[i]} is not the layer store's {expected}")
        if not os.path.isdir(dirs[i]) or not os.access(dirs[i], os.R_OK | os.X_OK):
            raise _NoFastPath(f"layer dir {dirs[i]} is missing or unreadable")
        tar_split = os.path.join(entry, "tar-split.json.gz")
        result.append((dirs[i], tar_split if os.access(tar_split, os.R_OK) else None))
    return result


def _load_overlay2(info: dict, ref: str, inspect: dict, hash_content: bool, method: str = "auto") -> Image:
    """The fast path, from the engine's ``/info`` and the image's inspect document. ``method``:
    'auto' (tar-split replay where the layer store has it, else the walk), 'tar-split' or 'walk'
    (tests compare each with `docker save`)."""
    from imagelint.sources.platforms import _platform_of, _platform_text

    host = _docker_host()
    if host and not host.startswith("unix://"):
        raise _NoFastPath(f"DOCKER_HOST={host} is not a local socket")
    if (inspect.get("GraphDriver") or {}).get("Name") != "overlay2":
        raise _NoFastPath(f"storage driver is {(inspect.get('GraphDriver') or {}).get('Name')!r}, not overlay2")
    status = _driver_status(info)
    if status.get("Native Overlay Diff", "true").lower() != "true":
        # The engine then builds layer tars by comparing trees (no opaque markers): a walk would differ.
        raise _NoFastPath("the engine does not use native overlay diffs")
    opaque_xattr = b"user.overlay.opaque" if status.get("userxattr", "false").lower() == "true" \
        else b"trusted.overlay.opaque"
    root = info.get("DockerRootDir")
    if not root or not os.path.isdir(root):
        raise _NoFastPath(f"the engine's data root {root!r} is not visible here")
    image_id = inspect.get("Id") or ""
    algo, _, hexpart = image_id.partition(":")
    if algo != "sha256" or len(hexpart) != 64:
        raise _NoFastPath(f"unexpected image id {image_id!r}")
    config_path = os.path.join(root, "image", "overlay2", "imagedb", "content", "sha256", hexpart)
    config_bytes = _read_small(config_path)
    if sha256(config_bytes).hexdigest() != hexpart:
        # Another engine's data root at the same path (e.g. DOCKER_HOST to a VM's forwarded socket).
        raise _NoFastPath(f"{config_path} does not hash to the image id")
    try:
        config = json.loads(config_bytes)
    except ValueError as exc:
        raise _NoFastPath(f"image config is not JSON ({exc})") from None
    diff_ids = ((config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None) or []
    if not all(isinstance(d, str) for d in diff_ids):
        raise _NoFastPath("image config has malformed rootfs.diff_ids")
    layers = _layer_dirs(inspect, root, diff_ids)

    image = Image(ref, "engine-overlay2")
    image.config = config
    image.id = image_id
    done = {}
    for i, ((diff_dir, tar_split), diff_id) in enumerate(zip(layers, diff_ids)):
        if diff_dir in done:  # the same layer twice: read once, separate entry lists
            read = done[diff_dir]
            entries = list(read.entries)
        else:
            if method == "walk" or (method == "auto" and tar_split is None):
                read = walk_layer_dir(diff_dir, hash_content=hash_content, opaque_xattr=opaque_xattr)
            elif tar_split is None:
                raise _NoFastPath(f"layer {i} has no tar-split metadata")
            else:
                read = replay_tar_split(tar_split, diff_dir, hash_content=hash_content)
            done[diff_dir] = read
            entries = read.entries
        layer = Layer(i, diff_id=diff_id, digest=None, media_type=TAR_MEDIA_TYPE,
                      compressed_size=read.estimated_compressed_size(), compressed_size_exact=False)
        layer.entries = entries
        image.layers.append(layer)
    have = _platform_of(image.config)
    image.platform = _platform_text(have) if have else None
    image.attach_history()
    return image


class LayerWalk:
    """What walk_layer_dir and replay_tar_split return: the entries, and the samples for the
    transfer-size estimate."""

    __slots__ = ("entries", "sampled_raw", "sampled_compressed", "estimated_file_bytes", "unsampled_bytes",
                 "_seen")

    def __init__(self):
        self.entries: list = []
        self.sampled_raw = 0  # bytes deflated for the estimate
        self.sampled_compressed = 0
        self.estimated_file_bytes = 0.0  # Σ size × own ratio of sampled files
        self.unsampled_bytes = 0  # regular file bytes not sampled (budget spent)
        self._seen = 0  # regular file bytes met so far

    def sample(self, size: int, head) -> None:
        """Account one regular file of ``size`` bytes whose first bytes are ``head`` (may be empty)."""
        take = min(SAMPLE_PER_FILE, len(head)) if self.wants_sample() else 0
        self._seen += size
        if take <= 0:
            self.unsampled_bytes += size
            return
        packed = len(zlib.compress(bytes(head[:take]), ESTIMATE_LEVEL))
        self.sampled_raw += take
        self.sampled_compressed += packed
        self.estimated_file_bytes += size * (packed / take)

    def wants_sample(self) -> bool:
        return self.sampled_raw < SAMPLE_MIN + SAMPLE_FRACTION * self._seen

    def skip(self, size: int) -> None:
        """Account a regular file that was not sampled."""
        self._seen += size
        self.unsampled_bytes += size

    def estimated_compressed_size(self) -> int:
        """Estimated gzip size of this layer's tar (see the module docstring)."""
        ratio = self.sampled_compressed / self.sampled_raw if self.sampled_raw else 1.0
        total = self.estimated_file_bytes + self.unsampled_bytes * ratio
        return int(round(total)) + HEADER_COMPRESSED_BYTES * len(self.entries) + 20


# --- method 1: tar-split replay --------------------------------------------------------------------

_ZEROS = bytes(CHUNK_SIZE)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class _SafeOpener:
    """Opens ``a/b/c`` under a root one component at a time with O_NOFOLLOW, so that no symlink in
    the layer (or swapped in meanwhile) is ever followed; keeps the last directory's fd open
    (tar members come grouped by directory)."""

    def __init__(self, root: str):
        self.root_fd = os.open(root, _DIR_FLAGS)
        self._dir_key = None
        self._dir_fd = None

    def open(self, name: bytes) -> int:
        parts = [p for p in name.split(b"/") if p and p != b"."]
        if not parts or b".." in parts:
            raise _NoFastPath(f"tar-split member {name!r} is not a path inside the layer")
        dir_key = b"/".join(parts[:-1])
        if dir_key != self._dir_key:
            self._close_dir()
            fd = self.root_fd
            try:
                for part in parts[:-1]:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    if fd != self.root_fd:
                        os.close(fd)
                    fd = nfd
            except OSError:
                if fd != self.root_fd:
                    os.close(fd)
                raise
            self._dir_key, self._dir_fd = dir_key, fd
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=self._dir_fd)

    def _close_dir(self) -> None:
        if self._dir_fd is not None and self._dir_fd != self.root_fd:
            os.close(self._dir_fd)
        self._dir_key = self._dir_fd = None

    def close(self) -> None:
        self._close_dir()
        os.close(self.root_fd)


def replay_tar_split(tar_split_path: str, diff_dir: str, hash_content: bool = True) -> LayerWalk:
    """Entries of one layer exactly as ``docker save`` gives them: the layer's recorded tar headers
    (tar-split) with member data read from ``diff_dir``, parsed by the tar-path parser. Raises
    _NoFastPath when the metadata or a file does not match (the caller then uses docker save)."""
    from imagelint.sources import layerstream

    result = LayerWalk()
    opener = _SafeOpener(diff_dir)
    try:
        with gzip.open(tar_split_path, "rb") as meta:
            reader = _ReplayReader(meta, opener, hash_content, result)
            try:
                # The parser behind layerstream.read_layer, fed directly: the layer is not one
                # stream here, and each wrapper a file object would need copies every byte again.
                result.entries = layerstream._read_entries(reader.read, hash_content)
            except layerstream._error_types() as exc:
                raise _NoFastPath(f"replaying {tar_split_path}: {layerstream._explain(exc, 'tar')}") from None
            finally:
                reader.close()
    except (OSError, EOFError, ValueError) as exc:  # unreadable/corrupt metadata, a vanished file
        raise _NoFastPath(f"replaying {tar_split_path}: {exc}") from None
    finally:
        opener.close()
    return result


_SEGMENT_PREFIX = b'{"type":2,"payload":"'


class _ReplayReader:
    """read(n) over the layer tar as ``docker save`` would stream it: the recorded segments
    (headers, padding) verbatim, each member's data from its file in the layer directory."""

    def __init__(self, meta, opener: _SafeOpener, hash_content: bool, result: LayerWalk):
        self._lines = iter(meta)
        self._opener = opener
        self._hash = hash_content
        self._result = result
        self._segment = memoryview(b"")
        self._fd = None
        self._left = 0  # data bytes of the current member still to serve
        self._zeros = False  # serve zeros (data neither hashed nor sampled: the parser only skips it)
        self._name = b""

    def read(self, n: int):
        parts = []
        want = n
        while want:
            if self._segment:
                piece = self._segment[:want]
                self._segment = self._segment[len(piece):]
            elif self._left:
                piece = self._data(want)
            elif not self._next():
                break
            else:
                continue
            parts.append(piece)
            want -= len(piece)
        if len(parts) == 1:
            piece = parts[0]
            return piece if isinstance(piece, bytes) or self._zeros else bytes(piece)
        return b"".join(parts)

    def _data(self, want: int):
        take = min(want, self._left, CHUNK_SIZE)
        if self._zeros:
            self._left -= take
            return memoryview(_ZEROS)[:take]
        chunk = os.read(self._fd, take)
        if not chunk:
            raise _NoFastPath(f"layer file {self._name!r} is shorter than its tar header says")
        self._left -= len(chunk)
        if not self._left:
            self._close_file()
        return chunk

    def _next(self) -> bool:
        """Load the next record; False at the end of the metadata."""
        self._close_file()
        line = next(self._lines, None)
        if line is None:
            return False
        if line.startswith(_SEGMENT_PREFIX):  # the common record, parsed without json
            end = line.index(b'"', len(_SEGMENT_PREFIX))
            self._segment = memoryview(base64.b64decode(line[len(_SEGMENT_PREFIX):end]))
            return True
        record = json.loads(line)
        kind = record.get("type")
        if kind == 2:
            payload = record.get("payload")
            self._segment = memoryview(base64.b64decode(payload) if payload else b"")
        elif kind == 1:
            size = record.get("size") or 0
            if size > 0:
                raw = record.get("name_raw")
                name = base64.b64decode(raw) if raw else str(record.get("name") or "").encode("utf-8", "surrogateescape")
                self._open(name, size)
        else:
            raise _NoFastPath(f"unknown tar-split record type {kind!r}")
        return True

    def _open(self, name: bytes, size: int) -> None:
        self._name = name
        self._left = size
        result = self._result
        if not self._hash and not result.wants_sample():
            result.skip(size)
            self._zeros = True
            return
        try:
            self._fd = self._opener.open(name)
        except OSError as exc:
            raise _NoFastPath(f"cannot open layer file {name!r}: {exc.strerror or exc}") from None
        head = os.pread(self._fd, SAMPLE_PER_FILE, 0) if result.wants_sample() else b""
        result.sample(size, head)
        if not self._hash:  # sampled only: the parser skips the data, zeros will do
            self._close_file()
            self._zeros = True

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._left:
            self._zeros = False

    def close(self) -> None:
        self._left = 0
        self._close_file()


# --- method 2: directory walk ------------------------------------------------------------------------

def _sort_key(entry):
    return entry.name


def walk_layer_dir(diff_dir: str, hash_content: bool = True, opaque_xattr: bytes = b"trusted.overlay.opaque") -> LayerWalk:
    """Entries of one overlay2 layer directory, as docker's tar writer would list them (see the
    module docstring). Never follows a link; file contents are read only to hash them (and to
    sample the transfer-size estimate), in chunks."""
    result = LayerWalk()
    entries = result.entries
    append = entries.append
    seen_inodes = {}  # (dev, ino) -> first path, for hard links (per layer, as docker's writer)
    modes = {}
    root = os.fsencode(diff_dir)
    with os.scandir(root) as it:
        top = sorted(it, key=_sort_key)
    stack = [(b"", iter(top))]  # explicit stack: trees may be deeper than Python's recursion limit
    while stack:
        rel_dir, children = stack[-1]
        dirent = next(children, None)
        if dirent is None:
            stack.pop()
            continue
        rel = rel_dir + b"/" + dirent.name if rel_dir else dirent.name
        st = os.lstat(dirent.path)
        path = rel.decode("utf-8", "surrogateescape")
        fmt = stat.S_IFMT(st.st_mode)
        perm = st.st_mode & 0o7777
        perm = modes.setdefault(perm, perm)
        uid, gid = st.st_uid, st.st_gid
        if fmt == stat.S_IFDIR:
            append(Entry(path, "dir", 0, perm, uid, gid))
            try:
                opaque = os.getxattr(dirent.path, opaque_xattr, follow_symlinks=False)
            except OSError:  # ENODATA: no such attribute (ENOTSUP: none at all)
                opaque = b""
            if opaque == b"y":
                append(Entry(path, "opaque", 0, perm & 0o777, uid, gid))
            with os.scandir(dirent.path) as it:
                stack.append((rel, iter(sorted(it, key=_sort_key))))
            continue
        if fmt == stat.S_IFSOCK:
            continue  # docker's tar writer skips sockets
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = seen_inodes.get(key)
            if first is None:
                seen_inodes[key] = path
            elif not (fmt == stat.S_IFCHR and st.st_rdev == 0):
                # (docker turns a hard-linked whiteout back into a whiteout below)
                append(Entry(path, "hardlink", 0, perm, uid, gid, first))
                continue
        if fmt == stat.S_IFREG:
            size = st.st_size
            digest = None
            if hash_content or result.wants_sample():
                digest, head = _read_file(dirent.path, hash_content)
                result.sample(size, head)
            else:
                result.skip(size)
            append(Entry(path, "file", size, perm, uid, gid, "", digest))
        elif fmt == stat.S_IFLNK:
            target = os.readlink(dirent.path).decode("utf-8", "surrogateescape")
            append(Entry(path, "symlink", 0, perm, uid, gid, target))
        elif fmt == stat.S_IFCHR:
            if st.st_rdev == 0:
                append(Entry(path, "whiteout", 0, 0o600, uid, gid))
            else:
                append(Entry(path, "char", 0, perm, uid, gid))
        elif fmt == stat.S_IFBLK:
            append(Entry(path, "block", 0, perm, uid, gid))
        elif fmt == stat.S_IFIFO:
            append(Entry(path, "fifo", 0, perm, uid, gid))
        else:  # pragma: no cover - no other file types exist on Linux
            append(Entry(path, "other", 0, perm, uid, gid))
    return result


_EMPTY_DIGEST = content_hash().digest()


def _read_file(path: bytes, hash_content: bool) -> tuple:
    """(digest or None, first chunk). Opens with O_NOFOLLOW: a file swapped for a symlink meanwhile
    is refused, never followed. Same hash as the tar path (layerstream.hash_new)."""
    fd = os.open(path, _FILE_FLAGS)
    try:
        first = os.read(fd, CHUNK_SIZE if hash_content else SAMPLE_PER_FILE)
        if not hash_content:
            return None, first
        if not first:
            return _EMPTY_DIGEST, first
        digest = content_hash(first)
        while True:
            chunk = os.read(fd, CHUNK_SIZE)
            if not chunk:
                break
            digest.update(chunk)
        return digest.digest(), first
    finally:
        os.close(fd)
