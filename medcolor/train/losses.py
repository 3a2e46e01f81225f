"""Training loss of the ``cnn`` backend: computed on what is scored.

``colour_loss(L, ab_pred, ab_true, rgb_true)`` = mean squared error on sRGB (0..1) after the
differentiable Lab -> sRGB of :func:`medcolor.color.lab_to_srgb` (the prediction joined to the *input*
L, as ``medcolor run`` joins it; PSNR is a function of this MSE) + ``w_ab`` x L1 on ab / 100 (keeps
gradients alive where sRGB saturates) + ``w_grad`` x L1 on the horizontal/vertical differences of sRGB
(structure, what SSIM sees).

``ab_mse_loss(ab_pred, ab_true)``: the seed papers' loss (``fusion``, ``inception-resnet-unet``,
``tutorial``): mean squared error on ``ab / 128``.
"""
from __future__ import annotations

import torch

from medcolor.color import lab_to_srgb

__all__ = ["colour_loss", "ab_mse_loss", "rgb_of"]


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
