"""Image rules that a ``match: paths:`` cannot express (scope: image).

Each check gets an :class:`imagelint.imageview.ImageView` and yields
``Problem.in_layer(view, layer, nbytes=..., paths=..., message=..., fix=...)``: the
layer that stores the bytes (mapped to its Dockerfile line when one is known), what
it costs, and a message that states the bytes in human units.

IL6009 toolchain-in-image, IL6010 secret-in-layer, IL6011 large-file, IL6012 many-layers,
IL6013 large-layer, IL6016 deleted-in-later-layer, IL6017 rewritten-by-metadata-change,
IL6018 duplicate-content.
"""
from __future__ import annotations

from typing import Dict, Iterator, List

from ..gate import format_bytes
from ..rules import Problem, RuleError
from .security import secret_kind

from ..globs import glob_regex

__all__ = ["glob_paths", "toolchain_in_image", "secret_in_layer", "large_file", "many_layers", "large_layer",
           "deleted_in_later_layer", "rewritten_by_metadata_change", "duplicate_content",
           "describe_paths", "Toolchain", "TOOLCHAINS"]


def describe_paths(paths: List[str], limit: int = 2) -> str:
    """``/a``, ``/a and /b``, ``/a, /b and /c`` or ``/a, /b and 12 more`` (paths are normalised)."""
    shown = ["/" + p for p in paths[:limit]]
    rest = len(paths) - len(shown)
    if rest > 0:
        return ", ".join(shown) + f" and {rest} more"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def glob_paths(final, pattern: str) -> List[str]:
    """Like ``FinalTree.glob`` (``*`` within a name, ``**`` across directories) but
    expanded one directory level at a time through the children index, so
    ``usr/lib/llvm-*/bin/clang*`` looks at a few directories instead of every path
    under ``usr/lib``; a ``**`` scans only the subtrees it must, with a cheap suffix
    test before the regular expression."""
    parts = pattern.strip("/").split("/")
    level = [""]
    for k, part in enumerate(parts):
        if "**" in part:
            rx = glob_regex("/".join(parts[k:]))
            tail = parts[-1]
            # the literal end of the last name ("*.log" → ".log") rules most paths out cheaply
            suffix = tail[max(tail.rfind(c) for c in "*?]") + 1:]
            out = []
            for base in level:
                prefix = base + "/" if base else ""
                candidates = (p for p, _, _ in final.walk(base)) if base else iter(final)
                for p in candidates:
                    if suffix and not p.endswith(suffix):
                        continue
                    if p != base and rx.match(p, len(prefix)):
                        out.append(p)
            return sorted(set(out))
        nxt = []
        if any(c in part for c in "*?["):
            rx = glob_regex(part)
            for base in level:
                start = len(base) + 1 if base else 0
                nxt.extend(c for c in final.children(base) if rx.match(c, start))
        else:
            for base in level:
                child = f"{base}/{part}" if base else part
                if child in final:
                    nxt.append(child)
        level = nxt
        if not level:
            return []
    return sorted(level)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _opt_size(ctx, key: str, default: int) -> int:
    """A size option: plain bytes or a size like ``100MB`` / ``1GiB``."""
    from ..gate import GateError, parse_size
    try:
        return parse_size(ctx.options.get(key, default), f"{ctx.rule.id} option {key}")
    except GateError as e:
        raise RuleError(str(e)) from None


