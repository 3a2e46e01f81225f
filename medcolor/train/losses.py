"""Training losses.

The ``cnn`` backend's loss is computed on what is scored: ``colour_loss(L, ab_pred, ab_true, rgb_true)`` = mean squared error on sRGB (0..1) after the
differentiable Lab -> sRGB of :func:`medcolor.color.lab_to_srgb` (the prediction joined to the *input*
L, as ``medcolor run`` joins it; PSNR is a function of this MSE) + ``w_ab`` x L1 on ab / 100 (keeps
gradients alive where sRGB saturates) + ``w_grad`` x L1 on the horizontal/vertical differences of sRGB
(structure, what SSIM sees). ``ab_mse_loss(ab_pred, ab_true)``: the seed papers' loss (``fusion``,
``inception-resnet-unet``, ``tutorial``): mean squared error on ``ab / 128``.

The CycleGAN's (``medcolor train --method cyclegan``, see :mod:`medcolor.train.cyclegan`): ``GANLoss``
(LSGAN or vanilla), ``tv_loss`` (total variation) and the perceptual distance of frozen VGG16
features (``load_vgg16_features``: a local torchvision-layout state dict, every shape checked, or a
fixed random initialisation; nothing is downloaded).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.color import lab_to_srgb
from medcolor.errors import MedcolorError
from medcolor.nets.backbones import VggFeatures, read_state_dict, vgg_features

__all__ = ["colour_loss", "ab_mse_loss", "rgb_of", "GANLoss", "tv_loss", "load_vgg16_features"]


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


def ab_mse_loss(ab_pred: torch.Tensor, ab_true: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE on ``ab / 128`` and its parts (floats, for the progress bar)."""
    mse = ((ab_pred - ab_true) / 128.0).square().mean()
    return mse, {"mse": float(mse.detach()), "ab_l1": float((ab_pred - ab_true).abs().mean().detach())}


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


_VGG16_TAPS = (3, 8, 15)        # relu1_2, relu2_2, relu3_3 of torchvision's vgg16().features


def load_vgg16_features(path: str | Path | None) -> VggFeatures:
    """VGG16 features tapped at relu1_2, relu2_2, relu3_3 from a local torchvision-layout state dict
    (``features.*`` keys; every key and shape checked, nothing downloaded), or without ``path`` the documented
    fallback: the same layers with a fixed random initialisation (seed 0, Kaiming-normal, zero bias)."""
    if path is None:
        return vgg_features("vgg16", _VGG16_TAPS, None,
                            label="random-init VGG16 layout (seed 0; no --perceptual-weights)")
    p = Path(path)
    return vgg_features("vgg16", _VGG16_TAPS, read_state_dict(p, "--perceptual-weights"),
                        where=f"--perceptual-weights {p}", label=f"file {p.name}")
