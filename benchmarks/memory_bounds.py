"""Peak memory of `medcolor run` on a large X-ray and a long CT series (measured, not asserted).

    nice -n 19 python benchmarks/memory_bounds.py                 # 4096x4096 X-ray + 60- and 600-slice series
    nice -n 19 python benchmarks/memory_bounds.py --slices 600 --method lut --workers 1

Inputs are generated in a temporary folder from the real samples: the chest X-ray upsampled to
4096x4096 and stored as 16-bit (BitsStored 12), and the sample CT slices cycled with fresh UIDs and
positions into a 512x512 series. Each run is ``python -m medcolor run`` in a subprocess; the peak RSS of
its whole process tree (main process + reader worker processes) is sampled from /proc every 20 ms.
A per-slice pipeline holds a bounded number of slices, so the peak for N slices should not grow with N:
the script prints the peak for a short and a long series side by side, and the bytes per extra slice.
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
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
CT_DIR = ROOT / "sample_dicom" / "ct_chest"
XRAY = ROOT / "sample_dicom" / "xray_chest" / "chest_xray.dcm"


def make_xray(out: Path, size: int) -> Path:
    src = pydicom.dcmread(XRAY)
    img = src.pixel_array.astype(np.float32)
    rep = max(1, size // img.shape[0])
    big = np.kron(img, np.ones((rep, rep), np.float32))[:size, :size]
    big = (big / max(float(big.max()), 1.0) * 4095).astype(np.uint16)
    ds = copy.deepcopy(src)
    ds.Rows, ds.Columns = big.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = big.tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.mkdir(parents=True, exist_ok=True)
    path = out / "xray.dcm"
    ds.save_as(path, enforce_file_format=True)
    return out


def make_series(out: Path, n: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    srcs = [pydicom.dcmread(p) for p in sorted(CT_DIR.glob("*.dcm"))]
    series_uid = generate_uid()
    for k in range(n):
        ds = srcs[k % len(srcs)]
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in ds.ImagePositionPatient[:2]] + [float(k) * 1.25]
        ds.save_as(out / f"s{k:04d}.dcm", enforce_file_format=True)
    return out


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(args: list[str]) -> tuple[float, int, int, int]:
    """(seconds, peak RSS of the process tree, peak RSS of the main process, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "medcolor", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=ROOT)
    peak_tree = peak_main = 0
    while proc.poll() is None:
        pids = _tree(proc.pid)
        peak_tree = max(peak_tree, sum(_rss(p) for p in pids))
        peak_main = max(peak_main, _rss(proc.pid))
        time.sleep(0.02)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(err[-2000:], file=sys.stderr)
    return time.perf_counter() - t0, peak_tree, peak_main, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slices", type=int, default=600)
    ap.add_argument("--short", type=int, default=60, help="the short series to compare with")
    ap.add_argument("--xray-size", type=int, default=4096)
    ap.add_argument("--method", default="lut")
    ap.add_argument("--workers", type=int, default=1, help="medcolor run --reader-workers")
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs and outputs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="medcolor-mem-"))
    rows = []
    try:
        common = ["--method", args.method, "--reader-workers", str(args.workers)]
        xray = make_xray(tmp / "xray", args.xray_size)
        sec, tree, main_rss, rc = measure(["run", str(xray), "-o", str(tmp / "out_xray"), *common])
        raw = args.xray_size * args.xray_size * 2
        rows.append((f"X-ray {args.xray_size}x{args.xray_size} 16-bit (1 slice, {raw / 2**20:.0f} MiB raw)",
                     sec, tree, main_rss, rc))
        for n in (args.short, args.slices):
            src = make_series(tmp / f"ct{n}", n)
            sec, tree, main_rss, rc = measure(["run", str(src), "-o", str(tmp / f"out{n}"), *common])
            rows.append((f"CT series {n} x 512x512", sec, tree, main_rss, rc))
            shutil.rmtree(tmp / f"out{n}", ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"medcolor run --method {args.method} --reader-workers {args.workers}  (peak RSS sampled every 20 ms)")
    print(f"{'input':52s} {'seconds':>8s} {'peak tree MiB':>14s} {'peak main MiB':>14s} {'exit':>5s}")
    for name, sec, tree, main_rss, rc in rows:
        print(f"{name:52s} {sec:8.1f} {tree / 2**20:14.0f} {main_rss / 2**20:14.0f} {rc:5d}")
    (_, _, t_short, _, _), (_, _, t_long, _, _) = rows[1], rows[2]
    per = (t_long - t_short) / max(1, args.slices - args.short)
    print(f"growth from {args.short} to {args.slices} slices: {(t_long - t_short) / 2**20:+.0f} MiB "
          f"({per / 1024:+.1f} KiB per extra slice; one 512x512 slice is 512 KiB stored, 768 KiB as RGB)")
    return 0 if all(r[4] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
