"""The run report: ``report.json`` in the output folder, and ``report.html`` beside it (medcolor.report_html).

Holds per series and per slice the |ΔL| figures after the 8-bit RGB round trip, colourfulness
(Hasler–Süsstrunk), PSNR/SSIM of the output's L against the windowed input, method and parameters,
device and timings, and the status of every input file. No patient name or ID: every string that may
carry one goes through the run's PhiRedactor.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medcolor import __version__

if TYPE_CHECKING:  # pragma: no cover
    from medcolor.pipeline import RunOptions
    from medcolor.privacy import PhiRedactor
    from medcolor.types import RunResult

log = logging.getLogger("medcolor")

REPORT_NAME = "report.json"
DELTA_L_BOUNDS = {"mean": 0.5, "p99": 1.5}  # L units, after the 8-bit RGB round trip


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become strings, paths strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def build_report(result: "RunResult", options: "RunOptions", redact: "PhiRedactor", seconds: float) -> dict:
    counts = result.counts()
    series = []
    for s in result.series:
        d = asdict(s)
        summary = s.summary
        d["delta_l_within_bounds"] = bool(summary) and (
            summary.get("delta_l_mean", 99) <= DELTA_L_BOUNDS["mean"]
            and summary.get("delta_l_p99_max", 99) <= DELTA_L_BOUNDS["p99"])
        series.append(d)
    opts = {
        "method": options.method,
        "reference": redact(str(options.reference)) if options.reference else "(default: shipped beef_marbled.jpg)"
        if options.method == "exemplar" else None,
        "window": options.window or "default",
        "device": options.device,
        "format": options.fmt,
        "multiframe": options.multiframe,
        "batch_size": options.batch_size,
        "exemplar_mode": options.exemplar_mode if options.method == "exemplar" else None,
        "deidentify": options.deidentify,
    }
    return _clean({
        "medcolor_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": result.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "options": opts,
        "delta_l_bounds": DELTA_L_BOUNDS,
        "seconds": round(seconds, 3),
        "counts": counts,
        "series": series,
        "files": [{"path": redact(str(o.path)), "status": o.status, "reason": redact(o.reason)}
                  for o in result.outcomes],
    })


def write_json_atomic(path: Path, data: Any) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report(out_dir: Path, result: "RunResult", options: "RunOptions", redact: "PhiRedactor",
                 seconds: float, title: str = "medcolor run", extra: dict[str, Any] | None = None) -> Path:
    """``report.json`` and, beside it, the self-contained ``report.html`` (see medcolor.report_html).
    ``extra`` adds per-series keys by label (e.g. ``{"S001_CT": {"resumed": True}}``)."""
    data = build_report(result, options, redact, seconds)
    for s in data["series"]:
        s.update((extra or {}).get(s["label"], {}))
    path = write_json_atomic(Path(out_dir) / REPORT_NAME, data)
    try:
        from medcolor.report_html import write_html_report

        write_html_report(Path(out_dir), data, title=title)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the HTML view must never fail a run; report.json is written
        log.warning("report.html was not written: %s: %s", type(exc).__name__, redact(str(exc)))
    return path
