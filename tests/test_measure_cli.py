"""`imagelint measure` end to end: the real command against the local registry and fixture images
built in the test run (needs the Docker engine; root for the private engine)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

pytestmark = pytest.mark.engine

GOOD = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /app && cd /app && for i in $(/bin/busybox seq 1 200); do echo file $i > f$i.txt; done"]
CMD ["/bin/busybox", "sh", "-c", "echo starting; /bin/busybox sleep 0.2; echo ready; /bin/busybox sleep 30"]
"""
CRASH = """FROM scratch
COPY busybox /bin/busybox
CMD ["/bin/busybox", "sh", "-c", "echo boom >&2; exit 3"]
"""


@pytest.fixture(scope="module")
def images(fixture_images):
    return {"good": fixture_images.build_dockerfile("measure-good", GOOD),
            "crash": fixture_images.build_dockerfile("measure-crash", CRASH)}


def run_cli(args: list, tmp_path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))  # never the user's calibration cache
    return subprocess.run([sys.executable, "-m", "imagelint", "measure", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(tmp_path))


def our_containers(client, images: dict) -> list:
    """Measure's containers of this test's images (other test runs may measure at the same time)."""
    run_tag = images["good"].rsplit(":", 1)[1]
    return [c for c in client.api.containers(all=True, filters={"label": "imagelint.measure"})
            if run_tag in c.get("Image", "")]


def test_good_failing_and_crashing_images(images, local_registry, docker_client, tmp_path):
    missing = f"{local_registry.host}/imagelint-test-missing:{os.getpid()}"
    wf = tmp_path / "wf"
    done = run_cli([images["good"], missing, images["crash"], "--push-to", local_registry.host, "--runs", "2",
                    "--format", "json", "--ready", "log:ready", "--task-size", "0.25x0.5", "--waterfall", str(wf),
                    "--launches-per-day", "24", "--param", "per_connection_mb_s=50"], tmp_path)
    assert done.returncode == 2, done.stderr
    doc = json.loads(done.stdout)
    assert doc["version"] == 1 and doc["settings"]["task"] == "0.25x0.5"
    assert doc["settings"]["parameters"]["per_connection_mb_s"] == {
        "value": 50, "unit": "MB/s", "source": "command line (--param)"}
    good, miss, crash = doc["images"]
    assert good["ok"] and good["error"] is None
    assert len(good["measurement"]["pulls"]) == 2 and len(good["measurement"]["cold_starts"]) == 2
    layer = good["measurement"]["pulls"][0]["layers"][-1]
    assert layer["download_start"] is not None and layer["extract_end"] >= layer["extract_start"]
    assert good["measurement"]["cold_starts"][0]["ready_seconds"] is not None
    assert [lay["files"] for lay in good["layers"]][-1] >= 200
    assert all(lay["zstd_compressed"] for lay in good["layers"])
    est = good["estimate"]
    assert est["billed_s"]["low"] == 60 and est["cost_per_launch_usd"]["low"] > 0
    assert est["cost_per_month_usd"]["low"] == pytest.approx(est["cost_per_launch_usd"]["low"] * 24 * 30)
    assert {w["name"] for w in good["what_ifs"]} >= {"zstd", "bigger-task"}
    assert good["oom"]["peak_bytes"] and good["oom"]["limit_bytes"] == 512 * 2**20
    assert good["local_model"]["predicted_s"] > 0 and good["local_model"]["measured_s"] > 0
    assert not miss["ok"] and miss["error_kind"] == "not-found" and "not found" in miss["error"]
    assert not crash["ok"] and crash["error_kind"] == "crash" and "code 3" in crash["error"]
    assert "boom" in crash["error"]  # the app's last log lines
    # one clear line each on stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("imagelint: ") and
              (missing in ln or images["crash"] in ln) and ("not found" in ln or "code 3" in ln)]
    assert len(errors) == 2, done.stderr
    svgs = sorted(p for p in os.listdir(wf) if p.endswith(".svg"))
    assert len(svgs) == 3 and os.path.exists(wf / "index.html")
    for name in svgs:
        ET.parse(str(wf / name))
    # everything measure created is gone: containers, the pushed tags in the user's engine
    assert our_containers(docker_client, images) == []
    tags = {t for img in docker_client.images.list() for t in img.tags}
    assert not any(t.startswith(local_registry.host + "/") and "measure-" in t for t in tags)
    assert images["good"] in tags  # what the user had stays


def test_calibrate_saves_and_reuses(images, local_registry, tmp_path):
    calib = tmp_path / "calibration.json"
    done = run_cli([images["good"], "--push-to", local_registry.host, "--runs", "1", "--calibrate",
                    "--calibration", str(calib), "--quiet"], tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "calibration: measured (measured)" in done.stdout
    assert done.stderr == ""  # --quiet: no progress
    saved = json.loads(calib.read_text())
    assert saved["version"] == 1 and saved["per_file_s"] >= 0 and saved["fit"]["n"] >= 3
    cache = tmp_path / "cache" / "imagelint" / "measure-calibration.json"
    assert cache.exists()
    again = run_cli([images["good"], "--push-to", local_registry.host, "--runs", "1", "--format", "json", "-q"],
                    tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["calibration"]["origin"] == "cache"


def test_bad_settings_exit_2_before_any_work(tmp_path):
    for args, text in ((["--task-size", "3x3"], "not a valid Fargate size"), (["--region", "eu-mars-1"], "no Fargate prices"),
                       (["--calibration", str(tmp_path / "nope.json")], "no such calibration file")):
        done = run_cli(["imagelint-test-whatever:1", *args, "-q"], tmp_path)
        assert done.returncode == 2 and text in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
