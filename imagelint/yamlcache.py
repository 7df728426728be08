"""Load YAML files through a JSON cache keyed by path, mtime and size.

PyYAML costs ~20 ms to import; rule packs and config files rarely change, so
the lint path reads their JSON copy and imports yaml only on a cache miss.
"""
from __future__ import annotations

import binascii
import json
import os

__all__ = ["load_yaml_cached", "YamlFileError", "cache_dir"]


class YamlFileError(ValueError):
    """A YAML file cannot be read or parsed; the message names the file and the place."""


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "imagelint")


def _parse(paths: list) -> list:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                out.append(yaml.load(f, Loader=loader))
        except OSError as e:
            raise YamlFileError(f"{p}: cannot read: {e.strerror}") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise YamlFileError(f"{p}: invalid YAML{where}: {what}") from None
    return out


def load_yaml_cached(paths: list) -> list:
    """Parsed documents of ``paths``, in order (one cache entry for the whole list)."""
    if not paths:
        return []
    try:
        key = []
        for p in paths:
            st = os.stat(p)
            key.append([os.path.abspath(p), st.st_mtime_ns, st.st_size])
    except OSError as e:
        raise YamlFileError(f"{e.filename}: cannot read: {e.strerror}") from None
    # the name only spreads entries over files (the stored key is compared on read), so a
    # CRC does; hashlib would cost ~2 ms of OpenSSL loading on every run
    names = json.dumps([k[0] for k in key]).encode("utf-8", "surrogateescape")
    digest = f"{binascii.crc32(names):08x}{len(key):x}"
    cache_file = os.path.join(cache_dir(), f"yaml-{digest}.json")
    try:
        with open(cache_file, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("key") == key:
            return cached["docs"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    docs = _parse(paths)
    tmp = f"{cache_file}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": key, "docs": docs}, f)
        os.replace(tmp, cache_file)
    except (OSError, TypeError, ValueError):
        # the cache is an optimisation; a read-only home or a YAML date still works
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return docs
