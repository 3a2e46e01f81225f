"""Plain images (PNG, JPEG, TIFF): header scan, gray values for colourising, sRGB for references.

Gray values: 8-bit gray images give their values 0..255; 16-bit gray images their values as stored.
A colour photo is reduced to the sRGB gray that has the *same CIE L** (D65): with the linear-light
luminance ``Y = 0.212671 R + 0.715160 G + 0.072169 B`` (the Y row of medcolor.color's sRGB->XYZ
matrix) the gray is ``g = sRGB_encode(Y)`` (float, not rounded), so ``L*(g, g, g) == L*(R, G, B)``
and the "srgb" window recovers the photo's L* exactly.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medcolor.errors import MedcolorError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_Y_ROW = np.array([0.212671, 0.715160, 0.072169], dtype=np.float64)


@dataclass
class ImageInfo:
    rows: int
    columns: int
    bits: int          # 8, 16 (or 32 for float/32-bit TIFF)
    frames: int        # pages of a multi-page TIFF
    colour: bool       # stored as colour (RGB, palette, ...): read_slice gives its L* gray


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    bit_depth, colour_type = head[24], head[25]
    return bit_depth == 16 and colour_type in (2, 6)


def _tiff_is_16bit_colour(img) -> bool:  # noqa: ANN001 - PIL image
    try:
        bps = img.tag_v2.get(258)
    except AttributeError:
        return False
    if isinstance(bps, tuple):
        return len(bps) >= 3 and bps[0] == 16
    return False


def _open(path: Path):  # noqa: ANN202
    from PIL import Image

    try:
        return Image.open(path)
    except Exception as exc:
        raise MedcolorError(f"cannot read image ({' '.join(str(exc).split())[:160]})", where=path,
                            hint="is it a valid PNG/JPEG/TIFF file?") from None


def image_info(path: Path) -> ImageInfo:
    """Size, bit depth and colourness from the header only (no full decode)."""
    with _open(path) as img:
        w, h = img.size
        mode = img.mode
        frames = int(getattr(img, "n_frames", 1) or 1)
        wide_colour = (path.suffix.lower() == ".png" and _png_is_16bit_colour(path)) or \
            (path.suffix.lower() in (".tif", ".tiff") and _tiff_is_16bit_colour(img))
    if wide_colour:
        return ImageInfo(h, w, 16, frames, True)
    if mode.startswith("I;16") or mode == "I":
        bits = 16
    elif mode in ("F", "I;32"):
        bits = 32
    else:
        bits = 8
    colour = mode not in ("1", "L", "LA", "I", "F") and not mode.startswith("I;")
    return ImageInfo(h, w, bits, frames, colour)


def _gray_from_rgb(rgb: np.ndarray, full_scale: float) -> np.ndarray:
    """sRGB [H,W,3] in 0..full_scale -> the sRGB gray with the same CIE L*, float32 0..full_scale."""
    x = rgb[..., :3].astype(np.float64) / full_scale
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0].astype(np.float32)  # already gray: exact
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    y = np.clip(lin @ _Y_ROW, 0.0, 1.0)
    g = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)
    return (g * full_scale).astype(np.float32)


def _read_wide(path: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MedcolorError("cannot read image", where=path, hint="is it a valid PNG/TIFF file?")
    if arr.ndim == 3:
        arr = arr[..., :3][..., ::-1]  # BGR(A) -> RGB
    return arr


def read_image_gray(path: Path, frame: int | None = None) -> np.ndarray:
    """float32 [rows, cols]: gray values (0..255 for 8-bit, as stored for 16-bit; colour -> L* gray)."""
    from PIL import Image, ImageOps

    info = image_info(path)
    try:
        if info.bits == 16 and info.colour:
            arr = _read_wide(path)
            return _gray_from_rgb(arr, 65535.0) if arr.ndim == 3 else arr.astype(np.float32)
        with _open(path) as img:
            if frame:
                img.seek(frame)
            img = ImageOps.exif_transpose(img) if path.suffix.lower() in (".jpg", ".jpeg") else img
            mode = img.mode
            if mode in ("1", "L", "I", "F") or mode.startswith("I;"):
                arr = np.asarray(img.convert("L") if mode == "1" else img)
                return arr.astype(np.float32)
            if mode == "LA":
                return np.asarray(img)[..., 0].astype(np.float32)
            if mode == "P" and img.palette is not None and img.palette.mode == "L":
                return np.asarray(img.convert("L")).astype(np.float32)
            rgb = np.asarray(img.convert("RGB"))
            return _gray_from_rgb(rgb, 255.0)
    except MedcolorError:
        raise
    except Exception as exc:
        raise MedcolorError(f"cannot decode image ({' '.join(str(exc).split())[:160]})", where=path,
                            hint="the file is truncated or corrupt") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize == 2 and a.max() > 255:
        a = a / 257.0
    elif a.max() > 255 or a.min() < 0:
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo if hi > lo else 1.0) * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def read_rgb_plain(path: Path) -> np.ndarray:
    """uint8 [H,W,3] sRGB from a PNG/JPEG/TIFF (alpha dropped, EXIF orientation applied)."""
    from PIL import ImageOps

    info = image_info(path)
    try:
        if info.bits == 16 and info.colour:
            return _to_uint8(_read_wide(path))
        with _open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I", "F") or img.mode.startswith("I;"):
                gray = _to_uint8(np.asarray(img))
                return np.repeat(gray[..., None], 3, axis=2)
            return np.ascontiguousarray(np.asarray(img.convert("RGB")))
    except MedcolorError:
        raise
    except Exception as exc:
        raise MedcolorError(f"cannot decode image ({' '.join(str(exc).split())[:160]})", where=path,
                            hint="the file is truncated or corrupt") from None


__all__ = ["IMAGE_SUFFIXES", "ImageInfo", "image_info", "read_image_gray", "read_rgb_plain", "sha256_file"]
