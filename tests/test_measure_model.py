"""imagelint measure without an engine: settings, model terms, scaling, billing, cost, task sizes,
OOM advice, calibration fit, outputs (table, JSON schema, SVG/HTML waterfall), progress."""
from __future__ import annotations

import io
import json
import os
import random
import xml.etree.ElementTree as ET

import pytest

from imagelint.fargate import FargateData, TaskSize, cost_per_launch
from imagelint.measure import calibrate as cal
from imagelint.measure import model
from imagelint.measure.command import ImageResult, MeasureRun, _model
from imagelint.measure.container import StartTiming, parse_probe
from imagelint.measure.pull import LayerTiming, PullTiming
from imagelint.measure.report import Progress, render_json, render_table, waterfall_html, waterfall_svg, write_waterfalls
from imagelint.measure.session import ImageMeasurement

MB = 1_000_000


def calib(**kw) -> cal.Calibration:
    args = dict(per_connection_bytes_per_s=50e6, extract_bytes_per_s={"gzip": 100e6, "zstd": 200e6, "none": 400e6},
                per_file_s=0.0005, per_layer_s=0.05, registry_s=0.05, container_start_s=0.3,
                identity={"host": "test"}, source="measured")
    args.update(kw)
    return cal.Calibration(**args)


def layers(sizes=((2 * MB, 5 * MB, 100), (40 * MB, 120 * MB, 3000), (10 * MB, 10 * MB, 2))) -> list:
    return [model.LayerInfo(i, f"sha256:{i:02d}" + "d" * 62, c, u, f, "gzip", zstd_compressed=int(c * 0.8))
            for i, (c, u, f) in enumerate(sizes)]


def settings(**kw) -> model.Settings:
    return model.resolve_settings(**kw)


# --- settings -------------------------------------------------------------------------------------------

def test_defaults_and_sources():
    s = settings()
    assert s.task == TaskSize(0.5, 1) and s.region == "us-east-1" and s.arch == "x86" and not s.spot
    assert s.sources["task"] == "default"
    params = s.parameters()
    assert params["per_connection_mb_s"]["value"] == 100
    assert "read" in params["per_connection_mb_s"]["source"]  # the data file's source and date
    assert params["cpu_speed_ratio"]["source"].startswith("imagelint default")


@pytest.mark.parametrize("kw, message", [
    ({"task_size": "0.3x1"}, "not a valid Fargate size"),
    ({"task_size": "1x1"}, "valid memory for 1 vCPU"),
    ({"task_size": "big"}, "write VCPUxGB"),
    ({"region": "mars-1"}, "no Fargate prices for region"),
    ({"arch": "sparc"}, "use x86 or arm"),
    ({"params": ["nope=1"]}, "unknown parameter 'nope'"),
    ({"params": ["per_connection_mb_s"]}, "KEY=VALUE"),
    ({"params": ["per_connection_mb_s=fast"]}, "not a number"),
    ({"params": ["oom_warn_ratio=-1"]}, "non-negative"),
    ({"launches_per_day": "many"}, "non-negative number"),
    ({"config": {"bogus": 1}}, "unknown key"),
])
def test_settings_errors(kw, message):
    with pytest.raises(model.SettingsError, match=message):
        settings(**kw)


def test_command_line_over_config_over_defaults(tmp_path):
    cfg = {"task-size": "1x2", "region": "ap-northeast-1", "arch": "arm", "spot": True, "launches-per-day": 10,
           "params": {"per_connection_mb_s": 60, "cpu_speed_ratio": 0.5}}
    s = settings(config=cfg, config_source="x.yaml")
    assert (s.task.label, s.region, s.arch, s.spot, s.launches_per_day) == ("1x2", "ap-northeast-1", "arm", True, 10)
    assert s.param("per_connection_mb_s") == 60 and s.param("cpu_speed_ratio") == 0.5
    assert s.sources["per_connection_mb_s"] == "x.yaml (measure.params)"
    s = settings(task_size="2x4", params=["per_connection_mb_s=80", "provisioning_seconds=[5, 8]"], config=cfg)
    assert s.task.label == "2x4" and s.sources["task"] == "command line"
    assert s.param("per_connection_mb_s") == 80 and s.param("provisioning_seconds") == [5, 8]
    assert s.parameters()["per_connection_mb_s"]["source"] == "command line (--param)"


