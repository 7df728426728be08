"""Layer analysis of a loaded image: dive-compatible metrics, imagelint's own waste
accounting, totals and largest files/directories, and the merged (final) filesystem.

Everything here works on :class:`imagelint.image.Image` (layers of :class:`Entry`) and
never touches file contents: sizes and content digests were recorded by the source.

Public API
----------
``dive_metrics(image)``   exactly what dive 0.13 reports (efficiency, wasted bytes, ...)
``waste_report(image)``   what a user can actually save, by cause and responsible layer(s)
``image_stats(image)``    totals, per-layer stats, largest files and directories
``final_tree(image)``     the merged filesystem (path → Entry, layer) after whiteouts

Paths are imagelint's normalised form (no leading ``/``) everywhere except in
:class:`DiveInefficiency`, which keeps dive's own ``/a/b`` form so it can be compared
with dive's output verbatim.
"""
from __future__ import annotations

import heapq
import math
import re
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .globs import glob_regex
from .image import Entry, Image

__all__ = [
    "dive_metrics", "DiveMetrics", "DiveInefficiency",
    "waste_report", "WasteReport", "WasteItem", "DuplicateGroup",
    "image_stats", "ImageStats", "LayerStats", "SizedPath",
    "final_tree", "FinalTree", "GlobUsage",
]

WHITEOUT_PREFIX = ".wh."
# dive refuses to create a tree node whose name starts with this (the opaque marker
# `.wh..wh..opq` and aufs `.wh..wh..plnk` style metadata): dive/filetree/file_tree.go.
DIVE_DOUBLE_WHITEOUT = ".wh..wh.."


def _digest_hex(digest) -> Optional[str]:
    if digest is None:
        return None
    return digest.hex() if isinstance(digest, (bytes, bytearray)) else str(digest)