def _opt_int(ctx, key: str, default: int) -> int:
    value = ctx.options.get(key, default)
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise RuleError(f"{ctx.rule.id} option {key}: expected a whole number, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------
# IL6009 toolchain-in-image
# --------------------------------------------------------------------------------------

class Toolchain:
    """A compiler or build tool: ``markers`` prove it is installed (a compiler binary),
    ``paths`` are all of its files (directories count with everything under them)."""

    def __init__(self, key: str, title: str, markers: List[str], paths: List[str], fix: str):
        self.key = key
        self.title = title
        self.markers = markers
        self.paths = paths
        self.fix = fix


_MULTI_STAGE = ("build in a `FROM ... AS build` stage and `COPY --from=build` only the artifacts into the "
                "final stage")
TOOLCHAINS = [
    Toolchain("gcc", "the GCC compiler toolchain",
              ["usr/bin/gcc*", "usr/bin/g++*", "usr/bin/*-linux-gnu*-gcc*", "usr/lib/gcc/*/*/cc1*",
               "usr/libexec/gcc/*/*/cc1*"],
              ["usr/bin/gcc*", "usr/bin/g++*", "usr/bin/cc", "usr/bin/c++", "usr/bin/cpp*",
               "usr/bin/*-linux-gnu*-gcc*", "usr/bin/*-linux-gnu*-g++*", "usr/bin/*-linux-gnu*-cpp*",
               "usr/lib/gcc", "usr/libexec/gcc"],
              _MULTI_STAGE + "; when a native extension must be built in place, install gcc and remove it in "
              "the same RUN (`apt-get purge -y --auto-remove gcc` / `apk add --virtual .build-deps ... && "
              "apk del .build-deps`)"),
    Toolchain("clang", "the Clang/LLVM compiler toolchain",
              ["usr/bin/clang*", "usr/lib/llvm-*/bin/clang*"],
              ["usr/bin/clang*", "usr/lib/llvm-*"],
              _MULTI_STAGE),
    Toolchain("go", "the Go toolchain",
              ["usr/local/go/bin/go", "usr/lib/go-*/bin/go"],
              ["usr/local/go", "usr/lib/go-*"],
              _MULTI_STAGE + " (a static Go binary runs on `scratch` or distroless; build with "
              "`CGO_ENABLED=0`)"),
    Toolchain("rust", "the Rust toolchain",
              ["usr/local/cargo/bin/rustc", "usr/local/cargo/bin/cargo", "usr/local/rustup/toolchains/*/bin/rustc",
               "root/.cargo/bin/rustc", "root/.rustup/toolchains/*/bin/rustc"],
              ["usr/local/cargo/bin", "usr/local/rustup/toolchains", "root/.cargo/bin", "root/.rustup/toolchains"],
              _MULTI_STAGE + " (`cargo build --release` in a rust stage, then copy target/release/APP)"),
    Toolchain("jdk", "a JDK (compiler and development files)",
              ["**/bin/javac"],
              [],  # filled per JDK home found: see _jdk_paths
              "run on a JRE instead of a JDK (`eclipse-temurin:21-jre`, `amazoncorretto` headless/JRE, or a "
              "`jlink --strip-debug --no-man-pages --no-header-files --compress=2` runtime built in a JDK stage)"),
    Toolchain("make", "make/CMake build tools",
              ["usr/bin/make", "usr/bin/gmake", "usr/bin/cmake", "usr/local/bin/cmake"],
              ["usr/bin/make", "usr/bin/gmake", "usr/bin/cmake", "usr/bin/ctest", "usr/bin/cpack",
               "usr/share/cmake*", "usr/local/bin/cmake", "usr/local/share/cmake*"],
              _MULTI_STAGE),
]

# The parts of a JDK home that a JRE does not have (a lower bound of what switching saves).
_JDK_DEV_PARTS = ["jmods", "include", "lib/src.zip", "lib/ct.sym", "demo", "sample", "man",
                  "bin/javac", "bin/jar", "bin/jarsigner", "bin/javadoc", "bin/javap", "bin/jdeps",
                  "bin/jlink", "bin/jmod", "bin/jdb", "bin/jshell", "bin/jpackage", "bin/serialver",
                  "bin/jdeprscan", "bin/jhsdb", "bin/jimage", "bin/jconsole", "bin/jstatd", "bin/rmic"]


def _usage(final, patterns: List[str], seen: set, out: Dict[str, tuple]) -> None:
    """Add every non-directory under the matches of ``patterns`` to ``out`` (path → (entry, layer))."""
    for pattern in patterns:
        for match in glob_paths(final, pattern):
            for p, entry, layer in final.walk(match):
                if entry is None or entry.kind == "dir" or p in seen:
                    continue
                seen.add(p)
                out[p] = (entry, layer)


def _layer_bytes(files: Dict[str, tuple]) -> Dict[int, int]:
    per: Dict[int, int] = {}
    for entry, layer in files.values():
        per[layer] = per.get(layer, 0) + entry.size
    return per


def _main_layer(per_layer: Dict[int, int]) -> int:
    """The layer holding the most bytes (ties: the latest, the one most likely to be the install)."""
    return max(per_layer, key=lambda k: (per_layer[k], k))


def toolchain_in_image(view, ctx) -> Iterator[Problem]:
    """IL6009: compilers, build tools and header trees in the final filesystem."""
    final = view.final
    min_bytes = _opt_size(ctx, "min-bytes", 1_000_000)
    headers_min = _opt_size(ctx, "headers-min-bytes", 5_000_000)
    seen: set = set()
    found = []  # (toolchain title, files, fix)
    for tc in TOOLCHAINS:
        if tc.key == "jdk":
            # /usr/bin/javac is usually an alternatives symlink into one of these homes
            homes = sorted({p[:-len("/bin/javac")] for p in glob_paths(final, "**/bin/javac")
                            if final.get(p) is not None and final.get(p).kind in ("file", "hardlink")}
                           - {"", "usr", "usr/local"})
            for home in homes:
                files: Dict[str, tuple] = {}
                _usage(final, [f"{home}/{part}" for part in _JDK_DEV_PARTS], seen, files)
                if files:
                    found.append((f"a JDK at /{home} (its development-only parts)", files, tc.fix))
            continue
        if not any(glob_paths(final, m) for m in tc.markers):
            continue
        files = {}
        _usage(final, tc.paths, seen, files)
        if files:
            found.append((tc.title, files, tc.fix))
    headers: Dict[str, tuple] = {}
    _usage(final, ["usr/include", "usr/local/include"], seen, headers)
    total_headers = sum(e.size for e, _ in headers.values())
    for title, files, fix in found:
        nbytes = sum(e.size for e, _ in files.values())
        if nbytes < min_bytes:
            continue
        per_layer = _layer_bytes(files)
        layer = _main_layer(per_layer)
        paths = sorted(files)
        names = [p for p in paths if p.startswith(("usr/bin/", "usr/local/bin/")) or "/bin/" in p] or paths
        where = (f", mostly from {view.layer_label(layer)}" if len(per_layer) > 1
                 else f", from {view.layer_label(layer)}")
        yield Problem.in_layer(
            view, layer, nbytes, paths,
            message=f"{format_bytes(nbytes)} of {title} in the final image ({_plural(len(paths), 'file')}, "
                    f"e.g. {', '.join('/' + p for p in names[:3])}){where}",
            fix=fix)
    if headers and total_headers >= headers_min:
        per_layer = _layer_bytes(headers)
        layer = _main_layer(per_layer)
        paths = sorted(headers)
        yield Problem.in_layer(
            view, layer, total_headers, paths,
            message=f"{format_bytes(total_headers)} of C/C++ development headers in the final image "
                    f"({_plural(len(paths), 'file')} under /usr/include or /usr/local/include), mostly from "
                    f"{view.layer_label(layer)}",
            fix="install `*-dev`/`*-devel` packages only in a build stage and ship the runtime libraries "
                "(e.g. libpq5 instead of libpq-dev); or purge them in the same RUN that builds")


# --------------------------------------------------------------------------------------
# IL6010 secret-in-layer
# --------------------------------------------------------------------------------------

_SECRET_PATTERNS = ["**/id_rsa", "**/id_dsa", "**/id_ecdsa", "**/id_ed25519", "**/*.pem", "**/*.key",
                    "**/*.p12", "**/*.pfx", "**/.env", "**/.env.*", "**/.aws/credentials",
                    "**/.docker/config.json", "**/.npmrc", "**/.pypirc", "**/.netrc", "**/.git-credentials",
                    "**/.kube/config"]
_SECRET_FIX = ("never COPY secrets into a layer (a later `rm` does not remove them from the earlier layer): "
               "add the file to .dockerignore, use `RUN --mount=type=secret,id=NAME` for build-time "
               "secrets and ECS task-definition `secrets` (Secrets Manager / SSM) at run time; rotate "
               "the secret, since anyone with pull access can read it")


_SECRET_NAMES = {".npmrc", ".pypirc", ".netrc", "_netrc", ".git-credentials", "credentials", "config.json",
                 "config"}


def _secret_candidate(path: str) -> bool:
    """A cheap name test before the regular expressions (images hold 10^5-10^6 paths)."""
    name = path[path.rfind("/") + 1:].lower()
    return (name in _SECRET_NAMES or name.endswith((".pem", ".key", ".p12", ".pfx"))
            or name.startswith((".env", "id_")))


def secret_in_layer(view, ctx) -> Iterator[Problem]:
    """IL6010: secret files in ANY layer, also when a later layer deletes them."""
    patterns = [glob_regex(p) for p in _SECRET_PATTERNS]
    excludes = [glob_regex(str(p).strip("/")) for p in (ctx.options.get("exclude-paths") or [])]
    final = view.final
    by_layer: Dict[int, list] = {}
    for layer in view.image.layers:
        for entry in layer.entries:
            path = entry.path
            if entry.kind not in ("file", "hardlink") or not _secret_candidate(path):
                continue
            if not any(rx.match(path) for rx in patterns) or any(rx.match(path) for rx in excludes):
                continue
            kind = secret_kind(path)
            if kind is None:
                continue  # e.g. a .pem named as public material, an .env template
            kept = final.get(path) is not None  # deleted later: still in this layer's blob
            by_layer.setdefault(layer.index, []).append((path, entry.size, kind, kept))
    for layer in sorted(by_layer):
        items = sorted(by_layer[layer])
        nbytes = sum(size for _, size, _, _ in items)
        deleted = [p for p, _, _, kept in items if not kept]
        kinds = sorted({k for _, _, k, _ in items})
        first = items[0]
        what = f"{first[2]} at /{first[0]} ({format_bytes(nbytes)})" if len(items) == 1 else \
            f"{len(items)} secret files ({'; '.join(kinds)}; {format_bytes(nbytes)}): " \
            f"{describe_paths([i[0] for i in items])}"
        origin = view.layer_label(layer)
        if deleted and len(deleted) == len(items):
            tail = (f"added by {origin} is still stored in that layer even though a later layer deletes "
                    "it: anyone who can pull the image can read it")
        elif deleted:
            tail = (f"added by {origin} are stored in that layer ({describe_paths(deleted)} even though a "
                    "later layer deletes it)")
        else:
            tail = f"{'is' if len(items) == 1 else 'are'} in the final image, added by {origin}"
        yield Problem.in_layer(
            view, layer, nbytes, [i[0] for i in items],
            message=f"{what} {tail}",
            fix=_SECRET_FIX)


# --------------------------------------------------------------------------------------
# IL6011 large-file, IL6012 many-layers, IL6013 large-layer
# --------------------------------------------------------------------------------------

def large_file(view, ctx) -> Iterator[Problem]:
    """IL6011: single files in the final filesystem above ``min-bytes``."""
    min_bytes = _opt_size(ctx, "min-bytes", 100_000_000)
    for path, entry, layer in view.final.items():
        if entry is None or entry.kind == "dir" or entry.size < min_bytes:
            continue
        yield Problem.in_layer(
            view, layer, entry.size, [path],
            message=f"/{path} is a single {format_bytes(entry.size)} file (added in {view.layer_label(layer)}); "
                    f"every task start pulls and extracts it")


def many_layers(view, ctx) -> Iterator[Problem]:
    """IL6012: more layers than ``max-image-layers``; reported once, on the first layer beyond."""
    max_layers = _opt_int(ctx, "max-image-layers", 50)
    layers = view.image.layers
    if len(layers) <= max_layers:
        return
    extra = layers[max_layers:]
    nbytes = sum(layer.size for layer in extra)
    yield Problem.in_layer(
        view, max_layers, nbytes, [],
        message=f"the image has {len(layers)} layers (limit {max_layers}); the {len(extra)} beyond the limit, "
                f"from {view.layer_label(max_layers)} on, hold {format_bytes(nbytes)} - each is a separate "
                f"download (3 at a time) and extraction (one after another) on every task start")


def large_layer(view, ctx) -> Iterator[Problem]:
    """IL6013: layers above ``max-layer-bytes`` (compressed size when known)."""
    limit = _opt_size(ctx, "max-layer-bytes", 500_000_000)
    for layer in view.image.layers:
        if layer.compressed_size is not None:
            size, what = layer.compressed_size, "compressed"
        else:
            size, what = layer.size, "uncompressed; compressed size unknown"
        if size <= limit:
            continue
        yield Problem.in_layer(
            view, layer.index, size, [],
            message=f"{view.layer_label(layer.index)} is {format_bytes(size)} ({what}), above "
                    f"{format_bytes(limit)}: one connection downloads it and its extraction cannot start "
                    f"before it is complete, so parallel pulls of other layers do not help")


# --------------------------------------------------------------------------------------
# IL6016 deleted-in-later-layer, IL6017 rewritten-by-metadata-change, IL6018 duplicate-content
# --------------------------------------------------------------------------------------

def deleted_in_later_layer(view, ctx) -> Iterator[Problem]:
    """IL6016: bytes a later layer deletes but the adding layer still ships, per (adding, deleting) layer."""
    min_bytes = _opt_size(ctx, "min-bytes", 1_000_000)
    groups: Dict[tuple, list] = {}  # (added in, deleted by) → [bytes, paths, opaque]
    for item in view.waste.items:
        if item.category != "deleted":
            continue
        for added, nbytes in item.layer_bytes.items():
            g = groups.setdefault((added, item.changed_by), [0, [], False])
            g[0] += nbytes
            g[1].append(item.path)
            g[2] = g[2] or item.opaque
    for (added, deleted_by), (nbytes, paths, opaque) in sorted(groups.items()):
        if nbytes < min_bytes:
            continue
        paths = sorted(set(paths))
        how = "hides (opaque directory)" if opaque else "deletes"
        yield Problem.in_layer(
            view, added, nbytes, paths,
            message=f"{format_bytes(nbytes)} added in {view.layer_label(added)} still ships: "
                    f"{view.layer_label(deleted_by)} {how} {describe_paths(paths)}, which frees nothing",
            fix="delete the files in the same RUN that creates them (`... && rm -rf ...`), use a BuildKit "
                "cache or secret mount for downloads, or build in a separate stage and `COPY --from` only "
                "what is needed")


def rewritten_by_metadata_change(view, ctx) -> Iterator[Problem]:
    """IL6017: files copied again into a later layer only to change mode/owner/mtime."""
    min_bytes = _opt_size(ctx, "min-bytes", 1_000_000)
    groups: Dict[int, list] = {}  # re-writing layer → [bytes, paths, changed attributes, original layers]
    for item in view.waste.items:
        if item.category != "unchanged-rewrite":
            continue
        g = groups.setdefault(item.changed_by, [0, [], set(), set()])
        g[0] += item.bytes
        g[1].append(item.path)
        g[2].update(item.changed or ())
        g[3].update(item.added_by)
    for layer, (nbytes, paths, changed, originals) in sorted(groups.items()):
        if nbytes < min_bytes:
            continue
        paths = sorted(paths)
        if {"uid", "gid"} & changed and "mode" in changed:
            why = "change owner and permissions (chown/chmod)"
        elif {"uid", "gid"} & changed:
            why = "change the owner (chown)"
        elif "mode" in changed:
            why = "change permissions (chmod)"
        else:
            why = "update timestamps (touch) or rewrite them unchanged"
        origin = ", ".join(f"layer {i}" for i in sorted(originals))
        yield Problem.in_layer(
            view, layer, nbytes, paths,
            message=f"{_plural(len(paths), 'unchanged file')} ({format_bytes(nbytes)}: {describe_paths(paths)}) "
                    f"{'is' if len(paths) == 1 else 'are'} copied again into {view.layer_label(layer)} only to "
                    f"{why}; the copy in {origin} still ships too",
            fix="set owner and mode where the files are created: `COPY --chown=app:app --chmod=755 ...`, or "
                "chown/chmod in the same RUN that writes them; never `RUN chown -R` over an earlier layer")


def duplicate_content(view, ctx) -> Iterator[Problem]:
    """IL6018: identical content at several final paths (groups above ``min-bytes`` of extra copies)."""
    min_bytes = _opt_size(ctx, "min-bytes", 1_000_000)
    for group in view.waste.duplicates:
        if group.bytes < min_bytes:
            continue
        layer = group.layers[1]  # the first extra copy (the earliest copy is the one to keep)
        yield Problem.in_layer(
            view, layer, group.bytes, list(group.paths),
            message=f"{format_bytes(group.bytes)} in {len(group.paths) - 1} extra "
                    f"cop{'y' if len(group.paths) == 2 else 'ies'} of the same {format_bytes(group.size)} "
                    f"file: {describe_paths(group.paths, 3)} (extra copy in {view.layer_label(layer)})",
            fix="keep one copy and symlink (or hard-link in the same layer) the others, or fix the COPY/"
                "install step that places the file twice")
