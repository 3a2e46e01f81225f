"""``exemplar`` backend: chroma from a reference photo, after Welsh, Ashikhmin & Mueller (2002),
"Transferring color to greyscale images" (SIGGRAPH), made deterministic, vectorised and consistent
over a whole series.

Welsh et al. match every target pixel to one of ~200 jittered reference samples by a 50/50 weighted
distance of luminance and 5×5 luminance standard deviation, after remapping the reference luminance
by mean/std onto the target's. Here:

1. **Reference statistics** (once, at construction): the reference sRGB photo -> CIE-Lab (D65) with
   ``medcolor.color.srgb_to_lab``. References larger than ``max_reference_pixels`` are shrunk with area
   averaging (cv2.INTER_AREA) first.
2. **Luminance remapping** (``prepare``, once per series, from ``sample_L``): *quantile* (histogram)
   matching: a reference pixel whose L has mid-rank CDF value u gets the target series' L quantile at
   u. Mean/std remapping (Welsh) assumes one roughly Gaussian mode; CT is bimodal (air/lung vs tissue,
   plus clipped pixels at L 0 and 100), so a linear remap would put most reference pixels where the
   target has none. Saturated target pixels (L <= 0.5 or >= 99.5, i.e. outside the window) carry no
   information and are left out of the target distribution. The 5×5 local standard deviation is then
   computed on the *remapped* reference L and rank-matched the same way onto the target series'
   texture distribution, so "smooth" and "textured" mean the same in both images.
3. **Matching table** (``prepare``): instead of a per-pixel search, reference pixels are splatted
   (bilinearly) onto a 2-D grid of (L: 0..100 in 101 nodes) × (local std: 0..s_max in 33 nodes; s_max
   is the series' 99th percentile of local std), accumulating counts and a/b sums. Both axes are
   smoothed with the same Gaussian in node units (σ = 1.5 nodes), which is the table form of Welsh's
   50/50 luminance/texture distance. Each cell's a/b is the smoothed mean, shrunk towards a 1-D L -> ab
   table (same data summed over texture, smoothed along L, empty L ranges filled from the nearest
   filled node) with a prior weight, so cells with few or no reference pixels fall back smoothly: the
   table has no holes and no NaN.
4. **Colouring** (``colorize``): one box-filter pass for the target's 5×5 local std (on L and L²),
   rounded to a *texture level* of 1/8 of a table node (``TEXTURE_SUBSTEPS``; the table is smoothed
   over 1.5 nodes, so the rounding moves a/b by a small fraction of the smoothing), then a bilinear
   look-up of the table (``grid_sample``) at (L, level) -> ab at full resolution. The mapping depends
   only on the series (fixed in ``prepare``) and on each pixel's L and texture level
   (``pixel_keys``), so it is deterministic, identical for every slice of the series, and the
   pipeline can tabulate it once per series over the (L, level) pairs that can occur.

``mode="reinhard"`` is Reinhard et al. (2001) global colour transfer in Lab: ab_out = (ab_t - μ_t) σ_r/σ_t
+ μ_r. A grayscale target has ab_t = 0 and σ_t = 0, so the output is the reference's mean a/b on every
pixel — a flat tint (a known trap). It is kept as the simple global alternative and says so in its
provenance and in ``warnings``.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medcolor.color import srgb_to_lab
from medcolor.colorizers.base import Colorizer, PixelKeys, check_L, local_mean_std, texture_level
from medcolor.errors import MedcolorError
from medcolor.types import SeriesContext

__all__ = ["ExemplarColorizer"]

MODES = ("welsh", "reinhard")
NEIGHBOURHOOD = 5
N_L = 101           # L nodes 0, 1, ..., 100
N_S = 33            # std nodes 0 .. s_max
N_QUANTILES = 1025  # quantiles used for the L and texture remapping
TEXTURE_SUBSTEPS = 8  # texture levels per table node along the std axis
SMOOTH_SIGMA = 1.5  # Gaussian σ of the table smoothing, in nodes (both axes)
PRIOR_FRACTION = 0.1  # prior weight of the 1-D table, as a fraction of the mean count per cell
REINHARD_WARNING = ("exemplar mode 'reinhard' is a global tint: a grayscale target has no chroma "
                    "spread, so every pixel gets the reference's mean a/b (Reinhard et al. 2001); use "
                    "mode 'welsh' for colour that follows luminance and texture")


def _quantiles(x: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` evenly spaced quantiles (0..1, linear interpolation) of the 1-D tensor ``x``."""
    xs = torch.sort(x).values
    pos = torch.linspace(0, xs.numel() - 1, k, device=x.device, dtype=torch.float64)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=xs.numel() - 1)
    frac = (pos - lo.double()).float()
    return xs[lo] * (1 - frac) + xs[hi] * frac


