"""Platforms (os/arch[/variant]) of images: parsing, normalising and matching.

Kept apart from the archive reader so the engine's fast path can name an image's
platform without importing tarfile and hashlib.
"""
from __future__ import annotations

from imagelint.image import ImageError

__all__ = ["host_platform"]


def host_platform() -> str:
    """The platform images default to here: linux/<this machine's architecture>."""
    import platform

    machine = platform.machine().lower()
    os_, arch, variant = _parse_platform("linux/" + machine)
    return _platform_text((os_, arch, variant))


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "x64": "amd64", "aarch64": "arm64", "i386": "386",
                 "i686": "386", "armhf": "arm", "armel": "arm", "armv7l": "arm", "armv6l": "arm"}


_OSES = {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix", "plan9",
         "android", "ios", "js", "wasip1", "wasi", "unknown"}


def _parse_platform(text: str) -> tuple:
    """'linux/arm64', 'arm64', 'linux/arm/v7' -> (os, arch, variant or None)."""
    parts = [p for p in text.strip().lower().split("/") if p]
    if parts and parts[0] not in _OSES:
        parts = ["linux"] + parts  # 'arm64', 'arm64/v8': Linux is implied
    if len(parts) < 2 or len(parts) > 3:
        raise ImageError(f"invalid platform {text!r}: use OS/ARCH[/VARIANT], e.g. linux/arm64")
    os_, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else None
    if arch in ("armv7l", "armhf") and variant is None:
        variant = "v7"
    if arch == "armv6l" and variant is None:
        variant = "v6"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "arm64" and variant == "v8":
        variant = None  # arm64's only variant; descriptors often omit it
    return os_, arch, variant


def _platform_of(obj: dict):
    """(os, arch, variant) of a descriptor's ``platform`` or of an image config; None when absent."""
    if not isinstance(obj, dict) or not obj.get("os") or not obj.get("architecture"):
        return None
    text = f"{obj['os']}/{obj['architecture']}" + (f"/{obj['variant']}" if obj.get("variant") else "")
    try:
        return _parse_platform(text)
    except ImageError:
        return None


def _platform_text(p) -> str:
    return "/".join(x for x in p if x) if p else "unknown"


def _platform_matches(want: tuple, have: tuple) -> bool:
    return want[0] == have[0] and want[1] == have[1] and (want[2] is None or want[2] == have[2])
