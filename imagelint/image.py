"""Image model shared by all sources and the analysis: entries, layers, image.

Sources (``imagelint.sources.*``) fill these by streaming layer tars (or by
walking overlay2 layer directories); nothing is ever extracted to disk and file
contents are only hashed, never kept. Paths are normalised: no leading ``/``,
no ``./``, no trailing ``/``; ``..`` components are resolved lexically and can
never climb above the root.
"""
from __future__ import annotations

__all__ = ["Entry", "Layer", "Image", "normalise_path", "KINDS", "ImageError"]

# Entry kinds. 'whiteout' marks a deleted path (tar member ``dir/.wh.name``; the
# entry's path is ``dir/name``); 'opaque' marks a directory whose lower contents
# are hidden (``dir/.wh..wh..opq``; the entry's path is ``dir``).
KINDS = ("file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque", "other")


class ImageError(Exception):
    """Bad input about an image (unknown image, unreadable archive, registry refusal):
    one clear line for the user, exit code 2."""


class Entry:
    """One member of a layer: a file, directory, link, device or whiteout."""

    __slots__ = ("path", "kind", "size", "mode", "uid", "gid", "linkname", "digest")

    def __init__(self, path: str, kind: str, size: int = 0, mode: int = 0, uid: int = 0, gid: int = 0,
                 linkname: str = "", digest: bytes = None):
        self.path = path
        self.kind = kind
        self.size = size  # content bytes of regular files (tar header size); 0 otherwise
        self.mode = mode  # permission bits (and setuid/setgid/sticky)
        self.uid = uid
        self.gid = gid
        self.linkname = linkname  # symlink/hardlink target as stored, never followed
        self.digest = digest  # content hash of regular files when hashing was requested

    def __repr__(self) -> str:
        return f"Entry({self.path!r}, {self.kind}, {self.size})"


class Layer:
    """One layer of an image, in order from the base (index 0) up."""

    __slots__ = ("index", "diff_id", "digest", "media_type", "compressed_size", "compressed_size_exact",
                 "entries", "created_by", "created", "history_index", "comment")

    def __init__(self, index: int, diff_id: str = None, digest: str = None, media_type: str = None,
                 compressed_size: int = None, compressed_size_exact: bool = False):
        self.index = index
        self.diff_id = diff_id  # sha256 of the uncompressed tar (config rootfs.diff_ids)
        self.digest = digest  # blob digest as the registry/archive stores it
        self.media_type = media_type
        self.compressed_size = compressed_size  # transfer bytes; None when unknown
        self.compressed_size_exact = compressed_size_exact  # False: an estimate, say so
        self.entries: list = []
        self.created_by = None  # history `created_by` of the step that made this layer
        self.created = None
        self.history_index = None  # index into config history
        self.comment = None

    @property
    def size(self) -> int:
        """Uncompressed content bytes, as dive counts them (sum of tar header sizes)."""
        return sum(e.size for e in self.entries)

    @property
    def file_count(self) -> int:
        return sum(1 for e in self.entries if e.kind not in ("dir", "whiteout", "opaque"))

    def __repr__(self) -> str:
        return f"<Layer {self.index} {len(self.entries)} entries {self.created_by!r:.40}>"


class Image:
    """A whole image: its config, its layers (with entries) and where it came from."""

    def __init__(self, ref: str, source: str):
        self.ref = ref  # what the user asked for
        self.source = source  # 'engine', 'engine-overlay2', 'docker-archive', 'oci', 'registry'
        self.config: dict = {}  # the image config JSON (architecture, os, config, history, rootfs)
        self.manifest: dict = None  # the image manifest when the source has one
        self.layers: list = []
        self.id = None  # config digest
        self.repo_digest = None  # manifest digest when known
        self.platform = None  # e.g. linux/amd64

    @property
    def history(self) -> list:
        return list(self.config.get("history") or [])

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def compressed_size(self):
        """Total transfer size, or None when any layer's is unknown."""
        sizes = [layer.compressed_size for layer in self.layers]
        return None if any(s is None for s in sizes) else sum(sizes)

    def attach_history(self) -> None:
        """Pair each layer with the next non-empty history step (dive's rule)."""
        steps = [(i, h) for i, h in enumerate(self.history) if not h.get("empty_layer")]
        for layer, (i, h) in zip(self.layers, steps):
            layer.history_index = i
            layer.created_by = h.get("created_by")
            layer.created = h.get("created")
            layer.comment = h.get("comment")


def normalise_path(name: str) -> str:
    """Tar member name → normalised path; never escapes the root (``../x`` → ``x``)."""
    parts = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)
