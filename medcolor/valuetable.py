"""Per-series value tables: the whole per-pixel chain computed once per series, then looked up per slice.

For a per-pixel backend (``Colorizer.pixel_keys()`` is not None: the chroma at a pixel depends only on
its L and, for ``exemplar``, a *texture level* of its neighbourhood) and modality values that are
integers (CT in HU, most MR and X-ray), every step after reading is a function of a small key:

    modality value x (integer)  --window-->  L_in = window_to_l(x)
    (x, texture level t)        --backend--> ab = colorize(L_in, t)
                                --colour-->  rgb8 = lab_to_rgb8(L_in, ab)   (chroma-only gamut map)
                                --measure--> L_out = L*(rgb8)

:func:`build` evaluates that chain with the very functions the general path uses
(``window_to_l``, ``Colorizer.colorize_keys``, ``lab_to_rgb8_hwc_numpy``, ``rgb8_to_L_numpy``) on every
key the series can produce: the integers of the window's ramp (values below or above it give the
same L as its ends, so they share the end rows) times the texture levels. :meth:`ValueTable.apply`
then colours a slice with two passes of a numba kernel (value -> row, then cell -> rgb8 and L_out,
accumulating the report's |ΔL|, PSNR and colourfulness sums) and, for texture keys, the fused texture
pass. The output is the general path's, byte for byte (tested); a slice with a value the table does not
hold (not an integer, NaN, beyond an unclamped end) makes :meth:`ValueTable.apply` return None and
the caller takes the general path for that slice.

The table is used only where it is cheaper than the slices it replaces: at most
``MAX_CELLS`` cells and at most half the series' pixel count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medcolor.colorizers.base import Colorizer, PixelKeys
from medcolor.types import Window
from medcolor.windowing import window_to_l

__all__ = ["ValueTable", "build", "MAX_CELLS"]

MAX_CELLS = 4_000_000       # 28 MB of table (3 bytes of RGB + 4 of L per cell)
_CHUNK = 1 << 18            # keys coloured per call while building


@dataclass
class ValueTable:
    """The chain for the integers ``lo .. lo + n_rows - 1`` (and texture levels ``0 .. n_levels - 1``).

    ``l_tab`` float32 (n_rows,): L of each row; ``rgb_tab`` uint8 (n_rows * n_levels * 3,) and
    ``lout_tab`` float32 (n_rows * n_levels,): the 8-bit colour and its L* per cell
    ``row * n_levels + level``; ``clamp_lo``/``clamp_hi``: values beyond that end share its row."""

    lo: int
    n_rows: int
    keys: PixelKeys
    l_tab: np.ndarray
    rgb_tab: np.ndarray
    lout_tab: np.ndarray
    clamp_lo: bool
    clamp_hi: bool
    #: tables without texture levels: per cell ΔL = L_out - L_in (float32, as the pixels' kernels compute
    #: it), its |ΔL| histogram bin (0.01 wide, 1000 = the open last bin), rg = R - G and yb = (R + G)/2 - B
    cell_stats: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = ()

    @property
    def n_levels(self) -> int:
        return self.keys.texture_levels if self.keys.texture_size else 1

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_levels

    def apply(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]] | None:
        """One slice of modality values float32 ``[H, W]`` -> ``(rgb8 [H,W,3] uint8, L_in [H,W], L_out [H,W],
        measures)`` with ``measures`` as :func:`medcolor.metrics.measure_rgb8` gives them; None when a
        value is not in the table (the caller takes the general path)."""
        from medcolor import _fasttable as fast
        from medcolor.metrics import measures_from_sums

        x = np.ascontiguousarray(values, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected one slice [H, W], got {x.shape}")
        h, w = x.shape
        l_in = np.empty((h, w), dtype=np.float32)
        rgb = np.empty((h, w, 3), dtype=np.uint8)
        l_out = np.empty((h, w), dtype=np.float32)
        flat = (l_in.reshape(-1), rgb.reshape(-1), l_out.reshape(-1))
        if self.n_levels == 1:
            cell_counts = np.zeros(self.n_cells, dtype=np.int64)
            if not fast.colour_plain(x.reshape(-1), self.lo, self.n_rows, self.clamp_lo, self.clamp_hi, self.l_tab,
                                     self.rgb_tab, self.lout_tab, *flat, cell_counts):
                return None
            return rgb, l_in, l_out, self._measures_from_cells(cell_counts, l_in, l_out)
        else:  # the cells are many: |ΔL| from the pixels' L_in, streamed, instead of two more cell tables
            idx = np.empty(h * w, dtype=np.int32)
            if fast.index_values(x.reshape(-1), self.lo, self.n_rows, self.clamp_lo, self.clamp_hi, self.l_tab,
                                 idx, flat[0]):
                return None
            level = np.empty((h, w), dtype=np.float32)
            fast.texture_levels(l_in, int(self.keys.texture_size), float(self.keys.texture_scale),
                                float(self.n_levels - 1), level)
            sums = fast.gather_measure(idx, level.reshape(-1), self.n_levels, self.rgb_tab, self.lout_tab, *flat,
                                       np.float32(100.0))
        return rgb, l_in, l_out, measures_from_sums(l_in, l_out, *sums)

    def _measures_from_cells(self, cell_counts: np.ndarray, l_in: np.ndarray, l_out: np.ndarray) -> dict[str, float]:
        """The measures of a slice from how many of its pixels each cell holds: the per-cell ΔL, its
        histogram bin and the opponent channels (``self.cell_stats``) weighted by the counts."""
        from medcolor.metrics import measures_from_sums

        used = np.flatnonzero(cell_counts)
        n = cell_counts[used].astype(np.float64)
        d, bins, rg, yb = (a[used] for a in self.cell_stats)
        ad = np.abs(d).astype(np.float64)
        counts = np.bincount(bins, weights=n, minlength=1001).astype(np.int64)
        return measures_from_sums(l_in, l_out, float(n @ ad), float(ad.max(initial=0.0)), counts, float(n @ (ad * ad)),
                                  float(n @ rg), float(n @ (rg * rg)), float(n @ yb), float(n @ (yb * yb)))


def _ramp(window: Window, vmin: float, vmax: float) -> tuple[int, int, bool, bool]:
    """(lo, n, clamp_lo, clamp_hi): the integers whose L the table holds. For a linear window the
    ramp between the saturated ends (plus one row each side, checked to be saturated); else (sRGB
    grays) the sample's integer range, unclamped."""
    if window.units == "srgb":
        lo, hi = int(math.floor(vmin)), int(math.ceil(vmax))
        return lo, hi - lo + 1, False, False
    c, wd = float(window.center), float(window.width)
    half = max(wd - 1.0, 1.0) / 2.0
    lo = int(math.floor(c - 0.5 - half)) - 2
    hi = int(math.ceil(c - 0.5 + half)) + 2
    return lo, hi - lo + 1, True, True