def _parent(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i > 0 else ""


# --------------------------------------------------------------------------------------
# A path tree with a children index: subtree removal / walking without scanning every
# path. Root is '' (never stored in ``values``).
# --------------------------------------------------------------------------------------

class _PathTree:
    __slots__ = ("values", "children")

    def __init__(self) -> None:
        self.values: dict = {}
        self.children: Dict[str, set] = {}

    def set(self, path: str, value, placeholder) -> None:
        """Add or replace ``path``'s payload (children kept); create missing ancestors
        with ``placeholder``."""
        values = self.values
        if path in values:
            values[path] = value
            return
        values[path] = value
        self._link(path, placeholder)

    def _link(self, path: str, placeholder) -> None:
        values, children = self.values, self.children
        child = path
        while True:
            parent = _parent(child)
            kids = children.get(parent)
            if kids is None:
                children[parent] = {child}
            else:
                kids.add(child)
            if not parent or parent in values:
                return
            values[parent] = placeholder
            child = parent

    def walk(self, path: str) -> Iterator[str]:
        """``path`` (if present) and every path below it."""
        if path not in self.values:
            return
        stack = [path]
        children = self.children
        while stack:
            p = stack.pop()
            yield p
            kids = children.get(p)
            if kids:
                stack.extend(kids)

    def remove(self, path: str, keep_root: bool = False) -> List[Tuple[str, object]]:
        """Remove ``path`` and its subtree (only the subtree with ``keep_root``);
        return the removed (path, value) pairs."""
        values, children = self.values, self.children
        if path not in values:
            return []
        removed = []
        if keep_root:
            stack = list(children.pop(path, ()))
        else:
            stack = [path]
            kids = children.get(_parent(path))
            if kids is not None:
                kids.discard(path)
        while stack:
            p = stack.pop()
            removed.append((p, values.pop(p)))
            kids = children.pop(p, None)
            if kids:
                stack.extend(kids)
        return removed


# --------------------------------------------------------------------------------------
# 1. dive's metrics, reproduced exactly
# --------------------------------------------------------------------------------------

class DiveInefficiency:
    """One path dive lists as inefficient (it occurs as a leaf in ≥ 2 layers)."""

    __slots__ = ("path", "count", "cumulative_size", "min_size", "layers", "_order")

    def __init__(self, path: str, count: int, cumulative_size: int, min_size: int, layers: List[int]):
        self.path = path  # dive's form: '/etc/nginx/nginx.conf'
        self.count = count
        self.cumulative_size = cumulative_size  # what dive shows as "wasted space"
        self.min_size = min_size
        self.layers = layers  # layer index of each occurrence, in visiting order

    def to_dict(self) -> dict:
        return {"path": self.path, "count": self.count, "cumulative_size": self.cumulative_size,
                "min_size": self.min_size, "layers": list(self.layers)}

    def __repr__(self) -> str:
        return f"DiveInefficiency({self.path!r}, count={self.count}, cumulative={self.cumulative_size})"


class DiveMetrics:
    """The numbers ``dive --ci`` prints and ``dive --json`` exports."""

    def __init__(self, efficiency: float, wasted_bytes: int, user_wasted_percent: float, size_bytes: int,
                 user_size_bytes: int, inefficient: List[DiveInefficiency], layer_sizes: List[int]):
        self.efficiency = efficiency
        self.wasted_bytes = wasted_bytes
        # A ratio (dive's name says "percent"); NaN/inf when the user size is 0, as in Go.
        self.user_wasted_percent = user_wasted_percent
        self.size_bytes = size_bytes
        self.user_size_bytes = user_size_bytes
        self.inefficient = inefficient  # dive's order: ascending cumulative size
        self.layer_sizes = layer_sizes

    def to_dict(self) -> dict:
        pct = self.user_wasted_percent
        return {
            "efficiency": self.efficiency,
            "wasted_bytes": self.wasted_bytes,
            "user_wasted_percent": pct if math.isfinite(pct) else None,
            "size_bytes": self.size_bytes,
            "user_size_bytes": self.user_size_bytes,
            "layer_sizes": list(self.layer_sizes),
            # largest first for readers; dive's internal list is ascending
            "inefficient_files": [i.to_dict() for i in reversed(self.inefficient)],
        }


# Node payloads are ints to keep big trees lean: a non-directory's size (>= 0), or
# ``~size`` (< 0) for a directory. dive's empty intermediate FileInfo{} is 0: size 0 and
# *not* a directory.
_DIVE_INTERMEDIATE = 0
_MISSING = object()


def _dive_layer_nodes(entries) -> Tuple[dict, set]:
    """One layer's tree as dive builds it: node key → payload, plus the set of keys that
    have children. Node keys are tar names (whiteouts keep their ``.wh.``)."""
    # Plain entries in one C-speed pass (a repeated name: the last payload wins, as in
    # dive's AddPath). Whiteouts, opaque markers and `.wh.`-named paths are rare and go
    # through the ordered loop below; their keys cannot collide with plain ones except
    # where payload None only ensures existence, so doing them second is equivalent.
    nodes = {e.path: (~e.size if e.kind == "dir" else e.size) for e in entries
             if e.kind not in _SPECIAL_KINDS and WHITEOUT_PREFIX not in e.path and e.path}
    special = [e for e in entries if e.kind in _SPECIAL_KINDS or WHITEOUT_PREFIX in e.path]
    for e in special:
        path = e.path
        if not path:  # '.' / '/' : dive skips it
            continue
        kind = e.kind
        if kind == "whiteout":
            i = path.rfind("/")
            key = path[:i + 1] + WHITEOUT_PREFIX + path[i + 1:]
            payload = e.size
        elif kind == "opaque":
            # `dir/.wh..wh..opq`: dive drops the marker but AddPath has already created
            # `dir` (as an empty intermediate) if the layer had no entry for it.
            key, payload = path, None
        else:
            key, payload = path, (~e.size if kind == "dir" else e.size)
        if DIVE_DOUBLE_WHITEOUT in key:
            parts = key.split("/")
            cut = next((j for j, part in enumerate(parts) if part.startswith(DIVE_DOUBLE_WHITEOUT)), None)
            if cut is not None:
                if cut == 0:
                    continue
                key, payload = "/".join(parts[:cut]), None
        if payload is not None:
            nodes[key] = payload
        elif key not in nodes:
            nodes[key] = 0
    # missing ancestors become empty intermediates (size 0, not a directory)
    parents = {k[:k.rfind("/")] for k in nodes if "/" in k}
    missing = parents - nodes.keys()
    while missing:
        nodes.update(dict.fromkeys(missing, 0))
        above = {k[:k.rfind("/")] for k in missing if "/" in k}
        parents |= above
        missing = above - nodes.keys()
    return nodes, parents


_SPECIAL_KINDS = frozenset(("whiteout", "opaque"))


def _is_whiteout_key(key: str) -> bool:
    return key[key.rfind("/") + 1:].startswith(WHITEOUT_PREFIX)


def _whiteout_target(key: str) -> str:
    """Lookup key (GetNode form, no empty components) of a whiteout node's target."""
    i = key.rfind("/")
    target = key[:i + 1] + key[i + 1 + len(WHITEOUT_PREFIX):]
    return "/".join(part for part in target.split("/") if part)


def _dive_path(key: str) -> str:
    """dive's FileNode.Path(): '/' + names, ``.wh.`` trimmed from the last one."""
    i = key.rfind("/")
    name = key[i + 1:]
    if name.startswith(WHITEOUT_PREFIX):
        name = name[len(WHITEOUT_PREFIX):]
    return ("/" + key[:i + 1] + name).replace("//", "/")


def _dive_whiteout_keys(nodes: dict) -> List[str]:
    return [k for k in nodes if WHITEOUT_PREFIX in k and _is_whiteout_key(k)]


def _dive_counterpart(key: str) -> str:
    """The other node key with the same dive path (``x`` ↔ ``.wh.x``)."""
    i = key.rfind("/")
    name = key[i + 1:]
    if name.startswith(WHITEOUT_PREFIX):
        return key[:i + 1] + name[len(WHITEOUT_PREFIX):]
    return key[:i + 1] + WHITEOUT_PREFIX + name


def _dive_stack(tree: _PathTree, nodes: dict, whiteouts: List[str], include_whiteout_nodes: bool) -> None:
    """FileTree.Stack: remove every whiteout's target, then add/replace every node's
    payload (intermediates included, which resets IsDir to false)."""
    skip_under = []
    for k in whiteouts:
        target = _whiteout_target(k)
        tree.remove(target)
        # Stack visits children in sorted order: a same-layer subtree whose name sorts
        # before `.wh.name` is grafted first and then removed by the whiteout.
        name = target[target.rfind("/") + 1:]
        if target in nodes and name < WHITEOUT_PREFIX + name:
            skip_under.append(target)
    if whiteouts and not include_whiteout_nodes:
        nodes = nodes.copy()
        for k in whiteouts:
            del nodes[k]
    if skip_under:
        skip, under = set(skip_under), tuple(t + "/" for t in skip_under)
        nodes = {k: v for k, v in nodes.items() if k not in skip and not k.startswith(under)}
    values, children = tree.values, tree.children
    new = nodes.keys() - values.keys()
    values.update(nodes)
    # every ancestor of a layer node is itself a node of the layer, so new keys only need
    # linking to their parent
    for k in new:
        i = k.rfind("/")
        parent = k[:i] if i > 0 else ""
        kids = children.get(parent)
        if kids is None:
            children[parent] = {k}
        else:
            kids.add(k)


def _payload_size(payload: int) -> int:
    return ~payload if payload < 0 else payload


def _subtree_size(values: dict, children: dict, path: str) -> int:
    total = 0
    stack = [path]
    while stack:
        p = stack.pop()
        total += _payload_size(values[p])
        kids = children.get(p)
        if kids:
            stack.extend(kids)
    return total


def _dfs_key(key: str) -> list:
    # dive visits children in Go byte order; for UTF-8 that is code-point order
    return key.split("/")


def dive_metrics(image: Image, dive_empty_layers=()) -> DiveMetrics:
    """Compute exactly what dive 0.13 computes for ``image`` (dive/filetree/efficiency.go,
    dive/image/analysis.go, dive/image/docker/image_archive.go).

    dive's model and the quirks reproduced on purpose:

    * Each layer is its own tree. Every tar entry sits at its cleaned path with its tar
      header size (directories and links 0). Missing intermediate directories get an
      empty record (size 0, *not* marked as a directory). Two entries with the same name
      in one tar: the last payload wins. The opaque marker ``dir/.wh..wh..opq`` is dropped
      (any name starting ``.wh..wh..`` is), but ``dir`` is still created if the layer had
      no entry for it - so opaque directories do *not* hide lower content for dive.
    * Only LEAF nodes of each layer's tree are visited (layers in order, children in
      byte-sorted order). A directory that has anything under it in a layer is not a leaf
      there; an empty directory is a leaf with size 0 (and can itself be "inefficient"
      with 0 bytes when it appears empty in two layers).
    * The path key strips ``.wh.`` from the last name, so a whiteout of ``x`` and ``x``
      itself are the same path.
    * Occurrence size: a normal leaf's size; a whiteout's size is looked up in the tree
      of layers 0..i-1 stacked: the *sum of the subtree* if that node is a directory, but
      **0 if it is a file** (or anything else). "Is a directory" comes from the payload of
      the last layer that touched the node, so a directory that a later layer only
      passed through as an implicit parent (no tar entry of its own) counts as a file
      and its deletion counts 0 - this is how dive's own ``efficiency_test.go`` gets 0.75.
    * For a whiteout in layer 0 dive stacks nothing (it copies layer 0's own tree). When
      the deleted path does not exist below, dive's tree walk returns an error: the rest
      of *that layer's* walk is silently skipped and the path is registered with a
      minimum of -1, which then counts in the score's numerator.
    * Per path: cumulative size, minimum occurrence size, count. Score = Σ min / Σ
      cumulative over all paths (1.0 when the denominator is 0).
    * "Inefficient" = count ≥ 2. ``wasted_bytes`` = Σ cumulative size of those paths: all
      copies count, the first/smallest included (dive bug #684: the score keeps one copy,
      the wasted bytes do not). Consequences: deleting one file counts its size once
      (file + 0-byte whiteout); chmod/chown/touch of a file counts it twice; deleting a
      whole directory counts nothing (the directory was not a leaf below, its children
      occur once), it only adds the subtree size to both sides of the score; the same
      content under another path is never waste.
    * ``user_size_bytes`` = Σ layer sizes except layer index 0 (only the first layer is
      "base"); ``user_wasted_percent`` = wasted / user size, a ratio that can exceed 1.0
      (it includes layer-0 waste and every copy); 0/0 gives NaN like Go.
    * The inefficient list is sorted ascending by cumulative size. Go's ``sort.Sort`` is
      an insertion sort (stable) for ≤ 12 items; beyond that Go's order of equal sizes is
      unspecified - we keep the visiting order for ties.

    * ``docker save`` (classic format) stores a layer identical to an earlier one as a
      symlink to that layer.tar, and dive reads such a layer as EMPTY (size 0, no files).
      Our sources read it properly; pass those layer indices as ``dive_empty_layers`` to
      reproduce dive exactly (verified with docker 20.10 + dive 0.13.1).

    Not reproducible from our model: ``..`` in tar names (we resolve it, dive keeps it).
    """
    layers = list(image.layers)
    if dive_empty_layers:
        from .image import Layer
        layers = [Layer(layer.index) if i in dive_empty_layers else layer for i, layer in enumerate(layers)]
    layer_sizes = [layer.size for layer in layers]
    size_bytes = sum(layer_sizes)
    user_size_bytes = sum(layer_sizes[1:])

    # A whiteout node can only come from a whiteout entry (sources turn `.wh.` names into
    # those) or a `.wh.`-named path component; the stacked tree (layers 0..i-1) is only
    # built as far as the last layer holding one needs it.
    last_whiteout = -1
    for i in range(len(layers) - 1, 0, -1):  # from the top: app layers are small
        if any(e.kind == "whiteout" or WHITEOUT_PREFIX in e.path for e in layers[i].entries):
            last_whiteout = i
            break
    stacked = _PathTree()

    # Per dive path: cumulative size; the layer of the first occurrence; for paths seen
    # twice or more [min, count, [(layer, node key), ...]]; paths dive registered with
    # a minimum of -1 and no occurrence (failed whiteout lookups).
    cumulative: Dict[str, int] = {}
    first_layer: Dict[str, int] = {}
    multi: Dict[str, list] = {}
    negative: set = set()

    for index, layer in enumerate(layers):
        nodes, parents = _dive_layer_nodes(layer.entries)
        whiteouts = _dive_whiteout_keys(nodes)
        sizes: dict = {}
        missing = []
        for key in whiteouts:
            if key in parents:
                continue
            target = _whiteout_target(key)
            if index == 0:
                # dive's StackTreeRange(trees, 0, -1) is a copy of layer 0 itself
                payload = nodes.get(target) if target else None
                if payload is not None and payload < 0:
                    size = sum(_payload_size(v) for k, v in nodes.items()
                               if k == target or k.startswith(target + "/"))
                else:
                    size = _MISSING if payload is None else 0
            else:
                payload = stacked.values.get(target) if target else None
                if payload is None:
                    size = _MISSING
                elif payload < 0:
                    size = _subtree_size(stacked.values, stacked.children, target)
                else:
                    size = 0  # a file (or a dir dive only saw as an implicit parent)
            sizes[key] = size
            if size is _MISSING:
                missing.append(key)

        if missing:
            # the failed lookup aborts the rest of this layer's walk (DFS order)
            leaves = sorted(nodes.keys() - parents, key=_dfs_key)
            first = min(missing, key=_dfs_key)
            ordered = leaves[:leaves.index(first) + 1]
        else:
            ordered = None
            leaves = nodes.keys() - parents

        def occur(key, path, size):
            before = cumulative.get(path)
            if before is None:
                cumulative[path] = size
                first_layer[path] = index
                return
            cumulative[path] = before + size
            data = multi.get(path)
            if data is None:
                first = first_layer[path]
                # a same-layer pair is `x` and `.wh.x`: the other one is the counterpart
                first_key = _dive_counterpart(key) if first == index else path
                multi[path] = [min(before, size), 2, [(first, first_key), (index, key)]]
            else:
                if size < data[0]:
                    data[0] = size
                data[1] += 1
                data[2].append((index, key))

        if ordered is not None:
            for key in ordered:
                if key in sizes:
                    size = sizes[key]
                    path = _dive_path(key)[1:]
                    if size is _MISSING:
                        if path not in cumulative:
                            negative.add(path)
                        continue
                else:
                    size = nodes[key]
                    size = ~size if size < 0 else size
                    path = key
                occur(key, path, size)
        else:
            # Plain leaves in bulk (dict/set operations run in C); their dive path is the
            # key itself. Repeats and whiteouts go through occur().
            plain = leaves - sizes.keys() if sizes else leaves
            leaf_sizes = {k: nodes[k] for k in plain}
            for k, v in leaf_sizes.items():
                if v < 0:  # an empty directory: its size is ~payload
                    leaf_sizes[k] = ~v
            repeated = plain & cumulative.keys()
            if repeated:
                for k in repeated:
                    del leaf_sizes[k]
            cumulative.update(leaf_sizes)
            first_layer.update(dict.fromkeys(leaf_sizes, index))
            for k in repeated:
                size = nodes[k]
                occur(k, k, ~size if size < 0 else size)
            for key, size in sizes.items():
                occur(key, _dive_path(key)[1:], size)
        negative.difference_update(cumulative)

        if index < last_whiteout:
            _dive_stack(stacked, nodes, whiteouts, include_whiteout_nodes=(index == 0))
        del nodes, parents, leaves, ordered

    discovered = sum(cumulative.values())
    minimum = discovered - len(negative)
    for path, (smallest, _, _) in multi.items():
        minimum -= cumulative[path] - smallest
    efficiency = 1.0 if discovered == 0 else minimum / discovered

    items = []
    for path, (smallest, count, occurrences) in multi.items():
        if any(a[0] == b[0] for a, b in zip(occurrences, occurrences[1:])):
            occurrences.sort(key=lambda o: (o[0], _dfs_key(o[1])))
        item = DiveInefficiency("/" + path, count, cumulative[path], smallest, [o[0] for o in occurrences])
        item._order = occurrences[1]  # when dive appended the path to its list
        items.append(item)
    # ascending cumulative size; ties in the order dive met each path's 2nd occurrence
    items.sort(key=lambda item: (item.cumulative_size, item._order[0]))
    i = 0
    while i < len(items):
        j = i + 1
        while j < len(items) and (items[j].cumulative_size, items[j]._order[0]) == \
                (items[i].cumulative_size, items[i]._order[0]):
            j += 1
        if j - i > 1:
            items[i:j] = sorted(items[i:j], key=lambda item: _dfs_key(item._order[1]))
        i = j

    wasted = sum(item.cumulative_size for item in items)
    if user_size_bytes:
        percent = wasted / user_size_bytes
    else:
        percent = math.nan if wasted == 0 else math.inf
    return DiveMetrics(efficiency, wasted, percent, size_bytes, user_size_bytes, items, layer_sizes)


# --------------------------------------------------------------------------------------
# The merged (final) filesystem
# --------------------------------------------------------------------------------------

class GlobUsage:
    """What a glob covers in the final filesystem: bytes, files, and which layers added them."""

    __slots__ = ("pattern", "paths", "bytes", "files", "by_layer")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.paths: List[str] = []  # the matched paths themselves (not their contents)
        self.bytes = 0  # matched entries plus everything under matched directories
        self.files = 0
        self.by_layer: Dict[int, int] = {}  # layer index → bytes

    def to_dict(self) -> dict:
        return {"pattern": self.pattern, "paths": list(self.paths), "bytes": self.bytes, "files": self.files,
                "by_layer": {str(k): v for k, v in sorted(self.by_layer.items())}}


def _glob_regex(pattern: str) -> "re.Pattern":
    """``**`` crosses ``/``, ``*`` and ``?`` do not, ``[...]`` is a character class."""
    return glob_regex(pattern)


class FinalTree:
    """The image's filesystem after applying every layer in order (whiteouts remove a
    path and everything under it, an opaque directory hides all lower content under it,
    a later entry replaces an earlier one). Paths are normalised (no leading ``/``).

    ``values[path]`` is ``(entry, layer_index)``; directories that exist only as parents
    of other entries have ``entry is None``. Links are never followed.
    """

    __slots__ = ("_tree",)

    def __init__(self, tree: _PathTree):
        self._tree = tree

    # mapping-like access
    def __contains__(self, path: str) -> bool:
        return path.strip("/") in self._tree.values

    def __len__(self) -> int:
        return len(self._tree.values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tree.values)

    def items(self) -> Iterator[Tuple[str, Optional[Entry], int]]:
        """(path, entry or None for implicit dirs, index of the layer that added it)."""
        for path, (entry, layer) in self._tree.values.items():
            yield path, entry, layer

    def get(self, path: str) -> Optional[Entry]:
        value = self._tree.values.get(path.strip("/"))
        return value[0] if value else None

    def layer_of(self, path: str) -> Optional[int]:
        value = self._tree.values.get(path.strip("/"))
        return value[1] if value else None

    def is_dir(self, path: str) -> bool:
        value = self._tree.values.get(path.strip("/"))
        return bool(value) and (value[0] is None or value[0].kind == "dir")

    def children(self, path: str = "") -> List[str]:
        return sorted(self._tree.children.get(path.strip("/"), ()))

    def walk(self, path: str = "") -> Iterator[Tuple[str, Optional[Entry], int]]:
        """``path`` and everything under it (the whole filesystem for '')."""
        path = path.strip("/")
        values = self._tree.values
        if not path:
            yield from self.items()
            return
        for p in self._tree.walk(path):
            entry, layer = values[p]
            yield p, entry, layer

    def glob(self, pattern: str) -> List[str]:
        """Paths matching a shell-style pattern (``*`` stays within one directory,
        ``**`` spans directories), e.g. ``var/lib/apt/lists/*``. Sorted."""
        pattern = pattern.strip("/")
        parts = pattern.split("/")
        # Only the subtree under the pattern's literal leading directories is scanned.
        literal = []
        for part in parts[:-1]:
            if any(c in part for c in "*?["):
                break
            literal.append(part)
        base = "/".join(literal)
        if not any(c in pattern for c in "*?["):
            return [pattern] if pattern in self._tree.values else []
        regex = _glob_regex(pattern)
        candidates = self._tree.walk(base) if base else iter(self._tree.values)
        return sorted(p for p in candidates if regex.match(p))

    def usage(self, pattern: str) -> GlobUsage:
        """Total bytes/files of the matches and everything under matched directories,
        with the bytes each layer contributed."""
        result = GlobUsage(pattern)
        result.paths = self.glob(pattern)
        values = self._tree.values
        seen = set()
        for match in result.paths:
            for p in self._tree.walk(match):
                if p in seen:
                    continue
                seen.add(p)
                entry, layer = values[p]
                if entry is None or entry.kind == "dir":
                    continue
                result.files += 1
                if entry.size:
                    result.bytes += entry.size
                    result.by_layer[layer] = result.by_layer.get(layer, 0) + entry.size
        return result

    @property
    def size(self) -> int:
        return sum(e.size for e, _ in self._tree.values.values() if e is not None)

    def file_count(self) -> int:
        """Non-directory entries (files, links, devices...)."""
        return sum(1 for e, _ in self._tree.values.values() if e is not None and e.kind != "dir")

    def dir_sizes(self) -> Dict[str, int]:
        """Recursive content bytes of every directory ('' is the root)."""
        values = self._tree.values
        totals: Dict[str, int] = {"": 0}
        for path, (entry, _) in values.items():
            if entry is None or entry.kind == "dir":
                totals.setdefault(path, 0)
        for path, (entry, _) in values.items():
            if entry is not None and entry.kind != "dir" and entry.size:
                parent = _parent(path)
                totals[parent] = totals.get(parent, 0) + entry.size
        # bottom-up: deepest directories first
        for path in sorted(totals, key=lambda p: p.count("/") if p else -1, reverse=True):
            if path:
                parent = _parent(path)
                totals[parent] = totals.get(parent, 0) + totals[path]
        return totals


# Callback for hidden lower content: (cause, path, hidden [(path, (entry, layer))], layer
# index doing the hiding, the new entry or None).
_HideCallback = Callable[[str, str, list, int, Optional[Entry]], None]


def _merge(image: Image, on_hide: Optional[_HideCallback] = None) -> FinalTree:
    tree = _PathTree()
    values = tree.values
    for index, layer in enumerate(image.layers):
        entries = layer.entries
        # Whiteouts and opaque markers only act on lower layers: apply them first.
        for e in entries:
            kind = e.kind
            if kind == "whiteout":
                removed = tree.remove(e.path)
                if removed and on_hide:
                    on_hide("deleted", e.path, removed, index, None)
            elif kind == "opaque":
                removed = tree.remove(e.path, keep_root=True)
                if removed and on_hide:
                    on_hide("opaque", e.path, removed, index, None)
        adds = {e.path: e for e in entries if e.kind not in _SPECIAL_KINDS and e.path}
        if len(adds) != sum(1 for e in entries if e.kind not in _SPECIAL_KINDS and e.path):
            # a name repeated inside one tar: replay in order so the earlier copy is seen
            for e in entries:
                if e.kind not in _SPECIAL_KINDS and e.path:
                    _merge_replace(tree, e.path, values[e.path], e, index, on_hide) \
                        if e.path in values else _merge_new(tree, [e.path], {e.path: e}, index, on_hide)
            continue
        existing = adds.keys() & values.keys()
        revived = []
        # parents first: a directory replaced by a file takes its lower subtree with it
        for path in sorted(existing, key=lambda p: p.count("/")) if len(existing) > 1 else existing:
            old = values.get(path)
            if old is None:  # removed just now with a replaced directory: add it afresh
                revived.append(path)
            else:
                _merge_replace(tree, path, old, adds[path], index, on_hide)
        new = adds.keys() - existing if existing else adds.keys()
        _merge_new(tree, new, adds, index, on_hide)
        if revived:
            _merge_new(tree, revived, adds, index, on_hide)
    return FinalTree(tree)


def _merge_replace(tree: _PathTree, path: str, old: tuple, e: Entry, index: int,
                   on_hide: Optional[_HideCallback]) -> None:
    old_entry = old[0]
    if e.kind != "dir":
        if tree.children.get(path):  # a directory replaced by a non-directory
            removed = tree.remove(path, keep_root=True)
            if on_hide:
                on_hide("replaced-dir", path, removed, index, e)
        if old_entry is not None and old_entry.kind != "dir" and on_hide:
            on_hide("replaced", path, [(path, old)], index, e)
    elif old_entry is not None and old_entry.kind != "dir" and on_hide:
        on_hide("replaced", path, [(path, old)], index, e)
    tree.values[path] = (e, index)


def _merge_new(tree: _PathTree, new, adds: dict, index: int, on_hide: Optional[_HideCallback]) -> None:
    values, children = tree.values, tree.children
    values.update({p: (adds[p], index) for p in new})
    for path in new:
        i = path.rfind("/")
        parent = path[:i] if i > 0 else ""
        kids = children.get(parent)
        if kids is not None:
            kids.add(path)
            continue
        children[parent] = {path}
        if not parent:
            continue
        pv = values.get(parent)
        if pv is None:  # parent directories without entries of their own
            values[parent] = (None, index)
            tree._link(parent, (None, index))
        elif pv[0] is not None and pv[0].kind != "dir":
            # a file that now has children: overlay would have replaced it by a directory
            if on_hide:
                on_hide("replaced", parent, [(parent, pv)], index, None)
            values[parent] = (None, index)


def final_tree(image: Image) -> FinalTree:
    """The merged filesystem of ``image`` (see :class:`FinalTree`)."""
    return _merge(image)


# --------------------------------------------------------------------------------------
# 2. imagelint's own waste accounting
# --------------------------------------------------------------------------------------

CATEGORIES = ("deleted", "unchanged-rewrite", "overwritten", "duplicate")
CATEGORY_TITLES = {
    "deleted": "files deleted in a later layer (still shipped in the layer that added them)",
    "unchanged-rewrite": "files re-written with identical content (chmod/chown/touch copies the whole file)",
    "overwritten": "files overwritten in a later layer (the lower copy is dead weight)",
    "duplicate": "identical files at different paths in the final filesystem",
}


class WasteItem:
    """One piece of recoverable waste: bytes, the path, and the responsible layers."""

    __slots__ = ("category", "path", "bytes", "files", "added_by", "changed_by", "changed", "opaque",
                 "layer_bytes")

    def __init__(self, category: str, path: str, nbytes: int, files: int, added_by: List[int],
                 changed_by: Optional[int], changed: Optional[List[str]] = None, opaque: bool = False,
                 layer_bytes: Optional[Dict[int, int]] = None):
        self.category = category
        self.path = path
        self.bytes = nbytes
        self.files = files
        self.added_by = added_by  # layer(s) that added the hidden copy
        self.changed_by = changed_by  # layer that deleted / re-wrote / overwrote it
        self.changed = changed  # unchanged-rewrite: attributes that differ (mode, uid, gid)
        self.opaque = opaque  # deleted via an opaque directory (rm -rf d && mkdir d)
        # bytes per adding layer (a deleted directory may hold files from several layers)
        self.layer_bytes = layer_bytes if layer_bytes is not None else {added_by[0]: nbytes}

    @property
    def layers(self) -> List[int]:
        out = list(self.added_by)
        if self.changed_by is not None and self.changed_by not in out:
            out.append(self.changed_by)
        return out

    def to_dict(self) -> dict:
        d = {"category": self.category, "path": self.path, "bytes": self.bytes, "files": self.files,
             "added_by": list(self.added_by), "changed_by": self.changed_by}
        if self.changed is not None:
            d["changed"] = list(self.changed)
        if self.opaque:
            d["opaque"] = True
        return d

    def __repr__(self) -> str:
        return f"WasteItem({self.category}, {self.path!r}, {self.bytes}, {self.added_by}->{self.changed_by})"


class DuplicateGroup:
    """Identical content (same digest) at several paths of the final filesystem."""

    __slots__ = ("digest", "size", "paths", "layers")

    def __init__(self, digest: str, size: int, paths: List[str], layers: List[int]):
        self.digest = digest
        self.size = size
        self.paths = paths
        self.layers = layers  # layer of each path

    @property
    def bytes(self) -> int:
        return (len(self.paths) - 1) * self.size

    def to_dict(self) -> dict:
        return {"digest": self.digest, "size": self.size, "copies": len(self.paths), "bytes": self.bytes,
                "paths": list(self.paths), "layers": list(self.layers)}


class WasteReport:
    """imagelint's accounting of bytes a user can actually save. Every hidden copy of a
    file is counted exactly once, under what hid it (deleted / identical re-write /
    overwrite); duplicates are counted only among visible final files. So
    ``hidden_bytes`` = image size - final filesystem size, exactly."""

    def __init__(self, items: List[WasteItem], duplicates: List[DuplicateGroup], hashed: bool,
                 notes: List[str], final: Optional["FinalTree"] = None):
        self.final = final  # the merged filesystem built on the way (reuse it: image_stats(final=...))
        self.items = items  # deleted / unchanged-rewrite / overwritten, largest first
        self.duplicates = duplicates  # largest waste first
        self.hashed = hashed  # content digests were available
        self.notes = notes

    def by_category(self) -> Dict[str, int]:
        totals = {c: 0 for c in CATEGORIES}
        for item in self.items:
            totals[item.category] += item.bytes
        totals["duplicate"] = sum(g.bytes for g in self.duplicates)
        return totals

    @property
    def hidden_bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def recoverable_bytes(self) -> int:
        return self.hidden_bytes + sum(g.bytes for g in self.duplicates)

    def by_layer(self) -> Dict[int, int]:
        """Bytes per layer that *stores* the waste (the layer that added the hidden copy;
        for duplicates, each extra copy's layer)."""
        out: Dict[int, int] = {}
        for item in self.items:
            for layer, n in item.layer_bytes.items():
                out[layer] = out.get(layer, 0) + n
        for group in self.duplicates:
            for layer in group.layers[1:]:
                out[layer] = out.get(layer, 0) + group.size
        return dict(sorted(out.items()))

    def to_dict(self, limit: Optional[int] = None) -> dict:
        items = self.items if limit is None else self.items[:limit]
        dups = self.duplicates if limit is None else self.duplicates[:limit]
        return {
            "recoverable_bytes": self.recoverable_bytes,
            "hidden_bytes": self.hidden_bytes,
            "by_category": self.by_category(),
            "content_hashed": self.hashed,
            "notes": list(self.notes),
            "items": [i.to_dict() for i in items],
            "items_total": len(self.items),
            "duplicates": [g.to_dict() for g in dups],
            "duplicates_total": len(self.duplicates),
        }


def waste_report(image: Image) -> WasteReport:
    """What the layers carry that the final filesystem does not use, plus duplicates.

    (a) ``deleted``: content hidden by a whiteout (a file or a whole directory: the
        subtree's bytes) or by an opaque directory (``rm -rf d && mkdir d``); bytes =
        what the lower layers still carry, ``added_by`` = layers that added it,
        ``changed_by`` = the deleting layer.
    (b) ``unchanged-rewrite``: a file re-written with the same digest (chmod, chown,
        touch); bytes = the lower copy's size; ``changed`` lists differing attributes.
    (c) ``overwritten``: same path re-written with different content (or a different
        kind); the lower copy is dead weight.
    (d) ``duplicate``: identical content (digest) at several final paths, excluding hard
        links and empty files; bytes = (copies - 1) × size.

    Without digests (hashing off) (b) is folded into (c) and (d) is skipped; a note says so.
    """
    items: List[WasteItem] = []
    unhashed_seen = [False]

    def hidden_files(removed):
        nbytes = files = 0
        per_layer: Dict[int, int] = {}
        for _, (entry, layer) in removed:
            if entry is None or entry.kind == "dir":
                continue
            files += 1
            if entry.size:
                nbytes += entry.size
                per_layer[layer] = per_layer.get(layer, 0) + entry.size
        return nbytes, files, per_layer

    def on_hide(cause, path, removed, layer_index, new_entry):
        if cause in ("deleted", "opaque", "replaced-dir"):
            nbytes, files, per_layer = hidden_files(removed)
            if not nbytes:
                return
            category = "overwritten" if cause == "replaced-dir" else "deleted"
            items.append(WasteItem(category, path, nbytes, files, sorted(per_layer), layer_index,
                                   opaque=(cause == "opaque"), layer_bytes=per_layer))
            return
        (_, (old, old_layer)), = removed
        if not old.size:
            return
        category = "overwritten"
        changed = None
        if new_entry is not None and new_entry.kind == "file" and old.kind == "file":
            if old.digest is not None and new_entry.digest is not None:
                if old.digest == new_entry.digest and old.size == new_entry.size:
                    category = "unchanged-rewrite"
                    changed = [name for name in ("mode", "uid", "gid")
                               if getattr(old, name) != getattr(new_entry, name)]
            else:
                unhashed_seen[0] = True
        items.append(WasteItem(category, path, old.size, 1, [old_layer], layer_index, changed))

    final = _merge(image, on_hide)
    items.sort(key=lambda i: (-i.bytes, i.path))

    # (d) duplicates among visible regular files
    by_digest: Dict[object, list] = {}
    missing_digest = False
    for path, entry, layer in final.items():
        if entry is None or entry.kind != "file" or not entry.size:
            continue
        if entry.digest is None:
            missing_digest = True
            continue
        key = (entry.digest, entry.size)
        group = by_digest.get(key)
        if group is None:
            by_digest[key] = [(path, layer)]
        else:
            group.append((path, layer))
    duplicates = []
    for (digest, size), members in by_digest.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: (m[1], m[0]))  # earliest layer first: the copy to keep
        duplicates.append(DuplicateGroup(_digest_hex(digest), size, [m[0] for m in members],
                                         [m[1] for m in members]))
    duplicates.sort(key=lambda g: (-g.bytes, g.paths[0]))

    hashed = not (missing_digest or unhashed_seen[0])
    notes = []
    if not hashed:
        notes.append("content hashing was off: identical re-writes are counted as overwrites and "
                     "duplicate files at different paths are not detected")
    return WasteReport(items, duplicates, hashed, notes, final)


