"""Fused numba CPU kernels behind :mod:`medcolor.color` (private; import through ``medcolor.color``).

The kernels repeat the torch fast path of :func:`medcolor.color.lab_to_rgb8` operation for
operation in the input precision (float32 or float64), in one pass over blocks of 512 pixels
that stay in L1 (a few short loops per block, written so that LLVM vectorises them): NaN -> 0,
chroma and hue, Cmax by bilinear interpolation in the same margined table
(``color._cmax_cell_table``), chroma scaling, Lab -> linear RGB with the same constants and the
same fused multiply-adds that torch's ``add(..., alpha=)`` / ``addcmul`` use on CPU, the exact
gamut check with the same tolerances, the same 32-candidate first-exit search for the rare pixels
outside (``color._max_scale_in_gamut``, float64, scalar) and the 8-bit encoding table of
``color._encode_rgb8``. float32 hue and chroma are computed in float64 (polynomial atan2 to
~1e-11, exact squares) and rounded, i.e. correctly rounded nearly always; float64 uses libm.
Codes agree with the torch path except where torch's SLEEF atan2/hypot are off by an ulp, which
moves a clipped pixel by far less than a code (measured: ~1e-6 of pixels, at most 1 code).

Compiled lazily on first call (``cache=True``: later processes load the machine code from
``__pycache__`` or ``NUMBA_CACHE_DIR``; with no writable cache location it compiles in memory).
``nogil=True``: the kernels release the GIL, so the pipeline's threads overlap. Single-threaded.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic, overload

__all__ = ["lab_rgb8", "rgb8_to_L", "delta_l_stats", "measure", "make_consts"]


def _jit(fn):
    """njit(cache=True, nogil=True, fastmath=False), without cache when no location is writable.

    error_model="numpy": IEEE division (no ZeroDivisionError branch), so the loops vectorise."""
    opts = dict(nogil=True, fastmath=False, error_model="numpy")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return njit(cache=True, **opts)(fn)
    except Exception:  # numba: "cannot cache function ...: no locator available" (read-only tree)
        return njit(cache=False, **opts)(fn)


@intrinsic
def _fma(typingctx, x, y, z):
    """x * y + z with a single rounding (llvm.fma), as torch's vectorised add(alpha=)/addcmul."""
    if not (isinstance(x, types.Float) and x == y == z):
        return None
    sig = x(x, y, z)

    def codegen(context, builder, signature, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return sig, codegen


# index of the constants in the K arrays (built by make_consts, cast to the kernel's dtype)
(_K16, _K1_116, _K1_500, _K1_200, _KEPS, _K3E2, _KM00, _KM01, _KM02, _KM10, _KM11, _KM12, _KM20,
 _KM21, _KM22, _KTLO, _KTHI, _KLSC, _KPI, _KHSC, _KNL1, _KNL2, _KNH, _KNH1, _KTINY, _KENC,
 _KONE, _KZERO, _KMAXF) = range(29)
_NK = 29


def make_consts(m_lab, eps, tol_low, tol_high, nl, nh, enc_bins, dtype) -> np.ndarray:
    """Constants of the torch path, rounded to ``dtype`` as torch rounds Python scalars."""
    k = np.zeros(_NK, dtype=np.float64)
    k[_K16], k[_K1_116], k[_K1_500], k[_K1_200] = 16.0, 1.0 / 116.0, 1.0 / 500.0, 1.0 / 200.0
    k[_KEPS], k[_K3E2] = eps, 3 * eps ** 2
    k[_KM00:_KM22 + 1] = np.asarray(m_lab, dtype=np.float64).reshape(-1)
    k[_KTLO], k[_KTHI] = tol_low, 1.0 + tol_high
    k[_KLSC], k[_KPI], k[_KHSC] = (nl - 1) / 100.0, math.pi, nh / (2 * math.pi)
    k[_KNL1], k[_KNL2], k[_KNH], k[_KNH1] = nl - 1.0, nl - 2.0, float(nh), nh - 1.0
    k[_KTINY], k[_KENC], k[_KONE], k[_KZERO] = 1e-30, float(enc_bins), 1.0, 0.0
    k[_KMAXF] = np.finfo(dtype).max
    return k.astype(dtype)


@_jit
def _finv(t, K):
    # max(t, e)^3 + 3 e^2 min(t - e, 0)   (color._finv_fast)
    e = K[_KEPS]
    u = t if t > e else e
    out = u * u
    out = out * u
    d = t - e
    if d > K[_KZERO]:
        d = K[_KZERO]
    return _fma(d, K[_K3E2], out)


@_jit
def _lin3(L, a, b, K):
    # color._lab_to_lin3
    fy = (L + K[_K16]) * K[_K1_116]
    x = _finv(a * K[_K1_500] + fy, K)
    y = _finv(fy, K)
    z = _finv(fy - b * K[_K1_200], K)
    r = _fma(z, K[_KM02], _fma(y, K[_KM01], x * K[_KM00]))
    g = _fma(z, K[_KM12], _fma(y, K[_KM11], x * K[_KM10]))
    bl = _fma(z, K[_KM22], _fma(y, K[_KM21], x * K[_KM20]))
    return r, g, bl


@_jit
def _max_scale(L, a, b, K64):
    """color._max_scale_in_gamut for one pixel (float64, 3 rounds of 32 candidates, first exit)."""
    L64 = np.float64(L)
    if L64 < 0.0:
        L64 = 0.0
    if L64 > 100.0:
        L64 = 100.0
    a64 = np.float64(a)
    b64 = np.float64(b)
    tlo = -K64[_KTLO]
    thi = K64[_KTHI]
    lo = 0.0
    step = 1.0
    for _ in range(3):
        n_ok = 0
        for i in range(1, 33):
            cand = lo + step * (i / 32.0)
            r, g, bl = _lin3(L64, a64 * cand, b64 * cand, K64)
            mn = min(min(r, g), bl)
            mx = max(max(r, g), bl)
            if mn >= tlo and mx <= thi:
                n_ok += 1
            else:
                break
        lo = lo + step * n_ok / 32.0
        step /= 32.0
    return lo



_CHUNK = 512    # pixels per block: the per-block scratch stays in L1


def _atan2(y, x):  # typed per dtype below
    raise NotImplementedError


def _hypot(y, x):
    raise NotImplementedError


@_jit
def _atan2_poly(y, x):
    """atan2 in float64 to ~1e-11 (branch-free, vectorisable): octant reduction, then
    atan(t) = pi/4 + atan((t - 1) / (t + 1)) above tan(pi/8) and a 13-term odd Taylor series on
    |t| <= tan(pi/8). Rounded to float32 it is the correctly rounded atan2f nearly always."""
    ax = abs(x)
    ay = abs(y)
    mx = max(ax, ay)
    mn = min(ax, ay)
    t = mn / mx if mx > 0.0 else 0.0
    big = t > 0.41421356237309503
    u = (t - 1.0) / (t + 1.0) if big else t
    u2 = u * u
    p = 1.0 / 25.0
    p = p * u2 - 1.0 / 23.0
    p = p * u2 + 1.0 / 21.0
    p = p * u2 - 1.0 / 19.0
    p = p * u2 + 1.0 / 17.0
    p = p * u2 - 1.0 / 15.0
    p = p * u2 + 1.0 / 13.0
    p = p * u2 - 1.0 / 11.0
    p = p * u2 + 1.0 / 9.0
    p = p * u2 - 1.0 / 7.0
    p = p * u2 + 1.0 / 5.0
    p = p * u2 - 1.0 / 3.0
    p = p * u2 + 1.0
    r = p * u
    if big:
        r = r + 0.7853981633974483
    if ay > ax:
        r = 1.5707963267948966 - r
    if x < 0.0:
        r = 3.141592653589793 - r
    if y < 0.0:
        r = -r
    return r


@overload(_atan2, jit_options={"nogil": True, "error_model": "numpy"})
def _atan2_impl(y, x):
    if y == types.float32:
        return lambda y, x: np.float32(_atan2_poly(np.float64(y), np.float64(x)))
    return lambda y, x: math.atan2(y, x)   # float64: libm, to the last bit


@overload(_hypot, jit_options={"nogil": True, "error_model": "numpy"})
def _hypot_impl(y, x):
    if y == types.float32:
        def impl(y, x):   # exact squares and one double rounding: correctly rounded nearly always
            y64 = np.float64(y)
            x64 = np.float64(x)
            return np.float32(math.sqrt(y64 * y64 + x64 * x64))
        return impl
    return lambda y, x: math.hypot(y, x)


@_jit
def _clean(src, c0, m, K, dst):
    """dst[j] = torch.nan_to_num(src[c0 + j]) (NaN -> 0, +-inf -> +-max finite)."""
    zero = K[_KZERO]
    fmax = K[_KMAXF]
    for j in range(m):
        v = src[c0 + j]
        dst[j] = zero if v != v else min(max(v, -fmax), fmax)


@_jit
def _polar(m, K, Sa, Sb, Sc, Sh):
    """Chroma and the fractional hue position fh in the table (0 .. NH)."""
    zero = K[_KZERO]
    for j in range(m):
        a = Sa[j]
        b = Sb[j]
        Sc[j] = _hypot(a, b)
        fh = (_atan2(b, a) + K[_KPI]) * K[_KHSC]
        Sh[j] = min(max(fh, zero), K[_KNH])


@_jit
def _cell(m, K, SL, Sh, Sfl, Sidx):
    """Cell index and in-cell positions: Sfl <- fl, Sh <- fh (fractions), Sidx <- cell."""
    zero = K[_KZERO]
    nh = np.int64(K[_KNH])
    for j in range(m):
        fl = min(max(SL[j] * K[_KLSC], zero), K[_KNL1])
        fh = Sh[j]
        li = np.floor(min(fl, K[_KNL2]))
        hj = np.floor(min(fh, K[_KNH1]))
        Sfl[j] = fl - li
        Sh[j] = fh - hj
        Sidx[j] = np.int64(li) * nh + np.int64(hj)


@_jit
def _scale(m, K, tab, Sfl, Sh, Sidx, Sc):
    """Sc <- s = clamp(Cmax / max(C, 1e-30), 0, 1) with Cmax bilinear in the cell table."""
    zero = K[_KZERO]
    one = K[_KONE]
    tA = tab[0]
    tB = tab[1]
    tC = tab[2]
    tD = tab[3]
    for j in range(m):
        idx = Sidx[j]
        fh = Sh[j]
        cm = fh * tD[idx]
        cm = cm + tC[idx]
        cm = cm * Sfl[j]
        cm = cm + tA[idx]
        cm = _fma(fh, tB[idx], cm)
        Sc[j] = min(max(cm / max(Sc[j], K[_KTINY]), zero), one)


@_jit
def _to_lin(m, K, SL, Sa, Sb, Ss, R, G, B):
    """Sa, Sb <- scaled a, b; R, G, B <- linear RGB of (L, a, b)."""
    for j in range(m):
        s = Ss[j]
        a = Sa[j] * s
        b = Sb[j] * s
        Sa[j] = a
        Sb[j] = b
        r, g, bl = _lin3(SL[j], a, b, K)
        R[j] = r
        G[j] = g
        B[j] = bl


@_jit
def _map_block(Lr, ar, br, c0, m, K, tab, S, Sidx):
    """Pixels c0 .. c0+m of a row -> S[0] = L, S[1], S[2] = scaled a, b, S[3:6] = linear RGB
    (color._gamut_map_split up to the exact check), as a few simple loops that LLVM vectorises
    (S[6:9] are scratch)."""
    _clean(Lr, c0, m, K, S[0])
    _clean(ar, c0, m, K, S[1])
    _clean(br, c0, m, K, S[2])
    _polar(m, K, S[1], S[2], S[6], S[7])
    _cell(m, K, S[0], S[7], S[8], Sidx)
    _scale(m, K, tab, S[8], S[7], Sidx, S[6])
    _to_lin(m, K, S[0], S[1], S[2], S[6], S[3], S[4], S[5])


@_jit
def _fix_block(m, K, K64, S, tmp):
    """The exact gamut check; pixels outside get the exact first-exit scale (rare, scalar)."""
    zero = K[_KZERO]
    tlo = K[_KTLO]
    thi = K[_KTHI]
    for j in range(m):
        r = S[3, j]
        g = S[4, j]
        bl = S[5, j]
        mn = min(min(r, g), bl)
        mx = max(max(r, g), bl)
        if mx - thi > zero or (-mn) - tlo > zero:   # the torch path's `viol > 0`
            Lv = S[0, j]
            a = S[1, j]
            b = S[2, j]
            tmp[0] = _max_scale(Lv, a, b, K64)   # rounded to the kernel's dtype
            s2 = tmp[0]
            r, g, bl = _lin3(Lv, a * s2, b * s2, K)
            S[3, j] = r
            S[4, j] = g
            S[5, j] = bl


@_jit
def _encode_block(m, K, enc, S, out, o0, s_c, s_p):
    """color._encode_rgb8 of S[3:6] into out[o0 + c * s_c + j * s_p]."""
    zero = K[_KZERO]
    one = K[_KONE]
    nbin = K[_KENC]
    for c in range(3):
        row = S[3 + c]
        oc = o0 + c * s_c
        for j in range(m):
            x = min(max(row[j], zero), one) * nbin
            x = x + enc[np.int64(x)]
            out[oc + j * s_p] = np.uint8(np.int64(x))


@_jit
def _lab_rgb8_kernel(L, ab, K, K64, tab, enc, out, s_b, s_c, s_p):
    """L (B, N), ab (B, 2, N) float; out flat uint8 with element strides (batch, channel, pixel)."""
    nb, n = L.shape
    S = np.empty((9, _CHUNK), dtype=K.dtype)
    Sidx = np.empty(_CHUNK, dtype=np.int64)
    tmp = np.empty_like(K[:1])
    for bi in range(nb):
        Lr = L[bi]
        ar = ab[bi, 0]
        br = ab[bi, 1]
        for c0 in range(0, n, _CHUNK):
            m = min(_CHUNK, n - c0)
            _map_block(Lr, ar, br, c0, m, K, tab, S, Sidx)
            _fix_block(m, K, K64, S, tmp)
            _encode_block(m, K, enc, S, out, bi * s_b + c0 * s_p, s_c, s_p)


def lab_rgb8(L: np.ndarray, ab: np.ndarray, K: np.ndarray, K64: np.ndarray, tab: np.ndarray,
             enc: np.ndarray, hwc: bool) -> np.ndarray:
    """L (B, N), ab (B, 2, N) contiguous, same float dtype -> uint8 (B, 3, N) or (B, N, 3)."""
    nb, n = L.shape
    if hwc:
        out = np.empty((nb, n, 3), dtype=np.uint8)
        strides = (3 * n, 1, 3)
    else:
        out = np.empty((nb, 3, n), dtype=np.uint8)
        strides = (3 * n, n, 1)
    _lab_rgb8_kernel(L, ab, K, K64, tab, enc, out.reshape(-1), *strides)
    return out


# ----------------------------------------------------------------------- 8-bit sRGB -> CIE L*
_CBRT_NODES = 1024
_CBRT_TAB = np.cbrt(np.arange(_CBRT_NODES + 2, dtype=np.float64) / _CBRT_NODES)


@_jit
def _lstar_block(rgb, p0, m, lut, c, cbt, out, kb):
    """out[j] = L* of pixel p0 + j (flat HWC uint8): Y from the three tables (float32, summed in
    the order of the numpy path), f(Y) = cbrt(Y) from a 1024-node linear guess refined by one
    Halley step in float64 (relative error < 1e-10, then rounded to float32)."""
    l0 = lut[0]
    l1 = lut[1]
    l2 = lut[2]
    for j in range(m):
        q = 3 * (p0 + j)
        y = l0[rgb[q]]
        y = y + l1[rgb[q + 1]]
        out[j] = y + l2[rgb[q + 2]]
    _lstar_of_y(m, c, cbt, out, kb)


@_jit
def _lstar_of_y(m, c, cbt, out, kb):
    """out[j] <- L* of luminance out[j] (float32); kb: int32 scratch (node indices, computed in
    a loop of their own so that both loops vectorise)."""
    e3 = c[0]
    k_lin = c[1]
    k_off = c[2]
    k116 = c[3]
    k16 = c[4]
    for j in range(m):
        kb[j] = np.int32(min(max(np.float64(out[j]), 0.0), 1.0) * 1024.0)
    for j in range(m):
        y = out[j]
        y64 = np.float64(y)
        t = y64 * 1024.0
        k = kb[j]
        x = cbt[k] + (t - k) * (cbt[k + 1] - cbt[k])
        x3 = x * x * x
        x = x * (x3 + 2.0 * y64) / (2.0 * x3 + y64)
        big = np.float32(x)
        f = big if y > e3 else y * k_lin + k_off
        out[j] = f * k116 - k16


@_jit
def _rgb8_to_L_kernel(rgb, lut, c, cbt):
    """rgb flat uint8 (N*3), lut [3, 256] float32 -> L* (N,) float32."""
    n = rgb.shape[0] // 3
    out = np.empty(n, dtype=np.float32)
    kb = np.empty(_CHUNK, dtype=np.int32)
    for p0 in range(0, n, _CHUNK):
        m = min(_CHUNK, n - p0)
        _lstar_block(rgb, p0, m, lut, c, cbt, out[p0:p0 + m], kb)
    return out


def rgb8_to_L(rgb_flat: np.ndarray, lut: np.ndarray, c: np.ndarray) -> np.ndarray:
    return _rgb8_to_L_kernel(rgb_flat, lut, c, _CBRT_TAB)


@_jit
def _delta_l_kernel(l_in, rgb, lut, c, cbt):
    """Sum (float64), max and a 1001-bin histogram (0.01 wide, last bin open) of
    |L*(rgb) - l_in| (float32, as ``np.abs(rgb8_to_L_numpy(rgb) - l_in)``)."""
    n = l_in.shape[0]
    counts = np.zeros(1001, dtype=np.int64)
    buf = np.empty(_CHUNK, dtype=np.float32)
    kb = np.empty(_CHUNK, dtype=np.int32)
    k100 = c[5]
    total = 0.0
    dmax = np.float32(0.0)
    for p0 in range(0, n, _CHUNK):
        m = min(_CHUNK, n - p0)
        _lstar_block(rgb, p0, m, lut, c, cbt, buf, kb)
        for j in range(m):
            buf[j] = abs(buf[j] - l_in[p0 + j])
        for j in range(m):
            d = buf[j]
            total += d
            dmax = max(dmax, d)
            q = d * k100
            k = np.int64(q) if q < 1000.0 else 1000
            counts[k] += 1
    return total, dmax, counts


def delta_l_stats(l_in_flat: np.ndarray, rgb_flat: np.ndarray, lut: np.ndarray, c: np.ndarray):
    return _delta_l_kernel(l_in_flat, rgb_flat, lut, c, _CBRT_TAB)


@_jit
def _measure_pixel(sums, counts, d, r8, g8, b8, k100):
    """One pixel's share of the run report's measures: ΔL ``d`` (float32) and its 8-bit RGB into ``sums``
    = (|ΔL| sum, ΔL² sum, |ΔL| max (float32), rg, rg², yb, yb² sums) and the 0.01-wide |ΔL| histogram
    ``counts``; returns the new ``sums``. Shared by every measuring kernel so that their figures agree."""
    total, sse, dmax, s_rg, s_rg2, s_yb, s_yb2 = sums
    sse += np.float64(d) * np.float64(d)
    d = abs(d)
    total += d
    dmax = max(dmax, d)
    q = d * k100
    k = np.int64(q) if q < 1000.0 else 1000
    counts[k] += 1
    r = np.float64(r8)
    g = np.float64(g8)
    b = np.float64(b8)
    rg = r - g
    yb = 0.5 * (r + g) - b
    return total, sse, dmax, s_rg + rg, s_rg2 + rg * rg, s_yb + yb, s_yb2 + yb * yb


@_jit
def _measure_kernel(l_in, rgb, lut, c, cbt):
    """One pass over an 8-bit sRGB image and the L* it should have: L*(rgb) (N,) float32; sum, max
    and a 1001-bin histogram (0.01 wide) of |ΔL| (float32 differences, as ``delta_l_kernel``); the sum
    of squared ΔL (float64); and the sums of rg = R - G and yb = (R + G)/2 - B and of their squares
    (Hasler–Süsstrunk opponent channels)."""
    n = l_in.shape[0]
    out = np.empty(n, dtype=np.float32)
    counts = np.zeros(1001, dtype=np.int64)
    kb = np.empty(_CHUNK, dtype=np.int32)
    k100 = c[5]
    sums = (0.0, 0.0, np.float32(0.0), 0.0, 0.0, 0.0, 0.0)
    for p0 in range(0, n, _CHUNK):
        m = min(_CHUNK, n - p0)
        blk = out[p0:p0 + m]
        _lstar_block(rgb, p0, m, lut, c, cbt, blk, kb)
        for j in range(m):
            i3 = 3 * (p0 + j)
            sums = _measure_pixel(sums, counts, blk[j] - l_in[p0 + j], rgb[i3], rgb[i3 + 1], rgb[i3 + 2], k100)
    total, sse, dmax, s_rg, s_rg2, s_yb, s_yb2 = sums
    return out, total, dmax, counts, sse, s_rg, s_rg2, s_yb, s_yb2


def measure(l_in_flat: np.ndarray, rgb_flat: np.ndarray, lut: np.ndarray, c: np.ndarray):
    return _measure_kernel(l_in_flat, rgb_flat, lut, c, _CBRT_TAB)


@_jit
def _products(x, y, xx, yy, xy):
    """x*x, y*y, x*y (float32, element-wise) in one pass."""
    for i in range(x.shape[0]):
        a = x[i]
        b = y[i]
        xx[i] = a * a
        yy[i] = b * b
        xy[i] = a * b


@_jit
def _ssim_mean(ux, uy, uxx, uyy, uxy, c1, c2, pad):
    """Mean over the interior (``pad`` pixels excluded on each side) of the SSIM map computed from the
    Gaussian-filtered moments, in float32 as metrics.ssim's numpy formula, summed in float64."""
    h, w = ux.shape
    total = 0.0
    two = np.float32(2.0)
    for i in range(pad, h - pad):
        for j in range(pad, w - pad):
            mx = ux[i, j]
            my = uy[i, j]
            mxy = mx * my
            m2 = mx * mx + my * my
            num = (two * mxy + c1) * (two * (uxy[i, j] - mxy) + c2)
            den = (m2 + c1) * ((uxx[i, j] + uyy[i, j]) - m2 + c2)
            total += num / den
    return total / ((h - 2 * pad) * (w - 2 * pad))


def ssim_moments_mean(x: np.ndarray, y: np.ndarray, blur, c1: float, c2: float, pad: int) -> float:
    xx, yy, xy = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _products(x.reshape(-1), y.reshape(-1), xx.reshape(-1), yy.reshape(-1), xy.reshape(-1))
    return _ssim_mean(blur(x), blur(y), blur(xx), blur(yy), blur(xy), np.float32(c1), np.float32(c2), pad)


# --- SSIM in one pass: separable Gaussian over a ring of horizontally filtered rows -----------------------

@_jit
def _ssim_tap(a, b, c, sx, sy, sxx, syy, sxy):
    """One tap of the horizontal filter for the five moments x, y, x*x, y*y, x*y (products rounded)."""
    return _fma(a, c, sx), _fma(b, c, sy), _fma(a * a, c, sxx), _fma(b * b, c, syy), _fma(a * b, c, sxy)


@_jit
def _ssim_hrow(xr, yr, g, hx, hy, hxx, hyy, hxy):
    """Horizontal 11-tap filter ``g`` of the five moments of one row pair, for the columns whose window
    lies inside the row: ``hx[j]`` is column ``j + 5``, ``len(hx) = len(xr) - 10``. Summed tap by tap from
    the left with fused multiply-adds, as OpenCV's float32 row filter (RowVec_32f)."""
    g0, g1, g2, g3, g4, g5, g6, g7, g8, g9, g10 = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10]
    for j in range(hx.shape[0]):
        a = xr[j]
        b = yr[j]
        t = (a * g0, b * g0, (a * a) * g0, (b * b) * g0, (a * b) * g0)
        t = _ssim_tap(xr[j + 1], yr[j + 1], g1, *t)
        t = _ssim_tap(xr[j + 2], yr[j + 2], g2, *t)
        t = _ssim_tap(xr[j + 3], yr[j + 3], g3, *t)
        t = _ssim_tap(xr[j + 4], yr[j + 4], g4, *t)
        t = _ssim_tap(xr[j + 5], yr[j + 5], g5, *t)
        t = _ssim_tap(xr[j + 6], yr[j + 6], g6, *t)
        t = _ssim_tap(xr[j + 7], yr[j + 7], g7, *t)
        t = _ssim_tap(xr[j + 8], yr[j + 8], g8, *t)
        t = _ssim_tap(xr[j + 9], yr[j + 9], g9, *t)
        t = _ssim_tap(xr[j + 10], yr[j + 10], g10, *t)
        hx[j], hy[j], hxx[j], hyy[j], hxy[j] = t


