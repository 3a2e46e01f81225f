"""CIE-Lab <-> sRGB in torch, batched, on any device; chroma-only gamut mapping.

Shape contract (kornia style): images are ``(*, C, H, W)``. sRGB values are floats in [0, 1]
(IEC 61966-2-1 transfer function), Lab is CIE 1976 L*a*b* relative to the D65 white point with
L in [0, 100]. Functions work on float32 or float64 tensors on any device.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import torch

# sRGB (linear) -> CIE XYZ, D65 (IEC 61966-2-1)
_RGB2XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_XYZ2RGB = torch.linalg.inv(_RGB2XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS = 6.0 / 29.0


def _mix(mat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix over the channel axis -3 of ``x`` (*,3,H,W)."""
    m = mat.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light."""
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB encoding (no clipping of out-of-range values beyond what pow needs)."""
    return torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPS ** 3, t.clamp(min=_EPS ** 3) ** (1.0 / 3.0), t / (3 * _EPS ** 2) + 4.0 / 29.0)


def _finv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPS, t ** 3, 3 * _EPS ** 2 * (t - 4.0 / 29.0))


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*,3,H,W)`` in [0, 1] -> Lab ``(*,3,H,W)`` (L 0..100, a/b roughly -110..110)."""
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"srgb_to_lab expects (*, 3, H, W), got {tuple(rgb.shape)}")
    xyz = _mix(_RGB2XYZ, srgb_to_linear(rgb))
    white = _WHITE_D65.to(device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(-3)
    L = 116.0 * fy - 16.0
    return torch.stack([L, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``(*,3,H,W)`` -> linear-light RGB, not clipped (values outside [0,1] are out of gamut)."""
    if lab.ndim < 3 or lab.shape[-3] != 3:
        raise ValueError(f"lab_to_srgb expects (*, 3, H, W), got {tuple(lab.shape)}")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    xyz = torch.stack([_finv(fy + a / 500.0), _finv(fy), _finv(fy - b / 200.0)], dim=-3)
    white = _WHITE_D65.to(device=lab.device, dtype=lab.dtype).view(3, 1, 1)
    return _mix(_XYZ2RGB, xyz * white)


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``(*,3,H,W)`` -> sRGB ``(*,3,H,W)``, *not clipped*: out-of-gamut colours fall outside [0,1]."""
    lin = lab_to_linear_rgb(lab)
    return torch.sign(lin) * linear_to_srgb(lin.abs())


# ---------------------------------------------------------------------------------------------
# The pipeline's colour step: chroma-only gamut mapping, Lab -> 8-bit sRGB and back. It avoids
# ``torch.where`` and ``masked_fill`` (bool-mask kernels are ~10x slower than arithmetic blends on
# CPU) and uses small look-up tables cached per (device, dtype).
# ---------------------------------------------------------------------------------------------
__all__ = [
    "srgb_to_linear", "linear_to_srgb", "srgb_to_lab", "lab_to_linear_rgb", "lab_to_srgb",
    "gamut_map_chroma", "lab_to_rgb8", "rgb8_to_lab", "rgb8_to_L", "upsample_ab", "to_hwc_numpy",
    "max_chroma", "GAMUT_TOL_LOW", "GAMUT_TOL_HIGH",
]

#: Tolerances of the in-gamut test, in *linear* light: a colour is in gamut when every linear RGB
#: component is in ``[-GAMUT_TOL_LOW, 1 + GAMUT_TOL_HIGH]``. Both are below 1.4e-4 of the encoded
#: sRGB range (0.035 of an 8-bit code value). GAMUT_TOL_HIGH also covers the D65 white of the
#: IEC 61966-2-1 matrix, whose blue component is 1 + 8.1e-5 at L = 100.
GAMUT_TOL_LOW = 1e-5
GAMUT_TOL_HIGH = 1e-4

# Cmax table: L from 0 to 100 in _NL nodes, hue from -pi in _NH periodic nodes.
_NL = 201          # L* step 0.5
_NH = 360          # hue step 1 degree
_C_SEARCH_MAX = 200.0   # sRGB chroma never exceeds ~134 (blue primary at L* ~32)
_TABLE_MARGIN = 0.9995  # relative safety margin on the interpolated table
_TABLE_ABS = 0.02       # absolute safety margin (chroma units)
_ENC_BINS = 4096        # linear-light bins of the sRGB encoding table

_cache: dict[tuple, torch.Tensor] = {}
_cache_lock = threading.Lock()

# Row-major float constants of the XYZ -> linear sRGB matrix (times the D65 white) for the hot path.
_M_LAB = (_XYZ2RGB * _WHITE_D65.view(1, 3)).tolist()
_M_Y = _RGB2XYZ[1].tolist()  # luminance weights of linear R, G, B


def _check_L_ab(L: torch.Tensor, ab: torch.Tensor) -> None:
    if not isinstance(L, torch.Tensor) or not isinstance(ab, torch.Tensor):
        raise TypeError("L and ab must be torch tensors")
    if L.ndim < 3 or L.shape[-3] != 1:
        raise ValueError(f"L must be (*, 1, H, W), got {tuple(L.shape)}")
    if ab.ndim < 3 or ab.shape[-3] != 2:
        raise ValueError(f"ab must be (*, 2, H, W), got {tuple(ab.shape)}")
    if L.shape[:-3] != ab.shape[:-3] or L.shape[-2:] != ab.shape[-2:]:
        raise ValueError(f"L {tuple(L.shape)} and ab {tuple(ab.shape)} differ in batch or spatial size "
                         "(use upsample_ab to bring ab to the size of L)")
    if not L.is_floating_point() or not ab.is_floating_point():
        raise TypeError("L and ab must be floating-point tensors")


def _finv_fast(t: torch.Tensor) -> torch.Tensor:
    """Inverse of the CIE f(): t^3 above 6/29, linear below, written without a branch:
    ``max(t, e)^3 + 3 e^2 min(t - e, 0)`` with e = 6/29 (the linear piece is the tangent at e)."""
    u = t.clamp(min=_EPS)
    out = u * u
    out.mul_(u)
    return out.add_((t - _EPS).clamp_(max=0.0), alpha=3 * _EPS ** 2)


def _lab_to_lin3(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Lab components (same shapes) -> linear R, G, B, not clipped."""
    fy = (L + 16.0).mul_(1.0 / 116.0)
    x = _finv_fast(a * (1.0 / 500.0) + fy)
    y = _finv_fast(fy)
    z = _finv_fast(fy - b * (1.0 / 200.0))
    m = _M_LAB
    out = []
    for row in m:
        c = x * row[0]
        c.add_(y, alpha=row[1]).add_(z, alpha=row[2])
        out.append(c)
    return tuple(out)


