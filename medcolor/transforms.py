"""medcolor as MONAI dictionary transforms, for a ``monai.transforms.Compose`` over a volume dataset.

* ``LoadImaged(keys)``: MONAI's ``LoadImaged`` with medcolor's reader (``medcolor.io.MedcolorReader``): a
  DICOM series folder, NIfTI, MHA/NRRD or plain image -> float32 modality values (HU for CT, or for any
  input with ``modality="CT"``) ``[slices, rows, cols]``, a MetaTensor whose meta has the LPS affine,
  ``modality`` and ``is_hu``.
* ``WindowToLd(keys, window)``: modality values -> L* 0..100 (``medcolor.windowing``; same windowing as
  ``medcolor run``).
* ``Colorized(keys, window, method=...)``: L* ``[slices, rows, cols]`` (or ``[1, slices, rows, cols]``) ->
  8-bit sRGB ``[3, slices, rows, cols]`` uint8 under ``"{key}_rgb"``, with any backend (exemplar, lut, cnn,
  cyclegan: the same registry and options as ``medcolor run``). The backend's series state is fitted once
  per item (per volume) on ``sample_slices`` evenly spaced slices, as the pipeline does per series; the L
  of the output is the input L (chroma-only gamut mapping).

MONAI is imported when this module is; ``import medcolor`` alone does not import it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Hashable, Mapping

import numpy as np
import torch
from monai.transforms import LoadImaged as _MonaiLoadImaged
from monai.transforms import MapTransform

from medcolor.color import lab_to_rgb8, upsample_ab
from medcolor.colorizers import resolve_device
from medcolor.io import MedcolorReader
from medcolor.types import SeriesContext, Window
from medcolor.windowing import WindowToLd

__all__ = ["LoadImaged", "WindowToLd", "Colorized"]


class LoadImaged(_MonaiLoadImaged):
    """``monai.transforms.LoadImaged`` reading with :class:`medcolor.io.MedcolorReader`. ``modality``: set
    the modality of NIfTI/MHA/NRRD/image inputs (``"CT"``: values are HU, ``meta["is_hu"]`` is True), like
    ``medcolor run --modality``."""

    def __init__(self, keys: Any, modality: str | None = None, series_index: int | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, reader=MedcolorReader(series_index=series_index, modality=modality),
                         image_only=True, allow_missing_keys=allow_missing_keys)


class Colorized(MapTransform):
    """L* -> RGB with a medcolor backend; see the module docstring. ``window``: the window that made L
    (backends that colour by tissue read HU back from L through it); ``reference``: exemplar's photo
    (default: the shipped beef); ``backend_options``: as ``medcolor run`` passes them (e.g. ``model=``)."""

    def __init__(self, keys: Any, window: Window, method: str = "exemplar", reference: str | Path | None = None,
                 device: str = "cpu", sample_slices: int = 8, batch_size: int = 8, suffix: str = "_rgb",
                 allow_missing_keys: bool = False, **backend_options: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        from medcolor.pipeline import RunOptions, build_colorizer

        self.window, self.sample_slices, self.batch_size, self.suffix = window, sample_slices, batch_size, suffix
        self.device = resolve_device(device)
        options = RunOptions(output=Path("."), method=method, device=device, backend_options=backend_options,
                             reference=Path(reference) if reference is not None else None)
        self.colorizer = build_colorizer(options, self.device)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}{self.suffix}"] = self.colorize_volume(d[key])
        return d

    def colorize_volume(self, L: Any) -> torch.Tensor:
        """L* ``[S, H, W]`` or ``[1, S, H, W]`` (a MetaTensor's ``meta`` gives modality and is_hu) -> uint8
        ``[3, S, H, W]``."""
        meta = dict(getattr(L, "meta", {}) or {})
        vol = torch.as_tensor(np.asarray(L) if not isinstance(L, torch.Tensor) else L.as_subclass(torch.Tensor))
        vol = vol.float().reshape(-1, *vol.shape[-2:])
        n, rows, cols = vol.shape
        is_hu = bool(meta.get("is_hu", self.window.units == "HU"))
        ctx = SeriesContext(modality=str(meta.get("modality", "CT" if is_hu else "OT")), window=self.window,
                            is_hu=is_hu, n_slices=n, rows=rows, columns=cols)
        picks = np.unique(np.linspace(0, n - 1, min(n, self.sample_slices)).round().astype(int))
        self.colorizer.prepare(ctx, vol[picks].unsqueeze(1).to(self.device))
        out = torch.empty((n, 3, rows, cols), dtype=torch.uint8)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                batch = vol[start:start + self.batch_size].unsqueeze(1).to(self.device)
                ab = upsample_ab(self.colorizer.colorize(batch).float(), (rows, cols))
                if ab.shape[1] == 3:  # a backend that replaces L (cyclegan --no-l-lock)
                    batch, ab = ab[:, :1].clamp(0.0, 100.0), ab[:, 1:]
                out[start:start + len(batch)] = lab_to_rgb8(batch, ab).cpu()
        return out.permute(1, 0, 2, 3).contiguous()
