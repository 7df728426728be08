"""imagelint.analysis: dive-exact metrics, own waste accounting, stats, final tree."""
import hashlib
import math

from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

from imagelint.analysis import dive_metrics, final_tree, image_stats, waste_report
from imagelint.image import Entry, Image, Layer


def make_image(*layers):
    image = Image("test", "test")
    for index, entries in enumerate(layers):
        layer = Layer(index)
        layer.entries = list(entries)
        image.layers.append(layer)
    return image


def F(path, size, content=None, mode=0o644, uid=0, gid=0):
    """A regular file; ``content`` names the bytes so equal content gives equal digests."""
    digest = hashlib.sha256((content if content is not None else f"{path}:{size}").encode()).digest()
    return Entry(path, "file", size, mode, uid, gid, digest=digest)


def D(path, mode=0o755):
    return Entry(path, "dir", 0, mode)


def W(path):
    return Entry(path, "whiteout")


def O(path):
    return Entry(path, "opaque")


# --------------------------------------------------------------------------------------
# A literal port of dive's Go code (dive/filetree/{file_tree,file_node,efficiency}.go,
# dive/image/analysis.go): one node object per tree node, Stack/StackTreeRange copying
# trees, child-first sorted visits, errors aborting a walk. Slow but obviously faithful;
# used as the reference for property tests of the fast implementation.
# --------------------------------------------------------------------------------------

class _GoNode:
    def __init__(self, tree, parent, name, info):
        self.tree, self.parent, self.name = tree, parent, name
        self.info = dict(info)
        self.children = {}

    def path(self):
        names, node = [], self
        while node.parent is not None:
            name = node.name
            if node is self and name.startswith(".wh."):
                name = name[4:]
            names.insert(0, name)
            node = node.parent
        return ("/" + "/".join(names)).replace("//", "/")

    def visit_child_first(self, visitor, evaluator):
        for name in sorted(self.children, key=lambda n: n.encode("utf-8", "surrogateescape")):
            err = self.children[name].visit_child_first(visitor, evaluator)
            if err:
                return err
        if self is self.tree.root:
            return None
        if evaluator is None or evaluator(self):
            return visitor(self)
        return None

    def copy(self, tree, parent):
        node = _GoNode(tree, parent, self.name, self.info)
        for name, child in self.children.items():
            node.children[name] = child.copy(tree, node)
        return node


EMPTY = {"size": 0, "is_dir": False}


class _GoTree:
    def __init__(self):
        self.root = _GoNode(self, None, "", EMPTY)

    def add_path(self, path, info):
        names = [n for n in path.strip("/").split("/")]
        node = self.root
        for idx, name in enumerate(names):
            if name == "":
                continue
            if name in node.children:
                node = node.children[name]
            else:
                if name.startswith(".wh..wh.."):
                    return
                child = _GoNode(self, node, name, EMPTY)
                node.children[name] = child
                node = child
            if idx == len(names) - 1:
                node.info = dict(info)

    def get_node(self, path):
        node = self.root
        for name in path.strip("/").split("/"):
            if name == "":
                continue
            if name not in node.children:
                return None
            node = node.children[name]
        return node

    def remove_path(self, path):
        node = self.get_node(path)
        if node is None or node is self.root:
            return
        del node.parent.children[node.name]

    def stack(self, upper):
        def graft(node):
            if node.name.startswith(".wh."):
                self.remove_path(node.path())
            else:
                self.add_path(node.path(), node.info)
        upper.root.visit_child_first(graft, None)

    def copy(self):
        tree = _GoTree()
        tree.root = self.root.copy(tree, None)
        return tree


def _go_layer_tree(layer):
    tree = _GoTree()
    for e in layer.entries:
        if not e.path:
            continue
        if e.kind == "whiteout":
            i = e.path.rfind("/")
            name = e.path[:i + 1] + ".wh." + e.path[i + 1:]
        elif e.kind == "opaque":
            name = e.path + "/.wh..wh..opq"
        else:
            name = e.path
        tree.add_path(name, {"size": e.size, "is_dir": e.kind == "dir"})
    return tree


