"""Synthetic volumes with known geometry, written as real DICOM series (pydicom) and read back by medcolor and
SimpleITK: a sphere phantom in Hounsfield units at a known patient position."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import CT_DIR

AIR, SPHERE = -1000.0, 400.0


def _axes(iop: Sequence[float]) -> np.ndarray:
    col, row = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    return np.stack([col, row, np.cross(col, row)], axis=1)


def sphere_values(points: np.ndarray, centre: Sequence[float], radius: float) -> np.ndarray:
    """HU at LPS ``points`` [..., 3]: SPHERE inside the sphere, AIR outside."""
    inside = np.linalg.norm(points - np.asarray(centre, float), axis=-1) <= radius
    return np.where(inside, SPHERE, AIR)


def write_phantom(folder: Path, *, n: int = 40, size: int = 64, spacing: float = 1.0, step: float = 2.0,
                  iop: Sequence[float] = (1, 0, 0, 0, 1, 0), origin: Sequence[float] = (-32.0, -32.0, -40.0),
                  centre: Sequence[float] = (6.0, -9.0, 4.0), radius: float = 12.0, reverse_names: bool = False,
                  ) -> list[Path]:
    """A CT series of ``n`` slices of ``size``² pixels: slice k at ``origin + k * step * normal`` (normal =
    col x row of ``iop``), pixel (r, c) at ``+ c * spacing * col + r * spacing * row``; a sphere of HU 400 in
    air. The sample CT's first header is the template (patient, study, equipment). Returns the files in
    slice order (file names reversed when ``reverse_names``)."""
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(sorted(CT_DIR.glob("*.dcm"))[0])
    template.remove_private_tags()
    axes = _axes(iop)
    study, series = generate_uid(), generate_uid()
    rr, cc = np.mgrid[0:size, 0:size]
    paths = []
    for k in range(n):
        ds = copy.deepcopy(template)
        position = np.asarray(origin, float) + k * step * axes[:, 2]
        points = position + (cc[..., None] * spacing) * axes[:, 0] + (rr[..., None] * spacing) * axes[:, 1]
        stored = (sphere_values(points, centre, radius) + 1024).astype(np.uint16)
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = step
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.SliceLocation = round(float(position[2]), 4)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.PixelData = stored.tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = f"{(n - k) if reverse_names else k + 1:03d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        paths.append(folder / name)
    return paths
