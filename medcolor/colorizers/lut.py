"""``lut`` backend: a deterministic HU -> colour transfer function; no learning, the baseline.

The ramps follow the spirit of 3D Slicer's CT-Muscle preset (recoloured for a 2-D slice): air
dark/neutral, lung parenchyma dark pinkish, fat yellowish, soft tissue/muscle red, bone ivory. Control
points are given in HU with sRGB colours (``CT_MUSCLE_LIKE``); each is converted to CIE-Lab and only its
a/b (chroma) is kept — L always comes from the source slice. a/b are interpolated linearly in HU over a
table of 4096 entries, one per HU from -1024 to 3071 (values outside clamp to the ends).

**From L back to HU** (``prepare``). The pipeline's L is the DICOM PS3.3 C.11.2.1.2.1 LINEAR window
``L = clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1) * 100``. Inside the window this inverts exactly to

    x = (L / 100 - 0.5) * (w - 1) + c - 0.5

(``w - 1`` is floored at 1 for degenerate windows with w <= 2). Pixels clipped by the window (L = 0 or
100) map to the window ends ``c - 0.5 - (w - 1)/2`` and ``c - 0.5 + (w - 1)/2``: they get the colour of
the window edge, which is fine because near L 0/100 the gamut leaves little chroma anyway. ``prepare``
composes this inverse with the HU table into an L-keyed table (1001 nodes, L step 0.1), so
``colorize`` is one bilinear look-up. For MONOCHROME1 series whose L was inverted (``100 - L``), pass
``invert=True``.

**Non-HU series** (MR, X-ray, plain images, or a window in "modality"/"srgb" units on a non-HU
series): the same colours are placed on L instead of HU (``L_RAMP``: neutral black -> dark blue-gray ->
dark pink -> red -> warm yellow -> ivory). With ``ramp="quantile"`` the ramp's L positions are read as
quantile levels of the series' informative pixels (L strictly between 0.5 and 99.5), so the ramp
follows the series' own brightness distribution.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medcolor.color import srgb_to_lab
from medcolor.colorizers.base import Colorizer, PixelKeys, check_L
from medcolor.errors import MedcolorError
from medcolor.types import SeriesContext

__all__ = ["LutColorizer", "CT_MUSCLE_LIKE", "L_RAMP", "RAMP_NAME", "hu_table", "window_inverse"]

RAMP_NAME = "ct-muscle-like v1"
HU_MIN, HU_MAX = -1024, 3071
N_L_NODES = 1001

# (HU, (r, g, b) sRGB in 0..1); only the chroma (a/b) of each colour is used.
CT_MUSCLE_LIKE: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (-1024.0, (0.10, 0.10, 0.10)),   # air: neutral
    (-950.0, (0.20, 0.20, 0.20)),    # air / emphysema: neutral
    (-850.0, (0.42, 0.24, 0.27)),    # aerated lung: dark pinkish
    (-500.0, (0.80, 0.52, 0.55)),    # denser lung / ground glass: pink
    (-100.0, (0.98, 0.86, 0.45)),    # fat: yellow
    (-60.0, (0.98, 0.86, 0.45)),     # fat
    (20.0, (0.78, 0.20, 0.15)),      # water-dense soft tissue: red
    (40.0, (0.78, 0.18, 0.14)),      # muscle: red
    (120.0, (0.82, 0.30, 0.24)),     # enhanced tissue / blood with contrast: lighter red
    (300.0, (1.00, 0.97, 0.89)),     # bone: ivory
    (3071.0, (1.00, 0.97, 0.90)),    # dense bone / metal: ivory
)

# (L, (r, g, b)) for non-HU series; the same colour families placed on L.
L_RAMP: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (0.0, (0.00, 0.00, 0.00)),       # black: neutral
    (12.0, (0.12, 0.13, 0.20)),      # dark blue-gray
    (35.0, (0.45, 0.27, 0.30)),      # dark pinkish
    (55.0, (0.78, 0.22, 0.17)),      # red
    (75.0, (0.98, 0.80, 0.50)),      # warm yellow
    (90.0, (1.00, 0.96, 0.86)),      # ivory
    (100.0, (1.00, 0.97, 0.90)),     # ivory
)
RAMPS = ("fixed", "quantile")


def _ab_of(points: tuple[tuple[float, tuple[float, float, float]], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Positions [n] and a/b [n, 2] of control points (sRGB -> Lab, D65)."""
    pos = np.array([p for p, _ in points], dtype=np.float64)
    rgb = torch.tensor([c for _, c in points], dtype=torch.float64).T[:, :, None]   # [3, n, 1]
    lab = srgb_to_lab(rgb)[:, :, 0].T.numpy()                                         # [n, 3]
    return pos, lab[:, 1:]


def hu_table(points=CT_MUSCLE_LIKE) -> np.ndarray:
    """a/b for every integer HU from -1024 to 3071: float64 [4096, 2], linear in HU between points."""
    pos, ab = _ab_of(points)
    hu = np.arange(HU_MIN, HU_MAX + 1, dtype=np.float64)
    return np.stack([np.interp(hu, pos, ab[:, 0]), np.interp(hu, pos, ab[:, 1])], axis=1)


