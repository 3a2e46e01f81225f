"""``tutorial``: seed 004's beginner CNN -- a plain convolutional encoder-decoder on L that predicts a, b.

Nine 3x3 convolutions + ReLU down to 1/8 (64, 64 s2, 128, 128 s2, 256, 256 s2, 512, 256, 128 channels),
then 3x3 convolutions with 2x upsamplings back (64, 32), a 3x3 convolution to 2 channels and
``ab = 128 tanh``; input ``L / 100``; MSE on ``ab / 128``. No normalisation layers, no skips, no global
context: what a first colourisation tutorial builds. ``width`` scales the channels (1.0 = the tutorial's,
3.9 M parameters; the default 0.5 has 0.97 M and a quarter of the compute). Any input size: padded to a multiple of 8 and cropped back.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.nets.common import ab_head, conv_stack, pad_to_multiple

__all__ = ["ARCH", "TutorialCNN"]

ARCH = "tutorial"

SPEC = ((64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (256, 1), (128, 1),
        "up", (64, 1), "up", (32, 1))


class TutorialCNN(nn.Module):
    """See the module docstring. ``forward(L [B,1,h,w], L_full=None) -> ab`` at ``L_full``'s size."""

    loss = "ab_mse"
    multiple = 8

    def __init__(self, width: float = 0.5) -> None:
        super().__init__()
        self.args = dict(width=width)
        self.body, c = conv_stack(1, SPEC, width)
        self.head = nn.Conv2d(c, 2, 3, padding=1)

    def forward(self, L: torch.Tensor, L_full: torch.Tensor | None = None) -> torch.Tensor:
        x, size = pad_to_multiple(L, self.multiple)
        raw = F.interpolate(self.head(self.body(x / 100.0)), scale_factor=2, mode="bilinear", align_corners=False)
        return ab_head(raw, size, L_full)
