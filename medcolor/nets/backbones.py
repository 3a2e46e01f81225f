"""Plain-torch backbones in the key layout of the public pretrained state dicts, and their loading: the
one place medcolor builds VGG, ResNet and Inception layers and reads weights files for them.

* :class:`VGG` (``"vgg16"`` | ``"vgg19"``; :class:`VGG16`) -- torchvision ``vgg16()/vgg19().features``,
  Simonyan & Zisserman (2015) configurations D and E (keys ``features.N.weight``; timm's ``vgg16`` has the
  same ``features.*`` keys);
* :class:`ResNet50` -- torchvision ``resnet50`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
  ``downsample.0/1``; timm's ``resnet50`` has the same names);
* :class:`InceptionResNetV2` -- timm ``inception_resnet_v2`` (``conv2d_1a.conv``, ``mixed_5b.branch0``,
  ``repeat.N``, ``repeat_1.N``, ``repeat_2.N``, ``block8``, ``conv2d_7b``). Torchvision has no
  Inception-ResNet-v2. Its convolutions are padded "same" (the paper's are "valid" in the stem and the
  reduction blocks) so that the feature maps are exactly 1/2, 1/4, ..., 1/32 of the input, as a U-Net
  needs; the weights' shapes do not depend on padding.

Each takes ``width`` (a multiplier of the paper's channel counts, 1.0 = the paper's, which pretrained
weights need) and has ``out_channels``. Classifier heads are not built (only features are used).

Weights, never downloaded:

* :func:`read_state_dict` reads a local state-dict file (``torch.load(weights_only=True)``: no pickled
  code runs) for ``--backbone-weights``, ``--perceptual-weights`` and ``--vgg19-weights``;
* :func:`fit_state_dict` checks a state dict against a module key by key and shape by shape (no key
  missing, none of another network, no NaN), classifier heads ignored;
* :func:`load_backbone_weights` finds which backbone of an architecture each file is for and loads it;
* :func:`vgg_features` gives frozen VGG feature taps (:class:`VggFeatures`: the cyclegan perceptual loss,
  the exemplar's gram mode) from a state dict, or without one the same layers with a fixed seeded random
  initialisation (Kaiming-normal, seed 0, zero bias), and says which in ``source``.

Every refusal is a one-line :class:`MedcolorError` naming the option and file and the first offending key.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.errors import MedcolorError
from medcolor.nets.common import scaled

__all__ = ["VGG", "VGG16", "VGG_CONFIGS", "VggFeatures", "vgg_features", "ResNet50", "InceptionResNetV2",
           "IMAGENET_MEAN", "IMAGENET_STD", "INCEPTION_MEAN", "INCEPTION_STD", "LAYOUTS", "read_state_dict",
           "fit_state_dict", "load_backbone_weights"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_MEAN, INCEPTION_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
LAYOUTS = {"vgg16": "torchvision/timm vgg16", "resnet50": "torchvision/timm resnet50",
           "inception": "timm inception_resnet_v2"}
# classifier heads of those layouts: present in the files, not used here
_HEADS = ("classifier.", "fc.", "classif.", "head.", "pre_logits.", "last_linear.")
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG convolutional features (conv 3x3 + ReLU, 5 max-pools 2x2), stride 32, in torchvision's
    ``features`` layout so ``features.<i>.weight`` keys line up."""

    def __init__(self, arch: str = "vgg16", width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in VGG_CONFIGS[arch]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out = scaled(int(v), width)
                # not in place: a tapped ReLU output (VggFeatures) must survive the next layer
                layers += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(inplace=False)]
                c = out
        self.arch = arch
        self.features = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class VGG16(VGG):
    """VGG16 features (13 conv + ReLU), the ``fusion`` backbone and the perceptual loss's network."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__("vgg16", width)


class VggFeatures(nn.Module):
    """Frozen VGG features up to the last of ``taps`` (indices into ``features``); ``forward`` takes sRGB
    ``[B,3,H,W]`` in 0..1 (normalised here with ImageNet's mean and std, as torchvision's weights expect)
    and returns the activations at ``taps``. ``source`` says where the weights came from."""

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
    """The documented fallback without weights: Kaiming-normal convolutions (seed 0), zero bias."""
    g = torch.Generator().manual_seed(0)
    for m in features:
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / (m.in_channels * 9)))
                m.bias.zero_()


def vgg_features(arch: str, taps: tuple[int, ...], state_dict: dict[str, Any] | None = None,
                 where: str = "--vgg19-weights", label: str = "") -> VggFeatures:
    """``arch`` ("vgg16" | "vgg19") features tapped at ``taps``: from a torchvision-layout ``state_dict``
    (as :func:`read_state_dict` gives it; checked by :func:`fit_state_dict`: a vgg16 file is not a vgg19
    one, a ``_bn`` variant's keys do not match, the classifier is ignored), or without one the fixed
    random initialisation (seed 0). ``where`` names the option and file in errors; ``label`` is the
    ``source`` the features report (default: says which of the two)."""
    vgg = VGG(arch)
    if state_dict is None:
        _seeded(vgg.features)
        return VggFeatures(vgg.features, taps, label or f"random-init {arch} layout (seed 0; no weights file)")
    hint = f"give torchvision's {arch} weights (a state dict with features.N.weight/bias keys, not {arch}_bn)"
    vgg.load_state_dict(fit_state_dict(vgg, state_dict, arch, where, hint))
    return VggFeatures(vgg.features, taps, label or f"{arch} weights")


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int) -> None:
        super().__init__()
        out = mid * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, out, 1, bias=False), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None if stride == 1 and cin == out else \
            nn.Sequential(nn.Conv2d(cin, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet-50 (v1.5: stride on the 3x3 convolution) without its classifier, stride 32."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = scaled(64, width)
        self.conv1, self.bn1 = nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(c)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)
        for i, (n, mid, stride) in enumerate(((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))):
            m = scaled(mid, width)
            blocks = [_Bottleneck(c if j == 0 else m * 4, m, stride if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c = m * 4
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _ConvBN(nn.Module):
    """``conv`` (no bias) + ``bn`` (eps 1e-3) + ReLU, padded "same"."""

    def __init__(self, cin: int, cout: int, k: int | tuple[int, int], stride: int = 1) -> None:
        super().__init__()
        kh, kw = (k, k) if isinstance(k, int) else k
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=(kh // 2, kw // 2), bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


def _branch(cin: int, spec: Sequence[tuple[int, int | tuple[int, int], int]], w: float) -> tuple[nn.Module, int]:
    """A branch of ``(channels, kernel, stride)`` ConvBNs: a bare ConvBN for one, a Sequential otherwise."""
    mods, c = [], cin
    for ch, k, s in spec:
        mods.append(_ConvBN(c, scaled(ch, w), k, s))
        c = scaled(ch, w)
    return (mods[0] if len(mods) == 1 else nn.Sequential(*mods)), c


class _Mixed(nn.Module):
    """Parallel branches concatenated; ``pool`` adds a pooling branch (avg + 1x1 ConvBN, or a max-pool)."""

    def __init__(self, cin: int, branches: Sequence[Sequence[tuple]], w: float, pool: str = "",
                 pool_ch: int = 0, stride: int = 1) -> None:
        super().__init__()
        self.out_channels = 0
        for i, spec in enumerate(branches):
            mod, c = _branch(cin, spec, w)
            setattr(self, f"branch{i}", mod)
            self.out_channels += c
        self.n = len(branches)
        if pool == "avg":
            setattr(self, f"branch{self.n}", nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False),
                                                         _ConvBN(cin, scaled(pool_ch, w), 1)))
            self.out_channels += scaled(pool_ch, w)
        elif pool == "max":
            setattr(self, f"branch{self.n}", nn.MaxPool2d(3, stride=stride, padding=1))
            self.out_channels += cin
        self.n += bool(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], dim=1)


class _Residual(nn.Module):
    """Inception-ResNet block: branches -> 1x1 ``conv2d`` back to ``cin`` -> ``x + scale * y`` (+ ReLU)."""

    def __init__(self, cin: int, branches: Sequence[Sequence[tuple]], w: float, scale: float,
                 relu: bool = True) -> None:
        super().__init__()
        mixed = _Mixed(cin, branches, w)
        for i in range(mixed.n):
            setattr(self, f"branch{i}", getattr(mixed, f"branch{i}"))
        self.n = mixed.n
        self.conv2d = nn.Conv2d(mixed.out_channels, cin, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2d(torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], dim=1))
        y = x + self.scale * y
        return torch.relu(y) if self.relu else y


_B35 = ([(32, 1, 1)], [(32, 1, 1), (32, 3, 1)], [(32, 1, 1), (48, 3, 1), (64, 3, 1)])
_B17 = ([(192, 1, 1)], [(128, 1, 1), (160, (1, 7), 1), (192, (7, 1), 1)])
_B8 = ([(192, 1, 1)], [(192, 1, 1), (224, (1, 3), 1), (256, (3, 1), 1)])


class InceptionResNetV2(nn.Module):
    """Inception-ResNet-v2 features (10 x Block35, 20 x Block17, 10 x Block8), "same" padding.
    ``forward`` returns the maps at strides 2, 4, 8, 16, 32 (channels ``skip_channels``)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        w = width
        self.conv2d_1a = _ConvBN(3, scaled(32, w), 3, 2)
        self.conv2d_2a = _ConvBN(scaled(32, w), scaled(32, w), 3)
        self.conv2d_2b = _ConvBN(scaled(32, w), scaled(64, w), 3)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2d_3b = _ConvBN(scaled(64, w), scaled(80, w), 1)
        self.conv2d_4a = _ConvBN(scaled(80, w), scaled(192, w), 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2, padding=1)
        self.mixed_5b = _Mixed(scaled(192, w), ([(96, 1, 1)], [(48, 1, 1), (64, 5, 1)],
                                                [(64, 1, 1), (96, 3, 1), (96, 3, 1)]), w, "avg", 64)
        c = self.mixed_5b.out_channels
        self.repeat = nn.Sequential(*[_Residual(c, _B35, w, 0.17) for _ in range(10)])
        self.mixed_6a = _Mixed(c, ([(384, 3, 2)], [(256, 1, 1), (256, 3, 1), (384, 3, 2)]), w, "max", stride=2)
        c6 = self.mixed_6a.out_channels
        self.repeat_1 = nn.Sequential(*[_Residual(c6, _B17, w, 0.10) for _ in range(20)])
        self.mixed_7a = _Mixed(c6, ([(256, 1, 1), (384, 3, 2)], [(256, 1, 1), (288, 3, 2)],
                                    [(256, 1, 1), (288, 3, 1), (320, 3, 2)]), w, "max", stride=2)
        c7 = self.mixed_7a.out_channels
        self.repeat_2 = nn.Sequential(*[_Residual(c7, _B8, w, 0.20) for _ in range(9)])
        self.block8 = _Residual(c7, _B8, w, 1.0, relu=False)
        self.conv2d_7b = _ConvBN(c7, scaled(1536, w), 1)
        self.skip_channels = (scaled(64, w), scaled(192, w), c, c6, scaled(1536, w))
        self.out_channels = scaled(1536, w)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s2 = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        s4 = self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(s2)))
        s8 = self.repeat(self.mixed_5b(self.maxpool_5a(s4)))
        s16 = self.repeat_1(self.mixed_6a(s8))
        s32 = self.conv2d_7b(self.block8(self.repeat_2(self.mixed_7a(s16))))
        return [s2, s4, s8, s16, s32]


