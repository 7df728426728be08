"""imagelint.sources.engine: the local engine source, its overlay2 fast path and its errors.

The fast path (walking overlay2 layer directories) must give exactly what the `docker save` path
gives: the same entries per layer, in the same order (path, kind, size, mode, uid, gid, linkname,
content digest), and the same analysis numbers. Fixture images (fixtures/images/*) are built in
the run by tests/images.py and removed at the end.
"""
import os
import stat
import subprocess
import sys

import pytest

from imagelint.analysis import dive_metrics, waste_report
from imagelint.image import ImageError
from imagelint.sources import engine as engine_mod
from imagelint.sources.engine import load_engine, walk_layer_dir

FAST_PATH_IMAGES = ["busybox-edge", "busybox-waste", "debian-apt"]


def entry_key(e):
    return (e.path, e.kind, e.size, e.mode, e.uid, e.gid, e.linkname, e.digest)


def _first_difference(fast, saved):
    for i, (a, b) in enumerate(zip(fast, saved)):
        if a != b:
            return f"entry {i}: fast path {a} vs docker save {b}"
    return f"lengths differ: fast path {len(fast)}, docker save {len(saved)}"


@pytest.fixture(scope="module")
def both_paths(fixture_images):
    """name -> (image read by the overlay2 fast path, image read through `docker save`)."""
    cache = {}

    def get(name):
        if name not in cache:
            tag = fixture_images.build(name)
            cache[name] = (load_engine(tag, fast=True), load_engine(tag, fast=False))
        return cache[name]
    return get


def _fast_path_with(tag, method):
    import docker
    client = docker.from_env()
    try:
        return engine_mod._load_overlay2(client.api.info(), tag, client.api.inspect_image(tag), True, method=method)
    finally:
        client.close()


@pytest.mark.engine
@pytest.mark.parametrize("name", FAST_PATH_IMAGES)
def test_fast_path_gives_the_same_entries_as_docker_save(both_paths, name):
    fast, saved = both_paths(name)
    assert fast.source == "engine-overlay2", "the overlay2 fast path was not taken on this engine"
    assert saved.source == "engine"
    assert fast.id == saved.id
    assert fast.config == saved.config
    assert fast.platform == saved.platform
    assert len(fast.layers) == len(saved.layers)
    for lf, ls in zip(fast.layers, saved.layers):
        assert (lf.index, lf.diff_id, lf.created_by, lf.history_index) == \
            (ls.index, ls.diff_id, ls.created_by, ls.history_index)
        kf = [entry_key(e) for e in lf.entries]
        ks = [entry_key(e) for e in ls.entries]
        assert kf == ks, f"{name} layer {lf.index} ({lf.created_by}): {_first_difference(kf, ks)}"
        # no blobs in an engine: the fast path estimates, and says so
        assert lf.compressed_size is not None and lf.compressed_size_exact is False


@pytest.mark.engine
@pytest.mark.parametrize("name", FAST_PATH_IMAGES)
def test_directory_walk_equals_docker_save_for_built_layers(both_paths, fixture_images, name):
    """The walk (used when a layer has no tar-split) against docker save. Layers the engine built
    match exactly; an imported layer keeps its original tar's order and link names ('./usr/bin/perl'),
    which only the tar-split replay reproduces: there the same entries must be present."""
    _, saved = both_paths(name)
    walked = _fast_path_with(fixture_images.build(name), "walk")
    compared = 0
    for lw, ls in zip(walked.layers, saved.layers):
        kw = [entry_key(e) for e in lw.entries]
        ks = [entry_key(e) for e in ls.entries]
        if (ls.comment or "").startswith("Imported from"):
            def loose(keys):
                return sorted((k[0], k[1], k[2], k[3], k[4], k[5], k[6].lstrip("./") if k[1] == "hardlink" else k[6],
                               k[7]) for k in keys)
            assert loose(kw) == loose(ks)
            continue
        assert kw == ks, f"{name} layer {lw.index} ({lw.created_by}): {_first_difference(kw, ks)}"
        compared += 1
    assert compared
    assert dive_metrics(walked).to_dict() == dive_metrics(saved).to_dict()


@pytest.mark.engine
def test_tar_split_replay_is_used_and_equals_walk_where_both_apply(fixture_images):
    tag = fixture_images.build("busybox-edge")
    replayed = _fast_path_with(tag, "tar-split")
    walked = _fast_path_with(tag, "walk")
    for lr, lw in zip(replayed.layers, walked.layers):
        assert [entry_key(e) for e in lr.entries] == [entry_key(e) for e in lw.entries]


