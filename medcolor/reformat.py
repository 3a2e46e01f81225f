"""Multi-planar reformats (``--reformat axial|coronal|sagittal``): one volume in, one derived series per plane.

Per source series: the whole series is assembled as a SimpleITK image with its patient geometry
(``medcolor.io.series_image``); the window is resolved and the backend prepared ONCE, on the source's own
sample slices; then each plane is resampled with SimpleITK (linear; isotropic in-plane spacing, by default
the finest spacing of the source, else ``--reformat-spacing``; slices at the source's spacing along the
plane's normal) and goes through the normal per-slice pipeline (``pipeline.colour_series``) as its own
output series: a new SeriesInstanceUID, SourceImageSequence naming every source image, ImageOrientation/
Position and PixelSpacing of the plane, and the plane and its spacing in DerivationDescription. The
backend's series state is shared by every plane, so colours agree across planes.

Plane axes in the patient (LPS), as DICOM viewers show them: axial columns to the patient's left, rows to
posterior; coronal columns to the left, rows to inferior; sagittal columns to posterior, rows to inferior.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medcolor.colorizers.base import Colorizer
from medcolor.errors import MedcolorError
from medcolor.io import Geometry, read_slice, series_geometry, series_image
from medcolor.io._volume import array_series, register_array, release_array
from medcolor.types import FileOutcome, Series, SeriesContext, SeriesResult
from medcolor.windowing import resolve_window, window_to_l

__all__ = ["PLANES", "parse_planes", "check_options", "plane_geometry", "resample", "colour_planes"]

# (column axis, row axis) in LPS; the slice axis is their cross product
PLANES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


def parse_planes(values: str | Sequence[str] | None) -> tuple[str, ...]:
    """``--reformat`` values (repeated and/or comma lists) -> plane names in the order given, without
    repeats. MedcolorError (``--reformat``) for an unknown name."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    planes: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in PLANES:
                raise MedcolorError(f"unknown plane {name!r}", where="--reformat",
                                    hint=f"use {', '.join(PLANES)} (several: --reformat coronal,sagittal)")
            if name not in planes:
                planes.append(name)
    return tuple(planes)


def check_options(planes: tuple[str, ...], spacing: float | None, multiframe: bool) -> None:
    """MedcolorError for ``--reformat-spacing`` that is not a positive number, or ``--multiframe`` with planes
    (a multi-frame SC references its sources per frame; a plane's frames each derive from every source)."""
    if spacing is not None and not (math.isfinite(spacing) and spacing > 0):
        raise MedcolorError(f"reformat spacing must be a positive number of mm, got {spacing:g}",
                            where="--reformat-spacing", hint="e.g. --reformat-spacing 1.0")
    if planes and multiframe:
        raise MedcolorError("--multiframe is not available with --reformat", where="--reformat",
                            hint="drop --multiframe: each plane is written as single-frame SC images")


def plane_geometry(source: Geometry, size: Sequence[int], plane: str,
                   spacing: float | None = None) -> tuple[Geometry, tuple[int, int, int]]:
    """The plane's grid covering the source volume (``size``: its i, j, k sizes): (geometry, (cols, rows,
    slices))."""
    col, row = (np.asarray(v) for v in PLANES[plane])
    axes = np.stack([col, row, np.cross(col, row)], axis=1)                        # columns: the plane's axes
    src = source.matrix
    in_plane = spacing or float(min(source.spacing))
    along = int(np.argmax(np.abs(src.T @ axes[:, 2])))                              # source axis nearest the normal
    steps = (in_plane, in_plane, float(source.spacing[along]) if spacing is None else in_plane)
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    coords = source.to_lps(corners) @ axes                                          # corners in the plane's axes
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    counts = tuple(int(math.floor((hi[a] - lo[a]) / steps[a] + 1e-6)) + 1 for a in range(3))
    origin = axes @ lo
    return Geometry(tuple(float(v) for v in origin), steps, tuple(float(v) for v in axes.reshape(-1))), counts


def resample(image, plane: str, spacing: float | None = None, integral: bool = False):  # noqa: ANN001, ANN201
    """``image`` (float32 SimpleITK image, with its geometry) resampled onto ``plane``'s grid, linear; outside:
    its minimum. ``integral``: the source holds whole numbers (HU, stored values), so the interpolated values
    are rounded to whole numbers too (at most 0.5 from the linear value; the per-series value table then
    applies, as on the source)."""
    import SimpleITK as sitk

    geometry, counts = plane_geometry(Geometry.of_image(image), image.GetSize(), plane, spacing)
    low = float(sitk.GetArrayViewFromImage(image).min())
    out = sitk.Resample(image, [int(c) for c in counts], sitk.Transform(), sitk.sitkLinear,
                        geometry.origin, geometry.spacing, geometry.direction, low, sitk.sitkFloat32)
    if integral:
        out = sitk.Round(out)
    return out, geometry


