"""Training losses.

The ``cnn`` backend's loss is computed on what is scored: ``colour_loss(L, ab_pred, ab_true, rgb_true)`` = mean squared error on sRGB (0..1) after the
differentiable Lab -> sRGB of :func:`medcolor.color.lab_to_srgb` (the prediction joined to the *input*
L, as ``medcolor run`` joins it; PSNR is a function of this MSE) + ``w_ab`` x L1 on ab / 100 (keeps
gradients alive where sRGB saturates) + ``w_grad`` x L1 on the horizontal/vertical differences of sRGB
(structure, what SSIM sees).

The CycleGAN's (``medcolor train --method cyclegan``, see :mod:`medcolor.train.cyclegan`): ``GANLoss``
(LSGAN or vanilla), ``tv_loss`` (total variation) and the perceptual distance of frozen VGG16
features (``load_vgg16_features``: a local torchvision-layout state dict, every shape checked, or a
fixed random initialisation; nothing is downloaded).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.color import lab_to_srgb
from medcolor.errors import MedcolorError

__all__ = ["colour_loss", "rgb_of", "GANLoss", "tv_loss", "VGG16Features", "load_vgg16_features"]


def rgb_of(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """sRGB ``[B,3,H,W]`` (not clipped) of L ``[B,1,H,W]`` and ab ``[B,2,H,W]``."""
    return lab_to_srgb(torch.cat([L, ab], dim=1))


def colour_loss(L: torch.Tensor, ab_pred: torch.Tensor, ab_true: torch.Tensor, rgb_true: torch.Tensor,
                w_ab: float = 0.05, w_grad: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """Scalar loss and its parts (floats, for the progress bar)."""
    rgb = rgb_of(L, ab_pred).clamp(-0.2, 1.2)
    mse = (rgb - rgb_true).square().mean()
    l1_ab = (ab_pred - ab_true).abs().mean() / 100.0
    d = rgb - rgb_true
    grad = ((d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean())
    loss = mse + w_ab * l1_ab + w_grad * grad * 0.1
    return loss, {"mse": float(mse.detach()), "ab_l1": float(l1_ab.detach()) * 100.0}


class GANLoss(nn.Module):
    """``lsgan`` (MSE to 1 / 0) or ``vanilla`` (BCE with logits)."""

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in ("lsgan", "vanilla"):
            raise MedcolorError(f"unknown GAN loss {mode!r}", where="--gan-mode", hint="use lsgan or vanilla")
        self.mode = mode

    def forward(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.ones_like(pred) if real else torch.zeros_like(pred)
        if self.mode == "lsgan":
            return F.mse_loss(pred, target)
        return F.binary_cross_entropy_with_logits(pred, target)


def tv_loss(img: torch.Tensor, beta: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """Total variation ``mean((dx^2 + dy^2 + eps)^(beta/2))`` (beta = 1: isotropic TV)."""
    dx = img[..., :-1, 1:] - img[..., :-1, :-1]
    dy = img[..., 1:, :-1] - img[..., :-1, :-1]
    return (dx.square() + dy.square() + eps).pow(beta / 2.0).mean()


_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_VGG_MEAN = (0.485, 0.456, 0.406)
_VGG_STD = (0.229, 0.224, 0.225)


def _vgg16_features_layers() -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout (so ``features.<i>.weight`` keys line up)."""
    layers: list[nn.Module] = []
    ch = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            ch = int(v)
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """Frozen VGG16 feature taps at relu1_2, relu2_2, relu3_3 (indices 3, 8, 15 of ``features``).
    ``source`` says where the weights came from ("file <name>" or "random-init (seed 0)")."""

    TAPS = (3, 8, 15)

    def __init__(self, features: nn.Sequential, source: str) -> None:
        super().__init__()
        self.features = features[: max(self.TAPS) + 1]
        self.source = source
        self.register_buffer("mean", torch.tensor(_VGG_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_VGG_STD).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        x = (rgb01 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sum(F.l1_loss(fa, fb) for fa, fb in zip(self(a), self(b))) / len(self.TAPS)


def load_vgg16_features(path: str | Path | None) -> VGG16Features:
    """VGG16 features from a local torchvision-layout state dict (``features.*`` keys; every shape
    checked, nothing downloaded), or without ``path`` the documented fallback: the same layers with a
    fixed random initialisation (seed 0, Kaiming-normal, zero bias)."""
    feats = _vgg16_features_layers()
    if path is None:
        g = torch.Generator().manual_seed(0)
        for m in feats:
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * 9
                with torch.no_grad():
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                    m.bias.zero_()
        return VGG16Features(feats, "random-init VGG16 layout (seed 0; no --perceptual-weights)")
    p = Path(path)
    if not p.is_file():
        raise MedcolorError("no such VGG16 weights file", where=p, hint="give a local torchvision vgg16 state dict (.pth)")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise MedcolorError(f"not a readable torch state dict ({type(exc).__name__})", where=p,
                            hint="give torchvision's vgg16 weights file (state dict)") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise MedcolorError("not a state dict", where=p, hint="give torchvision's vgg16 weights file (state dict)")
    expected = {f"features.{k}": v.shape for k, v in feats.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    if missing:
        raise MedcolorError(f"not a VGG16 state dict: missing {len(missing)} features.* key(s), e.g. {missing[0]}",
                            where=p, hint="use torchvision's vgg16 (not vgg16_bn) weights")
    bad = [k for k, s in expected.items() if not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != tuple(s)]
    if bad:
        raise MedcolorError(f"VGG16 weight shapes do not match ({bad[0]}: {tuple(sd[bad[0]].shape)} vs "
                            f"{tuple(expected[bad[0]])})", where=p, hint="use torchvision's vgg16 weights")
    feats.load_state_dict({k[len("features."):]: sd[k].float() for k in expected}, strict=True)
    return VGG16Features(feats, f"file {p.name}")