def window_inverse(L: np.ndarray, center: float, width: float) -> np.ndarray:
    """Inverse of the DICOM LINEAR window: L (0..100) -> x = (L/100 - 0.5)(w - 1) + c - 0.5."""
    return (np.asarray(L, dtype=np.float64) / 100.0 - 0.5) * max(width - 1.0, 1.0) + center - 0.5


class LutColorizer(Colorizer):
    """HU -> chroma transfer function (CT), or an L-keyed ramp (non-HU); see the module docstring.

    Options: ``invert`` (bool, L was inverted for MONOCHROME1), ``ramp`` "fixed" (default) |
    "quantile" (non-HU series only).
    """

    name = "lut"
    summary = "deterministic HU-to-colour ramps (CT-Muscle-like); the baseline"
    option_names = ("invert", "ramp")

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        super().__init__(device, **options)
        self.invert = bool(options.get("invert", False))
        ramp = (options.get("ramp") or "fixed").strip().lower()
        if ramp not in RAMPS:
            raise MedcolorError(f"unknown lut ramp {ramp!r}", where="--method lut",
                                hint=f"use one of {', '.join(RAMPS)}")
        self.ramp = ramp
        self._hu_ab = hu_table()
        self._table: torch.Tensor | None = None     # [1, 2, 1, N_L_NODES]
        self._keyed_on = "HU"
        self._window_text = ""

    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        """Build the L -> ab table for this series' window (HU) or brightness distribution (non-HU)."""
        self.warnings = []
        L_nodes = np.linspace(0.0, 100.0, N_L_NODES)
        inverted = self.invert or ctx.inverted
        key_L = 100.0 - L_nodes if inverted else L_nodes     # the window's own L for each node
        win = ctx.window
        if ctx.is_hu and win.units != "srgb":
            hu = np.clip(window_inverse(key_L, win.center, win.width), HU_MIN, HU_MAX) - HU_MIN
            ab = np.stack([np.interp(hu, np.arange(self._hu_ab.shape[0]), self._hu_ab[:, k])
                           for k in range(2)], axis=0)
            self._keyed_on = "HU"
            self._window_text = f"W={win.width:g} L={win.center:g}"
        else:
            pos, ab_pts = _ab_of(L_RAMP)
            if self.ramp == "quantile":
                pos = self._quantile_positions(pos, sample_L)
            # non-HU images are keyed on the displayed L (after any MONOCHROME1 inversion)
            ab = np.stack([np.interp(L_nodes, pos, ab_pts[:, k]) for k in range(2)], axis=0)
            self._keyed_on = "L" if self.ramp == "fixed" else "L quantiles"
        self._table = torch.from_numpy(ab.astype(np.float32)).to(self.device).view(1, 2, 1, N_L_NODES)

    def _quantile_positions(self, pos: np.ndarray, sample_L: torch.Tensor) -> np.ndarray:
        L = check_L(sample_L, self.device).flatten()
        L = L[(L > 0.5) & (L < 99.5)]
        if L.numel() < 16:
            self.warnings.append("lut: too few informative pixels for a quantile ramp; using the fixed ramp")
            return pos
        if L.numel() > 4_000_000:
            L = L[:: int(np.ceil(L.numel() / 4_000_000))]
        q = torch.quantile(L.float().cpu(), torch.tensor(pos / 100.0, dtype=torch.float32)).double().numpy()
        q[0], q[-1] = 0.0, 100.0
        return np.maximum.accumulate(q + np.arange(q.size) * 1e-6)   # strictly increasing for interp

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """``L`` [B,1,H,W] (0..100) -> ab [B,2,H,W] float32 on ``self.device``."""
        if self._table is None:
            raise RuntimeError("LutColorizer.colorize() called before prepare()")
        L = check_L(L, self.device)
        B = L.shape[0]
        gx = L.clamp(0.0, 100.0) * (2.0 / 100.0) - 1.0
        grid = torch.cat([gx, torch.zeros_like(gx)], dim=1).permute(0, 2, 3, 1)   # [B,H,W,2]
        return F.grid_sample(self._table.expand(B, -1, -1, -1), grid, mode="bilinear",
                             padding_mode="border", align_corners=True)

    def pixel_keys(self) -> PixelKeys | None:
        """Keyed on L alone: ``colorize`` is one look-up per pixel."""
        return PixelKeys() if self._table is not None else None

    def provenance(self) -> dict[str, Any]:
        params: dict[str, Any] = {"ramp": RAMP_NAME, "keyed_on": self._keyed_on}
        if self._keyed_on == "HU":
            params["inverse"] = "x=(L/100-0.5)(W-1)+C-0.5"
            if self._window_text:
                params["window"] = self._window_text
            method = "lut (ct-muscle-like)"
        else:
            params["ramp_mode"] = self.ramp
            method = "lut (luminance ramp)"
        if self.invert:
            params["invert"] = True
        return {"method": method, "parameters": params, "reference_sha256": None, "model_sha256": None}
