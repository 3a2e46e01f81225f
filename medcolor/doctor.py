"""What this installation can do: versions, devices, transfer syntaxes that decode, backends."""
from __future__ import annotations

import importlib.metadata as md
import platform
import re
import shutil
from dataclasses import dataclass

import torch

from medcolor import __version__

# shown when medcolor's own metadata cannot be read (e.g. run from a checkout that was never installed)
CORE_PACKAGES = ("torch", "monai", "pydicom", "numpy")

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


def packages() -> list[str]:
    """The distributions medcolor declares (pyproject.toml, read from the installed metadata): every
    dependency, then the optional extras' (not the test extra), each once."""
    return list(extras_of())


def extras_of() -> dict[str, str | None]:
    """Each declared distribution (as :func:`packages`) -> the extra that brings it (None: a dependency)."""
    try:
        requires = md.requires("medcolor") or []
    except md.PackageNotFoundError:
        return dict.fromkeys(CORE_PACKAGES)
    names: dict[str, str | None] = {}
    for req in requires:
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if (extra is None or extra.group(1) != "test") and name not in names:
            names[name] = extra.group(1) if extra else None
    return names


def versions() -> dict[str, str]:
    """Versions of python, medcolor and each declared dependency ("not installed" when absent, with the
    extra that brings it: "not installed (pip install 'medcolor[stow]')")."""
    out = {"medcolor": __version__, "python": platform.python_version()}
    for name, extra in extras_of().items():
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed" + (f" (pip install 'medcolor[{extra}]')" if extra else "")
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


def models() -> list[tuple[str, str, str, str]]:
    """The shipped models of ``medcolor/models/manifest.json`` as ``(method, name, status, description)``;
    status is "default", "available", "withdrawn: <reason>" (kept in the manifest, no file, refused by
    ``--model``) or "file missing"."""
    from medcolor.nets.checkpoint import MODELS_DIR, default_model, shipped_models

    rows = []
    for key, entry in shipped_models().items():
        method, name = str(entry.get("method", "cnn")), str(entry.get("name", key))
        if entry.get("withdrawn"):
            status = f"withdrawn: {entry['withdrawn']}"
        elif not (MODELS_DIR / str(entry.get("file", ""))).is_file():
            status = "file missing"
        else:
            status = "default" if default_model(method) == name else "available"
        rows.append((method, name, status, str(entry.get("description", ""))))
    return rows
