"""`imagelint measure` on fixture images of three sizes (a few MB, ~100 MB, >= 400 MB) built in
the test run, pulled cold from a real local registry into a private engine."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.engine

SIZES = ("small", "medium", "large")


@pytest.fixture(scope="module")
def sized_images(fixture_images):
    return {name: fixture_images.build(f"measure-{name}") for name in SIZES}


def test_three_sizes_measured_and_estimated(sized_images, local_registry, docker_client, tmp_path):
    refs = [sized_images[name] for name in SIZES]
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "imagelint", "measure", *refs, "--push-to", local_registry.host,
                           "--runs", "1", "--format", "json", "--quiet", "--task-size", "1x2",
                           "--region", "ap-northeast-1"],
                          capture_output=True, text=True, timeout=1500, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    by_name = {}
    for name, img in zip(SIZES, doc["images"]):
        assert img["ok"], img.get("error")
        by_name[name] = img
        pull = img["measurement"]["pulls"][0]
        assert pull["cold"], f"{name}: a layer was already cached"
        assert pull["layers"] and all(lay["extract_end"] is not None for lay in pull["layers"])
    # the real pulls and the model both grow with the image
    seconds = [by_name[n]["measurement"]["pulls"][0]["seconds"] for n in SIZES]
    assert seconds[0] < seconds[2], seconds
    predicted = [by_name[n]["estimate"]["terms"]["pull_s"]["low"] for n in SIZES]
    assert predicted[0] < predicted[1] < predicted[2], predicted
    for img in by_name.values():
        est = img["estimate"]
        assert est["billed_s"]["low"] >= 60  # one-minute minimum
        assert est["cost_per_launch_usd"]["low"] > 0
        assert est["terms"]["provisioning_s"]["source"]  # every Fargate number carries its source
    text = json.dumps(doc)
    assert "ap-northeast-1" in text
    # nothing left behind: no measure containers, no pushed tags in the user's engine
    assert not docker_client.api.containers(all=True, filters={"label": "imagelint.measure"})
    tags = [t for i in docker_client.images.list() for t in i.tags]
    assert not [t for t in tags if t.startswith(local_registry.host + "/")], tags
