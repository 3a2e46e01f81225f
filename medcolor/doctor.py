"""What this installation can do: versions, devices, transfer syntaxes that decode, backends."""
from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
from dataclasses import dataclass

import torch

from medcolor import __version__

PACKAGES = ("torch", "monai", "pydicom", "pynetdicom", "numpy", "scikit-image",
            "opencv-python-headless", "SimpleITK", "nibabel", "pylibjpeg", "pylibjpeg-openjpeg",
            "pylibjpeg-rle", "pyjpegls", "python-gdcm", "Pillow", "typer", "rich")

# transfer syntaxes medcolor reads, and the plug-in that would add a missing decoder
SYNTAX_HINTS = {
    "JPEGBaseline8Bit": "python-gdcm or Pillow",
    "JPEGExtended12Bit": "python-gdcm",
    "JPEGLossless": "python-gdcm",
    "JPEGLosslessSV1": "python-gdcm",
    "JPEGLSLossless": "pyjpegls or python-gdcm",
    "JPEGLSNearLossless": "pyjpegls or python-gdcm",
    "JPEG2000Lossless": "pylibjpeg-openjpeg or python-gdcm",
    "JPEG2000": "pylibjpeg-openjpeg or python-gdcm",
    "RLELossless": "pylibjpeg-rle (pydicom's own decoder is the fallback)",
}


@dataclass(frozen=True)
class SyntaxInfo:
    name: str
    uid: str
    available: bool
    plugins: tuple[str, ...]
    hint: str


def versions() -> dict[str, str]:
    out = {"medcolor": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def devices() -> dict[str, str]:
    info = {"cpu": f"{torch.get_num_threads()} threads"}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            info[f"cuda:{i}"] = torch.cuda.get_device_name(i)
    else:
        info["cuda"] = "not available (torch built for CPU or no GPU): --device cuda will fail"
    return info


def transfer_syntaxes() -> list[SyntaxInfo]:
    import pydicom.uid as u
    from pydicom.pixels import get_decoder

    rows = [SyntaxInfo("Implicit/Explicit VR Little Endian, Big Endian, Deflated", u.ExplicitVRLittleEndian,
                       True, ("pydicom",), "")]
    for attr, hint in SYNTAX_HINTS.items():
        uid = getattr(u, attr)
        try:
            dec = get_decoder(uid)
            plugins = tuple(dec.available_plugins)
            ok = dec.is_available
        except Exception:  # a missing or broken plug-in must not break doctor
            plugins, ok = (), False
        rows.append(SyntaxInfo(uid.name, str(uid), ok, plugins, "" if ok else f"pip install {hint}"))
    return rows


def tools() -> dict[str, str]:
    return {name: shutil.which(name) or "not found" for name in ("dciodvfy", "storescp", "Orthanc")}
