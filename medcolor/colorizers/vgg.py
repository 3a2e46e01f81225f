"""VGG feature extractors in plain torch, in torchvision's layout (``features.<i>.weight`` / ``.bias``), so a
local torchvision ``vgg16``/``vgg19`` state dict loads into them, checked key by key and shape by shape.
Nothing is downloaded: without a weights file the same layers get a fixed, seeded random
initialisation (Kaiming-normal, zero bias), and ``source`` says which.

Simonyan & Zisserman (2015), "Very deep convolutional networks for large-scale image recognition";
configurations D (VGG-16) and E (VGG-19). Inputs are sRGB in 0..1, normalised with ImageNet's mean and
std as torchvision's weights expect.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.errors import MedcolorError

__all__ = ["CONFIGS", "vgg_layers", "VggFeatures", "vgg_features", "read_state_dict"]

CONFIGS: dict[str, list[Any]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layers(arch: str) -> nn.Sequential:
    """torchvision's ``<arch>().features`` layout (conv 3×3 + ReLU, max-pool 2×2), so the keys line up."""
    layers: list[nn.Module] = []
    ch = 3
    for v in CONFIGS[arch]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            ch = int(v)
    return nn.Sequential(*layers)


class VggFeatures(nn.Module):
    """Frozen VGG features up to the last of ``taps`` (indices into ``features``); ``forward`` returns the
    activations at ``taps``. ``source`` says where the weights came from."""

    def __init__(self, features: nn.Sequential, taps: tuple[int, ...], source: str) -> None:
        super().__init__()
        self.taps = tuple(taps)
        self.features = features[: max(self.taps) + 1]
        self.source = source
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        x = (rgb01 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Mean L1 distance between the tapped features of two images (a perceptual loss)."""
        return sum(F.l1_loss(fa, fb) for fa, fb in zip(self(a), self(b))) / len(self.taps)


def _seeded(features: nn.Sequential) -> None:
    g = torch.Generator().manual_seed(0)
    for m in features:
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / (m.in_channels * 9)))
                m.bias.zero_()


def vgg_features(arch: str, taps: tuple[int, ...], state_dict: dict[str, Any] | None = None,
                 where: str = "--vgg19-weights", label: str = "") -> VggFeatures:
    """``arch`` ("vgg16" | "vgg19") features tapped at ``taps``: from a torchvision-layout ``state_dict``
    (every ``features.*`` key of the full layout must be there with its shape: a vgg16 file is not a
    vgg19 one; a ``_bn`` variant's keys do not match; the classifier is ignored), or without one the
    fixed random initialisation (seed 0). MedcolorError naming ``where`` for a dict that does not fit.
    ``label`` is the ``source`` the features report (default: says which of the two)."""
    feats = vgg_layers(arch)
    if state_dict is None:
        _seeded(feats)
        return VggFeatures(feats, taps, label or f"random-init {arch} layout (seed 0; no weights file)")
    hint = f"give torchvision's {arch} weights (a state dict with features.N.weight/bias keys, not {arch}_bn)"
    sd = state_dict.get("state_dict", state_dict) if isinstance(state_dict.get("state_dict"), dict) else state_dict
    expected = {f"features.{k}": tuple(v.shape) for k, v in feats.state_dict().items()}
    for key, shape in expected.items():
        value = sd.get(key)
        if value is None:
            raise MedcolorError(f"not a {arch} state dict: key {key} is missing", where=where, hint=hint)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise MedcolorError(f"{arch} weight shapes do not match ({key}: {got} vs {shape})", where=where, hint=hint)
        if not torch.isfinite(value).all():
            raise MedcolorError(f"{arch} weight {key} holds NaN or infinite values", where=where,
                                hint="the file is damaged; use torchvision's weights file")
    feats.load_state_dict({k[len("features."):]: sd[k].float() for k in expected}, strict=True)
    return VggFeatures(feats, taps, label or f"{arch} weights")


def read_state_dict(path: str | Path, what: str = "VGG-19", where: str = "--vgg19-weights") -> dict[str, Any]:
    """A local torch state dict (``torch.load(weights_only=True)``: no pickled code runs). Used by the
    pipeline, which hands the tensors to the backend; MedcolorError naming the file when it is missing or
    not a state dict."""
    p = Path(path)
    if not p.is_file():
        raise MedcolorError(f"no such {what} weights file", where=f"{where} {p}",
                            hint="give a local torchvision state dict (.pth); nothing is downloaded")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt file, pickle with code, not torch at all
        raise MedcolorError(f"not a readable torch state dict ({type(exc).__name__})", where=f"{where} {p}",
                            hint=f"give torchvision's {what} weights file") from None
    if not isinstance(sd, dict):
        raise MedcolorError(f"not a state dict (a {type(sd).__name__})", where=f"{where} {p}",
                            hint=f"give torchvision's {what} weights file")
    return sd
