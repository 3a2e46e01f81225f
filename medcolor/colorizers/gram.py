"""The ``gram`` mode (seed 000's "hybrid"): neural style transfer from the reference photo (Gatys, Ecker &
Bethge, CVPR 2016) changing a*, b* only, with L fixed, on a few sample slices, *distilled* into the same
per-series (L, texture) -> ab table as the ``tissue`` mode.

1. **Start**: the ``tissue`` mode's table and its colours of ``GRAM_SLICES`` sample slices (evenly spaced).
2. **What is optimised is the table itself**: a per-class correction of a*, b* on a coarse (L, texture)
   grid (``GRID_L`` × ``GRID_S`` nodes, bilinear, so the table stays smooth), added to the tissue colours
   with each pixel's soft class weights: ``ab = tissue(L, t) + Σ_c w_c(HU(L)) Δ_c(L, t)``. This is the
   distillation, done by construction: every slice of the series is then coloured by the corrected
   table, at the per-slice cost of ``tissue``, and a cell no sample pixel uses keeps the tissue colour.
   (Optimising each pixel's ab and binning the result afterwards was tried: Adam moves every pixel with
   a gradient, however small, by a full step, so pixels outside a region drifted by ~8 ab units and the
   binning kept the drift.)
3. **Loss** on the coloured slices shrunk (area averaging) to at most ``GRAM_SIZE`` pixels a side:
   ``STYLE_WEIGHT`` × guided Gram matrices (Gatys et al., CVPR 2017, "Controlling perceptual factors in
   neural style transfer") of VGG-19 relu1_1, relu2_1, relu3_1 per Hounsfield class, each matched to its
   population's region of the photo (the anatomical map of ``tissue``), plus ``CONTENT_WEIGHT`` × a
   content loss at relu3_1 against the start image. The photo's L is first remapped onto the class's
   L in the series (quantiles): a Gram matrix follows lightness, and unmatched, a dark CT class would be
   pushed to whatever chroma raises its activations towards a light region of the photo. Each loss is
   relative (mean squared error over the target's mean square). Adam, ``GRAM_STEPS`` steps, learning
   rate ``GRAM_LR`` (ab units per node). The image fed to VGG is the Lab -> sRGB of (L, ab), clamped.

Weights: a local torchvision VGG-19 state dict (``--vgg19-weights FILE``, checked key by key); without
one, fixed random features (seed 0), and the report and provenance say which was used. Runs on the
colouriser's device (CPU or CUDA).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medcolor.color import lab_to_srgb, srgb_to_lab
from medcolor.colorizers import welsh
from medcolor.colorizers.base import PixelKeys, texture_level
from medcolor.colorizers.hounsfield import CLASSES, class_weights, hu_from_l
from medcolor.colorizers.tissue import MIN_CLASS_PIXELS, join_tables
from medcolor.nets.backbones import VggFeatures, vgg_features
from medcolor.types import Window

__all__ = ["GRAM_STEPS", "GRAM_SIZE", "GRAM_SLICES", "STYLE_TAPS", "CONTENT_TAP", "vgg19", "refine"]

GRAM_STEPS = 30
GRAM_SIZE = 128
GRAM_SLICES = 2
GRAM_LR = 0.1
STYLE_WEIGHT = 1.0
CONTENT_WEIGHT = 1.0
MAX_DELTA = 4.0                  # the correction of a node is at most this (a*, b* units): tanh-bounded
GRID_L, GRID_S = 26, 9           # correction grid: every 4th node of the tissue table's L and texture axes
MIN_REGION = 16.0                # pixels (class weight sum) a class needs in a shrunk slice to be styled
STYLE_TAPS = (1, 6, 11)          # relu1_1, relu2_1, relu3_1 of torchvision's vgg19().features
CONTENT_TAP = 11


def vgg19(state_dict: dict[str, Any] | None, where: str = "--vgg19-weights", label: str = "") -> VggFeatures:
    """The VGG-19 features the style and content losses use (see :func:`medcolor.nets.backbones.vgg_features`)."""
    return vgg_features("vgg19", STYLE_TAPS, state_dict, where=where, label=label)


def _grams(feats: list[torch.Tensor], mask: torch.Tensor) -> list[torch.Tensor]:
    """Guided Gram matrices: per tapped layer ``(F·m)(F·m)ᵀ / (C Σm²)`` with the region ``mask`` [1,1,H,W]
    (0..1, input resolution) shrunk to the layer's size: the statistics of that region only."""
    out = []
    for f in feats:
        m = F.interpolate(mask, size=f.shape[-2:], mode="area") if mask.shape[-2:] != f.shape[-2:] else mask
        mean = (f * m).sum(dim=(2, 3), keepdim=True) / m.sum().clamp(min=1e-6)
        x = ((f - mean) * m).flatten(2)                                  # [1, C, HW], centred in the region
        out.append(x @ x.transpose(1, 2) / (f.shape[1] * m.square().sum().clamp(min=1e-6)))
    return out


