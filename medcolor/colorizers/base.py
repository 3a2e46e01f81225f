"""The colouriser contract and device resolution.

A colouriser turns the L channel of CIE-Lab (the windowed slice, L in 0..100) into a/b chroma:

    col = SomeColorizer(device="cpu", **options)
    col.prepare(ctx, sample_L)          # once per series; sample_L: float32 [N,1,H,W], L in 0..100
    ab = col.colorize(L)                # L: float32 [B,1,H,W] in 0..100 -> ab: float32 [B,2,h,w]
    col.provenance()                    # {"method", "parameters", "reference_sha256", "model_sha256"}

``h, w`` may be smaller than ``H, W`` (the pipeline upsamples ab and joins it to the full-resolution
source L, which is never changed). All tensor work happens on ``self.device``. Backends never read
files and never write DICOM: anything they need (a reference photo, a checkpoint's tensors) is given
to the constructor as data.

A backend declares ``batched`` (True: a network, coloured a whole batch at a time) and may rely on one
rule about threads: the pipeline never calls one instance from two threads at once.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from medcolor import texture
from medcolor.errors import MedcolorError
from medcolor.types import SeriesContext

__all__ = ["Colorizer", "PixelKeys", "resolve_device", "local_mean_std", "check_L", "texture_level"]

_DEVICE_HINT = "use --device cpu or auto"


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"cuda:N"`` (or a torch.device) -> torch.device.

    ``"auto"`` (or None) picks ``cuda`` when ``torch.cuda.is_available()`` and ``cpu`` otherwise.
    Asking for CUDA without a CUDA device, or for a device index that does not exist, raises
    MedcolorError naming ``--device``.
    """
    if isinstance(spec, torch.device):
        text = str(spec)
    else:
        text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index: int | None = None
        if text != "cuda":
            raw = text[len("cuda:"):]
            if not raw.isdigit():
                raise MedcolorError(f"bad CUDA device {spec!r}", where="--device",
                                    hint="use auto, cpu, cuda or cuda:N with N a device number")
            index = int(raw)
        if not torch.cuda.is_available():
            raise MedcolorError("CUDA was requested but no CUDA device is available", where="--device",
                                hint=_DEVICE_HINT)
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise MedcolorError(f"CUDA device {index} was requested but only {count} CUDA device(s) exist "
                                f"(numbered 0..{count - 1})", where="--device",
                                hint=f"use --device cuda:0..cuda:{count - 1}, cpu or auto")
        return torch.device("cuda", index) if index is not None else torch.device("cuda")
    raise MedcolorError(f"unknown device {spec!r}", where="--device", hint="use auto, cpu, cuda or cuda:N")


