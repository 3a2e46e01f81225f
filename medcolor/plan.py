"""``--dry-run``: the series ``run`` would colour and what it would write, without writing anything.

``plan_run(inputs, options)`` scans the inputs (headers only, as ``run`` does first) and, per series, gives
the output folder ``run`` would use, its window (the name; a percentile window's numbers need the pixels,
so they are left to the real run) and the files it would write. Nothing is created, not even ``-o``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medcolor.errors import MedcolorError
from medcolor.types import FileOutcome

__all__ = ["PlannedSeries", "Plan", "plan_run"]


@dataclass
class PlannedSeries:
    label: str            # S001_CT ...
    source: str           # the input file or folder (through the PhiRedactor)
    modality: str
    n_slices: int
    window: str           # the window the run would use, or why it would fail
    folder: str           # the output folder, relative to -o
    writes: str           # e.g. "6 DICOM SC + 6 PNG"


@dataclass
class Plan:
    output: Path
    series: list[PlannedSeries] = field(default_factory=list)
    outcomes: list[FileOutcome] = field(default_factory=list)   # inputs in no series (skipped/failed)
    reports: tuple[str, ...] = ("report.json", "report.html")


def _writes(fmt: str, n: int, multiframe: bool) -> str:
    parts = []
    if fmt in ("dicom", "both"):
        parts.append("1 multi-frame DICOM SC" if multiframe else f"{n} DICOM SC")
    if fmt in ("png", "tiff", "both"):
        parts.append(f"{n} {'TIFF' if fmt == 'tiff' else 'PNG'}")
    return " + ".join(parts)


def plan_run(inputs: Sequence[str | Path], options: Any) -> Plan:
    """What ``run(inputs, options)`` would do (see the module docstring); reads headers, writes nothing."""
    from medcolor.io import scan
    from medcolor.privacy import PhiRedactor
    from medcolor.windowing import parse_window_spec, resolve_window
    from medcolor.writers._files import series_dir

    found = scan(inputs)
    redact = PhiRedactor.from_series(found.series, enabled=not options.report_phi)
    plan = Plan(output=Path(options.output), outcomes=[FileOutcome(o.path, o.status, redact(o.reason))
                                                       for o in found.outcomes])
    spec = parse_window_spec(options.window)
    for number, series in enumerate(found.series, start=1):
        folder = series_dir(Path(options.output), number, series.modality)
        needs_pixels = spec.kind == "percentile" or (spec.kind == "default" and not series.file_windows
                                                     and not series.is_hu and series.kind != "image")
        if needs_pixels:
            window = f"{'percentile' if spec.kind == 'percentile' else 'default'}: from the pixels"
        else:
            try:
                window = resolve_window(options.window, series, None).describe()
            except MedcolorError as exc:
                window = f"would fail: {exc.what}"
        plan.series.append(PlannedSeries(label=folder.name, source=redact(series.source_label),
                                          modality=series.modality, n_slices=len(series.slices),
                                          window=redact(window), folder=folder.name,
                                          writes=_writes(options.fmt, len(series.slices), options.multiframe)))
    return plan
