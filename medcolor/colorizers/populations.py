"""The reference photo split into named colour populations: lean, fat, connective tissue, background.

1. **Clustering.** k-means with k = 4 in CIE-Lab (``cv2.kmeans``) on at most 20 000 pixels (drawn with a
   seeded generator), started from deterministic labels (greedy farthest-point seeds from the median
   colour), so a photo always splits the same way. Every pixel of the photo then joins its nearest
   cluster centre. Four clusters fit a cut of meat (lean, a darker or duller lean, fat, connective tissue
   or plate); a cluster holding less than 0.2 % of the photo (a highlight, a speck) is not named.
2. **Naming rules**, in this order (C = chroma, h = hue angle of a*, b*):

   * **lean**: the reddest cluster (largest a*) with L >= 20; other clusters of the lean's hue (within
     20°), at least 0.6x its chroma and at most 10 L lighter join it (a darker lean);
   * **fat**: the lightest remaining cluster, when it is light and pale: L >= lean L + 10 and C at most
     max(0.6x lean C, 8);
   * **background**: remaining clusters that are very dark (L < 20) or gray (C < 4): shadow, steel plate;
   * **connective**: remaining clusters lighter than the lean (pinkish white: membranes, tendon);
   * anything left (mid-light, coloured) joins the lean.

   The lean and fat agree with ``tools/tissue_color.py``'s own rule (reddest cluster with L >= 20; the
   lightest other cluster) on the three beef photos of the shared data, so the bars it checks compare
   like with like. A photo without a reddish cluster still gets a "lean" (its most red cluster; a
   warning says so when that cluster is nearly gray); a photo without a light, pale cluster has no fat,
   and the report says the photo could not be split that way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["NAMES", "Population", "ReferencePopulations", "split_reference"]

NAMES = ("lean", "fat", "connective", "background")
CODES = {"lean": "L", "fat": "F", "connective": "C", "background": "B"}
K = 4
SAMPLE = 20_000
SEED = 0
MIN_SHARE = 0.002
LEAN_MIN_L = 20.0


@dataclass
class Population:
    """One named population: ``index`` LongTensor of its pixels (row-major in the photo), ``share`` of the
    photo, ``lab`` mean (L, a, b)."""

    name: str
    index: torch.Tensor
    share: float
    lab: tuple[float, float, float]

    @property
    def chroma(self) -> float:
        return math.hypot(self.lab[1], self.lab[2])

    @property
    def hue(self) -> float:
        return math.degrees(math.atan2(self.lab[2], self.lab[1])) % 360.0


@dataclass
class ReferencePopulations:
    """The populations found in one photo (``by_name``), the label of every pixel (``labels`` int8 [h, w]:
    index into ``NAMES``, -1 for pixels of an unnamed cluster) and what could not be found (``warnings``)."""

    by_name: dict[str, Population]
    labels: np.ndarray
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> list[dict[str, Any]]:
        """Per population: name, share, mean Lab (report.json)."""
        return [{"name": p.name, "share": round(p.share, 4), "lab": [round(v, 2) for v in p.lab]}
                for p in (self.by_name[n] for n in NAMES if n in self.by_name)]

    def label_map(self, max_side: int = 64) -> list[str]:
        """The labels shrunk (nearest) to at most ``max_side`` pixels a side, one string per row, one letter
        per pixel (``CODES``; "." for an unnamed cluster): the report paints it with the populations' colours."""
        h, w = self.labels.shape
        step = max(1, math.ceil(max(h, w) / max_side))
        small = self.labels[step // 2::step, step // 2::step]
        letters = np.array([CODES[n] for n in NAMES] + ["."])
        return ["".join(row) for row in letters[small]]


def _hue_gap(h1: float, h2: float) -> float:
    return abs((h1 - h2 + 180.0) % 360.0 - 180.0)


def _initial_labels(x: np.ndarray, k: int) -> np.ndarray:
    """Deterministic k-means start: seeds by greedy farthest point from the median colour."""
    seeds = [np.median(x, axis=0)]
    d = ((x - seeds[0]) ** 2).sum(1)
    for _ in range(k - 1):
        i = int(np.argmax(d))
        seeds.append(x[i])
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
    c = np.stack(seeds)
    return np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1).astype(np.int32)


