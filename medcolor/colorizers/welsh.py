"""The (L, texture) -> ab matching table of the ``exemplar`` backend, after Welsh, Ashikhmin & Mueller
(2002), "Transferring color to greyscale images" (SIGGRAPH): one implementation, used by the whole-photo
``welsh`` mode and, per Hounsfield class, by the ``tissue`` and ``gram`` modes.

Welsh et al. match every target pixel to one of ~200 jittered reference samples by a 50/50 weighted
distance of luminance and 5×5 luminance standard deviation, after remapping the reference luminance
by mean/std onto the target's. Here:

1. **Luminance remapping**: *quantile* (histogram) matching (:func:`match_quantiles`): a reference
   pixel whose L has mid-rank CDF value u gets the target's L quantile at u. Mean/std remapping
   (Welsh) assumes one roughly Gaussian mode; CT is bimodal (air/lung vs tissue, plus clipped pixels at
   L 0 and 100), so a linear remap would put most reference pixels where the target has none. The 5×5
   local standard deviation of the reference is rank-matched the same way onto the target's texture
   distribution, so "smooth" and "textured" mean the same in both images.
2. **Matching table** (:func:`splat_table`): instead of a per-pixel search, reference pixels are splatted
   (bilinearly) onto a 2-D grid of (L: 0..100 in 101 nodes) × (local std: 0..s_max in 33 nodes; s_max
   is the series' 99th percentile of local std), accumulating counts and a/b sums. Both axes are
   smoothed with the same Gaussian in node units (σ = 1.5 nodes), which is the table form of Welsh's
   50/50 luminance/texture distance. Each cell's a/b is the smoothed mean, shrunk towards a 1-D L -> ab
   table (same data summed over texture, smoothed along L, empty L ranges filled from the nearest
   filled node) with a prior weight, so cells with few or no reference pixels fall back smoothly: the
   table has no holes and no NaN. The table is built on the CPU in float64: bit-for-bit reproducible
   (no float atomics as in CUDA ``index_add_``) and the same whatever the device.
3. **Look-up** (:func:`lookup`): a bilinear look-up (``grid_sample``) of the table at (L, texture level);
   the texture level is the 5×5 local std in units of 1/8 of a table node (``TEXTURE_SUBSTEPS``,
   :func:`texture_keys`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from medcolor.colorizers.base import PixelKeys

__all__ = ["NEIGHBOURHOOD", "N_L", "N_S", "N_QUANTILES", "TEXTURE_SUBSTEPS", "sorted_values", "quantiles",
           "match_quantiles", "smooth", "splat", "splat_table", "texture_keys", "lookup"]

NEIGHBOURHOOD = 5
N_L = 101           # L nodes 0, 1, ..., 100
N_S = 33            # std nodes 0 .. s_max
N_QUANTILES = 1025  # quantiles used for the L and texture remapping
TEXTURE_SUBSTEPS = 8  # texture levels per table node along the std axis
SMOOTH_SIGMA = 1.5  # Gaussian σ of the table smoothing, in nodes (both axes)
PRIOR_FRACTION = 0.1  # prior weight of the 1-D table, as a fraction of the mean count per cell


def sorted_values(x: torch.Tensor) -> torch.Tensor:
    """The values of 1-D ``x`` in ascending order. On the CPU (no gradient) numpy's sort, which gives the
    same values as ``torch.sort`` in a quarter of the time (``benchmarks/prepare_cost.py``)."""
    if x.device.type == "cpu" and not x.requires_grad:
        return torch.from_numpy(np.sort(x.numpy()))
    return torch.sort(x).values


def quantiles(x: torch.Tensor, k: int = N_QUANTILES) -> torch.Tensor:
    """``k`` evenly spaced quantiles (0..1, linear interpolation) of the 1-D tensor ``x``."""
    xs = sorted_values(x)
    pos = torch.linspace(0, xs.numel() - 1, k, device=x.device, dtype=torch.float64)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=xs.numel() - 1)
    frac = (pos - lo.double()).float()
    return xs[lo] * (1 - frac) + xs[hi] * frac


def match_quantiles(source: torch.Tensor, target_q: torch.Tensor, reference: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """Map every value of 1-D ``source`` onto the distribution given by ``target_q`` (``k`` evenly
    spaced quantiles) by its mid-rank CDF value (ties get the same output) in ``reference`` (default: the
    values of ``source`` themselves)."""
    xs = sorted_values(source if reference is None else reference)
    n = xs.numel()
    left = torch.searchsorted(xs, source, right=False).double()
    right = torch.searchsorted(xs, source, right=True).double()
    u = ((left + right) / 2.0) / n                     # mid-rank CDF in (0, 1)
    k = target_q.numel()
    pos = (u * (k - 1)).clamp(0, k - 1)
    lo = pos.floor().long().clamp(max=k - 1)
    hi = (lo + 1).clamp(max=k - 1)
    frac = (pos - lo.double()).float()
    return target_q[lo] * (1 - frac) + target_q[hi] * frac


def _gauss_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth(grid: torch.Tensor, sigma: float = SMOOTH_SIGMA, dims: tuple[int, ...] = (1, 2)) -> torch.Tensor:
    """Separable Gaussian smoothing of ``grid`` [C, S, L] (float64) along the given spatial dims (1 = std,
    2 = L), replicate padding (no mass leaks through the edges' meaning)."""
    k = _gauss_kernel(sigma, grid.device)
    r = (k.numel() - 1) // 2
    x = grid[None]                                     # [1, C, S, L]
    C = x.shape[1]
    if 2 in dims:
        x = F.pad(x, (r, r, 0, 0), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    if 1 in dims:
        x = F.pad(x, (0, 0, r, r), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)
    return x[0]


def _fill_nearest(values: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """1-D fill: every node of ``values`` [C, n] whose ``filled`` [n] is False takes the value of the
    nearest filled node (ties: the lower one)."""
    idx = torch.nonzero(filled).flatten()
    if idx.numel() == 0:
        return torch.zeros_like(values)
    n = values.shape[-1]
    pos = torch.arange(n, device=values.device)
    nearest = idx[(pos[:, None] - idx[None, :]).abs().argmin(dim=1)]
    return values[:, nearest]


def splat(L: torch.Tensor, s: torch.Tensor, ab: torch.Tensor, s_max: float) -> torch.Tensor:
    """Bilinear splat of points (L 0..100, std 0..s_max, ab [2, n]) onto the (std, L) grid: float64 [3, N_S,
    N_L] holding the count, a·count and b·count of each node (on the CPU)."""
    cpu = torch.device("cpu")
    L = L.flatten().to(cpu, torch.float64)
    s = s.flatten().to(cpu, torch.float64)
    x = (L / 100.0).clamp(0, 1) * (N_L - 1)
    y = (s / s_max).clamp(0, 1) * (N_S - 1)
    x0 = x.floor().clamp(max=N_L - 2)
    y0 = y.floor().clamp(max=N_S - 2)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    values = torch.cat([torch.ones(1, L.numel(), dtype=torch.float64), ab.to(cpu, torch.float64)], dim=0)
    grid = torch.zeros(3, N_S * N_L, dtype=torch.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            grid.index_add_(1, (y0 + dy) * N_L + (x0 + dx), values * (wy * wx)[None])
    return grid.view(3, N_S, N_L)


def splat_table(L: torch.Tensor, s: torch.Tensor, ab: torch.Tensor, s_max: float) -> torch.Tensor:
    """The smoothed, hole-free (std, L) -> ab table, float64 [2, N_S, N_L] on the CPU, of reference points
    already remapped onto the target: ``L`` [n] (0..100), ``s`` [n] (local std), ``ab`` [2, n]."""
    grid = splat(L, s, ab, s_max)
    # 1-D L -> ab table (texture summed out), smoothed along L, gaps filled from the nearest node
    line = smooth(grid.sum(dim=1, keepdim=True), dims=(2,))[:, 0]                   # [3, N_L]
    filled = line[0] > 1e-3
    line_ab = line[1:] / line[0].clamp(min=1e-12)
    line_ab = torch.where(filled[None], line_ab, _fill_nearest(line_ab, filled))  # [2, N_L]
    # 2-D table: smoothed cell means shrunk towards the 1-D table (prior weight lam)
    smoothed = smooth(grid)                                                        # [3, N_S, N_L]
    lam = max(1.0, PRIOR_FRACTION * L.numel() / (N_S * N_L))
    return (smoothed[1:] + lam * line_ab[:, None, :]) / (smoothed[0][None] + lam)


def texture_keys(s_max: float) -> PixelKeys:
    """The pixel keys of a table whose std axis spans 0..``s_max``: ``TEXTURE_SUBSTEPS`` levels a node."""
    levels = TEXTURE_SUBSTEPS * (N_S - 1)
    return PixelKeys(texture_size=NEIGHBOURHOOD, texture_scale=levels / s_max, texture_levels=levels + 1)


def lookup(table: torch.Tensor, L: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Bilinear look-up of ``table`` [1, 2, N_S, n_L] (any number of evenly spaced L nodes over 0..100) at
    (L, texture level), both [B,1,H,W] -> ab [B,2,H,W]."""
    gx = L * (2.0 / 100.0) - 1.0
    gy = level * (2.0 / (TEXTURE_SUBSTEPS * (N_S - 1))) - 1.0
    grid = torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1)             # [B,H,W,2] (x=L, y=std)
    return F.grid_sample(table.expand(L.shape[0], -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                         align_corners=True)
