"""Backend registry: a name maps to a lazily imported class (after pydicom's decoder plug-ins and
MONAI's option look-up).

Built-in names are listed in ``_BUILTIN``; third parties add backends through the entry-point group
``medcolor.colorizers`` (``name = "package.module:Class"``), or at run time with
``register_backend``. Nothing is imported until a backend is asked for, so a broken or heavy backend
never slows or breaks the others. A built-in name always wins over an entry point of the same name.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import torch

from medcolor.colorizers.base import resolve_device
from medcolor.errors import MedcolorError

__all__ = ["BackendInfo", "ENTRY_POINT_GROUP", "get_colorizer", "list_backends", "load_backend_class",
           "register_backend", "backend_names"]

ENTRY_POINT_GROUP = "medcolor.colorizers"


@dataclass(frozen=True)
class _Entry:
    target: str | None          # "module:Class", or None for a name reserved but not shipped
    summary: str
    reason: str = ""            # why a reserved name is unavailable
    origin: str = "builtin"     # "builtin" | "entry point <dist>" | "registered"


@dataclass(frozen=True)
class BackendInfo:
    """What ``medcolor doctor`` shows for a backend: ``reason`` is "" when ``available``."""

    name: str
    available: bool
    reason: str
    summary: str


_BUILTIN: dict[str, _Entry] = {
    "exemplar": _Entry("medcolor.colorizers.exemplar:ExemplarColorizer",
                       "chroma from a reference photo keyed by luminance and 5x5 texture "
                       "(Welsh et al. 2002)"),
    "lut": _Entry("medcolor.colorizers.lut:LutColorizer",
                  "deterministic HU-to-colour ramps (CT-Muscle-like); the baseline"),
    "cnn": _Entry("medcolor.colorizers.cnn:CnnColorizer",
                  "encoder-decoder predicting a/b from L (trained with medcolor train)"),
    "cyclegan": _Entry("medcolor.colorizers.cyclegan:CycleGanColorizer",
                       "CycleGAN generator trained on unpaired gray and colour images (medcolor train --method cyclegan)"),
}
_REGISTERED: dict[str, _Entry] = {}


def register_backend(name: str, target: str, summary: str = "") -> None:
    """Register ``name`` -> ``"module:Class"`` at run time (tests, notebooks). Built-ins cannot be
    replaced."""
    key = name.strip().lower()
    if key in _BUILTIN:
        raise ValueError(f"{key!r} is a built-in backend and cannot be replaced")
    _REGISTERED[key] = _Entry(target, summary, origin="registered")


def _entry_point_entries() -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken installed distribution must not break the registry
        return out
    for ep in eps:
        key = ep.name.strip().lower()
        if key in _BUILTIN or key in out:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
        out[key] = _Entry(ep.value, f"third-party backend from {dist}", origin=f"entry point ({dist})")
    return out


def _all_entries() -> dict[str, _Entry]:
    entries = dict(_BUILTIN)
    for key, entry in {**_entry_point_entries(), **_REGISTERED}.items():
        entries.setdefault(key, entry)
    return entries


def backend_names() -> list[str]:
    """Every known backend name: built-ins first, then third-party ones, sorted."""
    entries = _all_entries()
    return list(_BUILTIN) + sorted(k for k in entries if k not in _BUILTIN)


def _import_target(target: str) -> type:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"{target} is not a class")
    for method in ("prepare", "colorize", "provenance"):
        if not callable(getattr(obj, method, None)):
            raise TypeError(f"{target} has no {method}() method")
    return obj


def _unknown(name: str) -> MedcolorError:
    names = backend_names()
    close = difflib.get_close_matches(name.strip().lower(), names, n=1, cutoff=0.5)
    what = f"unknown colouriser {name!r}"
    if close:
        what += f" (did you mean {close[0]!r}?)"
    return MedcolorError(what, where="--method", hint=f"known backends: {', '.join(names)}")


def load_backend_class(name: str) -> type:
    """Import and return the class registered as ``name``. MedcolorError for unknown names, names
    reserved for backends not shipped yet, and backends whose import fails."""
    key = name.strip().lower()
    entry = _all_entries().get(key)
    if entry is None:
        raise _unknown(name)
    if entry.target is None:
        raise MedcolorError(f"backend {key!r} is not available: {entry.reason}", where="--method",
                            hint=f"use one of the available backends ({', '.join(_available_names())}); "
                                 "`medcolor doctor` lists them")
    try:
        return _import_target(entry.target)
    except Exception as err:  # ImportError, AttributeError, TypeError from a third-party package
        raise MedcolorError(f"backend {key!r} could not be loaded from {entry.target}: "
                            f"{type(err).__name__}: {err}", where="--method",
                            hint="reinstall the package that provides it, or choose another backend") from err


def _available_names() -> list[str]:
    return [k for k, e in _all_entries().items() if e.target is not None]


def _availability(cls: type, device: torch.device | str) -> tuple[bool, str]:
    check = getattr(cls, "availability", None)
    if check is None:
        return True, ""
    ok, reason = check(device)
    return bool(ok), str(reason or "")


def get_colorizer(name: str, device: torch.device | str = "cpu", **options: Any):
    """Build the backend ``name`` on ``device`` (a torch.device, or a spec for ``resolve_device``)
    with backend ``options``. Raises MedcolorError (one line: what, where, what to do) for unknown or
    unavailable backends and for a device that does not exist."""
    cls = load_backend_class(name)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    ok, reason = _availability(cls, dev)
    if not ok:
        raise MedcolorError(f"backend {name.strip().lower()!r} is not available on {dev}: {reason}",
                            where="--method", hint="use --device cpu, or run `medcolor doctor` to see what "
                                                   "each backend needs")
    return cls(device=dev, **options)


def list_backends(device: torch.device | str = "cpu") -> list[BackendInfo]:
    """One BackendInfo per known backend, for ``medcolor doctor``. Importing a backend to ask for its
    availability is done here (lazily, once per call); import failures become the reason."""
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = resolve_device(device)
        except MedcolorError:          # e.g. "cuda" without CUDA: report it per backend, do not raise
            dev = torch.device("cuda") if str(device).lower().startswith("cuda") else torch.device("cpu")
    infos: list[BackendInfo] = []
    entries = _all_entries()
    for key in backend_names():
        entry = entries[key]
        if entry.target is None:
            infos.append(BackendInfo(key, False, entry.reason, entry.summary))
            continue
        try:
            cls = _import_target(entry.target)
        except Exception as err:
            infos.append(BackendInfo(key, False, f"could not be loaded: {type(err).__name__}: {err}",
                                     entry.summary))
            continue
        summary = getattr(cls, "summary", "") or entry.summary
        try:
            ok, reason = _availability(cls, dev)
        except Exception as err:
            ok, reason = False, f"availability check failed: {type(err).__name__}: {err}"
        infos.append(BackendInfo(key, ok, reason, summary))
    return infos