def test_other_fargate_data_file(tmp_path):
    data = json.load(open(FargateData().path))
    data["params"]["provisioning_seconds"]["value"] = [1, 2]
    path = tmp_path / "f.json"
    path.write_text(json.dumps(data))
    s = settings(fargate_data=str(path))
    assert s.param("provisioning_seconds") == [1, 2]
    with pytest.raises(model.SettingsError):
        settings(fargate_data=str(tmp_path / "missing.json"))


# --- the estimate ---------------------------------------------------------------------------------------

def test_terms_add_up_and_billing_excludes_provisioning():
    s = settings(task_size="1x2", launches_per_day=100)
    e = model.estimate(layers(), s, calib(), start_s=0.4, ready_s=2.0)
    additive = {k: t for k, t in e.terms.items() if not t.get("informational")}
    assert set(additive) == {"provisioning_s", "registry_s", "download_s", "extract_tail_s", "container_start_s",
                             "ready_s"}
    assert e.total[0] == pytest.approx(sum(t["low"] for t in additive.values()))
    assert e.total[1] == pytest.approx(sum(t["high"] for t in additive.values()))
    assert e.billed_raw[0] == pytest.approx(e.total[0] - 10)  # provisioning (10-25 s) is not billed
    assert e.billed_raw[1] == pytest.approx(e.total[1] - 25)
    # registry + downloads + tail = the simulated pull
    pull = e.terms["registry_s"]["low"] + e.terms["download_s"]["low"] + e.terms["extract_tail_s"]["low"]
    assert pull == pytest.approx(e.timeline.total)
    assert e.terms["ready_s"]["low"] == 2.0
    # measured start 0.4 s is below the Fargate prior (1-3 s): the prior is the floor
    assert (e.terms["container_start_s"]["low"], e.terms["container_start_s"]["high"]) == (1, 3)
    slow = model.estimate(layers(), s, calib(), start_s=5.0, ready_s=2.0)
    assert (slow.terms["container_start_s"]["low"], slow.terms["container_start_s"]["high"]) == (5.0, 5.0)


