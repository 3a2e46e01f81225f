"""Throughput of `medcolor run` against the DICOM I/O floor, on a generated 512x512 CT series.

    python benchmarks/pipeline_vs_floor.py [--source DIR] [--small 100] [--large 400] [--methods exemplar,lut]

The series is made from real CT slices (default: ../shared/data's 30-slice chest CT if present, else
sample_dicom/ct_chest) by cycling them with fresh UIDs and positions. Every figure is a marginal cost per
slice between a SMALL- and a LARGE-slice run, so start-up (imports, scanning, backend preparation) does not
count:
  - read-only floor:  pydicom dcmread + pixel_array of every slice;
  - read+write floor: the above plus a same-size 8-bit RGB Secondary Capture written with pydicom;
  - `medcolor run --method M` as a subprocess (what a user runs), for each backend.
Prints one table: slices/s and ratio to the read+write floor.
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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
SHARED_CT = ROOT.parent / "shared" / "data" / "ct_chest_lung_pet_ct_dx_A0002"


def make_series(source: Path, n: int, out: Path) -> Path:
    """An n-slice CT series cycling the real slices of `source`, with fresh UIDs and positions."""
    src = [pydicom.dcmread(p) for p in sorted(source.glob("*.dcm"))]
    out.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    for i in range(n):
        ds = copy.deepcopy(src[i % len(src)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.InstanceNumber = i + 1
        ipp = list(ds.ImagePositionPatient)
        ipp[2] = -1.25 * i
        ds.ImagePositionPatient = ipp
        ds.save_as(out / f"{i:05d}.dcm")
    return out


def floor(folder: Path, out: Path | None) -> float:
    """Seconds to read every slice (and, with `out`, write a same-size RGB SC per slice)."""
    files = sorted(folder.glob("*.dcm"))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    os.sync()  # no earlier run's dirty pages written back while this one is timed
    t0 = time.perf_counter()
    for i, p in enumerate(files):
        src = pydicom.dcmread(p)
        a = src.pixel_array
        if out is None:
            continue
        rgb = np.repeat((a >> 4).astype(np.uint8)[..., None], 3, axis=-1)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = src.StudyInstanceUID
        ds.SeriesInstanceUID = generate_uid()
        ds.Modality = "OT"
        ds.Rows, ds.Columns = rgb.shape[:2]
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = rgb.tobytes()
        ds.save_as(out / f"{i:05d}.dcm", enforce_file_format=True)
    return time.perf_counter() - t0


def medcolor_run(folder: Path, out: Path, method: str, ref: Path, window: str) -> float:
    cmd = [sys.executable, "-m", "medcolor", "run", str(folder), "-o", str(out), "--method", method,
           "--window", window, "--overwrite"]
    if method == "exemplar":
        cmd += ["--ref", str(ref)]
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"medcolor run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=400)
    ap.add_argument("--methods", default="exemplar,lut")
    ap.add_argument("--window", default="1500,-600")
    ap.add_argument("--ref", type=Path, default=ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medcolor-bench-"))
    try:
        small = make_series(a.source, a.small, work / "in_small")
        large = make_series(a.source, a.large, work / "in_large")
        n = a.large - a.small
        rows = []
        # warm the page cache once so every contender reads from memory
        floor(small, None); floor(large, None)
        t_s, t_l = floor(small, None), floor(large, None)
        rows.append(("read only (pydicom)", (t_l - t_s) / n))
        t_s, t_l = floor(small, work / "f_s"), floor(large, work / "f_l")
        rows.append(("read+write floor (pydicom RGB SC)", (t_l - t_s) / n))
        for m in [x.strip() for x in a.methods.split(",") if x.strip()]:
            t_s = medcolor_run(small, work / f"{m}_s", m, a.ref, a.window)
            t_l = medcolor_run(large, work / f"{m}_l", m, a.ref, a.window)
            rows.append((f"medcolor run --method {m}", (t_l - t_s) / n))
        floor_cost = rows[1][1]
        print(f"512x512 CT series from {a.source.name}; marginal cost per slice between {a.small} and "
              f"{a.large} slices; {os.cpu_count()} CPUs")
        print(f"{'contender':40s} {'ms/slice':>9s} {'slices/s':>9s} {'x floor':>8s}")
        for name, cost in rows:
            print(f"{name:40s} {cost * 1e3:9.2f} {1 / cost:9.1f} {floor_cost / cost:8.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
