"""NIfTI volumes (.nii, .nii.gz) via nibabel.

Slices are taken along the 3rd voxel axis (k); ``SliceRef.frame = k``. Each slice is shown like a
DICOM image in the usual radiological view: rows follow the voxel j axis and columns the i axis
(nibabel's [i, j] is transposed), and each in-plane axis is flipped when needed so that it runs
toward the patient's Left (x), Posterior (y) or Inferior (z), whichever world axis it is closest to
(DICOM's LPS convention: for an axial slice, anterior at the top and the patient's right on the
left of the image). 4-D and higher volumes: the first volume (index 0 on axes 4+) is used, with a
warning. Values are nibabel's scaled data (scl_slope/scl_inter applied) as float32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medcolor.errors import MedcolorError
from medcolor.io._cache import VolumeCache

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_CACHE = VolumeCache(2)


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _load(path: Path):  # noqa: ANN202 - nibabel image
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:
        raise MedcolorError(f"cannot read NIfTI ({' '.join(str(exc).split())[:160]})", where=path,
                            hint="is it a valid .nii/.nii.gz file?") from None


def _flips(img) -> tuple[bool, bool]:  # noqa: ANN001
    """Whether to flip voxel axes i and j so they point to -x/-y/-z of RAS (i.e. L, P, I)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(img.affine)
    out = []
    for axis in (0, 1):
        sign = ornt[axis, 1] if axis < len(ornt) and not np.isnan(ornt[axis, 0]) else -1
        out.append(bool(sign > 0))
    return out[0], out[1]


def nifti_info(path: Path) -> dict:
    """Shape, spacing, dtype and per-slice LPS positions without reading the voxels."""
    img = _load(path)
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 2:
        raise MedcolorError(f"NIfTI has {len(shape)} dimension(s); need at least 2", where=path)
    dtype = img.get_data_dtype()
    if dtype.names is not None or np.issubdtype(dtype, np.complexfloating):
        raise MedcolorError("NIfTI holds RGB or complex voxels", where=path,
                            hint="medcolor colourises scalar gray volumes")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    n_slices = shape[2] if len(shape) >= 3 else 1
    flip_i, flip_j = _flips(img)
    aff = img.affine
    i0 = shape[0] - 1 if flip_i else 0
    j0 = shape[1] - 1 if flip_j else 0
    positions = []
    for k in range(n_slices):
        x, y, z = (aff @ np.array([i0, j0, k, 1.0]))[:3]
        positions.append((-float(x), -float(y), float(z)))  # RAS -> LPS
    descrip = img.header.get("descrip")
    text = bytes(descrip).decode("latin-1", "replace") if descrip is not None else ""
    return {
        "shape": shape, "n_slices": n_slices, "rows": shape[1], "columns": shape[0],
        "spacing": (zooms[1], zooms[0]) if len(zooms) >= 2 else None,
        "bits": int(dtype.itemsize * 8), "positions": positions, "extra_dims": len(shape) > 3,
        "descrip": text.strip("\x00 "),
    }


def _decoded(path: Path):  # noqa: ANN202
    """The nibabel image (.nii: memory-mapped proxy) or, for .nii.gz, the decoded data array (gzip cannot
    seek cheaply, so reading slice by slice would decompress it n times), with the flips."""
    img = _load(path)
    if path.name.lower().endswith(".gz"):
        try:
            obj = np.asanyarray(img.dataobj)
        except Exception as exc:
            raise MedcolorError(f"cannot decode NIfTI voxels ({' '.join(str(exc).split())[:160]})",
                                where=path, hint="the file is truncated or corrupt") from None
        return obj, _flips(img)
    return img.dataobj, _flips(img)


def _volume(path: Path):  # noqa: ANN202
    """``_decoded(path)``, cached per process."""
    return _CACHE.get(path, _decoded)


def read_nifti_slice(path: Path, k: int) -> np.ndarray:
    """float32 [rows=j, cols=i] of slice k, oriented as described in the module docstring."""
    data, (flip_i, flip_j) = _volume(path)
    shape = data.shape
    n = shape[2] if len(shape) >= 3 else 1
    if not 0 <= k < n:
        raise MedcolorError(f"slice {k} out of range (volume has {n})", where=path)
    try:
        if len(shape) == 2:
            sl = np.asarray(data[:, :])
        else:
            idx = (slice(None), slice(None), k) + (0,) * (len(shape) - 3)
            sl = np.asarray(data[idx])
    except Exception as exc:
        raise MedcolorError(f"cannot decode NIfTI voxels ({' '.join(str(exc).split())[:160]})", where=path,
                            hint="the file is truncated or corrupt") from None
    if flip_i:
        sl = sl[::-1, :]
    if flip_j:
        sl = sl[:, ::-1]
    return np.ascontiguousarray(sl.T, dtype=np.float32)


def nifti_geometry(path: Path) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(origin, spacing, direction row-major) in LPS mm of the grid ``read_nifti_slice`` presents: column c,
    row r, slice k (the voxel axes i, j after the flips above), from nibabel's affine."""
    img = _load(path)
    shape = tuple(int(s) for s in img.shape) + (1,) * max(0, 3 - len(img.shape))
    flip_i, flip_j = _flips(img)
    lps = np.diag([-1.0, -1.0, 1.0]) @ img.affine[:3, :]
    axes = lps[:, :3] * np.array([-1.0 if flip_i else 1.0, -1.0 if flip_j else 1.0, 1.0])
    corner = np.array([shape[0] - 1 if flip_i else 0, shape[1] - 1 if flip_j else 0, 0, 1.0])
    spacing = np.linalg.norm(axes, axis=0)
    direction = axes / np.where(spacing > 0, spacing, 1.0)
    return (tuple(float(v) for v in lps @ corner), tuple(float(v) for v in spacing),
            tuple(float(v) for v in direction.reshape(-1)))