def test_billing_minimum_and_cost():
    s = settings(task_size="1x2", launches_per_day=100)
    e = model.estimate(layers(), s, calib(), start_s=0.4, ready_s=1.0)
    assert e.billed == (60, 60) and e.minimum_applied
    expected = 60 / 3600 * (1 * 0.04048 + 2 * 0.004445)
    assert e.cost[0] == pytest.approx(expected)
    assert e.per_month[0] == pytest.approx(expected * 100 * 30)
    long = model.estimate(layers(), s, calib(), start_s=0.4, ready_s=100.2)
    assert long.billed[0] == pytest.approx(int(-(-long.billed_raw[0] // 1)))  # rounded up to the second
    assert long.billed[0] > 60 and not long.minimum_applied
    c = cost_per_launch(s.data, s.task, long.billed_raw[0], "us-east-1")
    assert long.cost[0] == pytest.approx(c["usd"])
    spot = model.estimate(layers(), settings(task_size="1x2", spot=True), calib(), 0.4, 1.0)
    assert spot.cost[0] < e.cost[0]
    tokyo = model.estimate(layers(), settings(task_size="1x2", region="ap-northeast-1"), calib(), 0.4, 1.0)
    assert tokyo.cost[0] > e.cost[0]


def test_vcpu_scaling_of_extraction():
    c = calib()
    quarter = model.fargate_rates(settings(task_size="0.25x0.5"), c)
    one = model.fargate_rates(settings(task_size="1x2"), c)
    four = model.fargate_rates(settings(task_size="4x8"), c)
    assert quarter.extract_bytes_per_s["gzip"] == pytest.approx(25e6)  # throttled to a quarter core
    assert one.extract_bytes_per_s["gzip"] == four.extract_bytes_per_s["gzip"] == pytest.approx(100e6)  # one core
    assert four.extract_bytes_per_s["zstd"] == pytest.approx(400e6)  # zstd uses ~2 cores
    assert quarter.per_file_s == pytest.approx(0.002) and one.per_file_s == pytest.approx(0.0005)
    assert quarter.per_layer_s == one.per_layer_s == 0.05
    assert quarter.bandwidth == pytest.approx(4.2e9 / 8)
    slow = model.fargate_rates(settings(task_size="1x2", params=["cpu_speed_ratio=0.5"]), c)
    assert slow.extract_bytes_per_s["gzip"] == pytest.approx(50e6) and slow.per_file_s == pytest.approx(0.001)
    e_q = model.estimate(layers(), settings(task_size="0.25x2"), c, 0.4, 1.0)
    e_1 = model.estimate(layers(), settings(task_size="1x2"), c, 0.4, 1.0)
    assert e_q.terms["extract_work_s"]["low"] == pytest.approx(
        4 * (e_1.terms["extract_work_s"]["low"] - 3 * 0.05) + 3 * 0.05)


def test_download_bound_by_connection_rate():
    s = settings(task_size="1x2", params=["per_connection_mb_s=10"])
    one = [model.LayerInfo(0, "sha256:" + "a" * 64, 100 * MB, 100 * MB, 1)]
    e = model.estimate(one, s, calib(), 0.4, 0)
    assert e.terms["download_s"]["low"] == pytest.approx(10.0)


def test_zstd_what_if_uses_zstd_sizes_and_rates():
    s = settings(task_size="1x2")
    wi = {w.name: w for w in model.what_ifs(layers(), s, calib(), 0.4, 1.0, peak_memory=100 * 2**20)}
    assert {"zstd", "smaller-task", "bigger-task"} <= set(wi)
    base = model.estimate(layers(), s, calib(), 0.4, 1.0)
    assert wi["zstd"].compressed == sum(int(c * 0.8) for c in (2 * MB, 40 * MB, 10 * MB))
    assert wi["zstd"].total[0] < base.total[0]
    assert wi["smaller-task"].task == TaskSize(0.5, 2) and wi["bigger-task"].task == TaskSize(2, 4)
    assert wi["smaller-task"].ready_scaled and wi["smaller-task"].terms["ready_s"]["low"] == pytest.approx(2.0)
    assert "scaled" in wi["bigger-task"].terms["ready_s"]["what"]
    assert wi["bigger-task"].terms["ready_s"]["low"] == pytest.approx(0.5)
    assert "soci" not in wi and base.soci["applies"] is False
    no_zstd = [model.LayerInfo(0, "sha256:" + "b" * 64, MB, MB, 1)]
    assert "zstd" not in {w.name for w in model.what_ifs(no_zstd, s, calib(), 0.4, 1.0)}


def test_soci_applies_over_threshold_with_low_confidence():
    s = settings(task_size="1x2")
    big = layers(((200 * MB, 400 * MB, 10000), (100 * MB, 150 * MB, 50), (1 * MB, 2 * MB, 5)))
    wi = {w.name: w for w in model.what_ifs(big, s, calib(), 0.4, 1.0)}
    assert wi["soci"].confidence == "low"
    base = model.estimate(big, s, calib(), 0.4, 1.0)
    assert base.soci["applies"] and wi["soci"].total[0] < base.total[0]
    assert any("low confidence" in n for n in wi["soci"].notes)


def test_neighbour_sizes_and_recommendation():
    s = settings(task_size="0.5x1")
    assert model.neighbour_sizes(s) == (TaskSize(0.25, 1), TaskSize(1, 2))
    assert model.neighbour_sizes(settings(task_size="0.25x0.5"))[0] is None
    assert model.neighbour_sizes(settings(task_size="16x32"))[1] is None
    assert model.neighbour_sizes(settings(task_size="1x8")) == (TaskSize(0.5, 4), TaskSize(2, 8))
    risk = model.oom_risk(450 * 2**20, settings(task_size="0.25x0.5"))
    assert risk["risk"] and risk["ratio"] == pytest.approx(450 / 512)
    assert risk["recommended_task"] == "0.25x1"
    fine = model.oom_risk(100 * 2**20, settings(task_size="1x2"))
    assert not fine["risk"] and fine["recommended_task"] == "1x2" and fine["smallest_task"] == "0.25x0.5"
    killed = model.oom_risk(None, s, oom_killed=True)
    assert killed["risk"] and killed["oom_killed"]
    huge = model.oom_risk(200 * 2**30, s)
    assert huge["recommended_task"] is None and huge["smallest_task"] is None and "no valid Fargate size" in huge["note"]
    warn = model.oom_risk(450 * 2**20, settings(task_size="0.25x0.5", params=["oom_warn_ratio=0.95"]))
    assert not warn["risk"]


def test_default_calibration_is_labelled_low_confidence():
    e = model.estimate(layers(), settings(), cal.default_calibration(), 0.4, 1.0)
    assert e.confidence == "low" and any("--calibrate" in n for n in e.notes)


def test_predict_local_uses_local_rates():
    c = calib(per_connection_bytes_per_s=1e9)
    p = model.predict_local(layers(), c)
    extract = sum(u / 100e6 + f * 0.0005 + 0.05 for _, u, f in
                  ((0, 5 * MB, 100), (0, 120 * MB, 3000), (0, 10 * MB, 2)))
    assert p["pull_s"] == pytest.approx(0.05 + 2 * MB / 1e9 + extract, rel=1e-6)
    assert p["total_s"] == pytest.approx(p["pull_s"] + 0.3)


# --- calibration -------------------------------------------------------------------------------------------

def test_nnls_recovers_parameters_and_stays_non_negative():
    rng = random.Random(1)
    per_layer, per_byte, per_file = 0.08, 1 / 150e6, 0.0004
    samples = []
    for _ in range(40):
        u, f = rng.randint(0, 200 * MB), rng.randint(0, 20000)
        t = per_layer + u * per_byte + f * per_file
        samples.append(cal.ExtractSample(u, f, t * rng.uniform(0.98, 1.02)))
    fit = cal.fit_extraction(samples)
    assert fit["per_layer_s"] == pytest.approx(per_layer, rel=0.3)
    assert fit["bytes_per_s"] == pytest.approx(150e6, rel=0.05)
    assert fit["per_file_s"] == pytest.approx(per_file, rel=0.05)
    assert fit["r2"] > 0.99
    # time that falls with bytes would need a negative rate: NNLS pins it at zero instead
    odd = [cal.ExtractSample(u, 10, 1.0 - u / 1e9) for u in (0, 100 * MB, 200 * MB, 300 * MB)]
    fit = cal.fit_extraction(odd)
    assert fit["bytes_per_s"] == float("inf") and fit["per_layer_s"] >= 0 and fit["per_file_s"] >= 0
    with pytest.raises(cal.CalibrationError):
        cal.fit_extraction(odd[:2])


def _pull(layer_list, rates, t0=100.0, jitter=None) -> PullTiming:
    """A PullTiming the engine would report for ``layer_list`` pulled at ``rates`` (model timeline)."""
    from imagelint.estimate import simulate_pull
    tl = simulate_pull([lay.spec() for lay in layer_list], rates)
    p = PullTiming("x")
    p.start = t0
    for lay, t in zip(layer_list, tl.layers):
        lt = LayerTiming(lay.digest.split(":")[1][:12], lay.index)
        lt.download_start, lt.download_end = t0 + t["download_start"], t0 + t["download_end"]
        # the engine says "Extracting" a little after the layer could start: the sample must not lose that
        lt.extract_start = t0 + t["extract_start"] + 0.01
        lt.extract_end = t0 + t["extract_end"]
        p.layers.append(lt)
    p.end = t0 + tl.total + 0.01
    return p


def test_calibrate_from_synthetic_pulls_round_trips_the_model():
    truth = calib(per_connection_bytes_per_s=80e6, per_file_s=0.0004, per_layer_s=0.06, registry_s=0.07,
                  extract_bytes_per_s={"gzip": 150e6})
    from imagelint.measure.model import local_rates
    ls = [model.LayerInfo(i, f"sha256:{i:02d}" + "c" * 62, c, u, f) for i, (c, u, f) in enumerate(
        [(1 * MB, 2 * MB, 3), (20 * MB, 60 * MB, 4000), (50 * MB, 50 * MB, 5), (5 * MB, 20 * MB, 12000),
         (8 * MB, 30 * MB, 300)])]
    pulls = [(_pull(ls, local_rates(truth)), ls) for _ in range(3)]
    c = cal.calibrate(pulls, [0.3, 0.4, 0.35], {"host": "t"})
    assert c.per_file_s == pytest.approx(0.0004, rel=0.02)
    assert c.per_layer_s == pytest.approx(0.06, rel=0.05)
    assert c.extract_bytes_per_s["gzip"] == pytest.approx(150e6, rel=0.05)
    assert c.per_connection_bytes_per_s == pytest.approx(80e6, rel=0.05)
    assert c.registry_s == pytest.approx(0.07) and c.container_start_s == pytest.approx(0.35)
    assert c.extract_bytes_per_s["zstd"] > 0 and c.fit["n"] == 5
    pred = model.predict_local(ls, c, start_s=0)
    assert pred["pull_s"] == pytest.approx(pulls[0][0].seconds - 0.01, rel=0.02)


def test_samples_skip_cached_layers():
    ls = layers()
    p = _pull(ls, model.local_rates(calib()))
    p.layers[0].cached = True
    extract, download, _ = cal.samples_from_pull(p, ls)
    assert extract == [] and len(download) == 2


def test_calibration_save_load_cache_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    c = calib(identity={"host": "h1", "cpu": "c"})
    path = cal.save_calibration(c)
    assert path.startswith(str(tmp_path / "cache"))
    got = cal.load_calibration(identity={"host": "h1", "cpu": "c"})
    assert got.to_dict() == c.to_dict()
    assert cal.load_calibration(identity={"host": "other"}) is None
    f = tmp_path / "mine.json"
    cal.save_calibration(c, str(f))
    assert cal.load_calibration(str(f)).per_file_s == c.per_file_s
    assert cal.load_calibration(path, identity={"host": "h1", "cpu": "c"}).per_file_s == c.per_file_s  # a cache copy
    f.write_text("{}")
    with pytest.raises(cal.CalibrationError, match="version"):
        cal.load_calibration(str(f))
    f.write_text("not json")
    with pytest.raises(cal.CalibrationError, match="invalid JSON"):
        cal.load_calibration(str(f))


# --- outputs ---------------------------------------------------------------------------------------------

def fake_run(with_failure: bool = True) -> MeasureRun:
    s = settings(task_size="0.5x1", launches_per_day=50)
    run = MeasureRun(s)
    run.calibration, run.calibration_origin, run.engine = calib(), "cache", "private"
    ls = layers()
    r = ImageResult("api:2.3")
    m = ImageMeasurement("api:2.3", runs=2, task="0.5x1", probe="http:8080/health", engine="private")
    m.pulled_ref = "127.0.0.1:5000/api:2.3"
    for k in range(2):
        p = _pull(ls, model.local_rates(calib()), t0=10.0 * k)
        m.pulls.append(p)
        st = StartTiming("api:2.3", parse_probe("http:8080/health"))
        st.task, st.vcpu, st.memory_limit = "0.5x1", 0.5, 2**30
        st.create_begin, st.created, st.started, st.ready = p.end, p.end + 0.1, p.end + 0.3, p.end + 1.5
        st.peak_memory = 900 * 2**20
        m.cold_starts.append(st)
    r.measurement, r.layers = m, ls
    run.results.append(r)
    if with_failure:
        bad = ImageResult("batch:1.9<&>")
        bm = ImageMeasurement("batch:1.9<&>", runs=2)
        bm.error, bm.error_kind = "image batch:1.9 not found in its registry", "not-found"
        bad.measurement, bad.error = bm, bm.error
        run.results.append(bad)
    for res in run.results:
        _model(res, run, None)
    return run


def test_table_shows_every_image_and_term():
    out = render_table(fake_run())
    for text in ("api:2.3", "batch:1.9<&> (FAILED)", "provisioning", "registry", "download", "extract tail",
                 "container start", "ready", "billed", "zstd layers", "task 0.25x1", "task 1x2", "OOM!",
                 "$/month (50/day)", "fits with headroom: 0.5x2 at 0.5 vCPU, 0.25x2 smallest of all", "SOCI lazy loading: does not apply",
                 "not found in its registry"):
        assert text in out, text


SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "measure.md")


def report_schema() -> dict:
    """The JSON schema documented in docs/measure.md (the ```json block after 'JSON schema')."""
    text = open(SCHEMA_PATH, encoding="utf-8").read()
    start = text.index("```json", text.index("## JSON schema")) + len("```json")
    return json.loads(text[start:text.index("```", start)])


def test_json_matches_documented_schema():
    import jsonschema
    doc = json.loads(render_json(fake_run()))
    jsonschema.validate(doc, report_schema())
    assert doc["version"] == 1
    good, bad = doc["images"]
    assert good["ok"] and not bad["ok"] and bad["error_kind"] == "not-found"
    assert good["measurement"]["pulls"][0]["layers"][0]["download_start"] is not None  # raw timings
    assert good["estimate"]["terms"]["provisioning_s"]["source"]
    assert doc["settings"]["parameters"]["per_connection_mb_s"]["source"]
    assert doc["calibration"]["origin"] == "cache"
    assert good["oom"]["risk"] is True and good["oom"]["recommended_task"] == "0.5x2"
    assert good["oom"]["smallest_task"] == "0.25x2"


def test_svg_is_well_formed_and_has_both_panels(tmp_path):
    run = fake_run()
    svg = waterfall_svg(run.results[0], run.settings)
    root = ET.fromstring(svg.encode())
    assert root.tag.endswith("svg")
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "Measured here" in texts and "Predicted on Fargate" in texts and "billing starts" in texts
    assert texts.count("L1 40.0 MB → 120.0 MB, 3000 entries") == 2  # measured and predicted panels
    assert texts.count("L0 2.0 MB") == 2 and texts.count("L2 10.0 MB") == 2
    rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))
    assert len(rects) > 12
    ET.fromstring(waterfall_svg(run.results[1], run.settings).encode())  # a failed image still renders
    page = waterfall_html(run)
    assert page.count("<svg") == 2 and "&lt;&amp;&gt;" in page
    files = write_waterfalls(run, str(tmp_path / "wf"))
    assert len(files) == 3 and all(os.path.getsize(f) for f in files)
    for f in files[:2]:
        ET.parse(f)
    assert write_waterfalls(run, str(tmp_path / "one.html")) == [str(tmp_path / "one.html")]


def test_progress_plain_lines_tty_line_and_quiet():
    plain = io.StringIO()
    p = Progress(plain, tty=False, runs=3)
    p("api", "pull", 1)
    p("api", "pull", 1)
    p("api", "start", 1)
    assert plain.getvalue().splitlines() == ["api: cold pull (run 1/3)", "api: cold start (run 1/3)"]
    tty = io.StringIO()
    p = Progress(tty, tty=True)
    p("api", "pull", 2)
    p.finish()
    assert tty.getvalue().startswith("\rapi: cold pull (run 2)") and "\n" not in tty.getvalue()
    quiet = io.StringIO()
    Progress(quiet, quiet=True)("api", "pull", 1)
    assert quiet.getvalue() == ""