@pytest.mark.engine
@pytest.mark.parametrize("name", FAST_PATH_IMAGES)
def test_fast_path_gives_the_same_analysis_numbers(both_paths, name):
    fast, saved = both_paths(name)
    assert dive_metrics(fast).to_dict() == dive_metrics(saved).to_dict()
    assert waste_report(fast).to_dict() == waste_report(saved).to_dict()


@pytest.mark.engine
def test_edge_image_exercises_every_entry_kind(both_paths):
    fast, _ = both_paths("busybox-edge")
    by_kind = {}
    for layer in fast.layers:
        for e in layer.entries:
            by_kind.setdefault(e.kind, []).append(e)
    for kind in ("file", "dir", "symlink", "hardlink", "whiteout", "opaque", "fifo"):
        assert by_kind.get(kind), f"busybox-edge has no {kind} entry: the comparison would not cover it"
    paths = {e.path for layer in fast.layers for e in layer.entries}
    assert "n/\udcffx" in paths  # the non-UTF-8 name survives as surrogate escapes
    # /h/0first sorts before /h/a: it is the file, the others link to it (docker's walk order)
    links = {e.path: e.linkname for e in by_kind["hardlink"]}
    assert links.get("h/a") == "h/0first" and links.get("h/b") == "h/0first"
    assert {e.linkname for e in by_kind["symlink"] if e.path in ("l/loop1", "l/loop2")} == {"loop1", "loop2"}
    # `RUN true` and ENV add no layer: history steps marked empty_layer, skipped when pairing
    empty = [i for i, h in enumerate(fast.history) if h.get("empty_layer")]
    assert len(empty) >= 2
    assert not {layer.history_index for layer in fast.layers} & set(empty)
    assert {"char", "block"} <= set(by_kind) or "dev2/fifo" in paths  # mknod may be refused; fifo is not


@pytest.mark.engine
def test_fast_path_failure_falls_back_to_docker_save(fixture_images, monkeypatch):
    tag = fixture_images.build("busybox-waste")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/var/lib/docker/overlay2")
    monkeypatch.setattr(engine_mod, "_load_overlay2", refuse)
    image = load_engine(tag, fast=True)
    assert image.source == "engine" and image.layers


@pytest.mark.engine
def test_remote_docker_host_gets_no_fast_path(fixture_images, monkeypatch):
    tag = fixture_images.build("busybox-waste")
    import docker
    client = docker.from_env()
    inspect = client.api.inspect_image(tag)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    with pytest.raises(engine_mod._NoFastPath, match="not a local socket"):
        engine_mod._load_overlay2(client.api.info(), tag, inspect, True)
    client.close()


@pytest.mark.engine
def test_unknown_image_is_one_clear_line(docker_client):
    with pytest.raises(ImageError) as err:
        load_engine("imagelint-test-no-such-image:never")
    text = str(err.value)
    assert "image imagelint-test-no-such-image:never not found in the local engine" in text
    assert "DOCKER_HOST" in text and "pull or build it" in text and "\n" not in text


@pytest.mark.parametrize("host", ["unix:///nonexistent.sock", "tcp://127.0.0.1:1"])
def test_unreachable_engine_names_docker_host(monkeypatch, host):
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(ImageError) as err:
        load_engine("busybox:latest")
    text = str(err.value)
    assert f"DOCKER_HOST={host}" in text
    assert "start Docker" in text and "set DOCKER_HOST" in text and "\n" not in text


