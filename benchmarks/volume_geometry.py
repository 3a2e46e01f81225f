"""Geometry kept by the colour volumes: `medcolor run --format nifti|nrrd|mha` on a CT series, read back.

    python benchmarks/volume_geometry.py [--source DIR] [--method lut]

Source: ../shared/data's 30-slice chest CT if present, else sample_dicom/ct_chest. The reference geometry
is SimpleITK's GDCM series reader on the source folder (origin, spacing, direction: its affine). For each
format the written file is read back (NIfTI with nibabel, its affine converted RAS -> LPS; NRRD/MHA with
SimpleITK) and the largest difference from the reference is printed: of the 4x4 affine entries (mm), and
of the patient position of the 8 corner voxels (mm). Also checks RGB24 / 3 x uint8 per voxel.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
SHARED_CT = ROOT.parent / "shared" / "data" / "ct_chest_lung_pet_ct_dx_A0002"
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_of(image: sitk.Image) -> np.ndarray:
    """The 4x4 LPS affine (index i, j, k -> mm) of a SimpleITK image."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    aff[:3, 3] = image.GetOrigin()
    return aff


def corners(affine: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    ijk = np.array([[i, j, k, 1.0] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    return (ijk @ affine.T)[:, :3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path,
                        default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    parser.add_argument("--method", default="lut")
    args = parser.parse_args()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(args.source)))
    reference = reader.Execute()
    ref_affine, size = affine_of(reference), reference.GetSize()
    print(f"source: {args.source.name}, {size[2]} slices of {size[0]}x{size[1]}, spacing "
          f"{tuple(round(v, 4) for v in reference.GetSpacing())} mm (SimpleITK GDCM series reader)")
    with tempfile.TemporaryDirectory(prefix="medcolor-geometry-") as tmp:
        for fmt in ("nifti", "nrrd", "mha"):
            out = Path(tmp) / fmt
            subprocess.run([sys.executable, "-m", "medcolor", "run", str(args.source), "-o", str(out), "--format",
                            fmt, "--method", args.method], check=True, capture_output=True)
            path = next(out.glob("S001_*/volume.*"))
            if fmt == "nifti":
                img = nib.load(path)
                affine, shape = RAS_TO_LPS @ img.affine, img.shape
                kind = f"datatype {int(img.header['datatype'])} (128 = RGB24)"
            else:
                img = sitk.ReadImage(str(path))
                affine, shape = affine_of(img), img.GetSize()
                kind = f"{img.GetNumberOfComponentsPerPixel()} x {img.GetPixelIDTypeAsString()}"
            assert tuple(shape[:3]) == tuple(size), (shape, size)
            print(f"{fmt:5s} {path.name:14s} max |affine - source| {np.abs(affine - ref_affine).max():.2e} mm, "
                  f"corners {np.abs(corners(affine, size) - corners(ref_affine, size)).max():.2e} mm; {kind}")


if __name__ == "__main__":
    main()