def _in_gamut(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lo = torch.minimum(torch.minimum(r, g), b)
    hi = torch.maximum(torch.maximum(r, g), b)
    return (lo >= -GAMUT_TOL_LOW) & (hi <= 1.0 + GAMUT_TOL_HIGH)


def _ok(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor, strict: bool) -> torch.Tensor:
    r, g, bl = _lab_to_lin3(L, a, b)
    if strict:
        return (torch.minimum(torch.minimum(r, g), bl) >= 0) & (torch.maximum(torch.maximum(r, g), bl) <= 1)
    return _in_gamut(r, g, bl)


def _max_chroma_exact(L: torch.Tensor, cos_h: torch.Tensor, sin_h: torch.Tensor,
                      c_max: float = _C_SEARCH_MAX, step: float = 1.0, iters: int = 30,
                      strict: bool = False) -> torch.Tensor:
    """First gamut exit along each constant-L, constant-hue ray from the gray axis (float64).

    ``sup{C : (L, c cos h, c sin h) in gamut for all c in [0, C]}``, found by a scan in chroma
    steps of ``step`` (only over rays not yet resolved) and a bisection inside the step. The
    first exit, not the last: near the yellow cusp (hue ~95-110 deg, L* ~90-98) a ray leaves the
    sRGB gamut (R > 1) and re-enters it further out, so the in-gamut set along it is not an
    interval. Gaps narrower than ``step`` may be missed (the exact check catches those pixels)."""
    L = L.to(torch.float64).reshape(-1)
    cos_h = cos_h.to(torch.float64).reshape(-1)
    sin_h = sin_h.to(torch.float64).reshape(-1)
    n = L.numel()
    lo = torch.zeros(n, dtype=torch.float64, device=L.device)
    hi = torch.zeros(n, dtype=torch.float64, device=L.device)
    zero = torch.zeros_like(L)
    active = _ok(L, zero, zero, strict).nonzero().squeeze(-1)   # gray itself out: C = 0
    c = 0.0
    while active.numel() and c < c_max:
        c_next = min(c + step, c_max)
        La, ca, sa = L[active], cos_h[active], sin_h[active]
        ok = _ok(La, c_next * ca, c_next * sa, strict)
        done = active[~ok]
        lo[done], hi[done] = c, c_next
        active = active[ok]
        c = c_next
    lo[active] = c_max
    hi[active] = c_max
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        ok = _ok(L, mid * cos_h, mid * sin_h, strict)
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return lo


def max_chroma(L: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Largest chroma reachable from the gray axis inside sRGB (first gamut exit, see
    gamut_map_chroma) for lightness ``L`` (0..100) and hue angle ``hue`` (radians,
    atan2(b, a)), broadcast shapes, strict [0, 1] test, float64 scan + bisection. Slow: for tests
    and tables (gamut_map_chroma uses a cached interpolation table)."""
    L, hue = torch.broadcast_tensors(torch.as_tensor(L), torch.as_tensor(hue))
    out = _max_chroma_exact(L, torch.cos(hue.to(torch.float64)), torch.sin(hue.to(torch.float64)),
                            step=0.5, iters=40, strict=True)
    return out.reshape(L.shape).to(L.dtype if L.is_floating_point() else torch.float64)


def _cmax_cell_table(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Tables [4, (NL-1) * NH] of bilinear coefficients (A, B, C, D) per cell (L bin i, hue bin j):
    ``Cmax ~ A + fh * B + fl * (C + fh * D)`` with fl, fh the position inside the cell, from the
    first-exit chroma at the corners (scan + bisection in float64, once per process, ~0.1 s),
    scaled by ``_TABLE_MARGIN``, minus ``_TABLE_ABS`` and a quarter of the local convexity so that interpolation between corners almost never
    over-estimates; the rare exceptions are caught by the exact check in ``_gamut_map_split``."""
    key = ("cmax", device, dtype)
    tab = _cache.get(key)
    if tab is not None:
        return tab
    with _cache_lock:
        tab = _cache.get(key)
        if tab is not None:
            return tab
        base = _cache.get(("cmax", "grid"))
        if base is None:
            Ls = torch.linspace(0.0, 100.0, _NL, dtype=torch.float64)
            hs = -math.pi + torch.arange(_NH, dtype=torch.float64) * (2 * math.pi / _NH)
            LL, HH = torch.meshgrid(Ls, hs, indexing="ij")
            grid = _max_chroma_exact(LL, torch.cos(HH), torch.sin(HH), strict=True).reshape(LL.shape)
            # Bilinear interpolation over-estimates where Cmax is convex; the over-shoot inside a
            # cell is about 1/8 of the second difference: subtract 1/4 of the local second
            # differences (L and hue) as a per-node margin, plus a small relative/absolute one.
            d2h = (torch.roll(grid, 1, 1) - 2 * grid + torch.roll(grid, -1, 1)).clamp(min=0.0)
            d2l = torch.zeros_like(grid)
            d2l[1:-1] = (grid[:-2] - 2 * grid[1:-1] + grid[2:]).clamp(min=0.0)
            d2l[0], d2l[-1] = d2l[1], d2l[-2]
            conv = torch.maximum(d2h, torch.roll(d2h, -1, 1)) + torch.maximum(d2l, torch.roll(d2l, -1, 0))
            grid = (grid * _TABLE_MARGIN - _TABLE_ABS - 0.25 * conv).clamp(min=0.0)
            nxt = torch.roll(grid, -1, dims=1)  # hue j+1 (periodic)
            c00, c01, c10, c11 = grid[:-1], nxt[:-1], grid[1:], nxt[1:]
            base = torch.stack([c00, c01 - c00, c10 - c00, c11 - c01 - c10 + c00]).reshape(4, -1)
            _cache[("cmax", "grid")] = base
        tab = base.to(device=device, dtype=dtype).contiguous()
        _cache[key] = tab
        return tab


def _max_scale_in_gamut(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                        rounds: int = 3, k: int = 32) -> torch.Tensor:
    """For 1-D L, a, b (a few pixels): the largest s in [0, 1] with (L, s a, s b) in gamut (within
    the tolerances), to 1 / k**rounds, by testing k candidate scales at once per round (few torch
    calls, so it stays fast for the handful of pixels the table misses)."""
    L64, a64, b64 = (t.to(torch.float64).unsqueeze(-1) for t in (L.clamp(0.0, 100.0), a, b))
    lo = torch.zeros_like(L64)
    step = 1.0
    steps = torch.arange(1, k + 1, dtype=torch.float64, device=L.device) / k     # (0, 1]
    for _ in range(rounds):
        cand = lo + step * steps                                                   # [N, k]
        ok = _in_gamut(*_lab_to_lin3(L64.expand_as(cand), a64 * cand, b64 * cand))
        # number of leading candidates in gamut: the first exit along the ray (see _max_chroma_exact)
        n_ok = torch.cumprod(ok.to(torch.float64), dim=-1).sum(-1, keepdim=True)
        lo = lo + step * n_ok / k
        step /= k
    return lo.squeeze(-1)


def _gamut_map_split(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """Core of gamut_map_chroma on split channels (all the same shape, no channel axis).

    Returns (a', b', r, g, b_lin): the mapped chroma and the linear RGB of (L, a', b'). NaN in
    L or ab is taken as 0 (black / no chroma) so that a broken backend cannot crash the encoder."""
    tab = _cmax_cell_table(L.device, L.dtype)
    L = torch.nan_to_num(L, nan=0.0)
    a = torch.nan_to_num(a, nan=0.0)
    b = torch.nan_to_num(b, nan=0.0)
    chroma = torch.hypot(a, b)
    # position in the table: fl along L, fh along hue; cell = (floor(fl), floor(fh))
    fl = (L * ((_NL - 1) / 100.0)).clamp_(0.0, _NL - 1.0)
    fh = torch.atan2(b, a).add_(math.pi).mul_(_NH / (2 * math.pi)).clamp_(0.0, float(_NH))
    li = fl.clamp(max=_NL - 2.0).floor_()
    hj = fh.clamp(max=_NH - 1.0).floor_()
    fl.sub_(li)
    fh.sub_(hj)
    idx = li.mul_(_NH).add_(hj).to(torch.int32).reshape(-1)
    A, B, C, D = (tab[k].index_select(0, idx).reshape(L.shape) for k in range(4))
    cmax = fh * D
    cmax.add_(C).mul_(fl).add_(A).addcmul_(fh, B)
    scale = cmax.div_(chroma.clamp_(min=1e-30)).clamp_(0.0, 1.0)
    a = a * scale
    b = b * scale
    r, g, bl = _lab_to_lin3(L, a, b)
    lo = torch.minimum(torch.minimum(r, g), bl)
    hi = torch.maximum(torch.maximum(r, g), bl)
    if L.numel() and (float(lo.min()) < -GAMUT_TOL_LOW or float(hi.max()) > 1.0 + GAMUT_TOL_HIGH):
        # the few pixels the table misses: exact search on just those (flat integer indices;
        # a, b, r, g, bl are fresh tensors, so they are updated in place)
        shape = L.shape
        Lf, af, bf, rf, gf, blf = (t.contiguous().reshape(-1) for t in (L, a, b, r, g, bl))
        viol = torch.maximum(hi - (1.0 + GAMUT_TOL_HIGH), lo.neg_().sub_(GAMUT_TOL_LOW))
        idx = (viol.reshape(-1) > 0).nonzero().squeeze(-1)
        Lb, ab_, bb = Lf[idx], af[idx], bf[idx]
        s = _max_scale_in_gamut(Lb, ab_, bb).to(L.dtype)
        ab_ = ab_ * s
        bb = bb * s
        af[idx] = ab_
        bf[idx] = bb
        for dst, val in zip((rf, gf, blf), _lab_to_lin3(Lb, ab_, bb)):
            dst[idx] = val
        a, b, r, g, bl = (t.reshape(shape) for t in (af, bf, rf, gf, blf))
    return a, b, r, g, bl


def gamut_map_chroma(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Bring every colour into the sRGB gamut by reducing its chroma only (L and hue kept).

    L ``(*, 1, H, W)`` in [0, 100], ab ``(*, 2, H, W)`` (any range) -> ab ``(*, 2, H, W)``, same
    dtype and device. Each pixel's (a, b) is multiplied by ``s = min(1, Cmax(L, h) / C)``, with
    ``C = hypot(a, b)``, hue ``h = atan2(b, a)`` and ``Cmax`` the chroma where the constant-L,
    constant-hue ray from the gray axis first leaves sRGB. RGB is never clipped.

    ``Cmax`` is interpolated bilinearly in a table (L step 0.5, hue step 1 degree; built once per
    process by scan + bisection, ~0.1 s, cached per device/dtype) lowered by a small margin
    (0.05 % + 0.02 + a quarter of the local second differences) so that it almost never
    over-estimates. Every result is then checked exactly; the few pixels outside
    ``[-GAMUT_TOL_LOW, 1 + GAMUT_TOL_HIGH]`` in linear RGB (about 1 in 25 000 for random
    maximal-chroma fields, none for typical images) get the exact first-exit scale by a
    vectorised search on just those pixels.

    In-gamut colours are unchanged except (a) within the margin of the boundary (median loss
    0.1 % of Cmax) and (b) the thin fold near the yellow cusp (hue ~95-110 deg, L* ~90-98) where
    a ray leaves sRGB and re-enters it further out: colours beyond that gap are brought back to
    the first exit. As L -> 0 or 100 the allowed chroma goes to 0.
    """
    _check_L_ab(L, ab)
    a, b, *_ = _gamut_map_split(L[..., 0, :, :], ab[..., 0, :, :], ab[..., 1, :, :])
    return torch.stack([a, b], dim=-3)


def _encode_table(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Table T over ``N + 1`` linear-light bins (N = _ENC_BINS) for exact 8-bit sRGB rounding.

    With ``x = N * lin`` and ``k = floor(x)``: ``code = floor(x + T[k])``. T[k] = c + 1 - r - k,
    where c is the code of linear ``k / N`` and r in (0, 1] the position inside bin k of the
    threshold to code c + 1 (r = 1: none). Thresholds are at least 3.0e-4 apart in linear light,
    wider than a bin (2.4e-4), so a bin holds at most one: ``floor(frac + c + 1 - r)`` is c + 1 when
    frac >= r and c otherwise. Verified against the direct formula in the tests.
    """
    key = ("enc", device, dtype)
    tab = _cache.get(key)
    if tab is None:
        n = _ENC_BINS
        codes = torch.arange(255, dtype=torch.float64)
        thr = srgb_to_linear((codes + 0.5) / 255.0)            # linear value where code c+1 starts
        k = torch.arange(n + 1, dtype=torch.float64)
        lo = k / n
        c = torch.searchsorted(thr, lo, right=True)             # number of thresholds <= lo
        thr_next = torch.cat([thr, torch.tensor([math.inf], dtype=torch.float64)])[c]
        r = ((thr_next - lo) * n).clamp(max=1.0)
        tab = (c.to(torch.float64) + 1.0 - r - k).to(device=device, dtype=dtype)
        _cache[key] = tab
    return tab


def _encode_rgb8(lin: torch.Tensor) -> torch.Tensor:
    """Linear light (any shape, values within tolerance of [0, 1]) -> uint8 sRGB codes, rounded
    exactly (half up) as ``round(255 * linear_to_srgb(clamp(lin, 0, 1)))``."""
    tab = _encode_table(lin.device, lin.dtype)
    x = lin.clamp(0.0, 1.0).mul_(_ENC_BINS)
    # index_select on an int32 index: ~3x faster than take / advanced indexing on CPU
    k = tab.index_select(0, x.to(torch.int32).reshape(-1)).reshape(x.shape)
    return x.add_(k).to(torch.uint8)


def lab_to_rgb8(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L ``(*, 1, H, W)`` in [0, 100] and ab ``(*, 2, H, W)`` -> 8-bit sRGB ``(*, 3, H, W)`` uint8.

    Steps: :func:`gamut_map_chroma` (chroma only), Lab -> linear RGB, clamp of the numerically
    outside values (at most ``GAMUT_TOL_*`` after mapping; not a clipping of colours), exact
    rounding of the sRGB encoding to 8 bits via a look-up table. Same device as the inputs.
    After the round trip ``rgb8_to_lab(lab_to_rgb8(L, ab))`` the L channel differs from ``L`` by
    at most about one 8-bit step (measured on random L 0..100, |ab| <= 128: mean 0.07, p99 0.18,
    max 0.25).
    """
    _check_L_ab(L, ab)
    *_, r, g, b = _gamut_map_split(L[..., 0, :, :], ab[..., 0, :, :], ab[..., 1, :, :])
    return _encode_rgb8(torch.stack([r, g, b], dim=-3))


def _decode_table(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = ("dec", device, dtype)
    tab = _cache.get(key)
    if tab is None:
        tab = srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0).to(device=device, dtype=dtype)
        _cache[key] = tab
    return tab


def _check_rgb8(rgb8: torch.Tensor) -> None:
    if not isinstance(rgb8, torch.Tensor):
        raise TypeError("rgb8 must be a torch uint8 tensor (*, 3, H, W)")
    if rgb8.dtype != torch.uint8:
        raise TypeError(f"rgb8 must be uint8, got {rgb8.dtype}")
    if rgb8.ndim < 3 or rgb8.shape[-3] != 3:
        raise ValueError(f"rgb8 must be (*, 3, H, W), got {tuple(rgb8.shape)}")


def _f_fast(t: torch.Tensor) -> torch.Tensor:
    """CIE f() without a branch: ``cbrt(max(t, e^3)) + min(t - e^3, 0) / (3 e^2)``, e = 6/29."""
    out = t.clamp(min=_EPS ** 3).pow_(1.0 / 3.0)
    return out.add_((t - _EPS ** 3).clamp_(max=0.0), alpha=1.0 / (3 * _EPS ** 2))


def _rgb8_to_lin(rgb8: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    tab = _decode_table(rgb8.device, dtype)
    return tab.index_select(0, rgb8.reshape(-1).to(torch.int32)).reshape(rgb8.shape)


def rgb8_to_lab(rgb8: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """8-bit sRGB ``(*, 3, H, W)`` uint8 -> Lab ``(*, 3, H, W)`` (float32 by default), via a
    256-entry linearisation table; otherwise identical to :func:`srgb_to_lab` of ``rgb8 / 255``."""
    _check_rgb8(rgb8)
    r, g, b = _rgb8_to_lin(rgb8, dtype).unbind(-3)
    m = (_RGB2XYZ / _WHITE_D65.view(3, 1)).tolist()
    fx, fy, fz = (_f_fast(r * row[0] + g * row[1] + b * row[2]) for row in m)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def rgb8_to_L(rgb8: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """8-bit sRGB ``(*, 3, H, W)`` uint8 -> CIE L* ``(*, 1, H, W)`` (only the luminance path).

    Computed in float64 and rounded to ``dtype``, so a colour gets the same L* wherever it sits in
    a tensor (torch's vectorised and scalar ``pow`` may differ by an ulp, far below a float32 step):
    a per-series value table and the per-slice measures agree on it."""
    _check_rgb8(rgb8)
    r, g, b = _rgb8_to_lin(rgb8, torch.float64).unbind(-3)
    y = r * _M_Y[0] + g * _M_Y[1] + b * _M_Y[2]
    return (116.0 * _f_fast(y) - 16.0).unsqueeze(-3).to(dtype)


def upsample_ab(ab: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of ab ``(*, 2, h, w)`` -- or a whole Lab ``(*, 3, h, w)``
    from a backend that replaces L -- to ``(*, C, H, W)``; returns ``ab`` itself when it already has
    that size."""
    if ab.ndim < 3 or ab.shape[-3] not in (2, 3):
        raise ValueError(f"ab must be (*, 2, h, w) (or Lab (*, 3, h, w)), got {tuple(ab.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(ab.shape[-2:]) == size:
        return ab
    lead, c = ab.shape[:-3], ab.shape[-3]
    x = ab.reshape(-1, c, *ab.shape[-2:])
    y = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return y.reshape(*lead, c, *size)


def to_hwc_numpy(rgb8: torch.Tensor) -> np.ndarray:
    """uint8 ``(*, 3, H, W)`` tensor -> contiguous numpy ``[*, H, W, 3]`` uint8 (on the CPU)."""
    _check_rgb8(rgb8)
    return np.ascontiguousarray(rgb8.movedim(-3, -1).cpu().numpy())
