"""``imagelint measure``: measure each image, read its layers, calibrate, and estimate.

Order of work: validate every setting first (no engine is touched for a bad task size), open one
:class:`MeasureSession`, calibrate if asked (or load a calibration), measure the images one by one
(a failed image gets its one-line error and the others go on), read each measured image's layers
from the registry it was pulled from (sizes, entries, zstd size), then model.

Calibration, in order of preference: ``--calibrate`` (a generated calibration image, pushed and
pulled like the others), ``--calibration FILE``, the cache entry for this machine and engine, a fit
on the measured images' own cold pulls, and last the built-in defaults (labelled as such).
"""
from __future__ import annotations

import statistics
import time

from imagelint.measure import calibrate as cal
from imagelint.measure import model

__all__ = ["ImageResult", "MeasureRun", "run_measure", "REPORT_VERSION"]

REPORT_VERSION = 1


class ImageResult:
    """Everything about one image: raw measurement, layers, estimate, what-ifs, OOM check."""

    def __init__(self, ref: str):
        self.ref = ref
        self.measurement = None  # session.ImageMeasurement
        self.layers: list = []  # model.LayerInfo
        self.estimate = None  # model.Estimate
        self.what_ifs: list = []
        self.oom = None
        self.local = None  # the model's local prediction vs the measured pull+start
        self.warnings: list = []
        self.error = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def start_seconds(self):
        """Median local create+start of the cold starts."""
        m = self.measurement
        vals = [s.create_seconds + s.start_seconds for s in (m.cold_starts if m else [])
                if s.create_seconds is not None and s.start_seconds is not None]
        return statistics.median(vals) if vals else None

    def ready_seconds(self):
        m = self.measurement
        st = m.cold_ready_seconds() if m else None
        return st["median"] if st else None

    def to_dict(self) -> dict:
        m = self.measurement
        return {"ref": self.ref, "ok": self.ok, "error": self.error,
                "error_kind": getattr(m, "error_kind", None), "warnings": list(self.warnings),
                "measurement": m.to_dict() if m else None,
                "layers": [lay.to_dict() for lay in self.layers],
                "estimate": self.estimate.to_dict() if self.estimate else None,
                "what_ifs": [w.to_dict() for w in self.what_ifs], "oom": self.oom, "local_model": self.local}


class MeasureRun:
    def __init__(self, settings):
        self.settings = settings
        self.results: list = []
        self.calibration = None
        self.calibration_origin = None  # measured | file | cache | fitted-on-images | default
        self.engine = None
        self.warnings: list = []
        self.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    @property
    def failed(self) -> list:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict:
        calib = self.calibration.to_dict() if self.calibration else None
        if calib is not None:
            calib["origin"] = self.calibration_origin
        return {"version": REPORT_VERSION, "tool": "imagelint measure", "created": self.created,
                "engine": self.engine, "settings": self.settings.to_dict(), "calibration": calib,
                "warnings": list(self.warnings), "images": [r.to_dict() for r in self.results]}


def _progress(on_progress, ref: str, phase: str, run: int = 0, detail=None) -> None:
    if on_progress is not None:
        on_progress(ref, phase, run, detail or {})


def _layers_for(result: ImageResult, zstd: bool, on_progress) -> None:
    """Read the measured image's layers from where it was pulled; fall back to the local engine."""
    from imagelint.image import ImageError
    ref = result.measurement.pulled_ref or result.ref
    _progress(on_progress, result.ref, "layers")
    try:
        result.layers = model.read_layer_facts(ref, zstd=zstd)
        return
    except ImageError as e:
        first = str(e)
    try:
        from imagelint.sources import load_image
        result.layers = model.layer_facts_from_image(load_image(result.ref, hash_content=False))
        result.warnings.append(f"layers read from the local engine (registry read failed: {first}); compressed "
                               "sizes are estimates and there is no zstd what-if")
    except ImageError as e:
        result.warnings.append(f"cannot read the layers of {ref}: {first}; no estimate ({e})")


def _calibrate_now(session, run: MeasureRun, identity: dict, runs: int, on_progress, save_to) -> None:
    """Build, push and measure the calibration image; fit; save to the cache (and ``save_to``)."""
    import uuid
    if not session.push_to:
        raise cal.CalibrationError("--calibrate needs --push-to REGISTRY: the calibration image is pushed there "
                                   "and its pulls are timed")
    user = session._user_client()
    tag = f"imagelint-calibration:{uuid.uuid4().hex[:12]}"
    _progress(on_progress, "calibration", "build")
    try:
        session.ledger.add("tag", "current", tag)  # removed with the session, also on Ctrl-C
        session._preexisting[("current", tag)] = None
        cal.build_calibration_image(user, tag)
        m = session.measure(tag, runs=max(runs, 3), task_size=None, probe="exit", ready_timeout=60)
        if not m.ok:
            raise cal.CalibrationError(f"calibration image: {m.error}")
        _progress(on_progress, "calibration", "layers")
        layers = model.read_layer_facts(m.pulled_ref, zstd=False)
        starts = [s.create_seconds + s.start_seconds for s in m.cold_starts
                  if s.create_seconds is not None and s.start_seconds is not None]
        calib = cal.calibrate([(p, layers) for p in m.pulls], starts, identity, image="generated calibration image")
    finally:
        try:
            user.api.remove_image(tag, force=False, noprune=False)
        except Exception:
            pass  # already gone; the session's ledger retries
    cal.save_calibration(calib)
    if save_to:
        cal.save_calibration(calib, save_to)
    run.calibration, run.calibration_origin = calib, "measured"