# --------------------------------------------------------------------------------------
# 3. totals, per-layer stats, largest files and directories
# --------------------------------------------------------------------------------------

class SizedPath:
    __slots__ = ("path", "size", "layer")

    def __init__(self, path: str, size: int, layer: Optional[int]):
        self.path = path
        self.size = size
        self.layer = layer  # layer that added it (files); None for directories

    def to_dict(self) -> dict:
        d = {"path": self.path, "size": self.size}
        if self.layer is not None:
            d["layer"] = self.layer
        return d

    def __repr__(self) -> str:
        return f"SizedPath({self.path!r}, {self.size})"


class LayerStats:
    __slots__ = ("index", "size", "compressed_size", "compressed_size_exact", "files", "entries",
                 "created_by", "diff_id", "digest")

    def __init__(self, layer):
        self.index = layer.index
        self.size = layer.size
        self.compressed_size = layer.compressed_size
        self.compressed_size_exact = bool(layer.compressed_size_exact) if layer.compressed_size is not None else False
        self.files = layer.file_count
        self.entries = len(layer.entries)
        self.created_by = layer.created_by
        self.diff_id = layer.diff_id
        self.digest = layer.digest

    def to_dict(self) -> dict:
        return {"index": self.index, "size": self.size, "compressed_size": self.compressed_size,
                "compressed_size_exact": self.compressed_size_exact, "files": self.files,
                "entries": self.entries, "created_by": self.created_by, "diff_id": self.diff_id,
                "digest": self.digest}


