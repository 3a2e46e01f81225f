"""Speed of colour MPR (`medcolor run --reformat`) against a plain run of the same 400-slice 512x512 CT series.

    python benchmarks/mpr.py [--source DIR] [--slices 400] [--method exemplar] [--planes coronal axial,coronal,sagittal]

The series is synthetic, made from a real CT (default: ../shared/data's 30-slice chest CT, 8 mm apart, if
present, else sample_dicom/ct_chest): the real volume is resampled with SimpleITK (linear) to --slices
slices over the same extent (30 slices -> 400: 0.58 mm apart, a thin-slice chest CT), written as a DICOM
series with fresh UIDs. Times (wall clock, `medcolor run` as a subprocess, as a user runs it, one after the
other): the plain run, then one run per --planes value. Prints one line per run with its ratio to the plain
run and the number of output images.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
SHARED_CT = ROOT.parent / "shared" / "data" / "ct_chest_lung_pet_ct_dx_A0002"


def thin_series(source: Path, n: int, out: Path) -> tuple[Path, float]:
    """``source`` resampled to ``n`` slices over its own extent (linear), as a DICOM series in ``out``.
    Returns the folder and the slice spacing (mm)."""
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(source))
    reader.SetFileNames(names)
    image = reader.Execute()
    size, spacing = image.GetSize(), image.GetSpacing()
    step = spacing[2] * (size[2] - 1) / (n - 1)
    thin = sitk.Resample(image, [size[0], size[1], n], sitk.Transform(), sitk.sitkLinear, image.GetOrigin(),
                         (spacing[0], spacing[1], step), image.GetDirection(), -1024.0, sitk.sitkInt16)
    array = sitk.GetArrayFromImage(thin)
    template = pydicom.dcmread(names[0])
    template.remove_private_tags()
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    series_uid, study_uid = generate_uid(), generate_uid()
    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [round(float(v), 4) for v in np.asarray(image.GetOrigin()) + k * step * normal]
        ds.SliceThickness = round(step, 4)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = array[k].astype("<i2").tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / f"{k:05d}.dcm", enforce_file_format=True)
    return out, step


def timed_run(series: Path, out: Path, method: str, extra: list[str]) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    cmd = [sys.executable, "-m", "medcolor", "run", str(series), "-o", str(out), "--method", method, *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return seconds, sum(1 for _ in out.rglob("*.dcm"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path,
                        default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    parser.add_argument("--slices", type=int, default=400)
    parser.add_argument("--method", default="exemplar")
    parser.add_argument("--planes", nargs="+", default=["coronal", "axial,coronal,sagittal"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medcolor-mpr-") as tmp:
        series, step = thin_series(args.source, args.slices, Path(tmp) / "ct")
        print(f"series: {args.slices} slices of 512x512 from {args.source.name}, {step:.3f} mm apart "
              f"(synthetic: resampled linearly from the real slices); method {args.method}; {os.cpu_count()} CPUs")
        plain, n_plain = timed_run(series, Path(tmp) / "out", args.method, [])
        print(f"plain run:                          {plain:7.1f} s  {n_plain:5d} images  1.00x")
        for planes in args.planes:
            seconds, n = timed_run(series, Path(tmp) / "out", args.method, ["--reformat", planes])
            print(f"--reformat {planes:<24s} {seconds:7.1f} s  {n:5d} images  {seconds / plain:.2f}x")


if __name__ == "__main__":
    main()
