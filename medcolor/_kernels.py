"""The numba kernels of the per-slice path, each kept because ``benchmarks/kernels_ab.py`` shows that it
pays (it prints their cost per slice next to the same work in numpy):

* the value table's gather (:func:`rows`, :func:`gather`; :meth:`medcolor.valuetable.ValueTable.apply`);
* the per-slice sums of the run's measures (:func:`delta_l_sums`, :func:`opponent_sums`;
  :func:`medcolor.metrics.measure_slice` and :func:`medcolor.metrics.colourfulness`);
* SSIM (:func:`ssim_mean`; :func:`medcolor.metrics.ssim`) in one pass: window sums in float64, then
  skimage's per-pixel arithmetic in float32, so the value is skimage's to float rounding (no farther from
  its float64 SSIM than its own float32 result is: tested, and checked by kernels_ab.py);
* the texture level's per-pixel arithmetic after OpenCV's two box sums (:func:`texture_finish`;
  :func:`medcolor.texture.levels`), the float32 operations numpy did, in one pass.

Imported on first use (importing numba costs ~0.2 s). Single-threaded, releasing the GIL: the pipeline's
threads run several slices at once.
"""
from __future__ import annotations

import warnings

import numpy as np
from numba import njit

__all__ = ["rows", "gather", "delta_l_sums", "opponent_sums", "ssim_mean", "texture_finish"]


def _jit(fn):
    """njit(nogil=True), cached on disk (compiled once per installation), in memory when no cache
    location is writable. numpy's error model: a float division by zero gives inf or NaN as in numpy
    instead of a per-division check, which lets the compiler vectorise the loops."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except Exception:  # numba: "cannot cache function ...: no locator available" (read-only tree)
        return njit(cache=False, nogil=True, error_model="numpy")(fn)


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


@_jit
def ssim_mean(x, y, c1, c2, cov_norm):
    """Mean SSIM of float32 ``[H, W]`` images ``x``, ``y`` (at least 7x7) over the pixels whose 7x7 window
    lies inside the image (skimage's default SSIM with its 3-pixel border cropped): window means
    ``u = float32(window sum / 49)``, A1 = 2 ux uy + c1, A2 = 2 vxy + c2, B1 = ux² + uy² + c1, B2 = vx + vy + c2
    (v: ``cov_norm`` times the window's covariance), S = A1 A2 / (B1 B2); float32 ``c1``, ``c2``, ``cov_norm``.

    Window sums in float64: column sums of the window's 7 rows kept running down the image, then each
    window's 7 column sums added directly and S summed per column, so no step of a row depends on the
    previous pixel's and the compiler vectorises the row (``benchmarks/kernels_ab.py``)."""
    H, W = x.shape
    inv = 1.0 / 49.0
    two = np.float32(2.0)
    vx = np.zeros(W)
    vy = np.zeros(W)
    vxx = np.zeros(W)
    vyy = np.zeros(W)
    vxy = np.zeros(W)
    per_column = np.zeros(W - 6)
    for r in range(7):                          # the first window's rows
        for j in range(W):
            a = np.float64(x[r, j])
            b = np.float64(y[r, j])
            vx[j] += a
            vy[j] += b
            vxx[j] += a * a
            vyy[j] += b * b
            vxy[j] += a * b
    for i in range(3, H - 3):
        if i > 3:
            for j in range(W):                  # row i+3 enters the window, row i-4 leaves it
                a = np.float64(x[i + 3, j])
                b = np.float64(y[i + 3, j])
                c = np.float64(x[i - 4, j])
                d = np.float64(y[i - 4, j])
                vx[j] += a - c
                vy[j] += b - d
                vxx[j] += a * a - c * c
                vyy[j] += b * b - d * d
                vxy[j] += a * b - c * d
        for j in range(W - 6):                  # the window centred on column j + 3
            sx = vx[j] + vx[j + 1] + vx[j + 2] + vx[j + 3] + vx[j + 4] + vx[j + 5] + vx[j + 6]
            sy = vy[j] + vy[j + 1] + vy[j + 2] + vy[j + 3] + vy[j + 4] + vy[j + 5] + vy[j + 6]
            sxx = vxx[j] + vxx[j + 1] + vxx[j + 2] + vxx[j + 3] + vxx[j + 4] + vxx[j + 5] + vxx[j + 6]
            syy = vyy[j] + vyy[j + 1] + vyy[j + 2] + vyy[j + 3] + vyy[j + 4] + vyy[j + 5] + vyy[j + 6]
            sxy = vxy[j] + vxy[j + 1] + vxy[j + 2] + vxy[j + 3] + vxy[j + 4] + vxy[j + 5] + vxy[j + 6]
            ux = np.float32(sx * inv)
            uy = np.float32(sy * inv)
            a1 = ux * uy
            a2 = (np.float32(sxy * inv) - a1) * cov_norm * two + c2
            a1 = a1 * two + c1
            ux2 = ux * ux
            uy2 = uy * uy
            b2 = (np.float32(sxx * inv) - ux2) * cov_norm + (np.float32(syy * inv) - uy2) * cov_norm + c2
            b1 = ux2 + uy2 + c1
            per_column[j] += (a1 * a2) / (b1 * b2)
    return per_column.sum() / ((H - 6) * (W - 6))


@_jit
def texture_finish(msum, ssum, count_r, count_c, scale, top, out):
    """Texture levels ``out`` (float32 ``[H, W]``) from the box sums of x and x² (float32 ``[H, W]``) over
    ``count_r[i] * count_c[j]`` pixels: m = Σx / c, var = Σx² / c - m², level = ``clip(rint(sqrt(max(var, 0))
    * scale), 0, top)``, in float32 (``scale``, ``top`` float32)."""
    zero = np.float32(0.0)
    for i in range(msum.shape[0]):
        rows = count_r[i]
        for j in range(msum.shape[1]):
            c = rows * count_c[j]
            m = msum[i, j] / c
            var = ssum[i, j] / c - m * m
            out[i, j] = min(max(np.rint(np.sqrt(max(var, zero)) * scale), zero), top)
