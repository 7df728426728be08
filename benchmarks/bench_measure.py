"""Does the model predict what it measures? `imagelint measure`'s model against real local pulls.

Builds three fixture images with the local engine (FROM scratch + busybox + generated content):
a few MB, ~100 MB and ≥ 400 MB, and a SEPARATE generated calibration image. Starts a local
registry (Debian docker-registry on 127.0.0.1), pushes everything there, and in one measuring
session (a private throwaway dockerd when possible, so every pull is cold):

1. pulls the calibration image cold (3 runs) and fits this machine's rates on it only;
2. pulls each fixture image cold (--runs, default 3) and starts a container each time;
3. compares the model's predicted LOCAL pull + create/start time — the calibrated rates plugged into
   the same model (imagelint.estimate.simulate_pull, 3 concurrent downloads, serial extraction) —
   with the measured median, per image (absolute percentage error) and overall (MAPE; target ≤ 10 %).

Prints the table and writes it into benchmarks/README.md ("measure model accuracy" section).
Everything it creates (images, registry, engine, temp dirs) is removed at the end, also on errors.

    python benchmarks/bench_measure.py [--runs 3] [--no-readme]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

README = os.path.join(ROOT, "benchmarks", "README.md")
SECTION = "## measure model accuracy"

# the three sizes are fixture images shared with tests/test_measure_sizes.py
SIZES = ("small", "medium", "large")


def _fixture(name: str) -> tuple:
    """(description, Dockerfile text) of fixtures/images/measure-<name>."""
    with open(os.path.join(ROOT, "fixtures", "images", f"measure-{name}", "Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    first = text.splitlines()[0]
    return first.lstrip("# ").split(" (imagelint measure")[0], text


IMAGES = {name: _fixture(name) for name in SIZES}


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _fmt_mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def run(runs: int, write_readme: bool) -> float:
    from images import ImageBuilder, engine_client
    from registry import LocalRegistry

    from imagelint.measure import calibrate as cal
    from imagelint.measure import model
    from imagelint.measure.session import MeasureSession

    t_begin = time.monotonic()
    load_before = _load()
    client = engine_client()
    builder = ImageBuilder(client)
    registry = None
    cal_tag = f"imagelint-test-calibration:{uuid.uuid4().hex[:10]}"
    rows = []
    try:
        tags = {}
        for name in IMAGES:
            print(f"building {name} ...", file=sys.stderr, flush=True)
            tags[name] = builder.build(f"measure-{name}")
        print("building the calibration image ...", file=sys.stderr, flush=True)
        cal.build_calibration_image(client, cal_tag)
        registry = LocalRegistry().start()

        def progress(ref, phase, run_no, detail=None):
            if phase in ("pull", "start", "push", "engine") and not (detail or {}).get("event"):
                print(f"  {ref or ''} {phase} {run_no or ''}", file=sys.stderr, flush=True)

        with MeasureSession(engine="auto", push_to=registry.host, on_progress=progress) as session:
            if session.engine_error:
                raise SystemExit(f"no measuring engine: {session.engine_error}")
            engine_kind = session.engine_kind
            identity = cal.machine_identity(session.client.info())
            print("calibrating ...", file=sys.stderr, flush=True)
            m = session.measure(cal_tag, runs=3, task_size=None, probe="exit")
            if not m.ok:
                raise SystemExit(f"calibration image: {m.error}")
            cal_layers = model.read_layer_facts(m.pulled_ref, zstd=False)
            starts = [s.create_seconds + s.start_seconds for s in m.cold_starts]
            calib = cal.calibrate([(p, cal_layers) for p in m.pulls], starts, identity,
                                  image="generated calibration image")
            for name, tag in tags.items():
                print(f"measuring {name} ...", file=sys.stderr, flush=True)
                m = session.measure(tag, runs=runs, task_size=None, probe="exit")
                if not m.ok:
                    raise SystemExit(f"{name}: {m.error}")
                layers = model.read_layer_facts(m.pulled_ref, zstd=False)
                # the model's container-start term is the image's own measured create+start (as in the
                # Fargate estimate); the pull is predicted from the calibration alone
                start = statistics.median(s.create_seconds + s.start_seconds for s in m.cold_starts)
                pred = model.predict_local(layers, calib, concurrency=3, start_s=start)
                measured = [p.seconds + s.create_seconds + s.start_seconds for p, s in zip(m.pulls, m.cold_starts)]
                med = statistics.median(measured)
                pull_med = statistics.median(p.seconds for p in m.pulls)
                rows.append({"name": name, "what": IMAGES[name][0], "layers": len(layers),
                             "compressed": sum(x.compressed for x in layers),
                             "uncompressed": sum(x.uncompressed for x in layers),
                             "entries": sum(x.files for x in layers), "predicted": pred["total_s"],
                             "measured": med, "min": min(measured), "max": max(measured),
                             "ape": abs(pred["total_s"] - med) / med * 100, "start": start,
                             "pred_pull": pred["pull_s"], "pull": pull_med,
                             "pull_ape": abs(pred["pull_s"] - pull_med) / pull_med * 100, "warnings": m.warnings})
    finally:
        try:
            client.images.remove(cal_tag, force=True)
        except Exception:
            pass
        builder.cleanup()
        if registry is not None:
            registry.stop()
    mape = statistics.mean(r["ape"] for r in rows)
    pull_mape = statistics.mean(r["pull_ape"] for r in rows)
    elapsed = time.monotonic() - t_begin
    table = _table(rows, mape, pull_mape)
    header = (f"Calibration (separate generated image, 3 cold pulls): per-connection download "
              f"{calib.per_connection_bytes_per_s / 1e6:.0f} MB/s, gzip extraction "
              f"{calib.extract_bytes_per_s['gzip'] / 1e6:.0f} MB/s, {calib.per_file_s * 1e3:.3f} ms per entry, "
              f"{calib.per_layer_s * 1e3:.0f} ms per layer, registry {calib.registry_s * 1e3:.0f} ms, "
              f"create+start {calib.container_start_s:.2f} s (fit R² {calib.fit['r2']:.2f}).")
    print()
    print(header)
    print(table)
    print(f"\nMAPE {mape:.1f} % (target ≤ 10 %); engine {engine_kind}; load average before {load_before}, "
          f"after {_load()}; {elapsed:.0f} s")
    if write_readme:
        _write_readme(header, table, mape, runs, engine_kind, load_before, elapsed)
    return mape


def _table(rows: list, mape: float, pull_mape: float) -> str:
    lines = ["| image | layers | compressed MB | uncompressed MB | entries | pull predicted / measured s "
             "| pull error | create+start s (measured) | pull+start predicted s | pull+start measured s "
             "(median, min–max) | abs. error |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} ({r['what']}) | {r['layers']} | {_fmt_mb(r['compressed'])} | "
                     f"{_fmt_mb(r['uncompressed'])} | {r['entries']} | {r['pred_pull']:.2f} / {r['pull']:.2f} | "
                     f"{r['pull_ape']:.1f} % | {r['start']:.2f} | {r['predicted']:.2f} | "
                     f"{r['measured']:.2f} ({r['min']:.2f}–{r['max']:.2f}) | {r['ape']:.1f} % |")
    lines.append(f"| **mean absolute percentage error** | | | | | | **{pull_mape:.1f} %** | | | | **{mape:.1f} %** |")
    return "\n".join(lines)


def _write_readme(header: str, table: str, mape: float, runs: int, engine: str, load: str, elapsed: float) -> None:
    body = "\n".join([
        SECTION, "",
        "`python benchmarks/bench_measure.py` — the model's predicted local cold pull + container create/start "
        "(this machine's rates, fitted on a separate generated calibration image, plugged into the same model "
        "that estimates Fargate; 3 concurrent downloads, serial extraction; the container-start term is the "
        "image's measured create+start, as in the Fargate estimate) against the measured median of "
        f"{runs} cold pulls + starts per image (private throwaway engine: `{engine}`, local registry).", "",
        header, "", table, "",
        f"Target: MAPE ≤ 10 %. Measured {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average "
        f"{load} at the start (other work on the machine adds noise to single runs), {elapsed:.0f} s in all.", ""])
    text = ""
    if os.path.exists(README):
        with open(README, encoding="utf-8") as f:
            text = f.read()
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(body.rstrip("\n") + "\n", text)
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "# Benchmarks\n\n") + body
    with open(README, "w", encoding="utf-8") as f:
        f.write(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    run(args.runs, not args.no_readme)


if __name__ == "__main__":
    main()