class _Prepared:
    """The backend, prepared once per volume: the first plane's ``prepare`` call (made by the pipeline, with
    its thread settings) prepares it on the SOURCE's context and sample L; later calls keep that state.
    ``reformat`` (set per plane) goes into the provenance. Everything else is the backend itself."""

    def __init__(self, colorizer: Colorizer, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        self._colorizer = colorizer
        self._source: tuple[SeriesContext, torch.Tensor] | None = (ctx, sample_L)
        self.reformat = ""

    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:  # noqa: ARG002 - the source's
        if self._source is not None:
            self._colorizer.prepare(*self._source)
            self._source = None

    def provenance(self) -> dict[str, Any]:
        prov = dict(self._colorizer.provenance())
        prov["parameters"] = {**dict(prov.get("parameters", {})), "reformat": self.reformat}
        return prov

    def __getattr__(self, name: str) -> Any:
        return getattr(self._colorizer, name)


def _reference(series: Series, geometry: Geometry, counts: tuple[int, int, int]):  # noqa: ANN202
    """The source's first header with the plane's orientation, size and spacing (None without one)."""
    first = series.slices[0].dataset
    if first is None:
        return None
    ds = copy.deepcopy(first)
    m = geometry.matrix
    ds.ImageOrientationPatient = [round(float(v), 6) for v in (*m[:, 0], *m[:, 1])]
    ds.PixelSpacing = [round(float(geometry.spacing[1]), 6), round(float(geometry.spacing[0]), 6)]
    ds.Columns, ds.Rows = int(counts[0]), int(counts[1])
    for keyword in ("ImagePositionPatient", "SliceLocation", "SliceThickness"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def plane_series(series: Series, image, plane: str, spacing: float | None = None,  # noqa: ANN001
                 integral: bool = False) -> tuple[Series, Path]:
    """The reformatted ``plane`` of ``image`` (the volume of ``series``; ``integral``: see ``resample``) as an
    in-memory Series of kind "volume" (release it with ``medcolor.io._volume.release_array(name)``)."""
    import SimpleITK as sitk

    out, geometry = resample(image, plane, spacing, integral)
    counts = tuple(int(c) for c in out.GetSize())
    name = register_array(sitk.GetArrayFromImage(out), geometry, plane)
    label = f"{series.source_label} ({plane})"
    planar = array_series(name, series.modality, series.is_hu, label)
    reference = _reference(series, geometry, counts)  # type: ignore[arg-type]
    for ref in planar.slices:
        ref.dataset = reference
    return dataclasses.replace(planar, study_instance_uid=series.study_instance_uid,
                               series_instance_uid=series.series_instance_uid,
                               file_windows=list(series.file_windows), photometric=series.photometric,
                               derived_from=[r for r in series.slices if r.dataset is not None],
                               warnings=list(series.warnings)), name


def describe(plane: str, geometry: Geometry) -> str:
    sx, sy, sz = geometry.spacing
    return f"{plane} {sx:.3g}x{sy:.3g} mm, slices {sz:.3g} mm, linear (SimpleITK)"


ColourSeries = Callable[..., tuple[SeriesResult, list[FileOutcome]]]


def colour_planes(series: Series, first_number: int, planes: Sequence[str], options: Any, colorizer: Colorizer,
                  device: torch.device, colour_series: ColourSeries, sample_slices: Sequence[int],
                  **kwargs: Any) -> tuple[list[SeriesResult], list[FileOutcome]]:
    """Colour ``planes`` of ``series`` as output series ``first_number``, ``first_number + 1``, ... through
    ``colour_series`` (``pipeline.colour_series``, with ``kwargs``: out_dir, redactor, uid_map, progress).
    The window and the backend's state come from the source's slices ``sample_slices``, once. Returns the
    planes' results and one outcome per source file (failed when any plane failed); a series that cannot be
    assembled as a volume gives one failed result saying why."""
    try:
        return _colour_planes(series, first_number, planes, options, colorizer, device, colour_series,
                              sample_slices, **kwargs)
    except MedcolorError as err:
        reason = kwargs["redactor"](err.one_line())
        result = SeriesResult(label=f"S{first_number:03d}_{series.modality}", modality=series.modality,
                              kind=series.kind, n_slices=len(series.slices), rows=series.rows,
                              columns=series.columns, status="failed", error=reason)
        return [result], [FileOutcome(p, "failed", reason) for p in dict.fromkeys(r.path for r in series.slices)]


def _colour_planes(series: Series, first_number: int, planes: Sequence[str], options: Any, colorizer: Colorizer,
                   device: torch.device, colour_series: ColourSeries, sample_slices: Sequence[int],
                   **kwargs: Any) -> tuple[list[SeriesResult], list[FileOutcome]]:
    spacing = options.reformat_spacing
    # a plane is held in this process's memory: no reader processes (they would not see it, and a slice
    # read is a copy)
    options = dataclasses.replace(options, reader_workers=0)
    image = series_image(series, read_slice)
    import SimpleITK as sitk

    volume = sitk.GetArrayViewFromImage(image)
    sample = np.ascontiguousarray(volume[list(sample_slices)])
    window = resolve_window(options.window, series, sample)
    integral = bool(np.array_equal(sample, np.round(sample)))
    if window.name.startswith("percentile"):  # a window from the source's values: pinned for every plane
        options = dataclasses.replace(options, window=f"{window.width!r},{window.center!r}")
    invert = series.photometric == "MONOCHROME1"
    ctx = SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(series.slices),
                        rows=series.rows, columns=series.columns, inverted=invert)
    prepared = _Prepared(colorizer, ctx, window_to_l(torch.from_numpy(sample).to(device).unsqueeze(1), window,
                                                     invert=invert))
    results: list[SeriesResult] = []
    for offset, plane in enumerate(planes):
        planar, name = plane_series(series, image, plane, spacing, integral)
        try:
            prepared.reformat = describe(plane, series_geometry(planar))
            result, _ = colour_series(planar, first_number + offset, options, prepared, device, **kwargs)
        finally:
            release_array(name)
        results.append(result)
    bad = next((r for r in results if r.status != "done"), None)
    paths = dict.fromkeys(ref.path for ref in series.slices)
    outcomes = [FileOutcome(p, "failed", f"{bad.label}: {bad.error}") if bad else FileOutcome(p, "done")
                for p in paths]
    return results, outcomes