def read_state_dict(path: str | Path, option: str) -> dict[str, torch.Tensor]:
    """A local state dict (plain, or under ``state_dict``/``model``; a DataParallel ``module.`` prefix
    dropped), read with ``weights_only=True``. ``option`` (``--backbone-weights``, ...) and the file are
    named in the one-line MedcolorError for a missing file or one that is not a state dict of tensors."""
    p = Path(path)
    where = f"{option} {p}"
    hint = "give a local torchvision- or timm-layout state dict saved with torch.save(model.state_dict(), FILE)"
    if not p.is_file():
        raise MedcolorError("no such weights file", where=where, hint=hint + "; nothing is downloaded")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a torch file, pickled code, damaged
        raise MedcolorError(f"not a readable torch state dict ({type(exc).__name__})", where=where,
                            hint=hint) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise MedcolorError("not a state dict of tensors", where=where, hint=hint)
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def fit_state_dict(module: nn.Module, sd: dict[str, Any], name: str, where: str | Path,
                   hint: str) -> dict[str, torch.Tensor]:
    """The tensors of ``sd`` for ``module`` (a ``name``), every key and shape checked: MedcolorError at
    ``where`` on the first key missing (in the module's order), key of another network (classifier
    heads and BatchNorm counters aside), shape that differs, or tensor holding NaN or infinity."""
    want = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in want if k not in sd]
    if missing:
        raise MedcolorError(f"{len(missing)} {name} key(s) missing from the weights (first: {missing[0]})",
                            where=where, hint=hint)
    extra = [k for k in sd if k not in want and not k.endswith("num_batches_tracked") and not k.startswith(_HEADS)]
    if extra:
        raise MedcolorError(f"{len(extra)} key(s) that a {name} does not have (first: {extra[0]}); "
                            "weights of another network?", where=where, hint=hint)
    for k, t in want.items():
        value = sd[k]
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        if got != tuple(t.shape):
            raise MedcolorError(f"{k}: shape {got} in the weights, {tuple(t.shape)} in the {name} built here",
                                where=where, hint=hint)
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise MedcolorError(f"{k} holds NaN or infinite values", where=where,
                                hint="the file is damaged; use the original weights file")
    return {k: sd[k] for k in want}


