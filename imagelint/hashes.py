"""Hash constructors that avoid loading OpenSSL where CPython has its own implementation.

``import hashlib`` maps OpenSSL's libcrypto (~3.6 MB of resident memory, a tenth of what
`imagelint inspect` needs in all); the built-in ``_blake2`` and ``_sha256`` / ``_sha2``
modules do not. The content hash only finds identical files, so any strong 160-bit hash
does; BLAKE2b from the built-in module runs at ~0.9 GB/s here.
"""
from __future__ import annotations

__all__ = ["content_hash", "sha256"]

try:
    from _blake2 import blake2b as _blake2b
except ImportError:  # a Python built without it
    from hashlib import blake2b as _blake2b

try:
    from _sha2 import sha256 as _sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python <= 3.11
    except ImportError:
        from hashlib import sha256 as _sha256


def content_hash(data: bytes = b""):
    """A new content hash (Entry.digest): BLAKE2b with a 20-byte digest."""
    h = _blake2b(digest_size=20)
    if data:
        h.update(data)
    return h


def sha256(data: bytes = b""):
    """A new SHA-256 (image ids and digests)."""
    return _sha256(data)
