"""Image-quality metrics, fast enough to run on every slice (a few ms for 512 x 512 on one core).

Conventions: 2-D images are numpy arrays or torch tensors ``[H, W]``; 8-bit colour images are
numpy ``uint8 [H, W, 3]`` (channel-last, as writers hold them) or torch ``uint8 [3, H, W]``
(channel-first, as :func:`medcolor.color.lab_to_rgb8` returns them). Results are Python floats.

* :func:`delta_l` - |L*(rgb8) - L_expected|: the promise that no structure is invented.
* :func:`colourfulness` - Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images",
  Proc. SPIE 5007: ``M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)`` with
  ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on 0..255 values.
* :func:`psnr`, :func:`ssim`, :func:`nrmse` - as in ``skimage.metrics`` (SSIM with Gaussian weights,
  sigma 1.5, population covariance, K1 0.01, K2 0.03, borders of the 11-tap window cropped).
* :func:`delta_e2000` - CIEDE2000 (Sharma, Wu & Dalal 2005), vectorised, as
  ``skimage.color.deltaE_ciede2000``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
import torch

from medcolor.color import rgb8_to_L_numpy

__all__ = ["delta_l", "colourfulness", "colorfulness", "psnr", "ssim", "nrmse", "delta_e2000",
           "summarize"]


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _rgb8_hwc(rgb8: Any) -> np.ndarray:
    """uint8 [H, W, 3] numpy from numpy [H, W, 3] or torch [3, H, W] / [1, 3, H, W]."""
    if isinstance(rgb8, torch.Tensor):
        t = rgb8.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"rgb8 tensor must be [3, H, W], got {tuple(t.shape)}")
        arr = t.permute(1, 2, 0).cpu().numpy()
    else:
        arr = np.asarray(rgb8)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"rgb8 array must be [H, W, 3], got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"rgb8 must be uint8, got {arr.dtype}")
    return arr


def delta_l(L_expected: Any, rgb8: Any) -> dict[str, float]:
    """Mean, 99th percentile and max of ``|L*(rgb8) - L_expected|`` (L* units).

    ``L_expected``: [H, W] (or [1, H, W]) in 0..100, numpy or torch. ``rgb8``: uint8 numpy
    [H, W, 3] or torch [3, H, W]. L* of the 8-bit colours uses 256-entry tables (exact sRGB).
    The 99th percentile is the order statistic at ``ceil(0.99 n) - 1`` (no interpolation).
    """
    L_out = rgb8_to_L_numpy(_rgb8_hwc(rgb8))
    L_exp = _np(L_expected).astype(np.float32, copy=False).reshape(L_out.shape)
    d = np.abs(L_out - L_exp).ravel()
    if d.size == 0:
        return {"mean": float("nan"), "p99": float("nan"), "max": float("nan")}
    k = max(int(math.ceil(0.99 * d.size)) - 1, 0)
    p99 = float(np.partition(d, k)[k])
    return {"mean": float(d.mean(dtype=np.float64)), "p99": p99, "max": float(d.max())}


def colourfulness(rgb8: Any) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M of an 8-bit sRGB image (0 for gray images;
    about 15 "slightly", 33 "moderately", 59 "quite", 82 "highly", 109 "extremely" colourful)."""
    arr = _rgb8_hwc(rgb8)
    r = arr[..., 0].astype(np.float32)
    g = arr[..., 1].astype(np.float32)
    b = arr[..., 2].astype(np.float32)
    rg = r - g
    yb = (r + g) * np.float32(0.5) - b
    m_rg, s_rg = cv2.meanStdDev(rg)
    m_yb, s_yb = cv2.meanStdDev(yb)
    m_rg, s_rg, m_yb, s_yb = (float(v.ravel()[0]) for v in (m_rg, s_rg, m_yb, s_yb))
    return math.sqrt(s_rg ** 2 + s_yb ** 2) + 0.3 * math.sqrt(m_rg ** 2 + m_yb ** 2)


