"""Volumes: MHA/MHD and NRRD files through SimpleITK, the geometry of any series, and in-memory volumes.

* ``volume_series(path)``: an MHA/MHD/NRRD file as one series of kind "volume". Slices are taken along the
  image's 3rd index axis (k); a slice shows SimpleITK's array ``[k]`` as it is: rows follow index j,
  columns index i (no flips: the geometry says where each voxel is).
* ``series_geometry(series)``: where the slices of any series sit in the patient (LPS, mm), as a
  :class:`Geometry` of the grid medcolor presents (column i, row j, slice k). DICOM: the first slice's
  ImageOrientationPatient, PixelSpacing, and the sorted slices' positions; NIfTI: nibabel's affine with
  the flips of :mod:`medcolor.io._nifti`; a volume file: its SimpleITK header.
* ``series_image(series, read)``: the whole series as a float32 ``SimpleITK.Image`` with that geometry.
* ``register_array(array, geometry, label)``: an in-memory float32 volume (a reformatted plane) read like
  a file; ``array_series`` gives its Series.

NIfTI stays on nibabel (``_nifti``): it reads one slice of a .nii by memory map without decoding the
whole file, and keeps scl_slope/scl_inter and 4-D handling as before; SimpleITK reads the same file as
the cross-check in tests (same voxels, same geometry).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from medcolor.errors import MedcolorError
from medcolor.io._cache import VolumeCache
from medcolor.types import Series, SliceRef

VOLUME_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
_CACHE = VolumeCache(2)
_ARRAYS: dict[str, tuple[np.ndarray, "Geometry"]] = {}
_ARRAY_IDS = itertools.count(1)
ARRAY_PREFIX = "<volume>"


@dataclass(frozen=True)
class Geometry:
    """Voxel (column i, row j, slice k) -> LPS mm: ``origin + direction @ (spacing * (i, j, k))``.
    ``origin`` (3,), ``spacing`` (3,) mm, ``direction`` (3, 3) with the unit axis vectors as columns."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 values, row-major, as SimpleITK's GetDirection

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    def to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """``ijk`` [..., 3] voxel indices -> [..., 3] LPS mm."""
        scaled = np.asarray(ijk, dtype=np.float64) * np.asarray(self.spacing)
        return np.asarray(self.origin) + scaled @ self.matrix.T

    def affine_ras(self) -> np.ndarray:
        """The 4x4 NIfTI (RAS) affine of this grid."""
        lps = np.eye(4)
        lps[:3, :3] = self.matrix * np.asarray(self.spacing)
        lps[:3, 3] = self.origin
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps

    def apply_to(self, image) -> None:  # noqa: ANN001 - SimpleITK.Image
        image.SetOrigin(tuple(float(v) for v in self.origin))
        image.SetSpacing(tuple(float(v) for v in self.spacing))
        image.SetDirection(tuple(float(v) for v in self.direction))

    @classmethod
    def of_image(cls, image) -> "Geometry":  # noqa: ANN001 - SimpleITK.Image or ImageFileReader
        return cls(tuple(image.GetOrigin()), tuple(image.GetSpacing()), tuple(image.GetDirection()))


def is_volume(path: Path) -> bool:
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]


def _header(path: Path):  # noqa: ANN202 - SimpleITK.ImageFileReader after ReadImageInformation
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise MedcolorError(f"cannot read the volume header ({_one_line(exc)})", where=path,
                            hint="is it a valid .mha/.mhd/.nrrd file?") from None
    if reader.GetNumberOfComponents() != 1:
        raise MedcolorError(f"volume has {reader.GetNumberOfComponents()} components per voxel", where=path,
                            hint="medcolor colourises scalar gray volumes")
    if reader.GetDimension() not in (2, 3):
        raise MedcolorError(f"volume has {reader.GetDimension()} dimensions; need 2 or 3", where=path)
    return reader


def _geometry3(reader) -> Geometry:  # noqa: ANN001
    """3-D geometry of a 2-D or 3-D header (a 2-D image is one slice at z = 0, spacing 1)."""
    if reader.GetDimension() == 3:
        return Geometry.of_image(reader)
    d = reader.GetDirection()
    return Geometry((*reader.GetOrigin(), 0.0), (*reader.GetSpacing(), 1.0), (d[0], d[1], 0.0, d[2], d[3], 0.0,
                                                                            0.0, 0.0, 1.0))