@_jit
def _ssim_vrow(r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, g, d):
    """Vertical 11-tap filter of 11 consecutive rows (``r5`` the centre) into ``d``: centre times its
    weight, then the symmetric pairs from the inside out with fused multiply-adds, as OpenCV's float32
    symmetric column filter (SymmColumnVec_32f)."""
    g5, g6, g7, g8, g9, g10 = g[5], g[6], g[7], g[8], g[9], g[10]
    for j in range(d.shape[0]):
        t = r5[j] * g5
        t = _fma(r6[j] + r4[j], g6, t)
        t = _fma(r7[j] + r3[j], g7, t)
        t = _fma(r8[j] + r2[j], g8, t)
        t = _fma(r9[j] + r1[j], g9, t)
        t = _fma(r10[j] + r0[j], g10, t)
        d[j] = t


@_jit
def _ssim_accrow(ux, uy, uxx, uyy, uxy, c1, c2, acc):
    """acc[j] += SSIM map value from the filtered moments (float32, the formula of _ssim_mean)."""
    two = np.float32(2.0)
    for j in range(acc.shape[0]):
        mx = ux[j]
        my = uy[j]
        mxy = mx * my
        m2 = mx * mx + my * my
        num = (two * mxy + c1) * (two * (uxy[j] - mxy) + c2)
        den = (m2 + c1) * ((uxx[j] + uyy[j]) - m2 + c2)
        acc[j] += num / den