colorfulness = colourfulness


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _np(a), _np(b)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    return x, y


def psnr(a: Any, b: Any, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; inf when identical."""
    x, y = _pair(a, b)
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(float(data_range) ** 2 / mse)


def nrmse(a: Any, b: Any, normalization: str = "euclidean") -> float:
    """RMSE of ``b`` against the reference ``a``, divided by ``sqrt(mean(a^2))`` ("euclidean",
    skimage's default), ``max(a) - min(a)`` ("min-max") or ``mean(a)`` ("mean")."""
    x, y = _pair(a, b)
    x = x.astype(np.float64)
    rmse = math.sqrt(float(np.mean((x - y.astype(np.float64)) ** 2)))
    norm = normalization.lower()
    if norm == "euclidean":
        denom = math.sqrt(float(np.mean(x * x)))
    elif norm == "min-max":
        denom = float(x.max() - x.min())
    elif norm == "mean":
        denom = float(x.mean())
    else:
        raise ValueError(f"normalization must be 'euclidean', 'min-max' or 'mean', got {normalization!r}")
    return rmse / denom if denom != 0 else float("inf") if rmse else 0.0


_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)   # 5, as skimage (truncate 3.5) -> 11 taps


_SSIM_TAPS = cv2.getGaussianKernel(2 * _SSIM_RADIUS + 1, _SSIM_SIGMA, cv2.CV_32F).ravel()  # as cv2.GaussianBlur's
_SSIM_TAPS.flags.writeable = False


def _ssim_inputs(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _pair(a, b)
    if x.ndim != 2:
        raise ValueError(f"ssim expects 2-D images, got shape {x.shape}")
    win = 2 * _SSIM_RADIUS + 1
    if min(x.shape) < win:
        raise ValueError(f"ssim needs images of at least {win}x{win}, got {x.shape}")
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)


def ssim(a: Any, b: Any, data_range: float) -> float:
    """Mean structural similarity of two 2-D images, Gaussian-weighted (sigma 1.5, 11 taps,
    reflect borders), population covariance, K1 = 0.01, K2 = 0.03, a 5-pixel border excluded:
    equals ``skimage.metrics.structural_similarity(a, b, data_range=..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)`` to ~1e-5 (float32 filtering).

    With numba: one fused separable pass (``_fastcolor.ssim_mean``, about 2x faster than the cv2 path,
    no full-size temporaries); only windows inside the image are averaged, so the border mode never
    matters. Otherwise :func:`_ssim_cv2`. Both give the same value (to float64 rounding where OpenCV
    filters with AVX2/FMA, as on the development machine; otherwise by float32 filter rounding)."""
    x, y = _ssim_inputs(a, b)
    from medcolor import color as _color

    fast = _color._fast()
    if fast is not None and hasattr(fast, "ssim_mean"):
        c1 = (0.01 * float(data_range)) ** 2
        c2 = (0.03 * float(data_range)) ** 2
        return float(fast.ssim_mean(np.ascontiguousarray(x), np.ascontiguousarray(y), _SSIM_TAPS, c1, c2))
    return _ssim_cv2(x, y, data_range)


def _ssim_cv2(a: Any, b: Any, data_range: float) -> float:
    """:func:`ssim` from five ``cv2.GaussianBlur`` moments (float32, BORDER_REFLECT), then the map's
    interior mean (fused in numba when available): the fallback, and the reference the tests hold
    the fused kernel to."""
    x, y = _ssim_inputs(a, b)
    win = 2 * _SSIM_RADIUS + 1

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (win, win), _SSIM_SIGMA, sigmaY=_SSIM_SIGMA,
                                borderType=cv2.BORDER_REFLECT)

    c1 = (0.01 * float(data_range)) ** 2
    c2 = (0.03 * float(data_range)) ** 2
    from medcolor import color as _color

    fast = _color._fast()
    if fast is not None and hasattr(fast, "ssim_moments_mean"):  # the same formula, fused (~3x faster)
        return float(fast.ssim_moments_mean(np.ascontiguousarray(x), np.ascontiguousarray(y), blur, c1, c2,
                                            _SSIM_RADIUS))
    ux, uy = blur(x), blur(y)
    uxx, uyy, uxy = blur(x * x), blur(y * y), blur(x * y)
    uxuy = ux * uy
    ux2_uy2 = ux * ux + uy * uy
    num = (2.0 * uxuy + c1) * (2.0 * (uxy - uxuy) + c2)
    den = (ux2_uy2 + c1) * ((uxx + uyy) - ux2_uy2 + c2)
    s = num / den
    p = _SSIM_RADIUS
    return float(s[p:-p, p:-p].mean(dtype=np.float64))


