"""Reading inputs: sniffing, series grouping and sorting, decoding, the modality LUT, MONAI glue.

Public API::

    scan(inputs) -> ScanResult(series: list[Series], outcomes: list[FileOutcome])
    read_slice(ref, series) -> np.ndarray float32 [rows, cols]  (modality values, HU for CT)
    read_image_rgb(path) -> (uint8 [H, W, 3] sRGB, sha256 hex of the file)
    MedcolorReader   monai.data.ImageReader for monai.transforms.LoadImage  (imported lazily)
    read_item(series, i) -> {"index": i, "image": float32 [1,H,W], "error": str}  (never raises for bad data)
    series_geometry(series) -> Geometry  (LPS origin, spacing, direction of the presented slice grid)
    series_image(series, read_slice) -> SimpleITK.Image float32 with that geometry
    check_modality / set_modality / hounsfield_note   --modality for NIfTI, volume and image inputs
    gc_frozen()      context: the objects alive now (a run's headers) skipped by the cyclic GC until its end
    reads_by_file_io(series) -> bool  (frames read at SliceRef.pixel_offset: a reader thread is enough)
    SliceItems       read_item of every slice as a map-style dataset for torch's DataLoader
    SliceDataset     the same as a monai.data.Dataset, with transforms (imported lazily)

Modules: ``_scan`` (inputs, series, read_slice), ``_dicom`` (headers via ``pydicom.dcmread(...,
stop_before_pixels=True)``, checks, geometry, modality LUT), ``_decode`` (one frame: plain file I/O at the
offset the scan found, else pydicom's decoders), ``_nifti``, ``_volume`` (MHA/NRRD via SimpleITK, geometry), ``_images``, ``_monai`` (imported on first use).
Inputs are never modified. MONOCHROME1 is never inverted here: ``Series.photometric`` says so and
windowing inverts L. Errors are MedcolorError with a one-line message naming the file.
"""
from __future__ import annotations

from typing import Any

from medcolor.io._images import sha256_file
from medcolor.io._scan import (
    ScanResult,
    SliceItems,
    expand_inputs,
    gc_frozen,
    read_image_rgb,
    read_item,
    read_slice,
    reads_by_file_io,
    scan,
)
from medcolor.io._volume import (
    Geometry,
    check_modality,
    hounsfield_note,
    series_geometry,
    series_image,
    set_modality,
)

__all__ = ["ScanResult", "scan", "read_slice", "read_item", "reads_by_file_io", "SliceItems", "read_image_rgb",
           "expand_inputs", "gc_frozen", "sha256_file", "MedcolorReader", "SliceDataset", "Geometry", "series_geometry",
           "series_image", "check_modality", "set_modality", "hounsfield_note"]


def __getattr__(name: str) -> Any:  # MONAI is heavy: import it only when the MONAI glue is used
    if name in ("MedcolorReader", "SliceDataset"):
        import medcolor.io._monai as _monai

        return getattr(_monai, name)
    raise AttributeError(f"module 'medcolor.io' has no attribute {name!r}")
