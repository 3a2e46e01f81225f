"""The network of the ``cnn`` backend (pure torch; no torchvision, no downloads).

``LumaPriorUNet`` predicts CIE-Lab chroma ``ab`` from lightness ``L`` as the sum of three terms:

1. a **luminance prior**: the training set's 1-D lookup L -> mean ab (``lut``, a buffer of
   ``lut_bins`` nodes over L = 0..100, stored in the checkpoint), evaluated per pixel; with a *bank*
   (``bank_size`` > 0) the prior is retrieved instead: the per-image lookups of the training images,
   weighted by the similarity of their L histograms to this image's (softmax over squared distances,
   learned temperature), left-one-out while training;
2. a **per-image curve**: a global-context branch (global average pooling of the encoder's
   bottleneck features and a soft histogram of the image's L) feeds an MLP that predicts
   ``curve_nodes`` piecewise-linear node offsets of an L -> ab curve, so every image gets its own
   lookup (the adaptation a 1-D lookup learned on the training set cannot make);
3. a **spatial residual**: a small U-Net decoder (GroupNorm, SiLU), conditioned on the global vector,
   whose last layer starts at zero so training starts from the prior.

Terms 1 and 2 depend on the pixel's L only and are evaluated on whatever L they are given (the full-
resolution L at inference), term 3 at the model resolution and upsampled. Inputs are L in 0..100,
outputs ab in CIE units (soft-limited to +-110 by ``110 tanh(x / 110)``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.nets.lookup import AB_LIMIT, curve_lookup, soft_histogram

__all__ = ["ARCH", "LumaPriorUNet"]

ARCH = "luma-prior-unet"


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0:
            return g
    return 1


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.n1 = nn.GroupNorm(_groups(cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.n2 = nn.GroupNorm(_groups(cout), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.n1(self.c1(x)))
        return F.silu(self.n2(self.c2(x)))


class LumaPriorUNet(nn.Module):
    """See the module docstring. ``forward_parts(L_model, L_full)`` gives the prediction at the
    resolution of ``L_full`` (default: ``L_model``'s)."""

    def __init__(self, base: int = 16, levels: int = 4, curve_nodes: int = 33, hist_bins: int = 32,
                 lut_bins: int = 101, global_dim: int = 96, bank_size: int = 0) -> None:
        super().__init__()
        self.args = dict(base=base, levels=levels, curve_nodes=curve_nodes, hist_bins=hist_bins,
                         lut_bins=lut_bins, global_dim=global_dim, bank_size=bank_size)
        self.levels = levels
        self.hist_bins = hist_bins
        self.register_buffer("lut", torch.zeros(1, 2, lut_bins))
        # retrieval prior: per-training-image lookups and L histograms (bank_size 0: global lookup only)
        self.bank_size = bank_size
        self.register_buffer("bank_lut", torch.zeros(bank_size, 2, lut_bins))
        self.register_buffer("bank_hist", torch.zeros(bank_size, hist_bins))
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.005)), requires_grad=bank_size > 0)
        chans = [base * min(2 ** i, 4) for i in range(levels + 1)]
        self.stem = _Block(3, chans[0])
        self.down = nn.ModuleList(_Block(chans[i], chans[i + 1], stride=2) for i in range(levels))
        gin = chans[-1] * 2 + hist_bins
        self.mlp = nn.Sequential(nn.Linear(gin, global_dim), nn.SiLU(), nn.Linear(global_dim, global_dim), nn.SiLU())
        self.curve = nn.Linear(global_dim, 2 * curve_nodes)
        self.film = nn.Linear(global_dim, chans[-1])
        self.up = nn.ModuleList(_Block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(chans[0], 2, 3, padding=1)
        for layer in (self.curve, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.curve_nodes = curve_nodes

    @property
    def multiple(self) -> int:
        return 2 ** self.levels

    def set_lut(self, lut: torch.Tensor) -> None:
        """``lut`` ``[2, lut_bins]``: mean a, b of the training images at L nodes 0..100."""
        self.lut.copy_(lut.reshape_as(self.lut).to(self.lut))

    def set_bank(self, luts: torch.Tensor, hists: torch.Tensor) -> None:
        """Per-image lookups ``[N,2,lut_bins]`` and L histograms ``[N,hist_bins]`` (N = bank_size)."""
        self.bank_lut.copy_(luts.to(self.bank_lut))
        self.bank_hist.copy_(hists.to(self.bank_hist))

    def prior_table(self, L: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """``[B,2,lut_bins]``: the global lookup, or with a bank, the lookups of the training images
        weighted by ``softmax(-|hist - hist_i|^2 / tau)`` (``exclude`` ``[B]``: a bank index left out
        per image, -1 for none -- leave-one-out while training)."""
        B = L.shape[0]
        if self.bank_size == 0:
            return self.lut.expand(B, -1, -1)
        h = soft_histogram(L, self.hist_bins)
        d = (h[:, None, :] - self.bank_hist[None]).square().sum(-1)          # [B, N]
        logits = -d / self.log_tau.exp()
        if exclude is not None:
            mask = torch.arange(self.bank_size, device=L.device)[None] == exclude[:, None]
            logits = logits.masked_fill(mask, float("-inf"))
        w = torch.softmax(logits, dim=1)
        return torch.einsum("bn,nck->bck", w, self.bank_lut)

    def forward(self, L: torch.Tensor, L_full: torch.Tensor | None = None,
                exclude: torch.Tensor | None = None) -> torch.Tensor:
        """``L`` ``[B,1,h,w]`` (0..100, h and w multiples of ``multiple``) -> ab at the size of
        ``L_full`` (``[B,1,H,W]``, default ``L``)."""
        table = self.prior_table(L, exclude)
        prior = curve_lookup(table, L)
        x = torch.cat([L / 50.0 - 1.0, prior / 50.0], dim=1)
        skips = []
        x = self.stem(x)
        for blk in self.down:
            skips.append(x)
            x = blk(x)
        g = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3)), soft_histogram(L, self.hist_bins) * 10.0], dim=1)
        g = self.mlp(g)
        curve = self.curve(g).reshape(-1, 2, self.curve_nodes) * 10.0
        x = x + self.film(g)[:, :, None, None]
        for blk, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = blk(torch.cat([x, skip], dim=1))
        res = self.head(x) * 10.0
        target = L if L_full is None else L_full
        if target.shape[-2:] != res.shape[-2:]:
            res = F.interpolate(res, size=target.shape[-2:], mode="bilinear", align_corners=False)
        ab = curve_lookup(table, target) + curve_lookup(curve, target) + res
        return AB_LIMIT * torch.tanh(ab / AB_LIMIT)