def _relative(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(x, target) / target.square().mean().clamp(min=1e-12)


def _small_size(hw: tuple[int, int], size: int) -> tuple[int, int]:
    k = min(1.0, size / max(hw))
    return max(8, round(hw[0] * k)), max(8, round(hw[1] * k))


def _shrink(x: torch.Tensor, size: int) -> torch.Tensor:
    hw = _small_size(tuple(x.shape[-2:]), size)
    return F.interpolate(x, size=hw, mode="area") if hw != tuple(x.shape[-2:]) else x


def _rgb(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    return lab_to_srgb(torch.cat([L, ab], dim=1)).clamp(0.0, 1.0)


def _photo_targets(net: VggFeatures, reference_rgb01: torch.Tensor, labels: torch.Tensor, size: int,
                   class_population: list[int | None], class_L: list[torch.Tensor]) -> dict[int, list[torch.Tensor]]:
    """Per class: the guided Gram matrices of its population's region of the photo, after the photo's L was
    remapped (quantiles, by the population's own CDF) onto the class's L in the series, a* b* kept."""
    photo = _shrink(reference_rgb01, size)
    lab = srgb_to_lab(photo)                                               # [1,3,h,w]
    small = F.interpolate(labels.to(photo.device)[None, None].float(), size=photo.shape[-2:], mode="nearest")[0, 0]
    L = lab[0, 0].flatten()
    out: dict[int, list[torch.Tensor]] = {}
    with torch.no_grad():
        for c, p in enumerate(class_population):
            in_pop = small.flatten() == p
            if p is None or class_L[c].numel() < MIN_CLASS_PIXELS or int(in_pop.sum()) < 4:
                continue
            L_c = welsh.match_quantiles(L, welsh.quantiles(class_L[c].to(L.device)), reference=L[in_pop])
            out[c] = _grams(net(_rgb(L_c.view(1, 1, *photo.shape[-2:]), lab[:, 1:])), (small == p).float()[None, None])
    return out


class _Slice:
    """One sample slice at full resolution (its keys, tissue colours, class weights) and shrunk (L, the
    class regions to style, the content target)."""

    def __init__(self, L: torch.Tensor, keys: PixelKeys, table: torch.Tensor, window: Window, inverted: bool,
                 size: int, net: VggFeatures, targets: dict[int, list[torch.Tensor]]) -> None:
        self.L, self.level = L, texture_level(L, keys).to(L.device)
        self.ab0 = welsh.lookup(table, L, self.level)
        self.weights = class_weights(hu_from_l(L, window, inverted)).to(L.device, torch.float32)[:, 0]  # [C,1,H,W]
        gx = L * (2.0 / 100.0) - 1.0
        gy = self.level * (2.0 / (welsh.TEXTURE_SUBSTEPS * (welsh.N_S - 1))) - 1.0
        self.grid = torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1).expand(len(CLASSES), -1, -1, -1)
        self.inside = ((L > 0.5) & (L < 99.5)).float()
        self.L_small = _shrink(L, size)
        w_small = F.interpolate(self.weights, size=self.L_small.shape[-2:], mode="area")
        inside = ((self.L_small > 0.5) & (self.L_small < 99.5)).float()
        self.regions = [(w_small[c:c + 1] * inside, targets[c]) for c in targets
                        if float((w_small[c] * inside).sum()) >= MIN_REGION]
        with torch.no_grad():
            self.content = net(_rgb(self.L_small, _shrink(self.ab0, size)))[STYLE_TAPS.index(CONTENT_TAP)]

    def ab_small(self, delta: torch.Tensor, size: int) -> torch.Tensor:
        """The slice's shrunk ab with the per-class correction ``delta`` [C, 2, GRID_S, GRID_L]."""
        d = F.grid_sample(delta, self.grid, mode="bilinear", padding_mode="border", align_corners=True)  # [C,2,H,W]
        return _shrink(self.ab0 + (d * self.weights).sum(dim=0, keepdim=True), size)

    def loss(self, net: VggFeatures, delta: torch.Tensor, size: int) -> torch.Tensor:
        feats = net(_rgb(self.L_small, self.ab_small(delta, size)))
        style = sum(sum(_relative(g, t) for g, t in zip(_grams(feats, w), target)) / len(target)
                    for w, target in self.regions) / max(1, len(self.regions))
        return STYLE_WEIGHT * style + CONTENT_WEIGHT * _relative(feats[STYLE_TAPS.index(CONTENT_TAP)], self.content)


def _usage(slices: list[_Slice], dev: torch.device) -> torch.Tensor:
    """[C, 1, GRID_S, GRID_L]: how much each correction node weighs in the mean colour of each class's sample
    pixels inside the window (the gradient of that mean with respect to the nodes; rows sum to 1)."""
    probe = torch.zeros(len(CLASSES), 2, GRID_S, GRID_L, device=dev, requires_grad=True)
    with torch.enable_grad():
        total = sum((F.grid_sample(probe, s.grid, mode="bilinear", padding_mode="border", align_corners=True)
                     * s.weights * s.inside)[:, 0].sum() for s in slices)
        (grad,) = torch.autograd.grad(total, probe)
    u = grad[:, :1]
    return u / u.sum(dim=(2, 3), keepdim=True).clamp(min=1e-12)


def refine(table: torch.Tensor, keys: PixelKeys, sample_L: torch.Tensor, reference_rgb01: torch.Tensor,
           labels: torch.Tensor, class_population: list[int | None], net: VggFeatures, window: Window,
           inverted: bool, steps: int = GRAM_STEPS, size: int = GRAM_SIZE,
           n_slices: int = GRAM_SLICES) -> tuple[torch.Tensor, dict[str, Any]]:
    """The tissue ``table`` [1, 2, N_S, N_FINE] refined by guided style transfer on ``sample_L`` [N,1,H,W]
    (on the device to optimise on) from ``reference_rgb01`` [1,3,h,w] (0..1, same device). ``labels`` [h, w]:
    each photo pixel's population index (-1: none); ``class_population``: per class of ``CLASSES`` the
    index of its population, None for a class without colour; only classes with a photo region and
    enough sample pixels are changed. Returns the new
    table (CPU) and what was done (steps, slices, size, first/last loss)."""
    dev = sample_L.device
    net = net.to(dev)
    informative = (sample_L > 0.5) & (sample_L < 99.5)
    L_all = sample_L[informative]
    hard = class_weights(hu_from_l(L_all, window, inverted)).argmax(dim=0).to(dev)
    targets = _photo_targets(net, reference_rgb01, labels, size, class_population,
                             [L_all[hard == c] for c in range(len(CLASSES))])
    n = sample_L.shape[0]
    picks = sorted({int(round(i)) for i in torch.linspace(0, n - 1, min(n_slices, n)).tolist()})
    table_dev = table.to(dev)
    slices = [s for s in (_Slice(sample_L[i:i + 1].detach().clone(), keys, table_dev, window, inverted, size, net,
                                 targets) for i in picks) if s.regions]
    styled = torch.tensor([float(c in targets) for c in range(len(CLASSES))], device=dev).view(-1, 1, 1, 1)
    usage = _usage(slices, dev) if slices else torch.zeros(len(CLASSES), 1, GRID_S, GRID_L, device=dev)

    def correction(theta: torch.Tensor) -> torch.Tensor:
        """Bounded (tanh), only for styled classes, and mean-free over each class's sample pixels."""
        d = MAX_DELTA * torch.tanh(theta) * styled
        return d - (d * usage).sum(dim=(2, 3), keepdim=True)

    theta = torch.zeros(len(CLASSES), 2, GRID_S, GRID_L, device=dev)
    losses: list[float] = []
    if slices:
        with torch.enable_grad():
            theta.requires_grad_(True)
            opt = torch.optim.Adam([theta], lr=GRAM_LR)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                loss = sum(s.loss(net, correction(theta), size) for s in slices) / len(slices)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
    with torch.no_grad():
        fine = F.interpolate(correction(theta).cpu().double(), size=(welsh.N_S, welsh.N_L), mode="bilinear",
                             align_corners=True)
    refined = table.cpu() + join_tables(list(fine), window, inverted)
    info = {"steps": len(losses), "slices": len(slices), "size": size,
            "loss_first": round(losses[0], 4) if losses else None,
            "loss_last": round(losses[-1], 4) if losses else None}
    return refined, info