def _cluster(lab: np.ndarray) -> np.ndarray:
    """k-means centres (k <= 4, fewer for photos with fewer distinct colours) of Lab pixels [n, 3]."""
    import cv2

    rng = np.random.default_rng(SEED)
    x = lab[rng.choice(len(lab), SAMPLE, replace=False)] if len(lab) > SAMPLE else lab
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = int(min(K, len(np.unique(np.round(x, 1), axis=0))))
    if k < 2:
        return x[:1].astype(np.float64)
    labels = _initial_labels(x, k)[:, None]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4)
    _, _, centres = cv2.kmeans(x, k, labels, criteria, 1, cv2.KMEANS_USE_INITIAL_LABELS)
    return centres.astype(np.float64)


def _name_clusters(centres: np.ndarray, share: np.ndarray) -> tuple[dict[int, str], list[str]]:
    """cluster index -> population name by the rules of the module docstring."""
    warnings: list[str] = []
    L, a, b = centres[:, 0], centres[:, 1], centres[:, 2]
    C = np.hypot(a, b)
    hue = np.degrees(np.arctan2(b, a)) % 360.0
    usable = [k for k in range(len(centres)) if share[k] >= MIN_SHARE]
    candidates = [k for k in usable if L[k] >= LEAN_MIN_L] or usable
    lean = max(candidates, key=lambda k: a[k])
    names = {lean: "lean"}
    if C[lean] < 5.0:
        warnings.append(f"the reference has no reddish population: its most red one (chroma {C[lean]:.1f}) "
                        "stands in for lean")
    rest = [k for k in usable if k != lean]
    for k in list(rest):
        if _hue_gap(hue[k], hue[lean]) <= 20.0 and C[k] >= 0.6 * C[lean] and L[k] <= L[lean] + 10.0:
            names[k] = "lean"
            rest.remove(k)
    if rest:
        fat = max(rest, key=lambda k: L[k])
        if L[fat] >= L[lean] + 10.0 and C[fat] <= max(0.6 * C[lean], 8.0):
            names[fat] = "fat"
            rest.remove(fat)
    for k in rest:
        if L[k] < 20.0 or C[k] < 4.0:
            names[k] = "background"
        elif L[k] > L[lean]:
            names[k] = "connective"
        else:
            names[k] = "lean"
    return names, warnings


def split_reference(lab: torch.Tensor) -> ReferencePopulations:
    """Split a reference photo given as CIE-Lab ``[3, h, w]`` (any device) into named populations."""
    h, w = lab.shape[-2:]
    flat = lab.reshape(3, -1).T.to(torch.float64).cpu()                      # [n, 3]
    centres = torch.from_numpy(_cluster(flat.numpy()))
    assign = torch.cdist(flat, centres).argmin(dim=1)                          # every pixel: nearest centre
    share = torch.bincount(assign, minlength=len(centres)).double().numpy() / flat.shape[0]
    names, warnings = _name_clusters(centres.numpy(), share)
    labels = np.full(flat.shape[0], -1, dtype=np.int8)
    pops: dict[str, Population] = {}
    for name in NAMES:
        members = [k for k, n in names.items() if n == name]
        if not members:
            continue
        mask = torch.isin(assign, torch.tensor(members))
        index = torch.nonzero(mask).flatten()
        labels[index.numpy()] = NAMES.index(name)
        mean = flat[index].mean(dim=0)
        pops[name] = Population(name, index, float(index.numel()) / flat.shape[0],
                                (float(mean[0]), float(mean[1]), float(mean[2])))
    missing = [n for n in ("fat", "connective") if n not in pops]
    if len(pops) == 1:
        warnings.append("the reference could not be split into tissue populations: it holds one colour "
                        "population (lean) only, so fat and connective tissue take their fall-backs")
    elif missing:
        warnings.append(f"the reference has no {' and no '.join(missing)} population; "
                        f"{'those classes take' if len(missing) > 1 else 'that class takes'} its fall-back")
    return ReferencePopulations(pops, labels.reshape(h, w), warnings)