def _fit_on_images(run: MeasureRun, identity: dict):
    pairs, starts = [], []
    for r in run.results:
        if r.measurement is None or not r.layers:
            continue
        pairs += [(p, r.layers) for p in r.measurement.pulls if p.cold]
        starts += [s.create_seconds + s.start_seconds for s in r.measurement.cold_starts
                   if s.create_seconds is not None and s.start_seconds is not None]
    if not pairs:
        return None
    try:
        calib = cal.calibrate(pairs, starts, identity, image="the measured images")
    except cal.CalibrationError:
        return None
    calib.source = "fitted on the measured images"
    return calib


def run_measure(images: list, settings, runs: int = 3, probe: str = "exit", ready_timeout: float = 60.0,
                engine: str = "auto", push_to: str = None, calibrate: bool = False, calibration_file: str = None,
                on_progress=None, zstd: bool = True, pull_timeout: float = 1800.0) -> MeasureRun:
    """Measure ``images`` and model them. Only KeyboardInterrupt and setting errors propagate;
    per-image faults end up in each result's ``error``."""
    import os
    from imagelint.measure.session import MeasureSession

    run = MeasureRun(settings)
    if calibration_file and not calibrate:
        if not os.path.exists(calibration_file):
            raise cal.CalibrationError(f"{calibration_file}: no such calibration file (create it with --calibrate "
                                       f"--calibration {calibration_file})")
        run.calibration, run.calibration_origin = cal.load_calibration(calibration_file), "file"
    with MeasureSession(engine=engine, push_to=push_to, on_progress=on_progress) as session:
        run.engine = session.engine_kind
        run.warnings += list(session.warnings)
        info = None
        if session.client is not None:
            try:
                info = session.client.info()
            except Exception:
                info = None
        identity = cal.machine_identity(info)
        if calibrate:
            try:
                _calibrate_now(session, run, identity, runs, on_progress, calibration_file)
            except cal.CalibrationError as e:
                run.warnings.append(f"calibration failed: {e}")
            except Exception as e:  # noqa: BLE001 - engine/registry trouble: say so, go on
                run.warnings.append(f"calibration failed: {' '.join(str(e).split())}")
        if run.calibration is None:
            cached = cal.load_calibration(identity=identity)
            if cached is not None:
                run.calibration, run.calibration_origin = cached, "cache"
        for ref in images:
            result = ImageResult(ref)
            run.results.append(result)
            m = session.measure(ref, runs=runs, task_size=settings.task, probe=probe, ready_timeout=ready_timeout,
                                pull_timeout=pull_timeout)
            result.measurement = m
            result.warnings += list(m.warnings)
            if not m.ok:
                result.error = m.error
            if m.pulls:
                _layers_for(result, zstd, on_progress)
        run.warnings += [w for w in session.warnings if w not in run.warnings]
    if run.calibration is None:
        fitted = _fit_on_images(run, identity)
        if fitted is not None:
            run.calibration, run.calibration_origin = fitted, "fitted-on-images"
        else:
            run.calibration, run.calibration_origin = cal.default_calibration(), "default"
            run.warnings.append("no calibration for this machine: extraction rates are built-in defaults; run "
                                "once with --calibrate --push-to REGISTRY for measured rates")
    for result in run.results:
        _model(result, run, on_progress)
    return run


def _model(result: ImageResult, run: MeasureRun, on_progress) -> None:
    m = result.measurement
    settings, calib = run.settings, run.calibration
    if m is not None:
        peak = m.peak_memory
        if peak is not None or m.oom_killed:
            result.oom = model.oom_risk(peak, settings, oom_killed=m.oom_killed)
    if not result.layers:
        return
    _progress(on_progress, result.ref, "model")
    start, ready = result.start_seconds(), result.ready_seconds()
    result.estimate = model.estimate(result.layers, settings, calib, start, ready)
    if result.ok:
        result.what_ifs = model.what_ifs(result.layers, settings, calib, start, ready,
                                         peak_memory=m.peak_memory if m else None)
    else:
        result.estimate.notes.append("the app did not get ready here: readiness is missing from the estimate")
    pred = model.predict_local(result.layers, calib, concurrency=3, start_s=None)
    measured = m.cold_total_seconds() if m else None
    pulls = m.pull_seconds() if m else None
    if measured or pulls:
        starts = [s.create_seconds + s.start_seconds for s in m.cold_starts
                  if s.create_seconds is not None and s.start_seconds is not None]
        meas_total = statistics.median(p.seconds + s for p, s in zip(m.pulls, starts)) if starts else None
        result.local = {"predicted_pull_s": pred["pull_s"], "predicted_start_s": pred["start_s"],
                        "predicted_s": pred["total_s"], "measured_pull_s": pulls["median"] if pulls else None,
                        "measured_s": meas_total,
                        "error_pct": (100.0 * (pred["total_s"] - meas_total) / meas_total) if meas_total else None}