def delta_e2000(lab1: Any, lab2: Any, kL: float = 1.0, kC: float = 1.0, kH: float = 1.0,
                channel_axis: int = -1) -> np.ndarray:
    """CIEDE2000 colour difference, element-wise, float64 numpy.

    ``lab1``, ``lab2``: Lab arrays (numpy or torch) with the 3 channels on ``channel_axis``
    (channel-last by default, as skimage; pass ``channel_axis=-3`` for ``(*, 3, H, W)`` tensors);
    they broadcast. Follows Sharma, Wu & Dalal (2005) exactly as ``skimage.color.deltaE_ciede2000``.
    """
    x = np.moveaxis(_np(lab1).astype(np.float64), channel_axis, 0)
    y = np.moveaxis(_np(lab2).astype(np.float64), channel_axis, 0)
    if x.shape[0] != 3 or y.shape[0] != 3:
        raise ValueError("delta_e2000 expects 3 Lab channels on channel_axis")
    L1, a1, b1 = x
    L2, a2, b2 = y
    cbar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c7 = cbar ** 7
    scale = 1.0 + 0.5 * (1.0 - np.sqrt(c7 / (c7 + 25.0 ** 7)))
    a1p, a2p = a1 * scale, a2 * scale
    C1, C2 = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1 = np.arctan2(b1, a1p) % (2 * np.pi)
    h2 = np.arctan2(b2, a2p) % (2 * np.pi)

    lbar = 0.5 * (L1 + L2)
    tmp = (lbar - 50.0) ** 2
    SL = 1.0 + 0.015 * tmp / np.sqrt(20.0 + tmp)
    L_term = (L2 - L1) / (kL * SL)

    cbarp = 0.5 * (C1 + C2)
    SC = 1.0 + 0.045 * cbarp
    C_term = (C2 - C1) / (kC * SC)

    h_diff = h2 - h1
    h_sum = h1 + h2
    CC = C1 * C2
    zero = CC == 0.0
    dH = np.where(h_diff > np.pi, h_diff - 2 * np.pi, np.where(h_diff < -np.pi, h_diff + 2 * np.pi, h_diff))
    dH = np.where(zero, 0.0, dH)
    dH_term = 2.0 * np.sqrt(CC) * np.sin(dH / 2.0)

    wrap = (~zero) & (np.abs(h_diff) > np.pi)
    hbar = np.where(wrap & (h_sum < 2 * np.pi), h_sum + 2 * np.pi,
                    np.where(wrap & (h_sum >= 2 * np.pi), h_sum - 2 * np.pi, h_sum))
    hbar = np.where(zero, hbar * 2.0, hbar) * 0.5

    T = (1.0 - 0.17 * np.cos(hbar - np.deg2rad(30.0)) + 0.24 * np.cos(2.0 * hbar)
         + 0.32 * np.cos(3.0 * hbar + np.deg2rad(6.0)) - 0.20 * np.cos(4.0 * hbar - np.deg2rad(63.0)))
    SH = 1.0 + 0.015 * cbarp * T
    H_term = dH_term / (kH * SH)

    c7p = cbarp ** 7
    Rc = 2.0 * np.sqrt(c7p / (c7p + 25.0 ** 7))
    dtheta = np.deg2rad(30.0) * np.exp(-(((np.rad2deg(hbar) - 275.0) / 25.0) ** 2))
    R_term = -np.sin(2.0 * dtheta) * Rc * C_term * H_term
    return np.sqrt(np.maximum(L_term ** 2 + C_term ** 2 + H_term ** 2 + R_term, 0.0))


