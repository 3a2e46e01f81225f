"""Image-quality measures: what the run report holds for every written slice, and colourfulness.

Conventions: 2-D images are numpy arrays ``[H, W]``; 8-bit colour images are numpy ``uint8 [H, W, 3]``
(channel-last, as writers hold them). Results are Python floats.

* :func:`measure_slice` - the run report's figures of one slice, from its windowed L, the written 8-bit
  colour and that colour's L*: |ΔL| (the promise that no structure is invented), PSNR and SSIM of L,
  colourfulness. The one implementation for every path of ``medcolor run``.
* :func:`ssim` - ``skimage.metrics.structural_similarity`` with its defaults (7x7 uniform window, sample
  covariance, K1 0.01, K2 0.03): SSIM of L in ``medcolor run`` and of RGB in ``medcolor evaluate``.
* :func:`colourfulness` - Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images",
  Proc. SPIE 5007: ``M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)`` with
  ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on 0..255 values.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medcolor.color import rgb8_to_L

__all__ = ["measure_slice", "lightness", "ssim", "colourfulness", "colorfulness", "summarize"]

#: opponent channels (rg, yb) of Hasler & Suesstrunk as a matrix over (R, G, B)
_OPPONENT = np.array([[1.0, 0.5], [-1.0, 0.5], [0.0, -1.0]], dtype=np.float32)


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
    arr = _check_rgb8(rgb8)
    opp = arr.reshape(-1, 3).astype(np.float32) @ _OPPONENT          # [N, 2]: rg, yb
    mean, std = (v.ravel() for v in cv2.meanStdDev(opp.reshape(-1, 1, 2)))
    return math.hypot(std[0], std[1]) + 0.3 * math.hypot(mean[0], mean[1])


colorfulness = colourfulness


def ssim(a: np.ndarray, b: np.ndarray, data_range: float, channel_axis: int | None = None) -> float:
    """Mean structural similarity of ``b`` against ``a`` (same shape; at least 7x7), as
    ``skimage.metrics.structural_similarity`` with its default window (7x7 uniform)."""
    return float(structural_similarity(a, b, data_range=data_range, channel_axis=channel_axis))


def measure_slice(l_in: np.ndarray, rgb8: np.ndarray, l_out: np.ndarray | None = None) -> dict[str, float]:
    """The run report's figures of one slice: ``l_in`` float32 ``[H, W]`` the windowed input's L, ``rgb8``
    uint8 ``[H, W, 3]`` the written image, ``l_out`` its CIE L* (:func:`lightness` of ``rgb8`` when not
    given; a value table hands over the L* it holds).

    ``delta_l_mean``, ``delta_l_p99`` (the order statistic at ``ceil(0.99 n) - 1``), ``delta_l_max`` of
    ``|l_out - l_in|``; ``psnr_l`` and ``ssim_l`` (:func:`ssim`) of ``l_out`` against ``l_in`` (data range
    100; PSNR inf when they are equal; SSIM only for slices of at least 7x7, else NaN);
    ``colourfulness`` of ``rgb8``."""
    l_in = np.asarray(l_in, dtype=np.float32)
    rgb8 = _check_rgb8(rgb8)
    l_out = lightness(rgb8) if l_out is None else np.asarray(l_out, dtype=np.float32)
    if l_in.shape != rgb8.shape[:2] or l_out.shape != l_in.shape:
        raise ValueError(f"L {l_in.shape} and L* {l_out.shape} do not match rgb8 {rgb8.shape}")
    d = np.abs(l_out - l_in).ravel()
    k = max(math.ceil(0.99 * d.size) - 1, 0)
    dmax = float(d.max())
    return {"delta_l_mean": float(d.mean(dtype=np.float64)), "delta_l_p99": float(np.partition(d, k)[k]),
            "delta_l_max": dmax,
            "psnr_l": math.inf if dmax == 0.0 else float(peak_signal_noise_ratio(l_in, l_out, data_range=100.0)),
            "ssim_l": ssim(l_in, l_out, 100.0) if min(l_in.shape) >= 7 else math.nan,
            "colourfulness": colourfulness(rgb8)}


def summarize(values: Iterable[float]) -> dict[str, float]:
    """mean, std (population), min, max of ``values``; NaN for all four when empty."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "min": nan, "max": nan}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "max": float(arr.max())}