def go_dive(image):
    trees = [_go_layer_tree(layer) for layer in image.layers]
    data = {}
    inefficient = []
    current = [0]

    def visitor(node):
        path = node.path()
        d = data.setdefault(path, {"cum": 0, "min": -1, "nodes": 0})
        if node.name.startswith(".wh."):
            stacked = trees[0].copy()
            for idx in range(0, current[0]):
                stacked.stack(trees[idx])
            previous = stacked.get_node(node.path())
            if previous is None:
                return "path does not exist"
            size = 0
            if previous.info["is_dir"]:
                acc = [0]

                def sizer(n):
                    acc[0] += n.info["size"]
                previous.visit_child_first(sizer, None)
                size = acc[0]
        else:
            size = node.info["size"]
        d["cum"] += size
        if d["min"] < 0 or size < d["min"]:
            d["min"] = size
        d["nodes"] += 1
        if d["nodes"] == 2:
            inefficient.append((path, d))
        return None

    for idx, tree in enumerate(trees):
        current[0] = idx
        tree.root.visit_child_first(visitor, lambda n: not n.children)
    minimum = sum(d["min"] for d in data.values())
    total = sum(d["cum"] for d in data.values())
    score = 1.0 if total == 0 else minimum / total
    inefficient.sort(key=lambda item: item[1]["cum"])  # stable, like Go for ≤ 12 items
    wasted = sum(d["cum"] for _, d in inefficient)
    return score, wasted, [(p, d["nodes"], d["cum"]) for p, d in inefficient]


# --------------------------------------------------------------------------------------
# dive's documented numbers
# --------------------------------------------------------------------------------------

def test_dive_efficiency_test_go():
    """dive/filetree/efficiency_test.go: the dir /etc/nginx exists only as an implicit
    parent, so its whiteout counts 0 and the score is exactly 0.75."""
    image = make_image(
        [F("etc/nginx/nginx.conf", 2000), F("etc/nginx/public", 3000)],
        [F("etc/nginx/nginx.conf", 5000), F("etc/athing", 10000)],
        [W("etc/nginx")],
    )
    m = dive_metrics(image)
    assert m.efficiency == 0.75
    assert [(i.path, i.cumulative_size, i.layers) for i in m.inefficient] == [("/etc/nginx/nginx.conf", 7000, [0, 1])]
    assert m.wasted_bytes == 7000
    assert m.size_bytes == 20000 and m.user_size_bytes == 15000


def test_dive_scratch_image():
    m = dive_metrics(make_image([F("nothing", 0)], [], []))
    assert m.efficiency == 1.0 and m.inefficient == [] and m.wasted_bytes == 0
    assert math.isnan(m.user_wasted_percent)  # 0/0 as in Go
    assert m.to_dict()["user_wasted_percent"] is None


def test_whiteout_of_explicit_dir_sums_its_subtree():
    image = make_image(
        [D("etc"), D("etc/nginx"), F("etc/nginx/nginx.conf", 2000), F("etc/nginx/public", 3000)],
        [D("etc"), D("etc/nginx"), F("etc/nginx/nginx.conf", 5000), F("etc/athing", 10000)],
        [D("etc"), W("etc/nginx")],
    )
    m = dive_metrics(image)
    # paths: nginx.conf 2000+5000, public 3000, athing 10000, /etc/nginx 8000 (deleted dir)
    assert m.efficiency == (2000 + 3000 + 10000 + 8000) / (7000 + 3000 + 10000 + 8000)
    assert m.wasted_bytes == 7000  # deleting the whole directory is not "waste" for dive
    assert m.efficiency == go_dive(image)[0]


def _dive_test_image():
    """dive's .data/test-docker-image.tar rebuilt from .data/Dockerfile.test-image with
    the layer sizes of dive's export snapshot. The busybox layer's *composition* is
    invented (only its total, 1,154,361 B, is known); everything dive measures depends
    only on that total, so the numbers must match exactly."""
    text = "x" * 6405  # README.md
    scripts = [F("root/.data/test.sh", 1187, "a"), F("root/.data/run.sh", 1000, "b")]
    busybox = [D("bin"), F("bin/busybox", 1154361 - 340 - 21, "busybox", 0o755),
               Entry("bin/sh", "hardlink", 0, 0o755, linkname="bin/busybox"),
               Entry("bin/ls", "hardlink", 0, 0o755, linkname="bin/busybox"),
               D("etc"), F("etc/passwd", 340, "passwd"), F("etc/group", 21, "group"),
               D("root", 0o700), D("tmp", 0o1777), D("home"), D("var"), D("var/spool")]
    return make_image(
        busybox,                                                                       # FROM busybox
        [F("somefile.txt", 6405, text)],                                              # ADD README.md
        [D("root"), D("root/example"), D("root/example/really"), D("root/example/really/nested")],
        [D("root"), D("root/example"), F("root/example/somefile1.txt", 6405, text)],  # cp
        [D("root"), D("root/example"), F("root/example/somefile1.txt", 6405, text, 0o444)],  # chmod 444
        [D("root"), D("root/example"), F("root/example/somefile2.txt", 6405, text)],
        [D("root"), D("root/example"), F("root/example/somefile3.txt", 6405, text)],
        [D("root"), D("root/example"), W("root/example/somefile3.txt"), F("root/saved.txt", 6405, text)],  # mv
        [D("root"), F("root/.saved.txt", 6405, text)],
        [D("root"), W("root/example")],                                               # rm -rf /root/example/
        [D("root"), D("root/.data")] + scripts,                                       # ADD .scripts/
        [D("tmp"), F("tmp/saved.again1.txt", 6405, text)],
        [D("root"), D("root/.data"), F("root/.data/saved.again2.txt", 6405, text)],
        [D("root"), F("root/saved.txt", 6405, text, 0o755)],                          # chmod +x
    )


