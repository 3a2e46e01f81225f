"""Image-quality measures: what the run report holds for every written slice, and colourfulness.

Conventions: 2-D images are numpy arrays ``[H, W]``; 8-bit colour images are numpy ``uint8 [H, W, 3]``
(channel-last, as writers hold them). Results are Python floats.

* :func:`measure_slice` - the run report's figures of one slice, from its windowed L, the written 8-bit
  colour and that colour's L*: |ΔL| (the promise that no structure is invented), PSNR and SSIM of L,
  colourfulness. The one implementation for every path of ``medcolor run``; its sums come from one pass
  of a small numba kernel (``medcolor._kernels``; ``benchmarks/kernels_ab.py`` shows that it pays).
* :func:`ssim` - the SSIM of ``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform
  window, sample covariance, K1 0.01, K2 0.03, the 3-pixel border cropped) -- the definition ``medcolor
  evaluate`` scores with skimage itself -- for one 2-D image pair, in one pass of a numba kernel
  (``medcolor._kernels.ssim_mean``): a fraction of skimage's cost, and of OpenCV's five box filters, per
  512x512 slice (``benchmarks/kernels_ab.py`` prints all three), the same value to float rounding (tested
  against skimage).
* :func:`colourfulness` - Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images",
  Proc. SPIE 5007: ``M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)`` with
  ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on 0..255 values.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from medcolor.color import rgb8_to_L

__all__ = ["measure_slice", "lightness", "ssim", "colourfulness", "colorfulness", "summarize", "summarize_series"]

def _check_rgb8(rgb8: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb8)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"rgb8 must be uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
    return arr


def lightness(rgb8: np.ndarray) -> np.ndarray:
    """CIE L* float32 ``[H, W]`` of an 8-bit sRGB image ``[H, W, 3]`` (:func:`medcolor.color.rgb8_to_L`)."""
    t = torch.from_numpy(np.ascontiguousarray(_check_rgb8(rgb8))).movedim(-1, 0)
    return rgb8_to_L(t)[0].numpy()


def colourfulness(rgb8: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M of an 8-bit sRGB image ``[H, W, 3]`` (0 for gray
    images; about 15 "slightly", 33 "moderately", 59 "quite", 82 "highly", 109 "extremely" colourful)."""
    from medcolor import _kernels

    rgb = np.ascontiguousarray(_check_rgb8(rgb8)).reshape(-1, 3)
    n = max(rgb.shape[0], 1)
    s_rg, s_rg2, s_yb2, s_yb22 = _kernels.opponent_sums(rgb)
    m_rg, m_yb = s_rg / n, s_yb2 / (2 * n)                       # yb = (R + G - 2B) / 2
    v_rg, v_yb = max(s_rg2 / n - m_rg * m_rg, 0.0), max(s_yb22 / (4 * n) - m_yb * m_yb, 0.0)
    return math.sqrt(v_rg + v_yb) + 0.3 * math.hypot(m_rg, m_yb)


colorfulness = colourfulness


_SSIM_WIN = 7   # the window of skimage's default SSIM, and of medcolor._kernels.ssim_mean


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean structural similarity of the 2-D images ``b`` and ``a`` (same shape, at least 7x7), as
    ``skimage.metrics.structural_similarity(a, b, data_range=data_range)`` (see the module docstring)."""
    x, y = (np.asarray(v, dtype=np.float32) for v in (a, b))
    if x.shape != y.shape or x.ndim != 2 or min(x.shape) < _SSIM_WIN:
        raise ValueError(f"ssim needs two 2-D images of the same shape, at least 7x7; got {x.shape}, {y.shape}")

    from medcolor import _kernels

    cov_norm = np.float32(_SSIM_WIN ** 2 / (_SSIM_WIN ** 2 - 1))       # sample covariance
    c1, c2 = np.float32((0.01 * data_range) ** 2), np.float32((0.03 * data_range) ** 2)
    return float(_kernels.ssim_mean(np.ascontiguousarray(x), np.ascontiguousarray(y), c1, c2, cov_norm))


def measure_slice(l_in: np.ndarray, rgb8: np.ndarray, l_out: np.ndarray | None = None) -> dict[str, float]:
    """The run report's figures of one slice: ``l_in`` float32 ``[H, W]`` the windowed input's L, ``rgb8``
    uint8 ``[H, W, 3]`` the written image, ``l_out`` its CIE L* (:func:`lightness` of ``rgb8`` when not
    given; a value table hands over the L* it holds).

    ``delta_l_mean``, ``delta_l_p99``, ``delta_l_max`` of ``|l_out - l_in|`` (float32); the 99th percentile
    is the upper edge of the 0.01 wide bin that holds the order statistic ``ceil(0.99 n) - 1`` (at most
    0.01 above it), exact when it lies beyond 10; ``psnr_l`` (inf when the L are equal) and ``ssim_l``
    (:func:`ssim`; NaN for slices smaller than 7x7) of ``l_out`` against ``l_in``, data range 100;
    ``colourfulness`` of ``rgb8``. The sums come from one pass of a numba kernel (``medcolor._kernels``)."""
    from medcolor import _kernels

    l_in = np.ascontiguousarray(l_in, dtype=np.float32)
    rgb8 = _check_rgb8(rgb8)
    l_out = lightness(rgb8) if l_out is None else np.ascontiguousarray(l_out, dtype=np.float32)
    if l_in.shape != rgb8.shape[:2] or l_out.shape != l_in.shape:
        raise ValueError(f"L {l_in.shape} and L* {l_out.shape} do not match rgb8 {rgb8.shape}")
    n = l_in.size
    hist = np.zeros(1001, dtype=np.int64)
    total, squares, dmax = _kernels.delta_l_sums(l_in.reshape(-1), l_out.reshape(-1), hist)
    k = int(np.searchsorted(np.cumsum(hist), math.ceil(0.99 * n)))
    if k < 1000:
        p99 = (k + 1) * 0.01
    else:
        d = np.abs(l_out - l_in).ravel()
        p99 = float(np.partition(d, math.ceil(0.99 * n) - 1)[math.ceil(0.99 * n) - 1])
    return {"delta_l_mean": total / n, "delta_l_p99": p99, "delta_l_max": float(dmax),
            "psnr_l": math.inf if squares == 0.0 else 10.0 * math.log10(100.0 ** 2 * n / squares),
            "ssim_l": ssim(l_in, l_out, 100.0) if min(l_in.shape) >= _SSIM_WIN else math.nan,
            "colourfulness": colourfulness(rgb8)}


def summarize(values: Iterable[float]) -> dict[str, float]:
    """mean, std (population), min, max of ``values``; NaN for all four when empty."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "min": nan, "max": nan}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "max": float(arr.max())}


def summarize_series(slices: list[dict[str, float]]) -> dict[str, float]:
    """A series' summary of its slices' :func:`measure_slice` records (empty when there are none)."""
    if not slices:
        return {}

    def col(k: str) -> np.ndarray:
        return np.array([s[k] for s in slices], dtype=np.float64)
    psnrs = col("psnr_l")
    finite = psnrs[np.isfinite(psnrs)]
    return {
        "n_slices": len(slices),
        "delta_l_mean": float(col("delta_l_mean").mean()),
        "delta_l_p99_max": float(col("delta_l_p99").max()),
        "delta_l_max": float(col("delta_l_max").max()),
        "colourfulness_mean": float(col("colourfulness").mean()),
        "psnr_l_mean": float(finite.mean()) if finite.size else float("inf"),
        "ssim_l_mean": float(col("ssim_l").mean()),
    }
