"""Training data for the ``cnn`` backend: colour images -> (L, ab, sRGB) samples, gray made on the fly.

* ``find_images(folder)``: the colour images of a folder (PNG/JPEG/TIFF, colour DICOM), sorted.
* ``load_images(paths, work_size)``: each image read with :func:`medcolor.io.read_image_rgb`
  (EXIF orientation applied, colour DICOM converted to RGB) and shrunk (area averaging) so its longer
  side is at most ``work_size``; float32 sRGB ``[3,H,W]`` in 0..1.
* ``AugmentedColourDataset``: a MONAI ``Dataset`` whose item ``i`` is one augmented sample drawn with
  its own generator ``numpy.random.default_rng([seed, i])`` -- so a run is repeatable, a resumed run
  sees exactly the samples the uninterrupted run would have seen, and DDP ranks draw disjoint items.
  Augmentation: random resized crop (area 55-100 %, aspect 0.8-1.25), rotation +-12 degrees,
  horizontal/vertical flips, brightness jitter (linear-light gain 0.8-1.25), all in one
  ``grid_sample`` (reflection padding) to ``size``x``size``.
* ``camera_shift(rgb, gains, exposure, gamma, chroma)``: an image re-rendered as another camera might
  have taken it (white balance and exposure in linear light, a tone curve, a saturation change). With
  ``camera`` > 0 the dataset applies a random one to each sample (``random_camera``: at strength 1 blue
  gain x/ 1.65, red x/ 1.16, green x/ 1.08, exposure x/ 1.5, gamma x/ 1.28, chroma x/ 1.5, log-uniform),
  *before* L and ab are computed, so the network sees the gray of that image and learns the chroma a
  fundus (or any) photo has across cameras, not one camera's rendering of it.
* ``gray_l(L)``: the L* a user's 8-bit gray PNG of that L carries (the sRGB gray of L, rounded to 8
  bits, back to L*): the network is trained on the L it will see at ``medcolor run`` time.

A photo turned gray keeps its L exactly: L here is the CIE L* of the colour image (D65), the same
number ``medcolor run`` computes from the gray PNG (``windowing`` units "srgb").
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medcolor.color import lab_to_srgb, linear_to_srgb, srgb_to_lab, srgb_to_linear
from medcolor.errors import MedcolorError

__all__ = ["IMAGE_SUFFIXES", "find_images", "load_images", "describe_data", "gray_l",
           "AugmentedColourDataset", "whole_images", "lab_of", "camera_shift", "random_camera"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom")
_E = 6.0 / 29.0


def find_images(folder: str | Path) -> list[Path]:
    """Sorted colour-image files under ``folder`` (recursive). MedcolorError if none."""
    root = Path(folder)
    if not root.is_dir():
        raise MedcolorError("not a folder", where=root, hint="give a folder of colour images (PNG/JPEG/TIFF/DICOM)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise MedcolorError("no colour images (PNG/JPEG/TIFF/DICOM) found", where=root,
                            hint="put the training photos in that folder")
    return files


def describe_data(folder: str | Path, files: Sequence[Path]) -> dict:
    """Training-data description for the manifest: folder name, count, sha256 of the file-name list."""
    names = "\n".join(sorted(p.name for p in files))
    return {"folder": "/".join(Path(folder).resolve().parts[-2:]), "n_images": len(files),
            "file_names_sha256": hashlib.sha256(names.encode()).hexdigest(),
            "first_files": sorted(p.name for p in files)[:5]}


def load_images(paths: Sequence[Path], work_size: int) -> list[torch.Tensor]:
    """float32 sRGB ``[3,H,W]`` in 0..1 per file, longer side shrunk to at most ``work_size``."""
    import cv2

    from medcolor.io import read_image_rgb

    out = []
    for p in paths:
        rgb, _sha = read_image_rgb(p)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 8:
            raise MedcolorError(f"not a usable colour image (shape {rgb.shape})", where=p)
        h, w = rgb.shape[:2]
        scale = work_size / max(h, w)
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        out.append(torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0))
    return out


def gray_l(L: torch.Tensor) -> torch.Tensor:
    """L* of the 8-bit sRGB gray that encodes ``L`` (what ``medcolor run`` reads from a gray PNG)."""
    fy = (L + 16.0) / 116.0
    y = torch.where(fy > _E, fy ** 3, 3 * _E ** 2 * (fy - 4.0 / 29.0))
    s = torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)
    g = (s.clamp(0, 1) * 255.0).round() / 255.0
    y = torch.where(g <= 0.04045, g / 12.92, ((g + 0.055) / 1.055) ** 2.4)
    f = torch.where(y > _E ** 3, y.clamp(min=_E ** 3) ** (1.0 / 3.0), y / (3 * _E ** 2) + 4.0 / 29.0)
    return f * 116.0 - 16.0


def lab_of(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``(*,3,H,W)`` 0..1 -> Lab."""
    return srgb_to_lab(rgb.clamp(0.0, 1.0))