def test_dive_test_image_numbers():
    image = _dive_test_image()
    m = dive_metrics(image)
    assert m.layer_sizes == [1154361, 6405, 0, 6405, 6405, 6405, 6405, 6405, 6405, 0, 2187, 6405, 6405, 6405]
    assert m.efficiency == 0.9844212134184309
    assert m.size_bytes == 1220598
    assert m.user_size_bytes == 66237
    assert m.wasted_bytes == 32025
    assert m.user_wasted_percent == 0.4834911001404049
    # export_test.snap: the three inefficient files and their cumulative sizes
    assert sorted((i.path, i.count, i.cumulative_size) for i in m.inefficient) == [
        ("/root/example/somefile1.txt", 2, 12810),
        ("/root/example/somefile3.txt", 2, 6405),
        ("/root/saved.txt", 2, 12810),
    ]
    # dive's order: ascending cumulative size; ties in the order dive met the 2nd copy
    assert [i.path for i in m.inefficient] == [
        "/root/example/somefile3.txt", "/root/example/somefile1.txt", "/root/saved.txt"]
    assert go_dive(image)[0] == m.efficiency


def test_dive_quirks():
    # chmod of a file counts both copies; deleting one file counts it once
    image = make_image(
        [D("a"), F("a/f", 100), F("a/g", 50)],
        [D("a"), F("a/f", 100, mode=0o600), W("a/g")],
    )
    m = dive_metrics(image)
    assert m.wasted_bytes == 200 + 50
    assert m.efficiency == (100 + 0) / (200 + 50)
    # an empty directory appearing in two layers is a 0-byte inefficiency
    m = dive_metrics(make_image([D("x")], [D("x")]))
    assert [(i.path, i.count, i.cumulative_size) for i in m.inefficient] == [("/x", 2, 0)]
    # opaque directories hide nothing for dive: lower content stays, later deletion sums it all
    image = make_image(
        [D("d"), F("d/old", 1000)],
        [D("d"), O("d"), F("d/new", 10)],
        [W("d")],
    )
    m = dive_metrics(image)
    assert m.efficiency == (1000 + 10 + 1010) / (1000 + 10 + 1010)
    # a whiteout of a path that does not exist below aborts the rest of that layer's walk
    # and registers a minimum of -1
    image = make_image([F("a", 10)], [W("b"), F("c", 5), F("a", 10)])
    m = dive_metrics(image)
    assert m.efficiency == go_dive(image)[0] == (10 - 1) / 10  # 'c' never visited
    assert m.wasted_bytes == 0


def test_dive_reads_symlinked_duplicate_layers_as_empty():
    # docker save stores the 2nd identical `COPY same.txt /same.txt` layer as a symlink;
    # dive 0.13.1 then reports layer sizes [.., 6, 0], efficiency 1, wasted 0
    image = make_image([F("bin/busybox", 1000)], [F("same.txt", 6, "hello")], [F("same.txt", 6, "hello")])
    assert dive_metrics(image).wasted_bytes == 12
    m = dive_metrics(image, dive_empty_layers={2})
    assert (m.layer_sizes, m.efficiency, m.wasted_bytes) == ([1000, 6, 0], 1.0, 0)


# --------------------------------------------------------------------------------------
# property test: the fast implementation equals the literal port on random stacks
# --------------------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "-x", "a-b", ".wh..wh..plnk"])
_paths = st.lists(_names, min_size=1, max_size=3).map("/".join)


@st.composite
def _entry(draw):
    path = draw(_paths)
    kind = draw(st.sampled_from(["file", "file", "file", "dir", "dir", "whiteout", "opaque", "symlink", "hardlink"]))
    size = draw(st.integers(0, 1000)) if kind == "file" else 0
    return Entry(path, kind, size)


