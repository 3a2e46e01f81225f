"""Piecewise-linear lookups over L (0..100) shared by the networks and the lookup baselines.

``curve_lookup(table, L)`` evaluates tables of nodes evenly spaced over L; ``apply_l_lut(lut, L)`` is
the 1-D L -> ab lookup (``[2, LUT_BINS]``) that ``medcolor.train.lut.fit_l_lut`` fits;
``soft_histogram(L, bins)`` is a histogram of L with linear bin weights (smooth in L).
"""
from __future__ import annotations

import torch

__all__ = ["AB_LIMIT", "LUT_BINS", "apply_l_lut", "curve_lookup", "soft_histogram"]

AB_LIMIT = 110.0   # CIE ab range the networks predict (soft-limited or clamped to +-AB_LIMIT)
LUT_BINS = 101     # nodes of a 1-D L -> ab lookup (one per L unit)


def curve_lookup(table: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear lookup: ``table`` ``[B or 1, C, K]`` (nodes evenly spaced over L = 0..100),
    ``L`` ``[B,1,H,W]`` in 0..100 -> ``[B,C,H,W]``. Differentiable w.r.t. ``table``."""
    B, _, H, W = L.shape
    K = table.shape[-1]
    C = table.shape[-2]
    pos = (L.clamp(0.0, 100.0) * ((K - 1) / 100.0)).reshape(B, 1, H * W)
    lo = pos.floor().clamp(max=K - 2)
    frac = pos - lo
    lo = lo.long().expand(B, C, H * W)
    tab = table.expand(B, C, K) if table.shape[0] == 1 else table
    v0 = torch.gather(tab, 2, lo)
    v1 = torch.gather(tab, 2, lo + 1)
    return (v0 + (v1 - v0) * frac).reshape(B, C, H, W)


def soft_histogram(L: torch.Tensor, bins: int) -> torch.Tensor:
    """Normalised histogram ``[B, bins]`` of ``L`` ``[B,1,H,W]`` (0..100) with triangular (linear)
    bin weights, so it is smooth in L."""
    B = L.shape[0]
    pos = (L.clamp(0.0, 100.0) * ((bins - 1) / 100.0)).reshape(B, -1)
    lo = pos.floor().clamp(max=bins - 2)
    frac = pos - lo
    lo = lo.long()
    h = torch.zeros(B, bins, device=L.device, dtype=L.dtype)
    h.scatter_add_(1, lo, 1.0 - frac)
    h.scatter_add_(1, lo + 1, frac)
    return h / pos.shape[1]


def apply_l_lut(lut: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """``lut`` ``[2, bins]``, ``L`` ``[B,1,H,W]`` 0..100 -> ab ``[B,2,H,W]``."""
    return curve_lookup(lut.to(L).reshape(1, 2, -1), L)
