"""Per-series value tables: the colour stage of a per-pixel backend computed once per series, then
gathered per slice.

For a per-pixel backend (``Colorizer.pixel_keys()`` is not None: the chroma at a pixel depends only on
its L and, for ``exemplar``, a *texture level* of its neighbourhood) and modality values that are
integers (CT in HU, most MR and X-ray), every step after reading is a function of a small key:

    modality value x (integer)  --window-->          L_in
    (L_in, texture level t)     --colour, encode-->  rgb8 (chroma-only gamut map), and its L* L_out

:func:`build` runs the pipeline's own stage functions (handed over as ``chain``) on every key the series
can produce: the integers of the window's ramp (values below or above it give the same L as its ends, so
they share the end rows) times the texture levels. :meth:`ValueTable.apply` then colours a slice by
look-up (``medcolor._kernels``, a small numba gather kernel): value -> row -> L_in; (row, texture level of L_in) ->
cell -> rgb8 and L_out. It is pure and thread-safe. The output is the general path's (tested); a slice with a value the table does not hold
(not an integer, NaN, beyond an unclamped end) makes :meth:`ValueTable.apply` return None and the caller
takes the general path for that slice.

The table is used only where it is cheaper than the slices it replaces: at most ``MAX_CELLS`` cells and
at most half the series' pixel count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from medcolor.types import Window

__all__ = ["ValueTable", "build", "describe", "MAX_CELLS", "KeyChain", "Levels"]

MAX_CELLS = 4_000_000       # 28 MB of table (3 bytes of RGB + 4 of L per cell)
_CHUNK = 1 << 18            # keys coloured per call while building

#: the stages after reading for a list of keys: (modality values float32 [N], texture levels float32 [N]
#: or None) -> (L_in float32 [N], rgb8 uint8 [N, 3], L_out float32 [N])
KeyChain = Callable[[np.ndarray, "np.ndarray | None"], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: the texture level of every pixel of a slice's L_in float32 [H, W] -> float32 holding integers [H, W]
Levels = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ValueTable:
    """The chain for the integers ``lo .. lo + n_rows - 1`` (and texture levels ``0 .. n_levels - 1``).

    ``l_tab`` float32 (n_rows,): L of each row; ``rgb_tab`` uint8 (n_cells, 3) and ``lout_tab`` float32
    (n_cells,): the 8-bit colour and its L* per cell ``row * n_levels + level``; ``clamp_lo``/``clamp_hi``:
    values beyond that end share its row; ``levels``: the texture levels of a slice (None: one level)."""

    lo: int
    n_rows: int
    n_levels: int
    l_tab: np.ndarray
    rgb_tab: np.ndarray
    lout_tab: np.ndarray
    clamp_lo: bool
    clamp_hi: bool
    levels: Levels | None = None

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_levels

    def apply(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """One slice of modality values ``[H, W]`` -> ``(L_in [H,W] float32, rgb8 [H,W,3] uint8, L_out [H,W]
        float32)``; None when a value is not in the table (the caller takes the general path)."""
        from medcolor import _kernels

        x = np.ascontiguousarray(values, dtype=np.float32)
        shape = x.shape
        row = np.empty(x.size, dtype=np.intp)
        l_in = np.empty(shape, dtype=np.float32)
        if not _kernels.rows(x.reshape(-1), self.lo, self.n_rows, self.clamp_lo, self.clamp_hi, self.l_tab, row,
                            l_in.reshape(-1)):
            return None
        level = l_in[:0, 0] if self.levels is None else np.ascontiguousarray(self.levels(l_in), dtype=np.float32)
        level = level.reshape(-1)
        rgb = np.empty((*shape, 3), dtype=np.uint8)
        l_out = np.empty(shape, dtype=np.float32)
        _kernels.gather(row, level, self.n_levels, self.rgb_tab, self.lout_tab, rgb.reshape(-1, 3), l_out.reshape(-1))
        return l_in, rgb, l_out


def _ramp(window: Window, vmin: float, vmax: float) -> tuple[int, int, bool, bool]:
    """(lo, n, clamp_lo, clamp_hi): the integers whose L the table holds. For a linear window the
    ramp between the saturated ends (plus two rows each side, checked to be saturated); else (sRGB
    grays) the sample's integer range, unclamped."""
    if window.units == "srgb":
        lo, hi = int(math.floor(vmin)), int(math.ceil(vmax))
        return lo, hi - lo + 1, False, False
    c, wd = float(window.center), float(window.width)
    half = max(wd - 1.0, 1.0) / 2.0
    lo = int(math.floor(c - 0.5 - half)) - 2
    hi = int(math.ceil(c - 0.5 + half)) + 2
    return lo, hi - lo + 1, True, True


def build(chain: KeyChain, n_levels: int, levels: Levels | None, window: Window, sample: np.ndarray,
          n_pixels: int) -> ValueTable | None:
    """The series' table from the pipeline's stage functions ``chain`` (see ``KeyChain``), or None when
    it does not apply: a sample with non-integer values, or a table larger than ``MAX_CELLS`` or than half
    of ``n_pixels`` (the series' pixel count). ``n_levels``/``levels``: the backend's texture levels (1 and
    None when its chroma depends on L alone). ``sample``: modality values of a few slices (float32)."""
    s = np.asarray(sample, dtype=np.float32)
    if s.size == 0 or not np.all(np.isfinite(s)) or not np.array_equal(s, np.floor(s)):
        return None
    lo, n_rows, clamp_lo, clamp_hi = _ramp(window, float(s.min()), float(s.max()))
    n_cells = n_rows * n_levels
    if n_cells > MAX_CELLS or n_cells > n_pixels // 2 or max(abs(lo), abs(lo + n_rows)) > 2 ** 24:
        return None   # too large, dearer than the slices, or integers beyond float32's exact range
    values = np.repeat(np.arange(lo, lo + n_rows, dtype=np.float32), n_levels)
    level = np.tile(np.arange(n_levels, dtype=np.float32), n_rows) if n_levels > 1 else None
    parts = [chain(values[a:a + _CHUNK], None if level is None else level[a:a + _CHUNK])
             for a in range(0, n_cells, _CHUNK)]
    l_in, rgb, l_out = (np.concatenate(p) for p in zip(*parts))
    l_tab = np.ascontiguousarray(l_in[::n_levels])
    ends = chain(np.array([lo - 1e6, lo + n_rows - 1 + 1e6], dtype=np.float32),
                 None if level is None else np.zeros(2, dtype=np.float32))[0]
    if (clamp_lo and not l_tab[0] == l_tab[1] == ends[0]) or (clamp_hi and not l_tab[-1] == l_tab[-2] == ends[1]):
        return None   # not saturated beyond the ramp: this window is not what _ramp assumed
    return ValueTable(lo=lo, n_rows=n_rows, n_levels=n_levels, l_tab=l_tab, rgb_tab=np.ascontiguousarray(rgb),
                      lout_tab=np.ascontiguousarray(l_out), clamp_lo=clamp_lo, clamp_hi=clamp_hi,
                      levels=levels if n_levels > 1 else None)


def describe(table: ValueTable | None) -> dict[str, Any]:
    """What the report says about the fast path of a series."""
    if table is None:
        return {"value_table": False}
    return {"value_table": True, "value_rows": table.n_rows, "texture_levels": table.n_levels,
            "value_range": [table.lo, table.lo + table.n_rows - 1]}