_images = st.lists(st.lists(_entry(), max_size=8), min_size=1, max_size=5).map(lambda ls: make_image(*ls))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_images)
def test_dive_metrics_match_literal_port(image):
    m = dive_metrics(image)
    score, wasted, inefficient = go_dive(image)
    assert m.efficiency == score
    assert m.wasted_bytes == wasted
    assert [(i.path, i.count, i.cumulative_size) for i in m.inefficient] == inefficient


@settings(max_examples=300, deadline=None)
@given(_images)
def test_hidden_bytes_equal_size_minus_final(image):
    report = waste_report(image)
    final = final_tree(image)
    # every stored copy is either visible in the final filesystem or counted exactly once
    assert report.hidden_bytes == image.size - final.size
    assert sum(report.by_layer().values()) == report.recoverable_bytes


# --------------------------------------------------------------------------------------
# imagelint's own waste categories
# --------------------------------------------------------------------------------------

def _by_cat(report):
    return {c: [(i.path, i.bytes, i.added_by, i.changed_by) for i in report.items if i.category == c]
            for c in ("deleted", "unchanged-rewrite", "overwritten")}


def test_waste_deleted_file_and_directory():
    image = make_image(
        [D("opt"), D("opt/sdk"), F("opt/sdk/a", 300), F("opt/sdk/b", 200), F("big.tgz", 5000)],
        [D("opt"), D("opt/sdk"), F("opt/sdk/c", 100)],
        [W("big.tgz"), D("opt"), W("opt/sdk")],
    )
    cats = _by_cat(waste_report(image))
    assert cats["deleted"] == [("big.tgz", 5000, [0], 2), ("opt/sdk", 600, [0, 1], 2)]
    report = waste_report(image)
    assert report.recoverable_bytes == 5600
    assert report.by_layer() == {0: 5500, 1: 100}
    # dive does not count the deleted directory at all
    assert dive_metrics(image).wasted_bytes == 5000


def test_waste_opaque_directory():
    image = make_image(
        [D("cache"), F("cache/x", 700), D("cache/sub"), F("cache/sub/y", 300)],
        [D("cache"), O("cache"), F("cache/z", 1)],
    )
    report = waste_report(image)
    [item] = report.items
    assert (item.category, item.path, item.bytes, item.files, item.opaque, item.changed_by) == \
        ("deleted", "cache", 1000, 2, True, 1)
    final = final_tree(image)
    assert sorted(final) == ["cache", "cache/z"]


def test_waste_unchanged_rewrite_chmod():
    image = make_image(
        [D("app"), F("app/run", 4000, "bin")],
        [D("app"), F("app/run", 4000, "bin", mode=0o755, uid=1000)],
    )
    report = waste_report(image)
    [item] = report.items
    assert (item.category, item.bytes, item.added_by, item.changed_by) == ("unchanged-rewrite", 4000, [0], 1)
    assert item.changed == ["mode", "uid"]


def test_waste_overwrite_with_different_content():
    image = make_image([F("etc/conf", 900, "v1")], [F("etc/conf", 950, "v2")])
    cats = _by_cat(waste_report(image))
    assert cats["overwritten"] == [("etc/conf", 900, [0], 1)]
    assert cats["unchanged-rewrite"] == []


def test_waste_duplicates_excluding_hardlinks_and_empty():
    image = make_image(
        [F("a/lib.so", 1000, "same"), Entry("a/lib2.so", "hardlink", 0, linkname="a/lib.so"),
         F("empty1", 0, ""), F("empty2", 0, "")],
        [F("b/lib.so", 1000, "same"), F("c/lib.so", 1000, "same")],
    )
    report = waste_report(image)
    [group] = report.duplicates
    assert group.paths == ["a/lib.so", "b/lib.so", "c/lib.so"] and group.bytes == 2000
    assert report.by_category()["duplicate"] == 2000
    assert report.by_layer() == {1: 2000}


def test_waste_without_digests_skips_identity_checks():
    image = make_image(
        [Entry("x", "file", 10), Entry("y", "file", 10)],
        [Entry("x", "file", 10, 0o755)],
    )
    report = waste_report(image)
    assert not report.hashed and report.notes
    assert [(i.category, i.bytes) for i in report.items] == [("overwritten", 10)]
    assert report.duplicates == []


def test_waste_no_double_counting_across_categories():
    # overwritten in layer 1, then deleted in layer 2: each stored copy counted once
    image = make_image([F("f", 100, "a")], [F("f", 100, "b")], [W("f")])
    report = waste_report(image)
    assert sorted((i.category, i.bytes, i.added_by) for i in report.items) == [
        ("deleted", 100, [1]), ("overwritten", 100, [0])]
    assert report.recoverable_bytes == image.size == 200