def build(colorizer: Colorizer, window: Window, invert: bool, sample: np.ndarray, n_pixels: int,
          device: torch.device) -> ValueTable | None:
    """The series' table, or None when the general path is the better (or only) one: a backend that is
    not per pixel, a sample with non-integer values, or a table larger than ``MAX_CELLS`` or than half
    of ``n_pixels`` (the series' pixel count). ``sample``: modality values of a few slices (float32)."""
    from medcolor import color

    if device.type != "cpu" or not color.numba_available():
        return None
    keys = colorizer.pixel_keys()
    if keys is None:
        return None
    s = np.asarray(sample, dtype=np.float32)
    finite = s[np.isfinite(s)]
    if finite.size == 0 or finite.size != s.size or not np.all(finite == np.floor(finite)):
        return None
    lo, n_rows, clamp_lo, clamp_hi = _ramp(window, float(finite.min()), float(finite.max()))
    n_levels = keys.texture_levels if keys.texture_size else 1
    n_cells = n_rows * n_levels
    if n_rows < 1 or n_cells > MAX_CELLS or n_cells > n_pixels // 2 or abs(lo) > 2 ** 31 - n_rows - 1:
        return None
    values = torch.arange(lo, lo + n_rows, dtype=torch.float64).to(torch.float32)
    if not torch.equal(values.to(torch.float64), torch.arange(lo, lo + n_rows, dtype=torch.float64)):
        return None   # integers beyond float32's exact range
    l_tab = window_to_l(values, window, invert=invert).numpy()
    if clamp_lo and not l_tab[0] == l_tab[1] == window_to_l(values[:1] - 1e6, window, invert=invert).item():
        return None   # not saturated below the ramp: this window is not what _ramp assumed
    if clamp_hi and not l_tab[-1] == l_tab[-2] == window_to_l(values[-1:] + 1e6, window, invert=invert).item():
        return None
    rows = np.repeat(np.arange(n_rows), n_levels)
    key_L = l_tab[rows]
    key_level = np.tile(np.arange(n_levels, dtype=np.float32), n_rows) if n_levels > 1 else None
    rgb = np.empty((n_cells, 3), dtype=np.uint8)
    with torch.inference_mode():
        for a in range(0, n_cells, _CHUNK):
            b = min(a + _CHUNK, n_cells)
            L = torch.from_numpy(np.ascontiguousarray(key_L[a:b])).view(1, 1, 1, b - a)
            level = None if key_level is None else torch.from_numpy(key_level[a:b]).view(1, 1, 1, b - a)
            ab = colorizer.colorize_keys(L, level).float().cpu()
            if ab.shape != (1, 2, 1, b - a):
                return None   # not per pixel after all
            rgb[a:b] = color.lab_to_rgb8_hwc_numpy(L[0, 0].numpy(), np.ascontiguousarray(ab[0].numpy()))[0]
    lout = np.ascontiguousarray(color.rgb8_to_L_numpy(rgb.reshape(1, n_cells, 3))[0])
    l_tab = np.ascontiguousarray(l_tab, dtype=np.float32)
    stats: tuple = ()
    if n_levels == 1:
        d = lout - l_tab                                        # float32, as the measuring kernels
        q = np.abs(d) * color._LSTAR_CONSTS[5]
        bins = np.where(q < 1000.0, q, 1000.0).astype(np.int64)
        r, g, b = (rgb[:, k].astype(np.float64) for k in range(3))
        stats = (d, bins, r - g, 0.5 * (r + g) - b)
    return ValueTable(lo=lo, n_rows=n_rows, keys=keys, l_tab=l_tab, rgb_tab=np.ascontiguousarray(rgb.reshape(-1)),
                      lout_tab=lout, clamp_lo=clamp_lo, clamp_hi=clamp_hi, cell_stats=stats)


def describe(table: ValueTable | None) -> dict[str, Any]:
    """What the report says about the fast path of a series."""
    if table is None:
        return {"value_table": False}
    return {"value_table": True, "value_rows": table.n_rows, "texture_levels": table.n_levels,
            "value_range": [table.lo, table.lo + table.n_rows - 1]}
