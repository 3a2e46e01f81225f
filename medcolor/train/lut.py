"""1-D luminance -> chroma lookup (the trivial learned baseline and the CNN's luminance prior).

``fit_l_lut(images)`` -> ``[2, bins]``: mean a and b of all training pixels at L nodes evenly spaced
over 0..100 (linear splatting), lightly smoothed, empty ranges filled from the nearest filled node
(and ab = 0 when the images have no pixels at all); :func:`medcolor.nets.lookup.apply_l_lut` applies
it. ``mean_ab(images)`` -> the training set's mean (a, b).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

from medcolor.nets.checkpoint import check_chroma_centre
from medcolor.nets.lookup import LUT_BINS
from medcolor.train.data import lab_of

__all__ = ["chroma_centre", "fit_l_lut", "mean_ab"]


def _labs(images: Iterable[torch.Tensor]):
    for img in images:
        yield lab_of(img if img.ndim == 3 else img[0]).reshape(3, -1).double()


def fit_l_lut(images: Iterable[torch.Tensor], bins: int = LUT_BINS, smooth: float = 1.0) -> torch.Tensor:
    """Images: sRGB float ``[3,H,W]`` in 0..1. Returns float32 ``[2, bins]``."""
    count = torch.zeros(bins, dtype=torch.float64)
    sums = torch.zeros(2, bins, dtype=torch.float64)
    for lab in _labs(images):
        pos = lab[0].clamp(0, 100) * ((bins - 1) / 100.0)
        lo = pos.floor().clamp(max=bins - 2)
        fr = pos - lo
        lo = lo.long()
        for idx, w in ((lo, 1.0 - fr), (lo + 1, fr)):
            count.index_add_(0, idx, w)
            sums.index_add_(1, idx, lab[1:] * w)
    if smooth > 0:
        r = max(1, int(3 * smooth))
        x = torch.arange(-r, r + 1, dtype=torch.float64)
        k = torch.exp(-0.5 * (x / smooth) ** 2)
        k = (k / k.sum()).view(1, 1, -1)
        count = F.conv1d(F.pad(count.view(1, 1, -1), (r, r), mode="replicate"), k).view(-1)
        sums = F.conv1d(F.pad(sums.view(2, 1, -1), (r, r), mode="replicate"), k).view(2, -1)
    filled = count > 1e-6
    lut = torch.zeros(2, bins, dtype=torch.float64)
    if filled.any():
        lut[:, filled] = sums[:, filled] / count[filled]
        idx = torch.nonzero(filled).view(-1)
        nearest = idx[(torch.arange(bins)[:, None] - idx[None, :]).abs().argmin(dim=1)]
        lut = lut[:, nearest]
    return lut.float()


def mean_ab(images: Iterable[torch.Tensor]) -> torch.Tensor:
    """Mean (a, b) over every pixel of the images: float32 ``[2]``."""
    total = torch.zeros(2, dtype=torch.float64)
    n = 0
    for lab in _labs(images):
        total += lab[1:].sum(dim=1)
        n += lab.shape[1]
    return (total / max(n, 1)).float()


def chroma_centre(spec: str, images: Iterable[torch.Tensor]) -> list[float] | None:
    """``--chroma-centre``: ``"mean"`` -> the images' :func:`mean_ab` (rounded to 0.01), anything else as
    :func:`medcolor.nets.checkpoint.check_chroma_centre` takes it (``"zero"`` -> None, ``"CA,CB"``)."""
    if isinstance(spec, str) and spec.strip().lower() == "mean":
        return [round(float(v), 2) for v in mean_ab(images)]
    return check_chroma_centre(spec)
