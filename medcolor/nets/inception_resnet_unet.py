"""``inception-resnet-unet``: seed 002's U-Net with an Inception-ResNet-v2 encoder, predicting a, b.

* **encoder**: Inception-ResNet-v2 (:class:`medcolor.nets.backbones.InceptionResNetV2`, "same" padding)
  on the sRGB gray of L; its maps at strides 2, 4, 8, 16 and 32 are the skips;
* **decoder**: five 2x upsamplings, each followed by the skip of that scale (none at full size) and two
  3x3 convolution + BatchNorm + ReLU (256, 128, 64, 32, 16 channels in the usual U-Net decoder for this
  encoder, times ``width``); a 3x3 convolution to 2 channels, ``ab = 128 tanh``; MSE on ``ab / 128``.

The encoder is at ``backbone_width`` (default ``width``) and trained from scratch, or at the paper's width
with local timm-layout weights (``medcolor train --backbone-weights``), then frozen. Any input size: padded
to a multiple of 32 and cropped back.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.nets.backbones import INCEPTION_MEAN, INCEPTION_STD, InceptionResNetV2
from medcolor.nets.common import BackboneNet, ab_head, gray_rgb, pad_to_multiple, scaled

__all__ = ["ARCH", "InceptionResNetUNet"]

ARCH = "inception-resnet-unet"

DECODER = (256, 128, 64, 32, 16)


class _Up(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in in (cin + skip, cout):
            layers += [nn.Conv2d(c_in, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x if skip is None else torch.cat([x, skip], dim=1))


class InceptionResNetUNet(BackboneNet):
    """See the module docstring. ``forward(L [B,1,h,w], L_full=None) -> ab`` at ``L_full``'s size."""

    BACKBONES = ("inception",)
    loss = "ab_mse"
    multiple = 32

    def __init__(self, width: float = 0.25, backbone_width: float | None = None) -> None:
        super().__init__()
        bw = width if backbone_width is None else backbone_width
        self.args = dict(width=width, backbone_width=bw)
        self.inception = InceptionResNetV2(bw)
        skips = list(self.inception.skip_channels)
        c = skips.pop()
        ups = []
        for i, ch in enumerate(DECODER):
            out = scaled(ch, width)
            ups.append(_Up(c, skips[-1 - i] if i < len(skips) else 0, out))
            c = out
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(c, 2, 3, padding=1)

    def forward(self, L: torch.Tensor, L_full: torch.Tensor | None = None) -> torch.Tensor:
        x, size = pad_to_multiple(L, self.multiple)
        feats = self.inception(gray_rgb(x, INCEPTION_MEAN, INCEPTION_STD))
        y = feats.pop()
        for up in self.up:
            y = up(y, feats.pop() if feats else None)
        return ab_head(self.head(y), size, L_full)
