"""numba kernels behind :mod:`medcolor.valuetable` (private).

All single-threaded and releasing the GIL (the pipeline runs several slices at once on its own threads):

* :func:`colour_plain` - a table keyed on the value alone, one pass: value -> row -> 8-bit sRGB and
  L_out, counting the pixels of each row (the report's measures are then sums over the rows);
* with texture levels (many cells, so the per-cell tables stay small): :func:`index_values` (modality
  value -> row and its L), :func:`texture_levels` (the fused 5×5 local-std pass) and
  :func:`gather_measure` (cell -> sRGB and L_out, ΔL from the pixels' L_in).

Values must be integers the table holds (values beyond a clamped end share that end's row).
``gather_measure`` accumulates the measures in pixel order with the same operations and precision as
``medcolor._fastcolor.measure`` uses on the written pixels (the same figures); ``colour_plain``'s
per-row sums give them to float64 rounding (|ΔL| histogram, maximum and p99 exactly).
"""
from __future__ import annotations

import numpy as np

from medcolor._fastcolor import _jit, _measure_pixel

__all__ = ["index_values", "gather_measure"]


@_jit
def index_values(x, lo, n, clamp_lo, clamp_hi, l_tab, idx, l_in):
    """x float32 (N,) -> idx int32 (N,) rows of a table of the ``n`` integers ``lo .. lo + n - 1`` and
    l_in float32 (N,) = l_tab[idx]. A value below (above) the range takes row 0 (n - 1) when
    ``clamp_lo`` (``clamp_hi``); a value that is not an integer, NaN, or out of an unclamped range makes
    the call return the number of such values (the caller then takes the general path)."""
    lo_f = np.float64(lo)
    hi_f = np.float64(lo + n - 1)
    bad = 0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        if v < lo_f:
            k = 0
            if not clamp_lo:
                bad += 1
        elif v > hi_f:
            k = n - 1
            if not clamp_hi:
                bad += 1
        elif v == np.floor(v):
            k = np.int64(v) - lo
        else:           # not an integer, or NaN (every comparison false)
            k = 0
            bad += 1
        idx[i] = k
        l_in[i] = l_tab[k]
    return bad


@_jit
def gather_measure(idx, level, n_levels, rgb_tab, lout_tab, l_in, rgb, l_out, k100):
    """Cell ``idx * n_levels + level`` (``level`` float32 holding integers, or a 1-element dummy with
    ``n_levels == 1``) -> rgb uint8 (N*3,) and l_out float32 (N,) from the tables; returns the sum,
    max and 1001-bin histogram (0.01 wide) of |ΔL| = |l_out - l_in|, the sum of squared ΔL and the
    sums of the opponent channels rg, yb and their squares, as ``_fastcolor._measure_kernel``."""
    n = idx.shape[0]
    counts = np.zeros(1001, dtype=np.int64)
    sums = (0.0, 0.0, np.float32(0.0), 0.0, 0.0, 0.0, 0.0)
    textured = n_levels > 1
    for i in range(n):
        c = np.int64(idx[i])
        if textured:
            c = c * n_levels + np.int64(level[i])
        y = lout_tab[c]
        l_out[i] = y
        c3 = 3 * c
        i3 = 3 * i
        r8 = rgb_tab[c3]
        g8 = rgb_tab[c3 + 1]
        b8 = rgb_tab[c3 + 2]
        rgb[i3] = r8
        rgb[i3 + 1] = g8
        rgb[i3 + 2] = b8
        sums = _measure_pixel(sums, counts, y - l_in[i], r8, g8, b8, k100)
    total, sse, dmax, s_rg, s_rg2, s_yb, s_yb2 = sums
    return total, dmax, counts, sse, s_rg, s_rg2, s_yb, s_yb2


@_jit
def texture_levels(L, size, scale, top, out):
    """Texture level of every pixel of ``L`` float32 (H, W) into ``out`` float32 (H, W):
    ``min(rint(std * scale), top)`` with ``std`` the population standard deviation of ``L - 50`` over
    the ``size``×``size`` window clipped to the image (only pixels inside count). Sums in float64:
    running column sums (each row added once and taken away once) and a plain ``size``-term sum along
    the row. Deterministic for a given image; row-sized buffers only."""
    h, w = L.shape
    r = size // 2
    c1 = np.zeros(w + 2 * r, dtype=np.float64)    # column sums, zero-padded by r on both sides
    c2 = np.zeros(w + 2 * r, dtype=np.float64)
    inv = np.empty(w, dtype=np.float64)           # 1 / pixels of each window inside the image
    s1 = np.empty(w, dtype=np.float64)
    s2 = np.empty(w, dtype=np.float64)
    last = -1.0
    for i in range(-r, h):
        a = i + r
        if a < h:
            xa = L[a]
            for j in range(w):
                v = np.float64(xa[j]) - 50.0
                c1[r + j] += v
                c2[r + j] += v * v
        d = i - r - 1
        if d >= 0:
            xd = L[d]
            for j in range(w):
                v = np.float64(xd[j]) - 50.0
                c1[r + j] -= v
                c2[r + j] -= v * v
        if i < 0:
            continue
        nrows = np.float64(min(i + r, h - 1) - max(i - r, 0) + 1)
        if nrows != last:
            last = nrows
            for j in range(w):
                inv[j] = 1.0 / (nrows * np.float64(min(j + r, w - 1) - max(j - r, 0) + 1))
        for j in range(w):
            s1[j] = c1[j]
            s2[j] = c2[j]
        for q in range(1, size):
            for j in range(w):
                s1[j] += c1[j + q]
                s2[j] += c2[j + q]
        o = out[i]
        for j in range(w):
            m = s1[j] * inv[j]
            var = max(s2[j] * inv[j] - m * m, 0.0)
            o[j] = np.float32(min(np.rint(np.sqrt(var) * scale), top))


@_jit
def colour_plain(x, lo, n, clamp_lo, clamp_hi, l_tab, rgb_tab, lout_tab, l_in, rgb, l_out, cell_counts):
    """A table without texture levels, in one pass: value x[i] -> row (as ``index_values``; the row is the
    cell) -> L_in, 8-bit sRGB and L_out from the tables, and ``cell_counts[row] += 1`` (the measures are
    then sums over the few cells, not over the pixels). Returns False at the first value the table does
    not hold (the outputs are then incomplete)."""
    lo_f = np.float64(lo)
    hi_f = np.float64(lo + n - 1)
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        if v < lo_f:
            if not clamp_lo:
                return False
            c = 0
        elif v > hi_f:
            if not clamp_hi:
                return False
            c = n - 1
        elif v == np.floor(v):
            c = np.int64(v) - lo
        else:
            return False
        l_in[i] = l_tab[c]
        l_out[i] = lout_tab[c]
        c3 = 3 * c
        i3 = 3 * i
        rgb[i3] = rgb_tab[c3]
        rgb[i3 + 1] = rgb_tab[c3 + 1]
        rgb[i3 + 2] = rgb_tab[c3 + 2]
        cell_counts[c] += 1
    return True

