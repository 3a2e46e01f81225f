"""The texture level of a pixel, on numpy arrays: ``round(local std of L over size² * scale)`` clamped to
``0 .. n_levels - 1``, the std over the pixels of the ``size``×``size`` neighbourhood that lie inside the
image, L centred on 50 first (float32 cancellation in ``E[x²] - E[x]²``).

The one CPU implementation: :func:`medcolor.colorizers.base.texture_level` wraps it for tensors, and a
value table's per-slice levels call it directly (no torch on that path). OpenCV's two box sums, then the
per-pixel arithmetic in one numba pass (``medcolor._kernels.texture_finish``: the float32 operations numpy did
in place, the same values; ``benchmarks/kernels_ab.py`` compares the two).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["box_count", "levels"]


def box_count(n: int, size: int) -> np.ndarray:
    """float32 (n,): how many of the ``size`` positions centred on each of ``n`` indices lie inside 0..n-1."""
    r = size // 2
    i = np.arange(n)
    return (np.minimum(i + r, n - 1) - np.maximum(i - r, 0) + 1).astype(np.float32)


def levels(L: np.ndarray, size: int, scale: float, n_levels: int) -> np.ndarray:
    """Texture levels (float32 holding integers) of ``L`` float32 ``[..., H, W]``, the same shape."""
    from medcolor import _kernels  # numba: imported on first use

    H, W = L.shape[-2:]
    x = np.asarray(L, dtype=np.float32) - np.float32(50.0)
    out = np.empty_like(x)
    count_r, count_c = box_count(H, size), box_count(W, size)
    for xi, oi in zip(x.reshape(-1, H, W), out.reshape(-1, H, W)):
        m = cv2.boxFilter(xi, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
        np.multiply(xi, xi, out=xi)
        s2 = cv2.boxFilter(xi, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
        _kernels.texture_finish(m, s2, count_r, count_c, np.float32(scale), np.float32(n_levels - 1), oi)
    return out
