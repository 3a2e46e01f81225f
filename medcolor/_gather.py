"""The value table's gather kernel (numba; imported by :meth:`medcolor.valuetable.ValueTable.apply` on first
use). Single-threaded, releasing the GIL: the pipeline's threads run several slices at once.

``benchmarks/gather_ab.py`` prints its cost per slice next to the same look-ups in numpy.
"""
from __future__ import annotations

import warnings

import numpy as np
from numba import njit

__all__ = ["rows", "gather"]


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
    """Cell ``row * n_levels + level`` (``level`` ignored when ``n_levels == 1``) -> ``rgb`` (N, 3) uint8 and
    ``l_out`` (N,) float32 from the tables."""
    for i in range(row.shape[0]):
        c = row[i] * n_levels + level[i] if n_levels > 1 else row[i]
        l_out[i] = lout_tab[c]
        rgb[i, 0] = rgb_tab[c, 0]
        rgb[i, 1] = rgb_tab[c, 1]
        rgb[i, 2] = rgb_tab[c, 2]
