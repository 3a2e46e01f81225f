"""Hounsfield classes of CT tissue, their soft borders, and the anatomical map from class to a population
of the reference photo (used by the ``exemplar`` backend's ``tissue`` and ``gram`` modes).

Classes, in order of Hounsfield units (HU), and the borders between neighbours:

=========  ==================  =================================================================
class      HU (border to next)  why this border
=========  ==================  =================================================================
air        .. -950             -950 HU: the "low attenuation area" threshold of emphysema
                               quantification (Gevenois et al., AJRCCM 1996): below it, air-like
lung       -950 .. -190        inflated lung -850..-910 HU (Buzug 2008; Prokop 2003)
fat        -190 .. -30         -190..-30 HU: the adipose-tissue window of CT fat measurement
                               (Yoshizumi et al., Radiology 1999); fat itself -50..-100 HU
water      -30 .. +15          water 0 HU, body fluid +5..+15 HU; "water and soft tissue"
muscle     +15 .. +100         soft tissue +25..+60, muscle +35..+55, blood +45..+65, clotted
                               blood / haematoma up to +90 HU: "muscle and blood"
contrast   +100 .. +300        iodinated contrast +100..+500, calcium +50..+500; cancellous
                               bone with its red marrow also lies here (HU cannot tell them apart)
bone       +300 ..             medullary bone about +300, compact bone +250..+1000 and more
=========  ==================  =================================================================

Typical values from the Hounsfield-scale tables of radclass.mudr.org (after Buzug, *Computed
Tomography*, Springer 2008; Prokop, *Spiral and Multislice CT of the Body*, Thieme 2003) and
thecommonvein.net ("CT principles"); see docs/tissue.md. The classes overlap in reality (blood and
muscle share their HU on a CT without contrast), so a border is a convention, not a diagnosis.

**Soft borders.** A pixel's class weights are differences of logistic ramps centred on the borders,
``w_c(x) = σ((x - b_c)/s_c) - σ((x - b_{c+1})/s_{c+1})`` (clamped at 0 and renormalised; they sum to 1),
with ramp scales ``s`` of 8..25 HU (10 %..90 % of a ramp spans 4.4 s: 35..110 HU), so colour changes
across a border as smoothly as the CT's own values do and no edge appears where the CT has none.

**The map** (``DEFAULT_MAP``, overridable with ``--tissue-map FILE``, JSON) names, per class, a population
of the reference photo (``lean``, ``fat``, ``connective``, ``background``, or ``neutral`` = no chroma)
and a chroma factor::

    {"lung": {"population": "lean", "chroma": 0.5}, "bone": "connective"}

Classes the file does not name keep the default. A population the photo does not have falls back
along ``FALLBACK`` (e.g. fat -> connective -> neutral) with a warning.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medcolor.errors import MedcolorError
from medcolor.types import Window

__all__ = ["CLASSES", "BORDERS", "RAMP_SCALES", "TYPICAL_HU", "POPULATION_NAMES", "DEFAULT_MAP", "FALLBACK",
           "MapEntry", "class_weights", "hu_from_l", "parse_tissue_map", "read_tissue_map", "describe_map"]

CLASSES = ("air", "lung", "fat", "water", "muscle", "contrast", "bone")
BORDERS = (-950.0, -190.0, -30.0, 15.0, 100.0, 300.0)     # HU between neighbouring classes
RAMP_SCALES = (10.0, 20.0, 8.0, 8.0, 10.0, 25.0)          # logistic scale of each border, HU
TYPICAL_HU = {"air": -1000.0, "lung": -850.0, "fat": -100.0, "water": 5.0, "muscle": 45.0,
              "contrast": 200.0, "bone": 700.0}
POPULATION_NAMES = ("lean", "fat", "connective", "background", "neutral")
MAX_CHROMA_FACTOR = 2.0


@dataclass(frozen=True)
class MapEntry:
    """Where a Hounsfield class takes its colour: a population of the photo, its chroma scaled by ``chroma``."""

    population: str
    chroma: float = 1.0

    def describe(self) -> str:
        return self.population if self.chroma == 1.0 else f"{self.population} x{self.chroma:g} chroma"


#: class -> population: muscle and blood take the lean; fat the photo's fat; bone the connective tissue
#: (light, pinkish white); lung a paler lean (aerated tissue: 0.8x chroma; at 0.35x the lung window's
#: output was nearly gray, docs/tissue.md); water and soft tissue a paler lean still; contrast-enhanced
#: blood (and red marrow) a more saturated lean; air no colour.
DEFAULT_MAP: dict[str, MapEntry] = {
    "air": MapEntry("neutral"),
    "lung": MapEntry("lean", 0.8),
    "fat": MapEntry("fat"),
    "water": MapEntry("lean", 0.7),
    "muscle": MapEntry("lean"),
    "contrast": MapEntry("lean", 1.25),
    "bone": MapEntry("connective"),
}

#: what stands in for a population the reference photo does not have (the last resort: no chroma)
FALLBACK: dict[str, tuple[str, ...]] = {
    "lean": (),                      # always present: the photo's reddest (or most chromatic) population
    "fat": ("connective", "neutral"),
    "connective": ("fat", "neutral"),
    "background": ("neutral",),
    "neutral": (),
}


def class_weights(hu: torch.Tensor) -> torch.Tensor:
    """Soft class weights of Hounsfield values ``hu`` (any shape) -> ``[len(CLASSES), *hu.shape]``, each
    in 0..1, summing to 1 over the classes (see the module docstring)."""
    x = hu.to(torch.float64)
    ramps = [torch.ones_like(x)]
    ramps += [torch.sigmoid((x - b) / s) for b, s in zip(BORDERS, RAMP_SCALES)]
    ramps.append(torch.zeros_like(x))
    w = torch.stack([(ramps[i] - ramps[i + 1]).clamp(min=0.0) for i in range(len(CLASSES))])
    return w / w.sum(dim=0, keepdim=True).clamp(min=1e-12)


def hu_from_l(L: torch.Tensor, window: Window, inverted: bool = False) -> torch.Tensor:
    """The Hounsfield value a windowed L (0..100) came from: the inverse of DICOM's LINEAR window
    (``medcolor.windowing.window_to_l``) on its ramp; L 0 and 100 give the ramp's ends (every value
    beyond them shares that L, and no chroma survives the gamut map there). ``inverted``: L was
    ``100 - windowed`` (MONOCHROME1). Needs ``window.width > 1`` (a ramp)."""
    x = L.to(torch.float64)
    if inverted:
        x = 100.0 - x
    c, w = float(window.center), float(window.width)
    return (x / 100.0 - 0.5) * (w - 1.0) + (c - 0.5)


def _entry(value: Any, cls: str, where: str) -> MapEntry:
    hint = ("give a population name or {\"population\": NAME, \"chroma\": FACTOR}; populations: "
            + ", ".join(POPULATION_NAMES))
    if isinstance(value, MapEntry):
        value = {"population": value.population, "chroma": value.chroma}
    if isinstance(value, str):
        value = {"population": value}
    if not isinstance(value, dict):
        raise MedcolorError(f"class {cls!r}: expected a population name or an object, got {type(value).__name__}",
                            where=where, hint=hint)
    unknown = sorted(set(value) - {"population", "chroma"})
    if unknown:
        raise MedcolorError(f"class {cls!r}: unknown key(s) {', '.join(map(repr, unknown))}", where=where, hint=hint)
    pop = value.get("population")
    if not isinstance(pop, str) or pop.strip().lower() not in POPULATION_NAMES:
        raise MedcolorError(f"class {cls!r}: unknown population {pop!r}", where=where, hint=hint)
    chroma = value.get("chroma", 1.0)
    if isinstance(chroma, bool) or not isinstance(chroma, (int, float)) or not math.isfinite(chroma) \
            or not 0.0 <= chroma <= MAX_CHROMA_FACTOR:
        raise MedcolorError(f"class {cls!r}: chroma must be a number from 0 to {MAX_CHROMA_FACTOR:g}, got {chroma!r}",
                            where=where, hint=hint)
    return MapEntry(pop.strip().lower(), float(chroma))


def parse_tissue_map(data: Any, where: str = "--tissue-map") -> dict[str, MapEntry]:
    """The full class -> population map from a JSON object that overrides some classes of ``DEFAULT_MAP``.
    MedcolorError (naming ``where``) for anything but an object of known classes and populations."""
    if not isinstance(data, dict):
        raise MedcolorError(f"expected a JSON object of class -> population, got {type(data).__name__}", where=where,
                            hint="e.g. {\"fat\": \"fat\", \"lung\": {\"population\": \"lean\", \"chroma\": 0.3}}")
    out = dict(DEFAULT_MAP)
    for key, value in data.items():
        cls = str(key).strip().lower()
        if cls not in CLASSES:
            raise MedcolorError(f"unknown Hounsfield class {key!r}", where=where,
                                hint=f"classes: {', '.join(CLASSES)}")
        out[cls] = _entry(value, cls, where)
    return out


def read_tissue_map(path: str | Path) -> dict[str, MapEntry]:
    """``--tissue-map FILE``: read and validate the JSON map (the pipeline calls this before any work;
    the backend is given the parsed map, never the path)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MedcolorError(f"cannot read the tissue map ({type(exc).__name__})", where=str(p),
                            hint="give a readable UTF-8 JSON file") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MedcolorError(f"not valid JSON ({exc})", where=str(p),
                            hint="e.g. {\"fat\": \"fat\", \"bone\": \"connective\"}") from None
    return parse_tissue_map(data, where=str(p))


def describe_map(tissue_map: dict[str, MapEntry]) -> str:
    """Short ``class>population`` text of the map (provenance)."""
    return ",".join(f"{c}>{tissue_map[c].describe().replace(' chroma', '')}" for c in CLASSES)
