"""VOI windowing: presets, DICOM-exact linear windows, percentile windows, MONAI transforms.

A window turns modality values (HU for CT, stored values after the modality LUT otherwise) into the
CIE L* channel (0..100) that the rest of medcolor keeps unchanged.

Formula (DICOM PS3.3 C.11.2.1.2.1, VOI LUT Function LINEAR, output range 0..100)::

    L = clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1) * 100      for w > 1
    L = 0 if x <= c - 0.5 else 100                              for w == 1 (a step)
    L = clip((x - c) / w + 0.5, 0, 1) * 100                     for 0 < w < 1

``c`` is the window center (level) and ``w`` the width; the last line is DICOM's LINEAR_EXACT
(C.11.2.1.3.2), used only for windows narrower than 1, which DICOM's LINEAR forbids but
percentile windows of float images (NIfTI, values in 0..1) need. Windows of ``units == "srgb"``
are not linear: the values are 8-bit sRGB grays ``v`` in 0..255 and L is their CIE L*::

    Y = srgb_to_linear(v / 255),  L = 116 f(Y) - 16,  f(t) = t^(1/3) if t > (6/29)^3
                                                         else t / (3 (6/29)^2) + 4/29

``invert=True`` (MONOCHROME1) gives ``100 - L``: the inversion follows the windowing, as DICOM's
presentation LUT follows the VOI LUT. NaN values give L = 0.

Presets (Hounsfield units). Sources, per preset in :data:`PRESET_SOURCES`:

* 3D Slicer, Volumes module window/level presets
  (``Modules/Loadable/Volumes/Resources/VolumeDisplayPresets.json``): CT-Bone W 1000 L 400,
  CT-Air W 1000 L -426, CT-Brain W 100 L 50, CT-Abdomen W 350 L 40, CT-Lung W 1400 L -500.
* Radiopaedia, "Windowing (CT)" (https://radiopaedia.org/articles/windowing-ct), typical values:
  mediastinum W 350 L 50, soft tissues W 400 L 50, liver W 150 L 30, subdural W 130-300 L 50-100
  (we take W 200 L 75), stroke W 40 L 40.

Default window when the user gives none (``resolve_window(None, ...)``), in this order:

1. the file's first VOI window (``Series.file_windows[0]``), name ``"file"``;
2. 8-bit plain images (kind ``"image"``): the sRGB gray -> L* mapping (``units == "srgb"``);
3. series in HU (CT): the ``soft_tissue`` preset (W 400 L 50), a general body window;
4. X-ray (DX, CR) without a VOI window: a percentile window 5..99.9 % (``XRAY_PERCENTILES``);
5. anything else (MR, MG, NIfTI without HU, 16-bit images): a percentile window 1..99 % of the
   ``sample`` pixels.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from medcolor.errors import MedcolorError
from medcolor.types import Series, Window

__all__ = [
    "PRESETS", "PRESET_SOURCES", "DEFAULT_CT_PRESET", "resolve_window", "window_to_l",
    "percentile_window", "normalize_preset_name", "parse_window_spec", "WindowSpec", "WindowToL", "WindowToLd",
]

_SLICER = "3D Slicer Volumes module preset {}"
_RADIOPAEDIA = "Radiopaedia 'Windowing (CT)': {}"

#: Named CT windows in Hounsfield units (width, center).
PRESETS: dict[str, Window] = {
    "lung": Window(center=-500.0, width=1400.0, name="lung", units="HU"),
    "mediastinum": Window(center=50.0, width=350.0, name="mediastinum", units="HU"),
    "bone": Window(center=400.0, width=1000.0, name="bone", units="HU"),
    "brain": Window(center=50.0, width=100.0, name="brain", units="HU"),
    "abdomen": Window(center=40.0, width=350.0, name="abdomen", units="HU"),
    "liver": Window(center=30.0, width=150.0, name="liver", units="HU"),
    "soft_tissue": Window(center=50.0, width=400.0, name="soft_tissue", units="HU"),
    "air": Window(center=-426.0, width=1000.0, name="air", units="HU"),
    "subdural": Window(center=75.0, width=200.0, name="subdural", units="HU"),
    "stroke": Window(center=40.0, width=40.0, name="stroke", units="HU"),
}

#: Where each preset's numbers come from.
PRESET_SOURCES: dict[str, str] = {
    "lung": _SLICER.format("CT-Lung (W 1400, L -500); Radiopaedia gives W 1500 L -600"),
    "mediastinum": _RADIOPAEDIA.format("mediastinum W 350 L 50"),
    "bone": _SLICER.format("CT-Bone (W 1000, L 400)"),
    "brain": _SLICER.format("CT-Brain (W 100, L 50); Radiopaedia gives W 80 L 40"),
    "abdomen": _SLICER.format("CT-Abdomen (W 350, L 40)"),
    "liver": _RADIOPAEDIA.format("liver W 150 L 30"),
    "soft_tissue": _RADIOPAEDIA.format("abdomen soft tissues W 400 L 50"),
    "air": _SLICER.format("CT-Air (W 1000, L -426)"),
    "subdural": _RADIOPAEDIA.format("subdural W 130-300 L 50-100; middle of both ranges"),
    "stroke": _RADIOPAEDIA.format("stroke W 40 L 40 (alternative W 8 L 32)"),
}

#: Preset used for HU series without a VOI window in the file.
DEFAULT_CT_PRESET = "soft_tissue"

#: Percentile window of X-ray (DX, CR) without a VOI window in the file: chosen by
#: benchmarks/xray_window.py on the shipped chest X-ray (the largest spread of L* that clips at most 6 % of
#: the pixels to black and 1 % to white; 1..99 % looked washed out: mean L* 68.6, sd 24.3 -> 59.9, 29.0).
XRAY_PERCENTILES = (5.0, 99.9)

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_WL_RE = re.compile(rf"^\s*({_NUM})\s*,\s*({_NUM})\s*$")
_NUM_ONLY_RE = re.compile(rf"^\s*{_NUM}\s*$")
_PCT_RE = re.compile(rf"^\s*percentile\s*(?::\s*({_NUM})\s*,\s*({_NUM})\s*)?$", re.IGNORECASE)
_OPTION = "--window"
_HINT = ("use a preset name (" + ", ".join(PRESETS) + "), 'W,L' such as '1500,-600', 'file', "
         "'percentile' or 'percentile:LO,HI'")


def normalize_preset_name(name: str) -> str:
    """'CT-Soft Tissue' -> 'soft_tissue': lower case, '-'/' ' -> '_', optional 'ct_' prefix."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    if key.startswith("ct_"):
        key = key[3:]
    return key


