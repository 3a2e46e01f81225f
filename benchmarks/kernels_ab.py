"""A/B of the per-slice fast paths `medcolor run` keeps, each against the plain library way, on the slices the
run colours and measures:

    python benchmarks/kernels_ab.py [--source DIR] [--repeats 5]

For lut and exemplar (W 1500 L -600) on every slice of ``--source`` (default ../shared/data's chest CT, else
sample_dicom/ct_chest), with the series' value table as the pipeline builds it. Single-threaded (torch and
OpenCV one thread), the fastest of ``--repeats`` passes, ms per slice:

* the value table's look-up: ``ValueTable.apply`` (numba gather kernel) / the same look-ups in numpy;
* the measures but SSIM: ``measure_slice``'s one numba pass (|ΔL| sums and histogram, colourfulness sums)
  / numpy, OpenCV and skimage (``cv2.absdiff``, mean, max, an exact ``np.partition`` p99, skimage's PSNR,
  colourfulness from int16 opponent channels and ``cv2.meanStdDev``);
* exemplar's texture level: ``texture.levels`` (OpenCV's two box sums, then one numba pass) / the same
  arithmetic as numpy passes in place (what medcolor used before), checked equal;
* SSIM of L: ``metrics.ssim`` (skimage's default SSIM in one numba pass) / the same with OpenCV's five box
  filters and numpy (what medcolor used before) / skimage's ``structural_similarity`` itself (and with
  Gaussian weights, sigma 1.5, as medcolor reported before), with the largest difference of their values;

Each pair is checked to agree (same arrays; same figures up to the p99's 0.01 bin; SSIM to float rounding:
no farther from skimage's float64 SSIM than skimage's own float32 result).
A fast path stays in the product only while its row shows it pays.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT  # noqa: E402
from stages import best as best_ms  # noqa: E402

from medcolor import metrics, pipeline, texture  # noqa: E402
from medcolor.io import read_slice, scan  # noqa: E402
from medcolor.types import SeriesContext  # noqa: E402
from medcolor.valuetable import ValueTable  # noqa: E402
from medcolor.windowing import resolve_window  # noqa: E402


def numpy_apply(t: ValueTable, values: np.ndarray):
    """``ValueTable.apply`` with numpy look-ups (for clamped linear windows, as here)."""
    off = np.clip(values, t.lo, t.lo + t.n_rows - 1) - np.float32(t.lo)
    row = off.astype(np.intp)
    if not np.array_equal(row, off):
        return None
    l_in = t.l_tab.take(row)
    cell = row if t.levels is None else row * t.n_levels + t.levels(l_in).astype(np.intp)
    return l_in, t.rgb_tab.take(cell, axis=0), t.lout_tab.take(cell)


def numpy_measures(l_in: np.ndarray, rgb: np.ndarray, l_out: np.ndarray) -> dict[str, float]:
    """``measure_slice`` but SSIM, with numpy, OpenCV and skimage (exact p99)."""
    d = cv2.absdiff(l_out, l_in).ravel()
    k = math.ceil(0.99 * d.size) - 1
    dmax, dmean = float(d.max()), float(d.mean(dtype=np.float64))
    d.partition(k)
    r, g, b = (c.astype(np.int16) for c in np.moveaxis(rgb, -1, 0))
    (m_rg, s_rg), (m_yb2, s_yb2) = ((float(v[0, 0]) for v in cv2.meanStdDev(x)) for x in (r - g, r + g - 2 * b))
    return {"delta_l_mean": dmean, "delta_l_p99": float(d[k]), "delta_l_max": dmax,
            "psnr_l": float(peak_signal_noise_ratio(l_in, l_out, data_range=100.0)),
            "colourfulness": math.hypot(s_rg, s_yb2 / 2) + 0.3 * math.hypot(m_rg, m_yb2 / 2)}


def opencv_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """skimage's default SSIM with OpenCV's box filter and numpy in place (medcolor's before the kernel)."""
    def mean(z: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(z, -1, (7, 7), borderType=cv2.BORDER_REFLECT)

    x, y = a.astype(np.float32), b.astype(np.float32)
    ux, uy, uxx, uyy, uxy = mean(x), mean(y), mean(x * x), mean(y * y), mean(x * y)
    cov, c1, c2 = np.float32(49 / 48), np.float32((0.01 * data_range) ** 2), np.float32((0.03 * data_range) ** 2)
    a1 = ux * uy
    a2 = (uxy - a1) * cov * 2 + c2
    a1 = a1 * 2 + c1
    ux *= ux
    uy *= uy
    b2 = (uxx - ux) * cov + (uyy - uy) * cov + c2
    s_map = a1 * a2 / ((ux + uy + c1) * b2)
    return float(s_map[3:-3, 3:-3].mean(dtype=np.float64))


def numpy_levels(L: np.ndarray, size: int, scale: float, n_levels: int) -> np.ndarray:
    """The texture level with OpenCV's box sums and numpy passes in place (medcolor's before the kernel)."""
    H, W = L.shape
    x = L - np.float32(50.0)
    count = texture.box_count(H, size)[:, None] * texture.box_count(W, size)[None, :]
    m = cv2.boxFilter(x, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    np.multiply(x, x, out=x)
    s2 = cv2.boxFilter(x, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    m /= count
    s2 /= count
    s2 -= np.multiply(m, m, out=x)
    np.sqrt(np.maximum(s2, 0.0, out=s2), out=s2)
    s2 *= np.float32(scale)
    return np.clip(np.rint(s2, out=s2), 0.0, float(n_levels - 1), out=s2)


def kernel_measures(l_in: np.ndarray, rgb: np.ndarray, l_out: np.ndarray) -> dict[str, float]:
    """``measure_slice`` but SSIM (SSIM is timed on its own below)."""
    saved, metrics.ssim = metrics.ssim, lambda *a: 0.0
    try:
        return metrics.measure_slice(l_in, rgb, l_out)
    finally:
        metrics.ssim = saved


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
    rows: list[tuple[str, float | str]] = []
    for method in ("lut", "exemplar"):
        col = pipeline.build_colorizer(pipeline.RunOptions(output=Path("unused"), method=method), torch.device("cpu"))
        chain = pipeline._Chain(series, window, False, col, [])
        col.prepare(SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(values),
                                  rows=series.rows, columns=series.columns),
                    chain.to_L(torch.from_numpy(sample)[:, None]))
        table = pipeline._build_table(chain, sample, torch.device("cpu"))
        done = [table.apply(v) for v in values]
        for v, x in zip(values, done):
            assert all(np.array_equal(p, q) for p, q in zip(x, numpy_apply(table, v)))
        for x in done:
            fast, ref = kernel_measures(*x), numpy_measures(*x)
            assert ref["delta_l_p99"] <= fast["delta_l_p99"] <= ref["delta_l_p99"] + 0.0101
            assert all(fast[k] == ref[k] or math.isclose(fast[k], ref[k], rel_tol=1e-6)
                       for k in ref if k != "delta_l_p99")
        rows += [(f"{method}: ValueTable.apply (numba gather kernel)", best_ms(table.apply, values, a.repeats)),
                 (f"{method}: the same look-ups in numpy", best_ms(lambda v: numpy_apply(table, v), values, a.repeats)),
                 (f"{method}: measures but SSIM (numba, one pass)", best_ms(lambda x: kernel_measures(*x), done,
                                                                            a.repeats)),
                 (f"{method}: measures but SSIM (numpy, OpenCV, skimage)",
                  best_ms(lambda x: numpy_measures(*x), done, a.repeats))]
        if table.levels is not None:
            keys, l_ins = table.levels.keywords, [x[0] for x in done]
            assert all(np.array_equal(table.levels(x), numpy_levels(x, **keys)) for x in l_ins)
            rows += [(f"{method}: texture level (OpenCV box sums, numba pass)", best_ms(table.levels, l_ins, a.repeats)),
                     (f"{method}: texture level (OpenCV box sums, numpy passes)",
                      best_ms(lambda x: numpy_levels(x, **keys), l_ins, a.repeats))]
    pairs = [(l_in, l_out) for l_in, _, l_out in done]            # exemplar's
    ours = [metrics.ssim(x, y, 100.0) for x, y in pairs]
    ref = [structural_similarity(x, y, data_range=100.0) for x, y in pairs]
    exact = [structural_similarity(x.astype(np.float64), y.astype(np.float64), data_range=100.0) for x, y in pairs]
    # as tests/test_metrics.py asks: no farther from skimage's float64 SSIM than its own float32 result is
    assert all(abs(o - e) <= abs(r - e) + 1e-6 for o, r, e in zip(ours, ref, exact))
    rows += [("SSIM of L: metrics.ssim (numba, one pass)", best_ms(lambda p: metrics.ssim(*p, 100.0), pairs, a.repeats)),
             ("SSIM of L: OpenCV box filters and numpy", best_ms(lambda p: opencv_ssim(*p, 100.0), pairs, a.repeats)),
             ("SSIM of L: skimage structural_similarity (its defaults)",
              best_ms(lambda p: structural_similarity(*p, data_range=100.0), pairs, a.repeats)),
             ("SSIM of L: skimage, Gaussian sigma 1.5",
              best_ms(lambda p: structural_similarity(*p, data_range=100.0, gaussian_weights=True, sigma=1.5,
                                                      use_sample_covariance=False), pairs, a.repeats)),
             ("SSIM of L: largest |metrics.ssim - skimage| over the slices",
              f"{max(abs(x - y) for x, y in zip(ours, ref)):.1e}")]
    print(f"{len(values)} {series.rows}x{series.columns} slices of {a.source.name}, W 1500 L -600; one thread; "
          f"fastest of {a.repeats}; ms per slice")
    for name, v in rows:
        print(f"{name:62s} {v:>8.2f}" if isinstance(v, float) else f"{name:62s} {v:>8s}")


if __name__ == "__main__":
    main()
