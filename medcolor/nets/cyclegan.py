"""The generators of the ``cyclegan`` backend (pure torch; no torchvision, no downloads).

``ResnetGenerator`` is the Johnson-style CycleGAN generator (any input size; output size == input
size). ``ColorGenerator`` is ``G_color`` as stored in checkpoints (architecture ``cyclegan-resnet``):
L (0..100) -> ab, or with ``l_lock=False`` the ab of a predicted sRGB image. The training side
(``G_gray``, discriminators, losses, loop) is :mod:`medcolor.train.cyclegan`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.color import lab_to_srgb, srgb_to_lab
from medcolor.nets.lookup import AB_LIMIT, LUT_BINS, apply_l_lut

__all__ = ["ARCH", "ColorGenerator", "ResnetGenerator"]

ARCH = "cyclegan-resnet"


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Johnson-style CycleGAN generator: c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual
    blocks (reflection padding, instance norm), two transposed-conv upsamplings, c7s1-out, tanh.
    Any input size: padded (replicate) to a multiple of 4 and cropped back, so out size == in size."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [_ResBlock(ch) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        ph, pw = (-H) % 4, (-W) % 4
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        y = self.model(x)
        return y[..., :H, :W]


class ColorGenerator(nn.Module):
    """``G_color`` as stored in checkpoints: L (0..100, ``[B,1,H,W]``) -> colour.

    ``l_lock`` True: :meth:`forward` returns ab (CIE units, within +-110) -- the backend's output;
    False: the net predicts sRGB and :meth:`forward` returns the ab of that sRGB (the pipeline still joins
    it to the source L). :meth:`rgb` gives the colour image (sRGB 0..1) used in training.

    ``luma_prior`` (L-lock only): the ResNet predicts a residual over a fixed 1-D L -> ab table
    (``prior_lut`` ``[2, 101]``, a buffer saved with the weights), ``ab = clamp(lut(L) + 110 * tanh(out))``.
    Training fits the table from the *colour domain alone* (mean ab per L*, :func:`fit_l_lut`) -- no
    pairing -- and starts the residual at zero, so step 0 is the unpaired luminance lookup and the
    adversarial/cycle/identity/perceptual/TV losses move the colour away from it where they gain."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, l_lock: bool = True, luma_prior: bool = False) -> None:
        super().__init__()
        self.l_lock = bool(l_lock)
        self.luma_prior = bool(luma_prior) and self.l_lock
        self.net = ResnetGenerator(1, 2 if self.l_lock else 3, ngf, n_blocks)
        if self.luma_prior:
            self.register_buffer("prior_lut", torch.zeros(2, LUT_BINS))

    def set_prior(self, lut: torch.Tensor) -> None:
        """Install the L -> ab table and zero the last convolution (the residual starts at 0)."""
        with torch.no_grad():
            self.prior_lut.copy_(lut.to(self.prior_lut))
            last = [m for m in self.net.modules() if isinstance(m, nn.Conv2d)][-1]
            last.weight.zero_()
            last.bias.zero_()

    def _ab(self, L: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if not self.luma_prior:
            return out * AB_LIMIT
        return (apply_l_lut(self.prior_lut, L) + out * AB_LIMIT).clamp(-AB_LIMIT, AB_LIMIT)

    def rgb(self, L: torch.Tensor) -> torch.Tensor:
        out = self.net(L / 50.0 - 1.0)
        if self.l_lock:
            return lab_to_srgb(torch.cat([L, self._ab(L, out)], dim=1)).clamp(0.0, 1.0)
        return (out + 1.0) / 2.0

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        out = self.net(L / 50.0 - 1.0)
        if self.l_lock:
            return self._ab(L, out)
        return srgb_to_lab(((out + 1.0) / 2.0).clamp(0.0, 1.0))[:, 1:]