def _series_units(series: Series) -> str:
    return "HU" if series.is_hu else "modality"


def _where(series: Series) -> str:
    return series.source_label or _OPTION


def percentile_window(sample: np.ndarray | torch.Tensor, lo: float = 1.0, hi: float = 99.0,
                      units: str = "modality") -> Window:
    """Window spanning the ``lo``..``hi`` percentiles of ``sample`` (NaN/inf ignored).

    center = (p_lo + p_hi) / 2, width = p_hi - p_lo. A constant sample (width 0) gives width 1
    and center ``value + 0.5``: values up to ``value`` are black, values above it white.
    Raises MedcolorError when the sample has no finite value.
    """
    if not (0.0 <= lo < hi <= 100.0):
        raise MedcolorError(f"percentile bounds must satisfy 0 <= LO < HI <= 100, got {lo:g},{hi:g}",
                            where=_OPTION, hint="for example --window percentile:1,99")
    if isinstance(sample, torch.Tensor):
        sample = sample.detach().cpu().numpy()
    values = np.asarray(sample, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise MedcolorError("no finite pixel values to compute a percentile window",
                            hint="give an explicit window W,L")
    p_lo, p_hi = np.percentile(values, [lo, hi])
    name = f"percentile({lo:g},{hi:g})"
    width = float(p_hi - p_lo)
    if width <= 0.0:
        return Window(center=float(p_lo) + 0.5, width=1.0, name=name, units=units)  # type: ignore[arg-type]
    return Window(center=float(p_lo + p_hi) / 2.0, width=width, name=name, units=units)  # type: ignore[arg-type]


def _lookup_preset(key: str, raw: str) -> Window:
    name = normalize_preset_name(key)
    if name in PRESETS:
        return PRESETS[name]
    choices = list(PRESETS) + ["file", "percentile"]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else _HINT
    raise MedcolorError(f"unknown window '{raw}'", where=_OPTION, hint=hint)


def _default_window(series: Series, sample: np.ndarray | torch.Tensor | None) -> Window:
    if series.file_windows:
        c, w = series.file_windows[0]
        return _file_window(series, c, w)
    if series.kind == "image" and series.bits <= 8:
        return Window(center=127.5, width=256.0, name="srgb", units="srgb")
    if series.is_hu:
        return PRESETS[DEFAULT_CT_PRESET]
    if sample is None:
        raise MedcolorError(f"a percentile window for this {series.modality} series needs pixel values",
                            where=_where(series), hint="give --window W,L or a preset")
    lo, hi = XRAY_PERCENTILES if series.modality in ("DX", "CR") else (1.0, 99.0)
    return percentile_window(sample, lo, hi, units=_series_units(series))


def _file_window(series: Series, center: float, width: float) -> Window:
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise MedcolorError(f"the file's VOI window (center {center:g}, width {width:g}) is not usable",
                            where=_where(series), hint="give --window W,L or a preset")
    return Window(center=float(center), width=max(float(width), 1.0) if series.kind == "dicom" else float(width),
                  name="file", units=_series_units(series))  # type: ignore[arg-type]


@dataclass(frozen=True)
class WindowSpec:
    """A parsed ``--window`` value, checked before any file is read. ``kind``: "default" | "wl" | "percentile"
    | "file" | "srgb" | "preset"; ``values``: (width, center) for "wl", (lo, hi) for "percentile";
    ``preset``: the named window."""

    kind: str
    values: tuple[float, float] = (0.0, 0.0)
    preset: Window | None = None


def parse_window_spec(spec: str | None) -> WindowSpec:
    """The one parser of ``--window``: None/"" (the default), a preset name (case-insensitive, '-'/'_'/' '
    and a 'ct-' prefix tolerated), "W,L" (W > 0), "file", "percentile" or "percentile:LO,HI"
    (0 <= LO < HI <= 100). Anything else raises a one-line MedcolorError (with "did you mean" for a near
    miss), so a bad window is refused before any file is read."""
    if spec is None or not str(spec).strip():
        return WindowSpec("default")
    raw = str(spec).strip()
    m = _WL_RE.match(raw)
    if m:
        width, center = float(m.group(1)), float(m.group(2))
        if not (math.isfinite(width) and math.isfinite(center)):
            raise MedcolorError(f"window '{raw}' is not finite", where=_OPTION, hint="give W,L as numbers")
        if width <= 0:
            raise MedcolorError(f"window width must be > 0, got {width:g}", where=_OPTION,
                                hint="give W,L with W the width, e.g. 400,50")
        return WindowSpec("wl", (width, center))
    m = _PCT_RE.match(raw)
    if m:
        lo = float(m.group(1)) if m.group(1) is not None else 1.0
        hi = float(m.group(2)) if m.group(2) is not None else 99.0
        if not (0.0 <= lo < hi <= 100.0):
            raise MedcolorError(f"percentile bounds must satisfy 0 <= LO < HI <= 100, got {lo:g},{hi:g}",
                                where=_OPTION, hint="for example --window percentile:1,99")
        return WindowSpec("percentile", (lo, hi))
    key = raw.lower()
    if key == "file":
        return WindowSpec("file")
    if key == "srgb":
        return WindowSpec("srgb")
    if _NUM_ONLY_RE.match(raw):
        raise MedcolorError(f"window '{raw}' has one number", where=_OPTION,
                            hint="give width and level as W,L, e.g. 400,50")
    return WindowSpec("preset", preset=_lookup_preset(key, raw))


def resolve_window(spec: str | None, series: Series, sample: np.ndarray | torch.Tensor | None = None) -> Window:
    """Turn a ``--window`` value into a :class:`Window` for ``series``.

    ``spec``: see :func:`parse_window_spec`; "W,L" is in the series' own units (HU when ``series.is_hu``,
    else "modality"), "file" is the file's first VOI window, "percentile[:LO,HI]" is of ``sample``
    (values from a few slices). A named HU preset on a series without HU raises MedcolorError; so do
    widths < 1 for DICOM (as PS3.3 requires) and a missing VOI window.
    """
    parsed = parse_window_spec(spec)
    if parsed.kind == "default":
        return _default_window(series, sample)
    if parsed.kind == "wl":
        width, center = parsed.values
        if width < 1 and series.kind == "dicom":
            raise MedcolorError(f"window width must be >= 1 for DICOM (PS3.3 C.11.2.1.2), got {width:g}",
                                where=_OPTION, hint="give W,L with W >= 1")
        return Window(center=center, width=width, name="custom", units=_series_units(series))  # type: ignore[arg-type]
    if parsed.kind == "percentile":
        if sample is None:
            raise MedcolorError("a percentile window needs pixel values", where=_where(series),
                                hint="give --window W,L or a preset")
        return percentile_window(sample, *parsed.values, units=_series_units(series))
    if parsed.kind == "file":
        if not series.file_windows:
            hint = ("a plain image carries no window: use --window percentile or W,L" if series.kind != "dicom"
                    else "use --window percentile or W,L (a preset only on CT in HU)")
            raise MedcolorError("the file has no VOI window (WindowCenter/WindowWidth)", where=_where(series),
                                hint=hint)
        c, w = series.file_windows[0]
        return _file_window(series, c, w)
    if parsed.kind == "srgb":
        return Window(center=127.5, width=256.0, name="srgb", units="srgb")
    preset = parsed.preset
    assert preset is not None
    if not series.is_hu:
        raise MedcolorError(f"{preset.name} is a Hounsfield-unit window but this {series.modality or 'image'} "
                            "series has no HU", where=_where(series),
                            hint="use --window percentile or W,L in the image's own units")
    return preset


ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

_E = 6.0 / 29.0


def _srgb8_to_L_np(v: np.ndarray) -> np.ndarray:
    s = np.clip(v, 0.0, 255.0) / np.float32(255.0)
    y = np.where(s <= 0.04045, s / np.float32(12.92), ((s + np.float32(0.055)) / np.float32(1.055)) ** 2.4)
    f = np.where(y > _E ** 3, np.cbrt(y), y / np.float32(3 * _E ** 2) + np.float32(4.0 / 29.0))
    return (f * 116.0 - 16.0).astype(np.float32)


def _srgb8_to_L_torch(v: torch.Tensor) -> torch.Tensor:
    s = v.clamp(0.0, 255.0) / 255.0
    y = torch.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    f = torch.where(y > _E ** 3, y.clamp(min=_E ** 3) ** (1.0 / 3.0), y / (3 * _E ** 2) + 4.0 / 29.0)
    return f * 116.0 - 16.0


def window_to_l(values: ArrayT, window: Window, invert: bool = False) -> ArrayT:
    """Modality values -> CIE L* in [0, 100], float32, same type (numpy/torch), shape and device.

    Linear windows follow DICOM PS3.3 C.11.2.1.2.1 (LINEAR) exactly (see the module docstring):
    ``L = clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1) * 100``; width 1 is a step at ``c - 0.5``;
    widths in (0, 1) use LINEAR_EXACT ``clip((x - c) / w + 0.5, 0, 1) * 100``. ``units == "srgb"``:
    L is the CIE L* of the 8-bit sRGB gray ``x``. ``invert`` (MONOCHROME1): ``100 - L``.
    NaN gives 0 (before inversion).
    """
    if window.width <= 0 or not math.isfinite(window.width) or not math.isfinite(window.center):
        raise MedcolorError(f"window width must be > 0 and finite, got W={window.width:g} L={window.center:g}",
                            where=_OPTION, hint="give W,L with W > 0")
    is_torch = isinstance(values, torch.Tensor)
    if is_torch:
        x = values if values.dtype in (torch.float32, torch.float64) else values.to(torch.float32)
        if window.units == "srgb":
            out = _srgb8_to_L_torch(x.to(torch.float32))
        else:
            scale, offset = _linear_coeffs(window)
            if scale is None:  # width == 1: step
                out = (x > window.center - 0.5).to(torch.float32) * 100.0
            else:
                out = (x * scale + offset).clamp_(0.0, 100.0).to(torch.float32)
        out = torch.nan_to_num(out, nan=0.0)
        if invert:
            out = 100.0 - out
        return out.to(torch.float32)
    x = np.asarray(values)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    if window.units == "srgb":
        out = _srgb8_to_L_np(x)
    else:
        scale, offset = _linear_coeffs(window)
        if scale is None:
            out = (x > window.center - 0.5).astype(np.float32) * np.float32(100.0)
        else:
            out = x * x.dtype.type(scale) + x.dtype.type(offset)
            np.clip(out, 0.0, 100.0, out=out)
            out = out.astype(np.float32, copy=False)
    if out.dtype.kind == "f" and np.isnan(out).any():
        out = np.nan_to_num(out, nan=0.0)
    if invert:
        out = np.float32(100.0) - out
    return out.astype(np.float32, copy=False)


def _linear_coeffs(window: Window) -> tuple[float | None, float]:
    """(scale, offset) with L = clip(x * scale + offset, 0, 100); scale None for the w == 1 step."""
    c, w = float(window.center), float(window.width)
    if w > 1.0:
        scale = 100.0 / (w - 1.0)
        return scale, (0.5 - (c - 0.5) / (w - 1.0)) * 100.0
    if w == 1.0:
        return None, 0.0
    scale = 100.0 / w  # LINEAR_EXACT for 0 < w < 1
    return scale, (0.5 - c / w) * 100.0


def _build_monai_transforms() -> None:
    """Define WindowToL / WindowToLd on first use: importing MONAI costs ~1.5 s, which the
    command line should not pay just to window pixels."""
    from monai.transforms import MapTransform, Transform

    class WindowToL(Transform):
        """MONAI array transform: modality values -> L* in [0, 100] (see :func:`window_to_l`)."""

        backend = ["torch", "numpy"]

        def __init__(self, window: Window, invert: bool = False) -> None:
            self.window = window
            self.invert = invert

        def __call__(self, img: Any) -> Any:
            return window_to_l(img, self.window, self.invert)

    class WindowToLd(MapTransform):
        """MONAI dictionary transform: :class:`WindowToL` on each of ``keys``."""

        backend = WindowToL.backend

        def __init__(self, keys: Any, window: Window, invert: bool = False,
                     allow_missing_keys: bool = False) -> None:
            super().__init__(keys, allow_missing_keys)
            self.transform = WindowToL(window, invert)

        def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
            d = dict(data)
            for key in self.key_iterator(d):
                d[key] = self.transform(d[key])
            return d

    for cls in (WindowToL, WindowToLd):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls


def __getattr__(name: str) -> Any:
    if name in ("WindowToL", "WindowToLd"):
        _build_monai_transforms()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