def _sample(img: torch.Tensor, size: int, rng: np.random.Generator, augment: bool) -> torch.Tensor:
    """One ``size``x``size`` sRGB view of ``img`` ``[3,H,W]`` (augmented when ``augment``)."""
    H, W = img.shape[-2:]
    if not augment:
        return F.interpolate(img[None], size=(size, size), mode="area")[0] if min(H, W) >= size else \
            F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    area = rng.uniform(0.55, 1.0)
    aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    sx = min(1.0, math.sqrt(area * aspect))      # half-extent in normalised coordinates (1 = whole)
    sy = min(1.0, math.sqrt(area / aspect))
    cx = rng.uniform(-(1 - sx), 1 - sx)
    cy = rng.uniform(-(1 - sy), 1 - sy)
    ang = math.radians(rng.uniform(-12.0, 12.0))
    fx = -1.0 if rng.random() < 0.5 else 1.0
    fy = -1.0 if rng.random() < 0.5 else 1.0
    gain = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    c, s = math.cos(ang), math.sin(ang)
    theta = torch.tensor([[c * sx * fx, -s * sy * fy, cx], [s * sx * fx, c * sy * fy, cy]], dtype=torch.float32)
    # shrink first (area) so the bilinear resampling does not alias
    src = img[None]
    target = int(size / max(sx, sy) * 1.2)
    if max(H, W) > target:
        k = target / max(H, W)
        src = F.interpolate(src, size=(max(8, round(H * k)), max(8, round(W * k))), mode="area")
    grid = F.affine_grid(theta[None], [1, 3, size, size], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
    if gain != 1.0:
        lin = torch.where(out <= 0.04045, out / 12.92, ((out.clamp(min=0) + 0.055) / 1.055) ** 2.4) * gain
        out = torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)
    return out.clamp_(0.0, 1.0)


def camera_shift(rgb: torch.Tensor, gains: tuple[float, float, float] = (1.0, 1.0, 1.0), exposure: float = 1.0,
                 gamma: float = 1.0, chroma: float = 1.0) -> torch.Tensor:
    """sRGB ``[3,H,W]`` (0..1) re-rendered: per-channel ``gains`` times ``exposure`` in linear light
    (clipped at white), then ``srgb ** gamma``, then CIE-Lab chroma times ``chroma`` (L kept, clipped
    into sRGB). Returns sRGB ``[3,H,W]`` in 0..1."""
    g = torch.tensor(gains, dtype=rgb.dtype).view(3, 1, 1) * exposure
    out = linear_to_srgb((srgb_to_linear(rgb.clamp(0.0, 1.0)) * g).clamp(0.0, 1.0)).clamp(0.0, 1.0) ** gamma
    if chroma != 1.0:
        lab = srgb_to_lab(out)
        out = lab_to_srgb(torch.cat([lab[:1], lab[1:] * chroma])).clamp(0.0, 1.0)
    return out


def random_camera(rng: np.random.Generator, strength: float) -> dict:
    """Random ``camera_shift`` arguments (log-uniform; see the module docstring)."""
    def u(r: float) -> float:
        return math.exp(rng.uniform(-r, r) * strength)
    return {"gains": (u(0.15), u(0.08), u(0.5)), "exposure": u(0.4), "gamma": u(0.25), "chroma": u(0.4)}


def _make_item(img: torch.Tensor, size: int, rng: np.random.Generator, augment: bool, index: int = -1,
               camera: float = 0.0) -> dict:
    rgb = _sample(img, size, rng, augment)
    if camera > 0:
        rgb = camera_shift(rgb, **random_camera(rng, camera))
    lab = lab_of(rgb)
    return {"L": gray_l(lab[:1]).clamp(0.0, 100.0), "ab": lab[1:], "rgb": rgb, "image": int(index)}


def _dataset_base():
    from monai.data import Dataset

    return Dataset


class AugmentedColourDataset(_dataset_base()):  # type: ignore[misc]
    """MONAI Dataset of ``length`` augmented samples ``{"L" [1,S,S], "ab" [2,S,S], "rgb" [3,S,S],
    "image": index of the source image}``.

    Item ``i`` uses image ``perm_e[i % n]`` (a fresh permutation per epoch ``e = i // n``) and the
    generator ``default_rng([seed, i])``: the same ``seed`` gives the same samples in any order, with
    any number of loader workers, after ``--resume`` and on every DDP rank.
    """

    def __init__(self, images: list[torch.Tensor], size: int, length: int, seed: int = 0,
                 augment: bool = True, camera: float = 0.0) -> None:
        super().__init__(data=range(length), transform=None)  # type: ignore[arg-type]
        self.images = images
        self.size = int(size)
        self.seed = int(seed)
        self.augment = augment
        self.camera = float(camera)

    def _transform(self, index: int) -> dict:
        n = len(self.images)
        epoch, k = divmod(int(index), n)
        perm = np.random.default_rng([self.seed, 1_000_003, epoch]).permutation(n)
        rng = np.random.default_rng([self.seed, int(index)])
        return _make_item(self.images[int(perm[k])], self.size, rng, self.augment, int(perm[k]), self.camera)


def whole_images(images: list[torch.Tensor], size: int) -> dict:
    """Every image resized whole to ``size``x``size`` (validation): stacked ``L``, ``ab``, ``rgb``."""
    items = [_make_item(img, size, np.random.default_rng(0), False) for img in images]
    return {k: torch.stack([it[k] for it in items]) for k in ("L", "ab", "rgb")}