def _match_quantiles(source: torch.Tensor, target_q: torch.Tensor) -> torch.Tensor:
    """Map every value of 1-D ``source`` onto the distribution given by ``target_q`` (``k`` evenly
    spaced quantiles) by its mid-rank CDF value (ties get the same output)."""
    xs = torch.sort(source).values
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


def _smooth(grid: torch.Tensor, sigma: float, dims: tuple[int, ...]) -> torch.Tensor:
    """Separable Gaussian smoothing of ``grid`` [C, S, L] along the given spatial dims (1 = std,
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


class ExemplarColorizer(Colorizer):
    """Chroma from a reference photo keyed by luminance and 5×5 texture (see the module docstring).

    Options: ``reference_rgb`` uint8 [H,W,3] sRGB (required), ``reference_sha256`` hex string of the
    reference file (recorded in provenance; when missing, the sha256 of the pixel bytes is used and
    the parameters say so), ``mode`` "welsh" (default) | "reinhard", ``max_reference_pixels``
    (default 262144; larger references are shrunk).
    """

    name = "exemplar"
    summary = "chroma from a reference photo keyed by luminance and 5x5 texture (Welsh et al. 2002)"
    option_names = ("reference_rgb", "reference_sha256", "mode", "max_reference_pixels")

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        super().__init__(device, **options)
        mode = (options.get("mode") or "welsh").strip().lower()
        if mode not in MODES:
            raise MedcolorError(f"unknown exemplar mode {mode!r}", where="--exemplar-mode",
                                hint=f"use one of {', '.join(MODES)}")
        self.mode = mode
        rgb = options.get("reference_rgb")
        if rgb is None:
            raise MedcolorError("the exemplar backend needs a reference colour photo", where="--ref",
                                hint="pass --ref photo.jpg (e.g. raw meat)")
        rgb = self._check_reference(np.asarray(rgb), int(options.get("max_reference_pixels") or 262144))
        sha = options.get("reference_sha256")
        self._sha_from_pixels = not sha
        self.reference_sha256: str = sha or hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()
        ref = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).to(self.device).permute(2, 0, 1)[None]
        lab = srgb_to_lab(ref.float() / 255.0)                 # [1,3,h,w] float32
        self._ref_L = lab[:, :1]                               # [1,1,h,w]
        self._ref_ab = lab[0, 1:].reshape(2, -1)               # [2, n]
        self._ref_shape = tuple(rgb.shape[:2])
        self._ref_mean_ab = self._ref_ab.mean(dim=1)           # [2]
        chroma = self._ref_ab.norm(dim=0)
        self.reference_mean_chroma = float(chroma.mean())
        self._base_warnings: list[str] = []
        if self.reference_mean_chroma < 3.0:
            self._base_warnings.append(
                "exemplar: the reference has almost no colour "
                f"(mean chroma {self.reference_mean_chroma:.1f}); "
                "the output will be nearly gray")
        if float(self._ref_L.std(correction=0)) < 2.0:
            self._base_warnings.append("exemplar: the reference has almost no luminance variation; "
                                       "colour cannot follow the target's luminance")
        if self.mode == "reinhard":
            self._base_warnings.append(REINHARD_WARNING)
        self.warnings = list(self._base_warnings)
        self._table: torch.Tensor | None = None                # [1, 2, N_S, N_L]
        self._s_max: float = 1.0
        self._prepared = False
        self._series_info: dict[str, Any] = {}

    @staticmethod
    def _check_reference(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
        if rgb.ndim == 3 and rgb.shape[2] == 4:
            rgb = rgb[..., :3]
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
            raise MedcolorError(f"the reference must be an RGB image [H,W,3], got shape {rgb.shape}",
                                where="--ref", hint="use a colour photo (JPEG/PNG)")
        if rgb.dtype != np.uint8:
            raise MedcolorError(f"the reference must be 8-bit RGB, got {rgb.dtype}", where="--ref",
                                hint="use an 8-bit colour photo (JPEG/PNG)")
        h, w = rgb.shape[:2]
        if h * w > max_pixels:
            import cv2

            scale = (max_pixels / (h * w)) ** 0.5
            size = (max(1, int(w * scale)), max(1, int(h * scale)))
            rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
        return rgb

    # ------------------------------------------------------------------ series state
    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        """Remap the reference onto the series' L and texture distributions and build the (L, std) ->
        ab table; every slice of the series then shares it."""
        self.warnings = list(self._base_warnings)
        with torch.no_grad():
            S = check_L(sample_L, self.device)
            if self.mode == "reinhard":
                self._series_info = {"target_mean_L": float(S.mean()),
                                     "target_std_L": float(S.std(correction=0))}
                self._prepared = True
                return
            self._build_table(S)
        self._prepared = True

    def _build_table(self, S: torch.Tensor) -> None:
        dev = self.device
        _, s_t = local_mean_std(S, NEIGHBOURHOOD)
        Lt, st = S.flatten(), s_t.flatten()
        informative = (Lt > 0.5) & (Lt < 99.5)
        if int(informative.sum()) < 16:   # everything clipped (or a constant image): use all pixels
            informative = torch.ones_like(Lt, dtype=torch.bool)
            self.warnings.append("exemplar: the series sample is almost all outside the window; "
                                 "the luminance remap uses clipped pixels")
        Lt, st = Lt[informative], st[informative]
        if Lt.numel() > 4_000_000:        # deterministic thinning of very large samples
            step = int(np.ceil(Lt.numel() / 4_000_000))
            Lt, st = Lt[::step], st[::step]
        q_L = _quantiles(Lt, N_QUANTILES)
        q_s = _quantiles(st, N_QUANTILES)
        s_max = max(float(q_s[int(0.99 * (N_QUANTILES - 1))]), 1.0)

        # reference luminance remapped onto the series, texture measured on the remapped image
        ref_L = _match_quantiles(self._ref_L.flatten(), q_L).view_as(self._ref_L)
        _, ref_s = local_mean_std(ref_L, NEIGHBOURHOOD)
        ref_s = _match_quantiles(ref_s.flatten(), q_s)
        # the table itself is small: build it on the CPU in float64, so it is bit-for-bit reproducible
        # (no float atomics as in CUDA index_add_) and the same whatever the device
        cpu = torch.device("cpu")
        ref_L = ref_L.flatten().to(cpu, torch.float64)
        ref_s = ref_s.to(cpu, torch.float64)

        # bilinear splat of reference pixels onto the (std, L) grid: channels count, a*count, b*count
        x = (ref_L / 100.0).clamp(0, 1) * (N_L - 1)
        y = (ref_s / s_max).clamp(0, 1) * (N_S - 1)
        x0 = x.floor().clamp(max=N_L - 2)
        y0 = y.floor().clamp(max=N_S - 2)
        fx, fy = x - x0, y - y0
        x0, y0 = x0.long(), y0.long()
        ab = self._ref_ab.to(cpu, torch.float64)
        values = torch.cat([torch.ones(1, ref_L.numel(), dtype=torch.float64), ab], dim=0)  # [3, n]
        grid = torch.zeros(3, N_S * N_L, dtype=torch.float64)
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                index = (y0 + dy) * N_L + (x0 + dx)
                grid.index_add_(1, index, values * (wy * wx)[None])
        grid = grid.view(3, N_S, N_L)

        # 1-D L -> ab table (texture summed out), smoothed along L, gaps filled from the nearest node
        line = _smooth(grid.sum(dim=1, keepdim=True), SMOOTH_SIGMA, dims=(2,))[:, 0]     # [3, N_L]
        filled = line[0] > 1e-3
        line_ab = line[1:] / line[0].clamp(min=1e-12)
        line_ab = torch.where(filled[None], line_ab, _fill_nearest(line_ab, filled))  # [2, N_L]

        # 2-D table: smoothed cell means shrunk towards the 1-D table (prior weight lam)
        smooth = _smooth(grid, SMOOTH_SIGMA, dims=(1, 2))                               # [3, N_S, N_L]
        lam = max(1.0, PRIOR_FRACTION * ref_L.numel() / (N_S * N_L))
        table = (smooth[1:] + lam * line_ab[:, None, :]) / (smooth[0][None] + lam)
        self._table = table[None].to(dev, torch.float32).contiguous()                  # [1,2,N_S,N_L]
        self._s_max = s_max
        self._series_info = {"s_max": s_max}

    # ------------------------------------------------------------------ per batch
    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """``L`` [B,1,H,W] (0..100) -> ab [B,2,H,W] float32 on ``self.device`` (full resolution)."""
        if not self._prepared:
            raise RuntimeError("ExemplarColorizer.colorize() called before prepare()")
        L = check_L(L, self.device)
        B, _, H, W = L.shape
        if self.mode == "reinhard":
            return self._ref_mean_ab.view(1, 2, 1, 1).expand(B, 2, H, W).clone()
        return self._lookup(L, texture_level(L, self._keys()))

    def _keys(self) -> PixelKeys:
        levels = TEXTURE_SUBSTEPS * (N_S - 1)
        return PixelKeys(texture_size=NEIGHBOURHOOD, texture_scale=levels / self._s_max,
                         texture_levels=levels + 1)

    def _lookup(self, L: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Bilinear look-up of the table at (L, texture level), both [B,1,H,W] -> ab [B,2,H,W]."""
        gx = L * (2.0 / 100.0) - 1.0
        gy = level * (2.0 / (TEXTURE_SUBSTEPS * (N_S - 1))) - 1.0
        grid = torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1)             # [B,H,W,2] (x=L, y=std)
        table = self._table.expand(L.shape[0], -1, -1, -1)
        return F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def pixel_keys(self) -> PixelKeys | None:
        if not self._prepared:
            return None
        return PixelKeys() if self.mode == "reinhard" else self._keys()

    def colorize_keys(self, L: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        if self.mode == "reinhard" or level is None:
            return super().colorize_keys(L, level)
        return self._lookup(check_L(L, self.device), check_L(level, self.device))

    # ------------------------------------------------------------------ provenance
    def provenance(self) -> dict[str, Any]:
        if self.mode == "reinhard":
            params: dict[str, Any] = {"mode": "reinhard", "transfer": "global tint",
                                      "luminance_remap": "mean/std (L kept)",
                                      "mean_ab": f"{float(self._ref_mean_ab[0]):.1f},"
                                                 f"{float(self._ref_mean_ab[1]):.1f}"}
        else:
            params = {"mode": "welsh", "neighbourhood": NEIGHBOURHOOD, "luminance_remap": "quantile",
                      "texture_remap": "quantile", "table_bins": f"{N_L}x{N_S}",
                      "texture_levels": TEXTURE_SUBSTEPS * (N_S - 1) + 1}
            if self._prepared:
                params["std_max"] = round(self._s_max, 2)
        if self._sha_from_pixels:
            params["reference_hash"] = "pixels"
        return {"method": f"exemplar ({self.mode})", "parameters": params,
                "reference_sha256": self.reference_sha256, "model_sha256": None}
