"""Image sources: where `imagelint inspect` reads an image from.

``docker-archive:PATH``  a `docker save` tar (classic or OCI layout)
``oci:DIR``              an OCI image layout directory
``registry:REF``         straight from a registry over the OCI distribution API (no engine)
``docker:REF`` or REF    the local engine (DOCKER_HOST respected); overlay2 fast path when possible

Each source module is imported only when used: the docker SDK must not load on the lint path.
"""
from __future__ import annotations

from ..image import Image, ImageError

__all__ = ["load_image", "describe_ref"]

PREFIXES = ("docker-archive:", "oci:", "registry:", "docker:")


def describe_ref(ref: str) -> tuple:
    """('docker-archive'|'oci'|'registry'|'engine', the rest of the reference)."""
    for prefix in PREFIXES:
        if ref.startswith(prefix):
            kind = prefix[:-1]
            return ("engine" if kind == "docker" else kind), ref[len(prefix):]
    return "engine", ref


def load_image(ref: str, platform: str = None, hash_content: bool = True, fast: bool = True) -> Image:
    """Read an image's config and every layer's entries from wherever ``ref`` points."""
    kind, rest = describe_ref(ref)
    if not rest:
        raise ImageError(f"{ref!r}: empty image reference after the prefix")
    if kind == "docker-archive":
        from .archive import load_docker_archive
        image = load_docker_archive(rest, hash_content=hash_content, platform=platform)
    elif kind == "oci":
        from .archive import load_oci_layout
        image = load_oci_layout(rest, platform=platform, hash_content=hash_content)
    elif kind == "registry":
        from .registry import load_registry
        image = load_registry(rest, platform=platform, hash_content=hash_content)
    else:
        from .engine import load_engine
        image = load_engine(rest, hash_content=hash_content, fast=fast)
    image.ref = ref
    return image
