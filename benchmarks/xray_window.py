"""Choose the default window of X-ray (DX/CR) images without a VOI window in the file.

Reads the shipped X-ray (sample_dicom/xray_chest/chest_xray.dcm, or the files given) through medcolor's
own reader, windows it with percentile windows LO..HI over a grid, and prints per window: mean L*, the
spread of L* (standard deviation), and the share of pixels clipped to black and to white. "Washed out"
is a high mean L* with a small spread; the pick is the window with the largest spread of L* among those
that clip at most 6 % of the pixels to black (background and collimation outside the body are the
darkest pixels of a radiograph) and at most 1 % to white (bone and markers are the brightest).

    python benchmarks/xray_window.py [FILE...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from medcolor.io import read_slice, scan
from medcolor.windowing import percentile_window, window_to_l

ROOT = Path(__file__).resolve().parents[1]
LOS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0)
HIS = (98.0, 99.0, 99.5, 99.9, 100.0)
BLACK_MAX, WHITE_MAX = 6.0, 1.0   # % of pixels clipped to L* 0 and to L* 100


def main(paths: list[str]) -> None:
    found = scan(paths or [str(ROOT / "sample_dicom" / "xray_chest")])
    for series in found.series:
        values = np.stack([read_slice(ref, series) for ref in series.slices]).astype(np.float32)
        print(f"{series.source_label}: {series.modality}, {values.shape}, values {values.min():g}..{values.max():g}")
        print(f"{'window':>18} {'mean L*':>8} {'sd L*':>6} {'black %':>8} {'white %':>8}")
        best = None
        for lo in LOS:
            for hi in HIS:
                w = percentile_window(values, lo, hi)
                L = window_to_l(values, w, invert=series.photometric == "MONOCHROME1")
                mean, sd = float(L.mean()), float(L.std())
                black, white = 100 * float((L <= 0).mean()), 100 * float((L >= 100).mean())
                print(f"{f'percentile:{lo:g},{hi:g}':>18} {mean:8.1f} {sd:6.1f} {black:8.2f} {white:8.2f}")
                if black <= BLACK_MAX and white <= WHITE_MAX and (best is None or sd > best[0]):
                    best = (sd, lo, hi, mean)
        if best is not None:
            print(f"pick: percentile:{best[1]:g},{best[2]:g} (sd L* {best[0]:.1f}, mean L* {best[3]:.1f})")
        else:
            print("pick: none of the grid meets the limits")


if __name__ == "__main__":
    main(sys.argv[1:])