def test_dive_test_image_own_accounting():
    report = waste_report(_dive_test_image())
    totals = report.by_category()
    assert totals == {"deleted": 6405 + 12810, "unchanged-rewrite": 2 * 6405, "overwritten": 0,
                      "duplicate": 4 * 6405}
    assert report.to_dict()["recoverable_bytes"] == 57645


# --------------------------------------------------------------------------------------
# stats and final tree
# --------------------------------------------------------------------------------------

def test_final_tree_and_glob_usage():
    image = make_image(
        [D("var"), D("var/lib"), D("var/lib/apt"), D("var/lib/apt/lists"),
         F("var/lib/apt/lists/deb_main", 40000), F("var/lib/apt/lists/lock", 0), D("var/lib/apt/lists/partial"),
         F("var/lib/apt/lists/partial/p", 10), F("usr/bin/tool", 70000)],
        [D("var/lib/apt/lists"), F("var/lib/apt/lists/deb_extra", 2000), W("usr/bin/tool")],
    )
    final = final_tree(image)
    assert "usr/bin/tool" not in final and "usr/bin" in final and final.get("usr/bin") is None
    assert final.layer_of("/var/lib/apt/lists/deb_extra") == 1
    usage = final.usage("var/lib/apt/lists/*")
    assert usage.bytes == 42010 and usage.files == 4
    assert usage.by_layer == {0: 40010, 1: 2000}
    assert final.glob("var/**/deb_*") == ["var/lib/apt/lists/deb_extra", "var/lib/apt/lists/deb_main"]
    assert final.glob("**/p") == ["var/lib/apt/lists/partial/p"]
    assert final.glob("var/lib/apt/lists/[dl]*") == ["var/lib/apt/lists/deb_extra", "var/lib/apt/lists/deb_main",
                                                     "var/lib/apt/lists/lock"]
    assert final.usage("nope/*").bytes == 0


def test_image_stats():
    image = make_image(
        [D("usr"), D("usr/lib"), F("usr/lib/big", 9000), F("usr/lib/small", 100), F("tmp.bin", 5000)],
        [W("tmp.bin"), F("app/main", 3000)],
    )
    image.layers[0].compressed_size, image.layers[0].compressed_size_exact = 4000, True
    image.layers[1].compressed_size, image.layers[1].compressed_size_exact = 1000, False
    image.layers[1].created_by = "/bin/sh -c rm /tmp.bin"
    stats = image_stats(image, top=2)
    d = stats.to_dict()
    assert d["size"] == 17100 and d["final_size"] == 12100
    assert d["transfer_size"] == 5000 and d["transfer_exact"] is False
    assert d["layer_count"] == 2 and d["file_count"] == 3
    assert [(f["path"], f["size"], f["layer"]) for f in d["largest_files"]] == [("usr/lib/big", 9000, 0),
                                                                                ("app/main", 3000, 1)]
    assert [(x["path"], x["size"]) for x in d["largest_dirs"]] == [("usr", 9100), ("usr/lib", 9100)]
    assert d["layers"][1]["created_by"] == "/bin/sh -c rm /tmp.bin"
    assert d["layers"][0]["compressed_size_exact"] is True


def _big_image(files, layers=6):
    import random
    rnd = random.Random(1)
    out = []
    per = files // layers
    for li in range(layers):
        entries = []
        for j in range(per):
            d = f"usr/share/pkg{(li * per + j) // 40}/sub{j % 7}"
            entries.append(F(f"{d}/file{j}", rnd.randint(1, 40000), content=str(rnd.randint(0, 5000))))
        if li:  # rewrite/delete some of the previous layer's files
            prev = out[-1]
            entries += [Entry(e.path, "file", e.size, 0o600, digest=e.digest) for e in prev[:per // 20]]
            entries += [W(e.path) for e in prev[per // 20: per // 10]]
            entries.append(W(f"usr/share/pkg{(li - 1) * per // 40 + 3}"))
        out.append(entries)
    return make_image(*out)


def test_30k_files_with_rewrites_and_deletes():
    """A 30k-file image analyses end to end (speed is measured in benchmarks/, not here)."""
    image = _big_image(30000)
    dive_metrics(image)
    report = waste_report(image)
    stats = image_stats(image, final=report.final)
    assert report.recoverable_bytes > 0
    assert report.hidden_bytes == image.size - stats.final_size
