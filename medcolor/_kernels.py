"""The two numba kernels of the per-slice path, each kept because ``benchmarks/kernels_ab.py`` shows that it
pays (it prints their cost per slice next to the same work in numpy):

* the value table's gather (:func:`rows`, :func:`gather`; :meth:`medcolor.valuetable.ValueTable.apply`);
* the per-slice sums of the run's measures (:func:`delta_l_sums`, :func:`opponent_sums`;
  :func:`medcolor.metrics.measure_slice` and :func:`medcolor.metrics.colourfulness`).

Imported on first use (importing numba costs ~0.2 s). Single-threaded, releasing the GIL: the pipeline's
threads run several slices at once.
"""
from __future__ import annotations

import warnings

import numpy as np
from numba import njit

__all__ = ["rows", "gather", "delta_l_sums", "opponent_sums"]


def _jit(fn):
    """njit(nogil=True), cached on disk (compiled once per installation), in memory when no cache
    location is writable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return njit(cache=True, nogil=True)(fn)
    except Exception:  # numba: "cannot cache function ...: no locator available" (read-only tree)
        return njit(cache=False, nogil=True)(fn)


@_jit
def rows(x, lo, n, clamp_lo, clamp_hi, l_tab, row, l_in):
    """Modality values ``x`` float32 (N,) -> ``row`` (N,) of the table of the integers ``lo .. lo + n - 1``
    and ``l_in`` = ``l_tab[row]``; a value below (above) the range takes row 0 (n - 1) when ``clamp_lo``
    (``clamp_hi``). False at the first value the table does not hold (a fraction, NaN, beyond an unclamped
    end): the outputs are then incomplete."""
    hi = lo + n - 1
    for i in range(x.shape[0]):
        v = x[i]
        if v < lo:
            if not clamp_lo:
                return False
            r = 0
        elif v > hi:
            if not clamp_hi:
                return False
            r = n - 1
        elif v == np.floor(v):
            r = np.int64(v) - lo
        else:               # a fraction, or NaN (every comparison false)
            return False
        row[i] = r
        l_in[i] = l_tab[r]
    return True


@_jit
def gather(row, level, n_levels, rgb_tab, lout_tab, rgb, l_out):
    """Cell ``row * n_levels + level`` (``level`` float32 holding integers, ignored when ``n_levels == 1``) ->
    ``rgb`` (N, 3) uint8 and ``l_out`` (N,) float32 from the tables."""
    for i in range(row.shape[0]):
        c = row[i] * n_levels + np.int64(level[i]) if n_levels > 1 else row[i]
        l_out[i] = lout_tab[c]
        rgb[i, 0] = rgb_tab[c, 0]
        rgb[i, 1] = rgb_tab[c, 1]
        rgb[i, 2] = rgb_tab[c, 2]


@_jit
def delta_l_sums(l_in, l_out, hist):
    """|ΔL| = |l_out - l_in| (float32) of two (N,) arrays: returns (sum, sum of squares, max) and counts
    every |ΔL| in ``hist`` (1001 bins 0.01 wide, the last one open: bin ``min(floor(100 |ΔL|), 1000)``)."""
    total = 0.0
    squares = 0.0
    dmax = np.float32(0.0)
    for i in range(l_in.shape[0]):
        d = abs(l_out[i] - l_in[i])
        total += d
        squares += np.float64(d) * np.float64(d)
        dmax = max(dmax, d)
        k = d * np.float32(100.0)
        hist[np.int64(k) if k < 1000.0 else 1000] += 1
    return total, squares, dmax


@_jit
def opponent_sums(rgb):
    """Sums of Hasler & Suesstrunk's opponent channels of 8-bit RGB (N, 3), in integers (exact): rg = R - G,
    rg², yb2 = R + G - 2B (twice their yb) and yb2²."""
    s_rg = s_rg2 = s_yb2 = s_yb22 = 0
    for i in range(rgb.shape[0]):
        r = np.int64(rgb[i, 0])
        g = np.int64(rgb[i, 1])
        rg = r - g
        yb2 = r + g - 2 * np.int64(rgb[i, 2])
        s_rg += rg
        s_rg2 += rg * rg
        s_yb2 += yb2
        s_yb22 += yb2 * yb2
    return s_rg, s_rg2, s_yb2, s_yb22
