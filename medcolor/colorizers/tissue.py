"""The ``tissue`` mode's per-series table: Welsh matching inside each Hounsfield class, restricted to the
reference population the anatomical map gives that class, blended across the classes' soft borders.

For a CT series windowed with a linear window, the HU value of a pixel inside the window's ramp is an
exact function of its L (:func:`medcolor.colorizers.hounsfield.hu_from_l`), so the class weights are a
function of L too, and the whole mode stays a per-pixel function of (L, texture level):

1. the series sample's pixels are given their class (the largest weight); per class, the L and 5×5
   texture quantiles of the sample pixels of that class (at least ``MIN_CLASS_PIXELS``; a rarer class
   gets its population's mean colour, flat);
2. the class's population (lean, fat, connective, background; ``neutral`` = no chroma) has its pixels' L
   and texture quantile-matched onto the class's distributions and splatted into that class's
   (L, texture) -> ab table (:func:`medcolor.colorizers.welsh.splat_table`, the same code as the
   whole-photo ``welsh`` mode), times the map's chroma factor;
3. the class tables are joined on a fine L grid (``N_FINE`` nodes, 0.1 L apart, so the HU ramps of the
   borders are resolved in any window): ``ab(L, t) = Σ_c w_c(HU(L)) · table_c(L, t)``.

The result is one table [1, 2, N_S, N_FINE] looked up like the ``welsh`` table (bilinear in L and texture
level); the pipeline's per-series value table (integer HU × texture level) tabulates it once per series.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from medcolor.colorizers import welsh
from medcolor.colorizers.hounsfield import (CLASSES, FALLBACK, TYPICAL_HU, MapEntry, class_weights, hu_from_l)
from medcolor.colorizers.populations import ReferencePopulations
from medcolor.types import Window

__all__ = ["N_FINE", "MIN_CLASS_PIXELS", "ClassTable", "TissueTables", "resolve_population", "build_tissue_tables"]

N_FINE = 1001            # L nodes of the joined table: 0, 0.1, ..., 100
MIN_CLASS_PIXELS = 256   # sample pixels a class needs for its own L/texture distribution


@dataclass
class ClassTable:
    """One Hounsfield class: the population it took (after fall-backs), its chroma factor, how many sample
    pixels it had, its (L, texture) -> ab table float64 [2, N_S, N_L] and its median texture level."""

    name: str
    entry: MapEntry
    population: str
    n_pixels: int
    table: torch.Tensor
    median_level: float


@dataclass
class TissueTables:
    """The joined table float32 [1, 2, N_S, N_FINE] (on the colouriser's device) and the per-class parts."""

    table: torch.Tensor
    classes: list[ClassTable]
    warnings: list[str]


def resolve_population(entry: MapEntry, pops: ReferencePopulations) -> str:
    """The population that colours a class mapped to ``entry``: the one it names, else its fall-backs."""
    if entry.population == "neutral" or entry.population in pops.by_name:
        return entry.population
    return next((p for p in FALLBACK[entry.population] if p == "neutral" or p in pops.by_name), "neutral")


def _class_table(pop_L: torch.Tensor, pop_s: torch.Tensor, pop_ab: torch.Tensor, L: torch.Tensor,
                 s: torch.Tensor, s_max: float) -> torch.Tensor:
    """Welsh table of one population remapped onto one class's sample pixels (``L``, ``s``), or, with too
    few of them, the population's mean ab everywhere."""
    if L.numel() < MIN_CLASS_PIXELS:
        mean = pop_ab.to(torch.float64).mean(dim=1).cpu()
        return mean.view(2, 1, 1).expand(2, welsh.N_S, welsh.N_L).clone()
    L_m = welsh.match_quantiles(pop_L, welsh.quantiles(L))
    s_m = welsh.match_quantiles(pop_s, welsh.quantiles(s))
    return welsh.splat_table(L_m, s_m, pop_ab, s_max)


def build_tissue_tables(pops: ReferencePopulations, ref_L: torch.Tensor, ref_s: torch.Tensor, ref_ab: torch.Tensor,
                        tissue_map: dict[str, MapEntry], L_t: torch.Tensor, s_t: torch.Tensor, s_max: float,
                        window: Window, inverted: bool) -> TissueTables:
    """The series' tissue table. ``ref_L``/``ref_s`` [n] and ``ref_ab`` [2, n]: the photo's pixels (L, 5×5
    local std, ab); ``L_t``/``s_t`` [m]: the series sample's informative pixels (L, local std)."""
    level_scale = welsh.texture_keys(s_max).texture_scale
    values, where = torch.unique(L_t, return_inverse=True)   # the class of each distinct L, then per pixel
    hard = class_weights(hu_from_l(values, window, inverted)).argmax(dim=0)[where]
    classes: list[ClassTable] = []
    warnings: list[str] = []
    for c, name in enumerate(CLASSES):
        entry = tissue_map[name]
        pop = resolve_population(entry, pops)
        if pop != entry.population:
            warnings.append(f"tissue: class {name} is mapped to {entry.population}, which the reference does not "
                            f"have; it takes {pop}")
        mask = hard == c
        L_c, s_c = L_t[mask], s_t[mask]
        if pop == "neutral":
            table = torch.zeros(2, welsh.N_S, welsh.N_L, dtype=torch.float64)
        else:
            idx = pops.by_name[pop].index.to(ref_L.device)
            table = _class_table(ref_L[idx], ref_s[idx], ref_ab[:, idx], L_c, s_c, s_max) * entry.chroma
        median = float((s_c.median() * level_scale).round()) if s_c.numel() else 0.0
        classes.append(ClassTable(name, entry, pop, int(mask.sum()), table, median))
    return TissueTables(join_tables([c.table for c in classes], window, inverted), classes, warnings)


def join_tables(tables: list[torch.Tensor], window: Window, inverted: bool) -> torch.Tensor:
    """``Σ_c w_c(HU(L)) · table_c(L, t)`` on ``N_FINE`` L nodes: float32 [1, 2, N_S, N_FINE] (CPU)."""
    L_fine = torch.linspace(0.0, 100.0, N_FINE, dtype=torch.float64)
    weights = class_weights(hu_from_l(L_fine, window, inverted))                      # [C, N_FINE]
    stacked = torch.stack(tables)                                                     # [C, 2, N_S, N_L]
    C = stacked.shape[0]
    fine = F.interpolate(stacked.reshape(C, 2 * welsh.N_S, welsh.N_L), size=N_FINE, mode="linear",
                         align_corners=True).reshape(C, 2, welsh.N_S, N_FINE)
    joined = (fine * weights[:, None, None, :]).sum(dim=0)
    return joined[None].to(torch.float32).contiguous()


def legend(tables: TissueTables, window: Window, inverted: bool, colour) -> list[dict[str, Any]]:
    """Per class: its HU range, population, chroma factor, sample share, and the colour the output gives at
    the class's typical HU (its L in this window, the class's median texture level); a class outside the
    window (L 0 or 100 there: no chroma survives) is shown with its own table at L 50 and says so.
    ``colour(L, ab) -> (hex, (L, a, b))`` encodes one colour (chroma-only gamut map, 8-bit sRGB)."""
    from medcolor.colorizers.hounsfield import BORDERS
    from medcolor.windowing import window_to_l

    total = max(1, sum(c.n_pixels for c in tables.classes))
    edges = (None,) + BORDERS + (None,)          # open ends
    out = []
    for i, c in enumerate(tables.classes):
        L = float(window_to_l(torch.tensor([TYPICAL_HU[c.name]], dtype=torch.float64), window, invert=inverted)[0])
        inside = 0.5 < L < 99.5
        level = torch.tensor([[[[c.median_level]]]], dtype=torch.float32)
        if inside:
            ab = welsh.lookup(tables.table, torch.tensor([[[[L]]]], dtype=torch.float32), level)
        else:
            L = 50.0
            ab = welsh.lookup(c.table[None].float(), torch.tensor([[[[L]]]], dtype=torch.float32), level)
        hex_, lab = colour(L, ab.view(2))
        out.append({"class": c.name, "hu": [edges[i], edges[i + 1]], "typical_hu": TYPICAL_HU[c.name],
                    "population": c.population, "mapped_to": c.entry.population, "chroma_factor": c.entry.chroma,
                    "sample_share": round(c.n_pixels / total, 4), "in_window": inside, "L": round(L, 1),
                    "lab": [round(v, 2) for v in lab], "hex": hex_})
    return out
