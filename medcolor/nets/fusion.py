"""``fusion``: seed 001's deep hybrid -- VGG16, ResNet50 and Inception-ResNet-v2 features fused into an
encoder-decoder that predicts CIE-Lab a, b (``128 tanh``), trained with MSE.

Layout (after the seed's description and Baldassarre et al.'s "Deep Koalarization" fusion layer):

* **encoder** (trained from scratch) on ``L / 50 - 1``: eight 3x3 convolutions (64, 128 s2, 128, 256 s2,
  256, 512 s2 ... in the paper's channels, here times ``width``) down to 1/8 of the input;
* **global features**: the gray image (the sRGB gray of L, normalised per backbone, resized to
  ``global_size`` squared, 128 by default; the papers' 224/299) through VGG16,
  ResNet50 and Inception-ResNet-v2 (:mod:`medcolor.nets.backbones`), each globally average-pooled and
  concatenated, then a linear layer to ``fusion_dim`` channels;
* **fusion**: that vector repeated over the encoder's grid, concatenated with it, 1x1 convolution + ReLU;
* **decoder**: 3x3 convolutions with three 2x upsamplings back to the input size, ``2`` channels,
  ``ab = 128 tanh``.

Backbones: at ``backbone_width`` (default: ``width``) and trained from scratch, or at the paper's width
with local pretrained weights (``medcolor train --backbone-weights``), then frozen. Any input size: padded
to a multiple of 8 and cropped back (:func:`medcolor.nets.common.pad_to_multiple`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from medcolor.nets.backbones import (IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, VGG16,
                                     InceptionResNetV2, ResNet50)
from medcolor.nets.common import BackboneNet, ab_head, conv_stack, gray_rgb, pad_to_multiple, scaled

__all__ = ["ARCH", "FusionColorNet"]

ARCH = "fusion"

ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))
DECODER = ((128, 1), "up", (64, 1), (64, 1), "up", (32, 1))


class FusionColorNet(BackboneNet):
    """See the module docstring. ``forward(L [B,1,h,w], L_full=None) -> ab`` at ``L_full``'s size."""

    BACKBONES = ("vgg16", "resnet50", "inception")
    loss = "ab_mse"
    multiple = 8

    def __init__(self, width: float = 0.25, backbone_width: float | None = None, fusion_dim: int = 256,
                 global_size: int = 128) -> None:
        super().__init__()
        bw = width if backbone_width is None else backbone_width
        self.args = dict(width=width, backbone_width=bw, fusion_dim=fusion_dim, global_size=global_size)
        self.global_size = global_size
        self.encoder, c = conv_stack(1, ENCODER, width)
        self.vgg16, self.resnet50, self.inception = VGG16(bw), ResNet50(bw), InceptionResNetV2(bw)
        g = self.vgg16.out_channels + self.resnet50.out_channels + self.inception.out_channels
        f = scaled(fusion_dim, width)
        self.global_fc = nn.Sequential(nn.Linear(g, f), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(c + f, c, 1), nn.ReLU(inplace=True))
        self.decoder, d = conv_stack(c, DECODER, width)
        self.head = nn.Conv2d(d, 2, 3, padding=1)

    def global_features(self, L: torch.Tensor) -> torch.Tensor:
        """``[B, vgg + resnet + inception channels]``: each backbone's globally pooled last map of the
        image resized to ``global_size`` squared."""
        L = nn.functional.interpolate(L, size=(self.global_size, self.global_size), mode="bilinear",
                                      align_corners=False, antialias=True)
        net_in = gray_rgb(L, IMAGENET_MEAN, IMAGENET_STD)
        feats = [self.vgg16(net_in).mean(dim=(2, 3)), self.resnet50(net_in).mean(dim=(2, 3)),
                 self.inception(gray_rgb(L, INCEPTION_MEAN, INCEPTION_STD))[-1].mean(dim=(2, 3))]
        return torch.cat(feats, dim=1)

    def forward(self, L: torch.Tensor, L_full: torch.Tensor | None = None) -> torch.Tensor:
        x, size = pad_to_multiple(L, self.multiple)
        enc = self.encoder(x / 50.0 - 1.0)
        g = self.global_fc(self.global_features(x))
        fused = self.fuse(torch.cat([enc, g[:, :, None, None].expand(-1, -1, *enc.shape[-2:])], dim=1))
        raw = nn.functional.interpolate(self.head(self.decoder(fused)), scale_factor=2, mode="bilinear",
                                        align_corners=False)
        return ab_head(raw, size, L_full)
