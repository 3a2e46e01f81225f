"""A/B of the run's SSIM of L: ``medcolor.metrics.ssim`` (skimage's default SSIM computed with OpenCV's box
filter) against ``skimage.metrics.structural_similarity`` itself, on the slices ``medcolor run`` measures:

    python benchmarks/ssim_ab.py [--source DIR] [--repeats 5]

For every slice of ``--source`` (default ../shared/data's chest CT, else sample_dicom/ct_chest): L_in = the
slice windowed at W 1500 L -600, L_out = the CIE L* of its exemplar colouring (the value table's, as the run
writes it). Prints, single-threaded (torch and OpenCV one thread), the fastest of ``--repeats`` passes in ms
per slice for each implementation, the largest |difference| of their values over the slices, and the
Gaussian-weighted variant of skimage (sigma 1.5, what medcolor reported before) for reference. The run
keeps ``metrics.ssim`` only while its row shows it pays.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT  # noqa: E402

from medcolor import metrics, pipeline  # noqa: E402
from medcolor.io import read_slice, scan  # noqa: E402
from medcolor.types import SeriesContext  # noqa: E402
from medcolor.windowing import resolve_window  # noqa: E402


def best_ms(fn, pairs, repeats: int) -> float:
    fn(*pairs[0])
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a, b in pairs:
            fn(a, b)
        out = min(out, (time.perf_counter() - t0) / len(pairs) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    series = scan([a.source]).series[0]
    values = [read_slice(ref, series) for ref in series.slices]
    sample = np.stack(values[:8])
    window = resolve_window("1500,-600", series, sample)
    col = pipeline.build_colorizer(pipeline.RunOptions(output=Path("unused"), method="exemplar"), torch.device("cpu"))
    chain = pipeline._Chain(series, window, False, col, [])
    col.prepare(SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(values),
                              rows=series.rows, columns=series.columns), chain.to_L(torch.from_numpy(sample)[:, None]))
    table = pipeline._build_table(chain, sample, torch.device("cpu"))
    pairs = [(l_in, l_out) for l_in, _, l_out in (table.apply(v) for v in values)]
    ours = [metrics.ssim(x, y, 100.0) for x, y in pairs]
    ref = [structural_similarity(x, y, data_range=100.0) for x, y in pairs]
    rows = [("metrics.ssim (the run's: OpenCV box filter)", best_ms(lambda x, y: metrics.ssim(x, y, 100.0), pairs,
                                                                     a.repeats)),
            ("skimage structural_similarity, its defaults (the same SSIM)",
             best_ms(lambda x, y: structural_similarity(x, y, data_range=100.0), pairs, a.repeats)),
            ("skimage structural_similarity, Gaussian sigma 1.5",
             best_ms(lambda x, y: structural_similarity(x, y, data_range=100.0, gaussian_weights=True, sigma=1.5,
                                                        use_sample_covariance=False), pairs, a.repeats))]
    print(f"SSIM of L, {len(pairs)} {series.rows}x{series.columns} slices of {a.source.name} (exemplar, W 1500 L -600); "
          f"one thread; fastest of {a.repeats}; ms per slice")
    for name, ms in rows:
        print(f"{name:62s} {ms:8.2f}")
    print(f"{'largest |metrics.ssim - skimage| over the slices':62s} {max(abs(x - y) for x, y in zip(ours, ref)):8.1e}")
    print(f"{'SSIM of L, mean over the slices (skimage)':62s} {np.mean(ref):8.5f}")


if __name__ == "__main__":
    main()