def check_L(L: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Validate an L batch ``[B,1,H,W]`` (a single ``[1,H,W]`` or ``[H,W]`` slice is promoted) and
    return it as float32 on ``device``. Raises ValueError for other shapes (a programming error)."""
    if not isinstance(L, torch.Tensor):
        L = torch.as_tensor(L)
    if L.ndim == 2:
        L = L[None, None]
    elif L.ndim == 3:
        L = L[None]
    if L.ndim != 4 or L.shape[1] != 1 or L.shape[-1] < 1 or L.shape[-2] < 1:
        raise ValueError(f"L must be [B,1,H,W], got {tuple(L.shape)}")
    return L.to(device=device, dtype=torch.float32)


def _box_sum(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sum over a ``size``×``size`` window (zero padding), as shifted adds of a separable box:
    ~10× faster on CPU than ``avg_pool2d`` for small windows, and exactly the same sums per window
    wherever the window sits (so the result does not depend on the pixel's position)."""
    r = size // 2
    H, W = x.shape[-2:]
    p = F.pad(x, (r, r, r, r))
    rows = p[..., :, 0:W].clone()
    for i in range(1, size):
        rows += p[..., :, i:i + W]
    out = rows[..., 0:H, :].clone()
    for i in range(1, size):
        out += rows[..., i:i + H, :]
    return out


def _box_sum_cv2(x: torch.Tensor, size: int) -> torch.Tensor:
    """``_box_sum`` on the CPU with OpenCV's SIMD box filter (zero border, unnormalised): the same
    sums, measured ~5x faster than the shifted adds for 512x512 float32."""
    import cv2

    arr = x.detach().contiguous().numpy()
    flat = arr.reshape(-1, *arr.shape[-2:])
    out = np.empty_like(flat)
    for i, plane in enumerate(flat):
        cv2.boxFilter(plane, -1, (size, size), dst=out[i], normalize=False, borderType=cv2.BORDER_CONSTANT)
    return torch.from_numpy(out.reshape(arr.shape))


def local_mean_std(L: torch.Tensor, size: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Local mean and standard deviation of ``L`` ``[B,1,H,W]`` over a ``size``×``size`` neighbourhood
    (``size`` odd).

    One box-filter pass over the stacked channels ``L`` and ``L²``; near the border only the pixels
    inside the image count (like ``avg_pool2d(..., count_include_pad=False)``), so any size down to
    1×1 works. Values are centred on 50 first to keep float32 cancellation in ``E[L²]-E[L]²`` small.
    Returns ``(mean, std)``, both ``[B,1,H,W]`` float32 on L's device.
    """
    H, W = L.shape[-2:]
    x = L - 50.0
    count = torch.from_numpy(texture.box_count(H, size)[:, None] * texture.box_count(W, size)[None, :]).to(L.device)
    if L.device.type == "cpu":
        sums = _box_sum_cv2(torch.cat([x, x * x], dim=1), size)
    else:
        sums = _box_sum(torch.cat([x, x * x], dim=1), size)
    pooled = sums / count
    m, m2 = pooled[:, :1], pooled[:, 1:]
    var = (m2 - m * m).clamp_(min=0.0)
    return m + 50.0, var.sqrt_()


@dataclass(frozen=True)
class PixelKeys:
    """What a backend's chroma at a pixel depends on, when that is only the pixel's own L and, with
    ``texture_size``, a *texture level*: ``round(local std of L over texture_size² * texture_scale)``
    clamped to ``0 .. texture_levels - 1`` (:func:`texture_level`). A backend that says so lets the
    pipeline tabulate its whole per-pixel chain once per series (:mod:`medcolor.valuetable`)."""

    texture_size: int | None = None
    texture_scale: float = 0.0
    texture_levels: int = 1


def texture_level(L: torch.Tensor, keys: PixelKeys) -> torch.Tensor:
    """The texture level map ``[B,1,H,W]`` (float32 holding integers) of ``L`` ``[B,1,H,W]`` under ``keys``:
    ``round(local std of L * texture_scale)`` clamped to ``0 .. texture_levels - 1`` (:func:`local_mean_std`
    over ``texture_size``²). The one definition both the backend and the pipeline's value tables use; on the
    CPU :func:`medcolor.texture.levels`, the same float32 arithmetic as ``local_mean_std`` in place on numpy
    arrays (the same values, tested; it runs on every slice of a value table)."""
    size = keys.texture_size or 1
    if L.device.type != "cpu":
        _, s = local_mean_std(L, size)
        return (s * keys.texture_scale).round_().clamp_(0.0, float(keys.texture_levels - 1))
    return torch.from_numpy(texture.levels(L.detach().to(torch.float32).numpy(), size, keys.texture_scale,
                                           keys.texture_levels))


class Colorizer(abc.ABC):
    """Base class of every backend (see the module docstring for the contract).

    Subclasses set ``name`` and ``summary``, list their constructor options in ``option_names`` and
    implement ``prepare``, ``colorize`` and ``provenance``. ``warnings`` holds one-line messages for
    the run report (no patient data), refreshed by ``prepare`` for each series.

    ``batched``: True for backends whose cost is a network over the whole image (cnn, cyclegan): the
    pipeline hands them whole batches on the main thread. False (per-pixel backends): the pipeline colours
    one slice at a time on its worker threads.

    Threads: the pipeline calls ``prepare``, ``colorize`` and ``colorize_keys`` of one instance from one
    thread at a time (never concurrently), so a backend needs no locking of its own; it must not keep
    per-call state that a later call depends on, other than what ``prepare`` builds.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    option_names: ClassVar[tuple[str, ...]] = ()
    batched: ClassVar[bool] = False

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        self.device: torch.device = device if isinstance(device, torch.device) else resolve_device(device)
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            known = ", ".join(self.option_names) or "none"
            raise MedcolorError(f"unknown option(s) {', '.join(unknown)} for backend {self.name!r}",
                                where="--method", hint=f"options it takes: {known}")
        self.options: dict[str, Any] = dict(options)
        self.warnings: list[str] = []

    @classmethod
    def availability(cls, device: torch.device | str = "cpu") -> tuple[bool, str]:
        """``(available, reason)`` for ``device``; reason is "" when available. The base checks only
        that a requested CUDA device exists; backends add their own needs (weights, packages)."""
        dev = torch.device(device) if not isinstance(device, torch.device) else device
        if dev.type == "cuda" and not torch.cuda.is_available():
            return False, "CUDA was requested but no CUDA device is available"
        return True, ""

    @abc.abstractmethod
    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        """Series-level state from a sample of the series' slices ``[N,1,H,W]`` (L in 0..100), computed
        once; every slice of the series then shares the same mapping."""

    @abc.abstractmethod
    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """``L`` float32 ``[B,1,H,W]`` in 0..100 -> ab float32 ``[B,2,h,w]`` on ``self.device``. A backend
        that replaces L (only ``cyclegan`` with ``l_lock=False``, research mode) returns the whole Lab
        ``[B,3,h,w]``; the pipeline then encodes that L and reports the ΔL it causes."""

    def pixel_keys(self) -> PixelKeys | None:
        """``PixelKeys`` when (after ``prepare``) the chroma at a pixel is a function of its L and at most
        a texture level, so :meth:`colorize_keys` gives it for any list of keys; None (the default) when
        it depends on more (a network's receptive field)."""
        return None

    def colorize_keys(self, L: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        """ab ``[1,2,1,N]`` at the keys ``L`` ``[1,1,1,N]`` (and ``level``, same shape, when the keys have a
        texture), exactly as :meth:`colorize` gives it at a pixel with those keys. The default serves
        backends keyed on L alone: their ``colorize`` is per pixel."""
        if level is not None:
            raise NotImplementedError(f"{type(self).__name__} has no texture keys")
        return self.colorize(L)

    @abc.abstractmethod
    def provenance(self) -> dict[str, Any]:
        """``{"method": str, "parameters": dict, "reference_sha256": str | None,
        "model_sha256": str | None}``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={str(self.device)!r})"
