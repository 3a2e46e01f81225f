"""MONAI integration: an ImageReader for ``LoadImage`` and a per-slice Dataset for DataLoader batching.

``MedcolorReader`` returns a series as float32 modality values (HU for CT) with axes
**[slices, rows, cols]** (a single-slice series: **[rows, cols]**), rows and columns exactly as in
the DICOM (no MONAI ``swap_ij`` transpose), slices sorted along the slice normal. The affine maps
(slice, row, col) indices to patient coordinates in DICOM LPS (``meta["space"] == "LPS"``).
A folder with several series is split (never stacked): the largest series is returned and
``meta["series_count"]`` / ``meta["series_note"]`` say so. MONOCHROME1 is not inverted; it is kept in
``meta["photometric"]``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from monai.data import Dataset, ImageReader

from medcolor.errors import MedcolorError
from medcolor.io._dicom import frame_orientation, sniff_dicom
from medcolor.io._images import IMAGE_SUFFIXES
from medcolor.io._nifti import is_nifti
from medcolor.io._scan import read_item, read_slice, scan
from medcolor.io._volume import check_modality, is_volume, series_geometry, set_modality
from medcolor.types import Series

log = logging.getLogger("medcolor.io")


def _affine(series: Series) -> np.ndarray:
    """4x4 affine from (slice, row, col) indices to LPS mm (identity-like when geometry is unknown)."""
    aff = np.eye(4)
    first = series.slices[0]
    ds = first.dataset
    iop = frame_orientation(ds, first.frame) if ds is not None else None
    spacing = series.pixel_spacing or (1.0, 1.0)
    if iop is None or first.position is None:
        aff[0, 0] = 1.0
        aff[1, 1], aff[2, 2] = spacing[0], spacing[1]
        return aff
    row_dir, col_dir = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row_dir, col_dir)
    if len(series.slices) > 1 and series.slices[-1].position is not None:
        step = (np.asarray(series.slices[-1].position) - np.asarray(first.position)) / (len(series.slices) - 1)
    else:
        step = normal
    aff[:3, 0] = step
    aff[:3, 1] = col_dir * spacing[0]   # moving down a row: along the column direction cosine
    aff[:3, 2] = row_dir * spacing[1]   # moving along a row
    aff[:3, 3] = first.position
    return aff


def _geometry_affine(series: Series) -> np.ndarray:
    """The (slice, row, col) -> LPS affine of a NIfTI or volume series (identity for a plain image)."""
    if series.kind not in ("nifti", "volume"):
        return np.eye(4)
    g = series_geometry(series)
    aff = np.eye(4)
    aff[:3, :3] = (g.matrix * np.asarray(g.spacing))[:, ::-1]   # columns: slice, row, col
    aff[:3, 3] = g.origin
    return aff


class _Loaded:
    """What ``MedcolorReader.read`` returns: the chosen series and the scan context."""

    def __init__(self, series: Series, n_series: int, note: str, source: str) -> None:
        self.series, self.n_series, self.note, self.source = series, n_series, note, source


class MedcolorReader(ImageReader):
    """``monai.transforms.LoadImage(reader=MedcolorReader(), image_only=True)(path)``.

    ``path``: a DICOM file or series folder, a NIfTI, MHA/MHD or NRRD file, or a PNG/JPEG/TIFF.
    ``modality``: the modality of a non-DICOM input (``"CT"``: its values are HU), as ``--modality``. Returns float32
    modality values with axes [slices, rows, cols] ([rows, cols] for one slice); see the module
    docstring for the meta keys. ``series_index`` picks a series other than the largest.
    """

    def __init__(self, series_index: int | None = None, modality: str | None = None) -> None:
        super().__init__()
        self.series_index = series_index
        self.modality = check_modality(modality)

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        names = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
        for name in names:
            p = Path(name)
            if p.is_dir() or is_nifti(p) or is_volume(p) or p.suffix.lower() in IMAGE_SUFFIXES + (".dcm",):
                continue
            try:
                with open(p, "rb") as f:
                    if sniff_dicom(f.read(132)) is None:
                        return False
            except OSError:
                return False
        return True

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> _Loaded:
        names = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        result = scan(names)
        source = str(names[0]) if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
        if not result.series:
            reasons = "; ".join(f"{o.path.name}: {o.reason}" for o in result.outcomes[:3])
            raise MedcolorError("no readable grayscale image series found" + (f" ({reasons})" if reasons else ""),
                                where=source, hint="pass a DICOM series folder or file, NIfTI or PNG/JPEG/TIFF")
        ranked = sorted(range(len(result.series)), key=lambda i: -len(result.series[i].slices))
        idx = ranked[0] if self.series_index is None else self.series_index
        if not 0 <= idx < len(result.series):
            raise MedcolorError(f"series_index {idx} out of range ({len(result.series)} series found)",
                                where=source)
        chosen = result.series[idx]
        set_modality(chosen, self.modality)
        note = ""
        if len(result.series) > 1:
            note = (f"input holds {len(result.series)} series; returned series {idx} "
                    f"({len(chosen.slices)} slice(s) of {chosen.rows}x{chosen.columns}, {chosen.modality})"
                    + ("" if self.series_index is not None else ", the largest; the others were not loaded"))
            log.warning("%s: %s", source, note)
        return _Loaded(chosen, len(result.series), note, source)

    def get_data(self, img: _Loaded) -> tuple[np.ndarray, dict]:
        s = img.series
        arr = np.stack([read_slice(ref, s) for ref in s.slices], axis=0)
        if arr.shape[0] == 1:
            arr = arr[0]
        affine = _affine(s) if s.kind == "dicom" else _geometry_affine(s)
        if arr.ndim == 2:  # drop the slice axis from the affine
            affine = np.delete(np.delete(affine, 0, axis=0), 0, axis=1)
        meta: dict[str, Any] = {
            "affine": affine,
            "original_affine": affine.copy(),
            "spatial_shape": np.asarray(arr.shape),
            "original_channel_dim": "no_channel",
            "space": "LPS",
            "axis_order": "slices,rows,cols" if arr.ndim == 3 else "rows,cols",
            "kind": s.kind,
            "modality": s.modality,
            "photometric": s.photometric,
            "is_hu": s.is_hu,
            "bits": s.bits,
            "file_windows": [list(w) for w in s.file_windows],
            "series_instance_uid": s.series_instance_uid or "",
            "series_count": img.n_series,
            "series_note": img.note,
            "series_warnings": list(s.warnings),
        }
        return arr, meta


class SliceDataset(Dataset):
    """One item per slice of ``series``: ``{"index": i, "image": float32 [1, H, W], "error": str}``.

    ``image`` holds modality values from :func:`read_slice`. A slice that cannot be read does not
    raise: its item carries ``error`` (the one-line MedcolorError message) and a zero image, so one
    bad slice does not kill a DataLoader batch; ``error`` is ``""`` for good slices. Other exceptions
    (bugs) propagate. ``transform`` (optional) is applied to the item dict.
    """

    def __init__(self, series: Series, transform: Callable | None = None) -> None:
        self.series = series
        super().__init__(data=list(range(len(series.slices))), transform=transform)

    def _transform(self, index: int) -> dict[str, Any]:
        item = read_item(self.series, index)
        return self.transform(item) if self.transform is not None else item
