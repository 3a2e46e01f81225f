"""Building blocks shared by the seed architectures (``fusion``, ``inception-resnet-unet``, ``tutorial``).

* :func:`scaled` -- a channel count times a width multiplier (1.0 = the paper's count);
* :func:`conv_stack` -- a plain ``conv 3x3 + ReLU`` stack from a spec (channels, stride, ``"up"``);
* :func:`pad_to_multiple` / :func:`ab_head` -- any input size in, the same size out: the input is padded
  (reflection) to the network's multiple, the output cropped back and, when a full-resolution L is
  given, the chroma upsampled to it (bilinear; chroma only, L is never touched);
* :func:`gray_rgb` -- L (0..100) as the sRGB gray image a backbone pretrained on colour photos expects,
  normalised with that backbone's mean and standard deviation;
* :class:`BackboneNet` -- a network holding named backbones that can be frozen (pretrained weights).

Every seed architecture predicts ``ab = 128 tanh(x)`` (the papers' output, CIE units) and is trained with
MSE on ``ab / 128`` (``loss = "ab_mse"``).
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AB_SCALE", "scaled", "conv_stack", "pad_to_multiple", "ab_head", "gray_rgb", "BackboneNet"]

AB_SCALE = 128.0
Spec = Sequence[Union[tuple[int, int], str]]


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 4 (exactly ``channels`` at width 1)."""
    return max(4, int(round(channels * float(width))))


def conv_stack(cin: int, spec: Spec, width: float) -> tuple[nn.Sequential, int]:
    """``(Sequential, out_channels)``: for each ``(channels, stride)`` a 3x3 convolution (padding 1) and a
    ReLU, channels scaled by ``width``; ``"up"`` is a 2x bilinear upsampling."""
    layers: list[nn.Module] = []
    c = cin
    for item in spec:
        if item == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            continue
        ch, stride = item  # type: ignore[misc]
        out = scaled(ch, width)
        layers += [nn.Conv2d(c, out, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]
        c = out
    return nn.Sequential(*layers), c


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` ``[B,C,H,W]`` padded at the bottom/right (reflection; replicate where the image is too small
    to reflect) to multiples of ``multiple``; returns it and the original ``(H, W)``."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        mode = "reflect" if ph < H and pw < W else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (H, W)


def ab_head(raw: torch.Tensor, size: tuple[int, int], L_full: torch.Tensor | None) -> torch.Tensor:
    """``128 tanh(raw)`` cropped to ``size`` and, if ``L_full`` is given, resized to its size."""
    ab = AB_SCALE * torch.tanh(raw[..., :size[0], :size[1]])
    if L_full is not None and tuple(L_full.shape[-2:]) != tuple(ab.shape[-2:]):
        ab = F.interpolate(ab, size=L_full.shape[-2:], mode="bilinear", align_corners=False)
    return ab


def gray_rgb(L: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """L ``[B,1,H,W]`` (0..100) -> the normalised sRGB gray ``[B,3,H,W]`` of that L* (a = b = 0)."""
    from medcolor.color import lab_to_srgb

    rgb = lab_to_srgb(torch.cat([L, torch.zeros_like(L), torch.zeros_like(L)], dim=1)).clamp(0.0, 1.0)
    m = torch.tensor(mean, dtype=L.dtype, device=L.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=L.dtype, device=L.device).view(1, 3, 1, 1)
    return (rgb - m) / s


class BackboneNet(nn.Module):
    """A network with named backbones (attributes listed in ``BACKBONES``). A frozen backbone (loaded
    from pretrained weights) has no gradients and stays in eval mode (its BatchNorm statistics kept)."""

    BACKBONES: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.frozen: set[str] = set()

    def backbones(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.BACKBONES}

    def freeze(self, names: Sequence[str]) -> None:
        for name in names:
            module = getattr(self, name)
            module.requires_grad_(False)
            module.eval()
            self.frozen.add(name)

    def train(self, mode: bool = True) -> "BackboneNet":
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self
