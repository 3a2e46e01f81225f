"""CIE-Lab <-> sRGB in torch, batched, on any device; chroma-only gamut mapping.

Shape contract (kornia style): images are ``(*, C, H, W)``. sRGB values are floats in [0, 1]
(IEC 61966-2-1 transfer function), Lab is CIE 1976 L*a*b* relative to the D65 white point with
L in [0, 100]. Functions work on float32 or float64 tensors on any device.
"""
from __future__ import annotations

import torch

# sRGB (linear) -> CIE XYZ, D65 (IEC 61966-2-1)
_RGB2XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_XYZ2RGB = torch.linalg.inv(_RGB2XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS = 6.0 / 29.0


def _mix(mat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix over the channel axis -3 of ``x`` (*,3,H,W)."""
    m = mat.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light."""
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB encoding (no clipping of out-of-range values beyond what pow needs)."""
    return torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPS ** 3, t.clamp(min=_EPS ** 3) ** (1.0 / 3.0), t / (3 * _EPS ** 2) + 4.0 / 29.0)


def _finv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPS, t ** 3, 3 * _EPS ** 2 * (t - 4.0 / 29.0))


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*,3,H,W)`` in [0, 1] -> Lab ``(*,3,H,W)`` (L 0..100, a/b roughly -110..110)."""
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"srgb_to_lab expects (*, 3, H, W), got {tuple(rgb.shape)}")
    xyz = _mix(_RGB2XYZ, srgb_to_linear(rgb))
    white = _WHITE_D65.to(device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(-3)
    L = 116.0 * fy - 16.0
    return torch.stack([L, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)


def lab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``(*,3,H,W)`` -> linear-light RGB, not clipped (values outside [0,1] are out of gamut)."""
    if lab.ndim < 3 or lab.shape[-3] != 3:
        raise ValueError(f"lab_to_srgb expects (*, 3, H, W), got {tuple(lab.shape)}")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    xyz = torch.stack([_finv(fy + a / 500.0), _finv(fy), _finv(fy - b / 200.0)], dim=-3)
    white = _WHITE_D65.to(device=lab.device, dtype=lab.dtype).view(3, 1, 1)
    return _mix(_XYZ2RGB, xyz * white)


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab ``(*,3,H,W)`` -> sRGB ``(*,3,H,W)``, *not clipped*: out-of-gamut colours fall outside [0,1]."""
    lin = lab_to_linear_rgb(lab)
    return torch.sign(lin) * linear_to_srgb(lin.abs())
