"""Writers of colourised slices: RGB Secondary Capture DICOM (single- or multi-frame), PNG, TIFF, RGB volumes.

Modules: ``sc_iod`` (what an RGB SC instance contains), ``deidentify`` (PS3.15 basic profile),
``dicom_sc`` (SC files), ``image`` (PNG/TIFF files), ``volume`` (RGB NIfTI, NRRD, MHA), ``_files`` (names, atomic publishing),
``_source`` (tolerant reading of the source header).

Every writer has the same interface: ``write(index, ref, rgb) -> Path | None``, ``close() ->
list[Path]``, ``abort()``; files are named from counters only and written atomically. A writer never
knows which backend ran: provenance arrives as a :class:`medcolor.types.Derivation`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from medcolor.errors import MedcolorError
from medcolor.types import Derivation, Series, SliceRef
from medcolor.writers.deidentify import Deidentifier
from medcolor.writers.dicom_sc import SecondaryCaptureWriter
from medcolor.writers.image import ImageWriter
from medcolor.writers.volume import VOLUME_FORMATS, VolumeWriter
from medcolor.writers.sc_iod import (
    IMPLEMENTATION_CLASS_UID,
    MF_TRUE_COLOR_SC_IMAGE_STORAGE,
    SC_IMAGE_STORAGE,
    RGBSecondaryCapture,
    patient_orientation,
    series_description,
)

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "MF_TRUE_COLOR_SC_IMAGE_STORAGE",
    "SC_IMAGE_STORAGE",
    "Deidentifier",
    "FORMATS",
    "ImageWriter",
    "OutputFormat",
    "RGBSecondaryCapture",
    "SecondaryCaptureWriter",
    "SliceWriter",
    "VolumeWriter",
    "get_writers",
    "patient_orientation",
    "series_description",
]

OutputFormat = Literal["dicom", "png", "tiff", "both", "nifti", "nrrd", "mha"]
FORMATS: tuple[str, ...] = ("dicom", "png", "tiff", "both", *VOLUME_FORMATS)  # the one list of --format values


class SliceWriter(Protocol):
    """What the pipeline needs from a writer."""

    def write(self, index: int, ref: SliceRef, rgb: np.ndarray) -> Path | None: ...

    def close(self) -> list[Path]: ...

    def abort(self) -> None: ...


def get_writers(fmt: OutputFormat, out_dir: Path, series: Series, derivation: Derivation,
                series_number: int, *, multiframe: bool = False, overwrite: bool = False,
                deidentify: bool = False, uid_map: dict[str, str] | None = None) -> list[SliceWriter]:
    """The writers for one series: "dicom" (SC), "png", "tiff", "both" (SC + PNG), or one RGB volume file
    ("nifti", "nrrd", "mha")."""
    if fmt not in FORMATS:
        raise MedcolorError(f"unknown output format {fmt!r}", where="--format", hint=f"use {', '.join(FORMATS)}")
    writers: list[SliceWriter] = []
    if fmt in ("dicom", "both"):
        writers.append(SecondaryCaptureWriter(out_dir, series, derivation, series_number,
                                              multiframe=multiframe, overwrite=overwrite,
                                              deidentify=deidentify, uid_map=uid_map))
    if fmt in ("png", "tiff", "both"):
        writers.append(ImageWriter(out_dir, series, series_number, fmt="tiff" if fmt == "tiff" else "png",
                                   overwrite=overwrite, derivation=derivation))
    if fmt in VOLUME_FORMATS:
        writers.append(VolumeWriter(out_dir, series, series_number, fmt=fmt, overwrite=overwrite,  # type: ignore[arg-type]
                                    derivation=derivation))
    return writers