class ImageStats:
    def __init__(self, size: int, final_size: int, transfer_size: Optional[int], transfer_exact: bool,
                 layer_count: int, file_count: int, layers: List[LayerStats], largest_files: List[SizedPath],
                 largest_dirs: List[SizedPath]):
        self.size = size  # Σ layer sizes (uncompressed content, as dive counts)
        self.final_size = final_size  # bytes visible in the final filesystem
        self.transfer_size = transfer_size  # Σ compressed layer sizes; None when unknown
        self.transfer_exact = transfer_exact  # False: at least one compressed size is an estimate
        self.layer_count = layer_count
        self.file_count = file_count  # non-directories in the final filesystem
        self.layers = layers
        self.largest_files = largest_files
        self.largest_dirs = largest_dirs

    def to_dict(self) -> dict:
        return {
            "size": self.size, "final_size": self.final_size, "transfer_size": self.transfer_size,
            "transfer_exact": self.transfer_exact, "layer_count": self.layer_count,
            "file_count": self.file_count,
            "layers": [layer.to_dict() for layer in self.layers],
            "largest_files": [f.to_dict() for f in self.largest_files],
            "largest_dirs": [d.to_dict() for d in self.largest_dirs],
        }


def image_stats(image: Image, top: int = 10, final: Optional[FinalTree] = None) -> ImageStats:
    """Totals, per-layer numbers and the ``top`` largest files and directories of the
    final filesystem (after whiteouts). Pass ``final`` to reuse a merged tree."""
    if final is None:
        final = final_tree(image)
    layers = [LayerStats(layer) for layer in image.layers]
    transfer = image.compressed_size
    transfer_exact = transfer is not None and all(bool(layer.compressed_size_exact) for layer in image.layers)

    final_size = 0
    file_count = 0
    files = []
    for path, entry, layer in final.items():
        if entry is None or entry.kind == "dir":
            continue
        file_count += 1
        if entry.size:
            final_size += entry.size
            files.append((entry.size, path, layer))
    largest_files = [SizedPath(p, s, layer) for s, p, layer in
                     heapq.nsmallest(top, files, key=lambda f: (-f[0], f[1]))]
    dirs = final.dir_sizes()
    dirs.pop("", None)
    largest_dirs = [SizedPath(p, s, None) for p, s in
                    heapq.nsmallest(top, dirs.items(), key=lambda d: (-d[1], d[0])) if s]
    return ImageStats(image.size, final_size, transfer, transfer_exact, len(image.layers), file_count,
                      layers, largest_files, largest_dirs)