def _modality(reader) -> str:  # noqa: ANN001
    """MetaImage's ``Modality = MET_MOD_CT`` and the like, else "OT"."""
    for key in reader.GetMetaDataKeys():
        if key.lower() == "modality":
            value = reader.GetMetaData(key).upper().replace("MET_MOD_", "").strip()
            return value if value in ("CT", "MR", "NM", "PT", "US", "DX", "CR") else "OT"
    return "OT"


def _series_of(kind: str, path: Path, size: tuple[int, int, int], geometry: Geometry, modality: str,
               bits: int, label: str) -> Series:
    cols, rows, n = size
    positions = geometry.to_lps(np.array([[0, 0, k] for k in range(n)], dtype=np.float64))
    refs = [SliceRef(path=path, frame=k, position=tuple(float(v) for v in positions[k])) for k in range(n)]
    return Series(kind=kind, modality=modality, rows=rows, columns=cols, slices=refs, bits=bits,
                  is_hu=modality == "CT", pixel_spacing=(float(geometry.spacing[1]), float(geometry.spacing[0])),
                  source_label=label)


def volume_series(path: Path) -> Series:
    """An MHA/MHD/NRRD file as one series of kind "volume" (header only; no voxels read)."""
    reader = _header(path)
    size = tuple(int(s) for s in reader.GetSize()) + (1,) * (3 - reader.GetDimension())
    import SimpleITK as sitk

    bits = 8 * sitk.GetArrayViewFromImage(sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())).itemsize
    return _series_of("volume", path, size, _geometry3(reader), _modality(reader), bits, str(path))