def load_backbone_weights(backbones: dict[str, nn.Module], paths: Sequence[str | Path]) -> list[dict]:
    """Load each ``--backbone-weights`` file into the backbone it is for (the one sharing most key names);
    returns one record per file ``{"backbone", "file", "sha256", "tensors", "layout"}`` for the manifest."""
    from medcolor.io import sha256_file

    done: dict[str, Path] = {}
    records = []
    for path in paths:
        p = Path(path)
        where = f"--backbone-weights {p}"
        sd = read_state_dict(p, "--backbone-weights")
        overlap = {n: len(set(m.state_dict()) & set(sd)) for n, m in backbones.items()}
        name = max(overlap, key=lambda n: overlap[n]) if overlap else None
        if name is None or overlap[name] == 0:
            first = next(iter(sd))
            raise MedcolorError(f"none of its {len(sd)} keys (first: {first}) belongs to a backbone of this "
                                f"architecture ({', '.join(LAYOUTS[n] for n in backbones) or 'none'})", where=where,
                                hint="give the state dict of one of those backbones")
        if name in done:
            raise MedcolorError(f"a second {name} weights file (the first: {done[name].name})", where=where,
                                hint="give one file per backbone")
        hint = f"--backbone-weights takes {LAYOUTS[name]} weights of the paper's width (1.0)"
        tensors = fit_state_dict(backbones[name], sd, name, where, hint)
        backbones[name].load_state_dict(tensors, strict=False)
        done[name] = p
        records.append({"backbone": name, "layout": LAYOUTS[name], "file": p.name, "sha256": sha256_file(p),
                        "tensors": len(tensors)})
    return records