def summarize(values: Iterable[float]) -> dict[str, float]:
    """mean, std (population), min, max of ``values``; NaN for all four when empty."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "min": nan, "max": nan}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "max": float(arr.max())}


def measure_rgb8(L_expected: np.ndarray, rgb8_hwc: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """What the pipeline reports for each written slice, in one pass where numba is available.

    ``L_expected`` float32 [H, W] (the windowed input's L*), ``rgb8_hwc`` uint8 [H, W, 3] (the written
    image). Returns the written image's L* [H, W] and ``delta_l_mean``, ``delta_l_p99`` (upper edge of
    its 0.01 bin, as :func:`medcolor.color.delta_l_stats`), ``delta_l_max``, ``psnr_l`` (data range
    100) and ``colourfulness``; each equals the separate function's value (to float rounding)."""
    from medcolor import color as _color

    rgb = _color._check_rgb8_hwc(rgb8_hwc)
    l_in = np.ascontiguousarray(L_expected, dtype=np.float32)
    if l_in.shape != rgb.shape[:-1] or l_in.ndim != 2:
        raise ValueError(f"L_expected {l_in.shape} does not match rgb8 {rgb.shape}")
    fast = _color._fast()
    if fast is None or not hasattr(fast, "measure"):
        l_out = rgb8_to_L_numpy(rgb)
        mean, p99, dmax = _color.delta_l_stats(l_in, rgb)
        return l_out, {"delta_l_mean": mean, "delta_l_p99": p99, "delta_l_max": dmax,
                       "psnr_l": psnr(l_in, l_out, 100.0), "colourfulness": colourfulness(rgb)}
    l_out, *sums = fast.measure(l_in.reshape(-1), np.ascontiguousarray(rgb).reshape(-1), _color._ylut(),
                                _color._LSTAR_CONSTS)
    l_out = l_out.reshape(l_in.shape)
    return l_out, measures_from_sums(l_in, l_out, *sums)


def measures_from_sums(l_in: np.ndarray, l_out: np.ndarray, total: float, dmax: float, counts: np.ndarray,
                       sse: float, s_rg: float, s_rg2: float, s_yb: float, s_yb2: float) -> dict[str, float]:
    """:func:`measure_rgb8`'s figures from the sums one pass over the pixels accumulated (the numba
    kernels): |ΔL| sum and max and its 1001-bin histogram (0.01 wide), the sum of squared ΔL and the sums
    of the opponent channels rg, yb and of their squares. ``l_in``/``l_out`` are read only when the
    99th percentile lies in the histogram's open last bin (|ΔL| >= 10)."""
    n = l_in.size
    k = int(np.searchsorted(np.cumsum(counts), 0.99 * n))
    p99 = (k + 1) * 0.01 if k < 1000 else float(np.percentile(np.abs(l_out - l_in), 99))
    mse = sse / n
    m_rg, m_yb = s_rg / n, s_yb / n
    v_rg, v_yb = max(s_rg2 / n - m_rg * m_rg, 0.0), max(s_yb2 / n - m_yb * m_yb, 0.0)
    return {
        "delta_l_mean": total / n, "delta_l_p99": p99, "delta_l_max": float(dmax),
        "psnr_l": float("inf") if mse == 0.0 else 10.0 * math.log10(100.0 ** 2 / mse),
        "colourfulness": math.sqrt(v_rg + v_yb) + 0.3 * math.sqrt(m_rg * m_rg + m_yb * m_yb),
    }
