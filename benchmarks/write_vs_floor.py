"""Per-slice cost of medcolor's RGB Secondary Capture write against the I/O floor's own write, interleaved.

    python benchmarks/write_vs_floor.py [--source DIR] [--n 100] [--passes 6]

Series: ``make_series`` of benchmarks/pipeline_vs_floor.py (``--n`` slices cycled from ``--source``,
default ../shared/data's chest CT, else sample_dicom/ct_chest), scanned by medcolor. Each pass times, one
after the other on one thread (so load on a shared machine hits both alike):

* medcolor: ``SecondaryCaptureWriter.write`` of every slice (one RGB instance each, files staged, the
  series then discarded with ``abort``), single-frame; and the multi-frame writer, ``close`` included;
* floor: ``floor`` of pipeline_vs_floor.py with and without writing; the difference is the floor's write
  of a minimal same-size RGB SC per slice with pydicom.

Prints min and median over the passes, in ms per slice, and each median over the floor's write median
(below 1: cheaper than the floor's write).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT, floor, make_series  # noqa: E402

from medcolor.io import scan  # noqa: E402
from medcolor.types import Derivation  # noqa: E402
from medcolor.writers import SecondaryCaptureWriter  # noqa: E402


def medcolor_write(series, rgb: np.ndarray, out: Path, multiframe: bool) -> float:
    """Seconds per slice to write ``series`` (every slice ``rgb``) with medcolor's SC writer."""
    derivation = Derivation(method="lut", window="W=1500 L=-600 (HU)", software_version="bench")
    writer = SecondaryCaptureWriter(out, series, derivation, 1, multiframe=multiframe, overwrite=True)
    t0 = time.perf_counter()
    for k, ref in enumerate(series.slices):
        writer.write(k, ref, rgb)
    if multiframe:
        writer.close()
    seconds = time.perf_counter() - t0
    writer.abort()
    return seconds / len(series.slices)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path,
                    default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--passes", type=int, default=6)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medcolor-write-"))
    rows: dict[str, list[float]] = {"medcolor SC write, single-frame": [], "medcolor SC write, multi-frame": [],
                                    "floor's write (pydicom minimal RGB SC)": []}
    try:
        folder = make_series(a.source, a.n, work / "in")
        series = scan([folder]).series[0]
        rgb = np.random.default_rng(0).integers(0, 256, (series.rows, series.columns, 3), dtype=np.uint8)
        floor(folder, None)  # warm the page cache
        for _ in range(a.passes):
            rows["medcolor SC write, single-frame"].append(medcolor_write(series, rgb, work / "sf", False))
            rows["medcolor SC write, multi-frame"].append(medcolor_write(series, rgb, work / "mf", True))
            write = floor(folder, work / "floor") - floor(folder, None)
            rows["floor's write (pydicom minimal RGB SC)"].append(write / a.n)
            shutil.rmtree(work / "floor")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{a.n}-slice 512x512 CT from {a.source.name}; one thread; {a.passes} interleaved passes; ms per slice")
    floor_median = statistics.median(rows["floor's write (pydicom minimal RGB SC)"])
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"{name:42s} min {min(values) * 1e3:6.2f}  median {median * 1e3:6.2f}  "
              f"(cost {median / floor_median:.2f} of the floor's write)")


if __name__ == "__main__":
    main()
