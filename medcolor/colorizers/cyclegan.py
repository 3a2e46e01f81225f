"""``cyclegan`` backend: the ``G_color`` generator of ``medcolor train --method cyclegan`` predicts ab
from L.

The generator is fully convolutional; it runs on a copy of each slice resized so its longer side is
the scale the model was trained at (``work_size`` in the manifest, overridable with ``infer_size``),
any aspect ratio and any size (padded to a multiple of 4 inside the network and cropped back). It
returns ab at that size; the pipeline upsamples it and joins it to the untouched full-resolution L,
so the output has the input's size and L (the L-lock). A model trained with ``--no-l-lock`` predicts
sRGB; its ab (of that sRGB) is returned and joined to the source L the same way.

``l_lock=False`` (``medcolor run --no-l-lock``, research reproduction): the backend returns the whole
Lab of G_color's colour image (its own L, 3 channels); the pipeline writes that raw colour and the
report's ΔL shows how far its lightness is from the source.

Options (the pipeline reads the checkpoint; the backend never reads files): ``manifest`` and
``state_dict`` from :func:`medcolor.nets.checkpoint.load_model_options`, ``model_label``,
``infer_size``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medcolor.color import srgb_to_lab
from medcolor.colorizers.base import Colorizer, check_L
from medcolor.nets.checkpoint import network_from_options
from medcolor.types import SeriesContext

__all__ = ["CycleGanColorizer"]


class CycleGanColorizer(Colorizer):
    """Chroma from a CycleGAN ``G_color`` checkpoint (see the module docstring)."""

    name = "cyclegan"
    summary = "CycleGAN generator (unpaired gray/colour training) predicting a/b from L"
    option_names = ("manifest", "state_dict", "model_label", "infer_size", "model", "l_lock")
    batched = True

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        super().__init__(device=device, **options)
        self.manifest, self.net, self.model_label = network_from_options(options, "cyclegan", self.device,
                                                                         use_default=False)
        self.infer_size = int(options.get("infer_size") or self.manifest.get("work_size") or 256)
        self.l_lock = bool(options.get("l_lock", True))

    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        """Nothing per series."""
        self.warnings = []

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        L = check_L(L, self.device)
        H, W = L.shape[-2:]
        k = min(1.0, self.infer_size / max(H, W))
        size = (max(4, round(H * k)), max(4, round(W * k)))
        small = L if size == (H, W) else F.interpolate(L, size=size, mode="area")
        # CUDA: the whole batch in one call (instance norm is per image), float16 autocast; CPU: slice by
        # slice (benchmarks/run.py: batch 8 cost 1.7x more per slice than batch 1 at 512x512)
        cuda = small.device.type == "cuda"
        parts = [small] if cuda else [small[i:i + 1] for i in range(small.shape[0])]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            if not self.l_lock:  # raw colour: the Lab of the generator's own RGB
                return torch.cat([srgb_to_lab(self.net.rgb(x).float()) for x in parts])
            return torch.cat([self.net(x).float() for x in parts])

    def provenance(self) -> dict[str, Any]:
        data = self.manifest.get("training_data") or {}
        params = {"model": self.model_label, "arch": self.manifest.get("architecture"),
                  "l_lock": self.l_lock, "trained_l_lock": (self.manifest.get("arch_args") or {}).get("l_lock", True),
                  "luma_prior": bool((self.manifest.get("arch_args") or {}).get("luma_prior", False)),
                  "infer_size": self.infer_size, "trained_steps": self.manifest.get("steps"),
                  "trained_on": f"{data.get('folder', '?')} ({data.get('n_images', '?')} images)"}
        return {"method": f"cyclegan ({self.model_label})", "parameters": params, "reference_sha256": None,
                "model_sha256": self.manifest.get("weights_sha256")}