@_jit
def _ssim_sep(x, y, g, c1, c2):
    h, w = x.shape
    k = 11
    wo = w - (k - 1)
    ring = np.empty((k, 5, wo), np.float32)   # horizontally filtered moments of the last 11 rows (~110 KB at 512)
    v = np.empty((5, wo), np.float32)         # filtered moments of one output row
    acc = np.zeros(wo, np.float64)            # per-column sums of the SSIM map (vectorises; a scalar sum would not)
    for i in range(h):
        s = ring[i % k]
        _ssim_hrow(x[i], y[i], g, s[0], s[1], s[2], s[3], s[4])
        if i >= k - 1:                        # rows i-10..i filtered: output row i-5
            b = i - (k - 1)
            for m in range(5):
                _ssim_vrow(ring[b % k, m], ring[(b + 1) % k, m], ring[(b + 2) % k, m], ring[(b + 3) % k, m],
                           ring[(b + 4) % k, m], ring[(b + 5) % k, m], ring[(b + 6) % k, m], ring[(b + 7) % k, m],
                           ring[(b + 8) % k, m], ring[(b + 9) % k, m], ring[(b + 10) % k, m], g, v[m])
            _ssim_accrow(v[0], v[1], v[2], v[3], v[4], c1, c2, acc)
    return acc.sum() / ((h - (k - 1)) * wo)