def _decode(path: Path) -> np.ndarray:
    """The voxels [k, j, i] of a volume file (a 2-D image as one slice)."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise MedcolorError(f"cannot read the volume voxels ({_one_line(exc)})", where=path,
                            hint="the file is truncated or corrupt") from None
    array = sitk.GetArrayFromImage(image)
    return array[None] if array.ndim == 2 else array


def read_volume_slice(path: Path, k: int) -> np.ndarray:
    """float32 [rows=j, cols=i] of slice k of a volume file or of a registered in-memory volume."""
    entry = _ARRAYS.get(str(path))
    array = entry[0] if entry is not None else _CACHE.get(path, _decode)
    if not 0 <= k < array.shape[0]:
        raise MedcolorError(f"slice {k} out of range (volume has {array.shape[0]})", where=path)
    return np.asarray(array[k], dtype=np.float32)


# ---------------------------------------------------------------- in-memory volumes

def register_array(array: np.ndarray, geometry: Geometry, label: str) -> Path:
    """Keep ``array`` float32 [k, j, i] readable as a volume; returns the name its slices use. Release it
    with :func:`release_array`."""
    name = Path(f"{ARRAY_PREFIX}{next(_ARRAY_IDS)}-{label}")
    _ARRAYS[str(name)] = (np.ascontiguousarray(array, dtype=np.float32), geometry)
    return name


def release_array(name: Path) -> None:
    _ARRAYS.pop(str(name), None)


def array_series(name: Path, modality: str, is_hu: bool, label: str) -> Series:
    """The Series of a registered in-memory volume."""
    array, geometry = _ARRAYS[str(name)]
    n, rows, cols = array.shape
    series = _series_of("volume", name, (cols, rows, n), geometry, modality, 32, label)
    series.is_hu = is_hu
    return series


# ---------------------------------------------------------------- geometry of any series

def series_geometry(series: Series) -> Geometry:
    """Where the presented grid (column, row, slice) of ``series`` sits in the patient (LPS mm).
    MedcolorError when a DICOM series lacks orientation, spacing or positions."""
    first = series.slices[0]
    if series.kind == "volume":
        entry = _ARRAYS.get(str(first.path))
        return entry[1] if entry is not None else _geometry3(_header(Path(first.path)))
    if series.kind == "nifti":
        from medcolor.io._nifti import nifti_geometry

        return Geometry(*nifti_geometry(Path(first.path)))
    if series.kind != "dicom":
        raise MedcolorError("a plain image has no patient geometry", where=first.path,
                            hint="use a DICOM series, NIfTI, MHA or NRRD volume")
    from medcolor.io._dicom import frame_orientation

    iop = frame_orientation(first.dataset, first.frame) if first.dataset is not None else None
    if iop is None or series.pixel_spacing is None or any(r.position is None for r in series.slices):
        raise MedcolorError("the series has no ImageOrientationPatient, PixelSpacing or ImagePositionPatient",
                            where=series.source_label, hint="a volume needs a series with patient geometry")
    col_dir, row_dir = np.asarray(iop[:3], dtype=np.float64), np.asarray(iop[3:], dtype=np.float64)
    normal = np.cross(col_dir, row_dir)
    proj = np.array([float(np.dot(normal, r.position)) for r in series.slices])
    steps = np.diff(proj)
    slice_step = float(np.median(steps)) if steps.size else 1.0
    if steps.size and (np.any(np.abs(steps) < 1e-3) or np.any(np.sign(steps) != np.sign(slice_step))):
        raise MedcolorError("slices share a position or are out of order, so they do not form a volume",
                            where=series.source_label, hint="pass one acquisition (one phase, one echo)")
    if slice_step < 0:  # slices run against the normal: the third axis points the other way
        normal, slice_step = -normal, -slice_step
    direction = np.stack([col_dir, row_dir, normal], axis=1)
    spacing = (float(series.pixel_spacing[1]), float(series.pixel_spacing[0]), abs(slice_step) or 1.0)
    return Geometry(tuple(float(v) for v in series.slices[0].position), spacing,
                    tuple(float(v) for v in direction.reshape(-1)))


def series_image(series: Series, read: Callable[[SliceRef, Series], np.ndarray]):  # noqa: ANN201
    """The whole series as a float32 SimpleITK image (``read(ref, series)`` reads one slice, on one thread per
    core) with its geometry."""
    import SimpleITK as sitk

    from concurrent.futures import ThreadPoolExecutor

    geometry = series_geometry(series)
    array = np.empty((len(series.slices), series.rows, series.columns), dtype=np.float32)

    def read_into(k: int) -> None:
        array[k] = read(series.slices[k], series)

    with ThreadPoolExecutor(max_workers=max(1, len(os.sched_getaffinity(0)))) as pool:
        list(pool.map(read_into, range(len(series.slices))))  # decoding releases the GIL: read on every core
    image = sitk.GetImageFromArray(array)
    geometry.apply_to(image)
    return image


# ---------------------------------------------------------------- modality of non-DICOM inputs

MODALITIES = ("CT", "MR", "PT", "NM", "US", "DX", "CR", "MG", "XA", "OT")


def check_modality(modality: str | None) -> str | None:
    """``--modality`` upper-cased, or MedcolorError naming the choices."""
    if modality is None or not str(modality).strip():
        return None
    value = str(modality).strip().upper()
    if value not in MODALITIES:
        raise MedcolorError(f"unknown modality {modality!r}", where="--modality",
                            hint=f"use one of {', '.join(MODALITIES)}")
    return value


def set_modality(series: Series, modality: str | None) -> str | None:
    """Apply ``--modality`` to a NIfTI, volume or image series (CT: values are taken as Hounsfield units,
    so the HU presets apply). A DICOM series keeps its own Modality: returns a note saying so."""
    if modality is None:
        return None
    if series.kind == "dicom":
        return f"--modality {modality} ignored: a DICOM series keeps its Modality ({series.modality})"
    series.modality = modality
    series.is_hu = modality == "CT"
    return None


def hounsfield_note(series: Series, sample: np.ndarray) -> str | None:
    """A note when a non-DICOM series not taken as CT has values that look like Hounsfield units: air near
    -1000 (1st percentile in -1100..-900) and a plausible top (99.9th percentile in 0..4000)."""
    if series.kind == "dicom" or series.is_hu or sample.size == 0:
        return None
    lo, hi = np.percentile(sample, [1.0, 99.9])
    if -1100.0 <= lo <= -900.0 and 0.0 <= hi <= 4000.0:
        return (f"values look like Hounsfield units (1st percentile {lo:.0f}, air near -1000; 99.9th "
                f"{hi:.0f}): pass --modality CT to use the CT window presets")
    return None