def test_unreachable_engine_cli_exit_2_without_traceback():
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent.sock")
    proc = subprocess.run([sys.executable, "-m", "imagelint", "inspect", "some-image:1", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "DOCKER_HOST=unix:///nonexistent.sock" in proc.stderr


def test_missing_docker_sdk_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)  # makes `import docker` raise ImportError
    with pytest.raises(ImageError, match=r"pip install 'imagelint\[image\]'"):
        load_engine("x:1", fast=False)


@pytest.mark.engine
def test_fast_path_does_not_import_the_docker_sdk(fixture_images):
    tag = fixture_images.build("busybox-waste")
    code = ("import sys; from imagelint.sources.engine import load_engine; im = load_engine(%r); "
            "print(im.source, 'docker' in sys.modules, 'requests' in sys.modules)" % tag)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["engine-overlay2", "False", "False"]


# --- walk_layer_dir on a hand-made layer directory (no engine needed) ---------------------------

def _can_mknod_whiteout(tmp_path) -> bool:
    try:
        os.mknod(tmp_path / "probe", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    except (PermissionError, OSError):
        return False
    os.unlink(tmp_path / "probe")
    return True


def test_walk_layer_dir_lists_like_dockers_tar_writer(tmp_path):
    layer = tmp_path / "diff"
    layer.mkdir()
    (layer / "a").mkdir()
    (layer / "a" / "c").write_bytes(b"hello")
    (layer / "a.b").write_bytes(b"")
    (layer / "z").write_bytes(b"12345678")
    os.link(layer / "z", layer / "0first")  # sorts first: it is the file, z the link
    os.symlink("z", layer / "loop")
    os.symlink("loop2", layer / "loop1")
    os.symlink("loop1", layer / "loop2")
    os.mkfifo(layer / "pipe")
    os.chmod(layer / "z", 0o4755)
    whiteouts = _can_mknod_whiteout(tmp_path)
    if whiteouts:
        os.mknod(layer / "a" / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    opaque = False
    try:
        os.setxattr(layer / "a", "trusted.overlay.opaque", b"y", follow_symlinks=False)
        opaque = True
    except OSError:
        pass

    walk = walk_layer_dir(str(layer))
    got = [(e.path, e.kind, e.size, e.linkname) for e in walk.entries]
    want = [("0first", "file", 8, "")]
    want.append(("a", "dir", 0, ""))
    if opaque:
        want.append(("a", "opaque", 0, ""))
    want.append(("a/c", "file", 5, ""))
    if whiteouts:
        want.append(("a/gone", "whiteout", 0, ""))
    want += [("a.b", "file", 0, ""), ("loop", "symlink", 0, "z"), ("loop1", "symlink", 0, "loop2"),
             ("loop2", "symlink", 0, "loop1"), ("pipe", "fifo", 0, ""), ("z", "hardlink", 0, "0first")]
    assert got == want
    by_path = {(e.path, e.kind): e for e in walk.entries}
    assert by_path[("0first", "file")].mode == 0o4755
    assert by_path[("0first", "file")].digest is not None
    assert by_path[("z", "hardlink")].digest is None
    if whiteouts:
        assert by_path[("a/gone", "whiteout")].mode == 0o600
    assert walk.estimated_compressed_size() > 0


def test_walk_layer_dir_never_follows_links_out_of_the_layer(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"x" * 1000)
    layer = tmp_path / "diff"
    layer.mkdir()
    os.symlink(str(outside), layer / "escape")
    os.symlink(str(outside / "secret"), layer / "file-link")
    walk = walk_layer_dir(str(layer))
    assert [(e.path, e.kind, e.size) for e in walk.entries] == [("escape", "symlink", 0), ("file-link", "symlink", 0)]


def test_walk_layer_dir_without_hashing_keeps_sizes(tmp_path):
    layer = tmp_path / "diff"
    (layer / "d").mkdir(parents=True)
    (layer / "d" / "f").write_bytes(os.urandom(100_000))
    walk = walk_layer_dir(str(layer), hash_content=False)
    assert [(e.path, e.size, e.digest) for e in walk.entries] == [("d", 0, None), ("d/f", 100_000, None)]
    # incompressible data: the estimate is about the data's size
    assert 100_000 <= walk.estimated_compressed_size() <= 102_000


@pytest.mark.engine
def test_fast_path_without_hashing_matches_docker_save(fixture_images):
    tag = fixture_images.build("busybox-edge")
    fast = load_engine(tag, hash_content=False, fast=True)
    saved = load_engine(tag, hash_content=False, fast=False)
    assert fast.source == "engine-overlay2"
    for lf, ls in zip(fast.layers, saved.layers):
        assert [entry_key(e) for e in lf.entries] == [entry_key(e) for e in ls.entries]
        assert all(e.digest is None for e in lf.entries)


def test_tar_split_member_paths_never_leave_the_layer(tmp_path):
    layer = tmp_path / "diff"
    (layer / "d").mkdir(parents=True)
    (layer / "d" / "f").write_bytes(b"ok")
    (tmp_path / "outside").write_bytes(b"secret")
    os.symlink(str(tmp_path), layer / "link")
    opener = engine_mod._SafeOpener(str(layer))
    try:
        fd = opener.open(b"./d/f")
        assert os.read(fd, 10) == b"ok"
        os.close(fd)
        with pytest.raises(engine_mod._NoFastPath):
            opener.open(b"../outside")
        with pytest.raises(OSError):  # a symlinked directory component is refused (O_NOFOLLOW)
            opener.open(b"link/outside")
        with pytest.raises(OSError):  # and so is a symlink as the file itself
            opener.open(b"link")
    finally:
        opener.close()