def ssim_mean(x: np.ndarray, y: np.ndarray, taps: np.ndarray, c1: float, c2: float) -> float:
    """Mean SSIM over the interior (5-pixel border excluded) of two C-contiguous float32 [H, W] images
    (H, W >= 11), with the 11 float32 Gaussian ``taps`` (``cv2.getGaussianKernel(11, 1.5, CV_32F)``).

    One pass, separable: each row's five moments are filtered horizontally into a ring of 11 rows, then
    each output row vertically, then the SSIM map, summed in float64. Only pixels whose 11 x 11 window
    lies inside the image are averaged, so no border value is ever read (the border mode cannot matter).
    The filters round as OpenCV's AVX2/FMA float32 separable filter: on such a build the moments equal
    ``cv2.GaussianBlur``'s bit for bit, and the result equals ``ssim_moments_mean`` to float64 rounding."""
    g = np.ascontiguousarray(taps, dtype=np.float32).reshape(-1)
    if g.shape[0] != 11:
        raise ValueError(f"ssim_mean needs 11 taps, got {g.shape[0]}")
    if x.ndim != 2 or x.shape != y.shape or min(x.shape) < 11:
        raise ValueError(f"ssim_mean needs two equal 2-D images of at least 11x11, got {x.shape}, {y.shape}")
    return _ssim_sep(np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32), g,
                     np.float32(c1), np.float32(c2))
