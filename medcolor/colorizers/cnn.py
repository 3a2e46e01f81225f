"""``cnn`` backend: an encoder-decoder trained by ``medcolor train`` predicts ab from L.

The network (``medcolor.nets.unet.LumaPriorUNet``) sees a copy of each slice resized to the
model resolution (``model_size``, from the checkpoint; area averaging, so a 4096x4096 slice costs one
cheap downscale and never a full-resolution network pass). Its output has two parts: the per-pixel
L -> ab curves (training-set prior + per-image curve from global context), evaluated on the source L
itself at up to ``max_chroma_pixels`` pixels (the full resolution for images up to 2048x2048), and a
spatial residual predicted at the model resolution and upsampled. ``colorize`` returns ab at that
chroma resolution; the pipeline upsamples it and joins it to the untouched full-resolution L.

Options (the pipeline reads the checkpoint and passes its contents; the backend never reads files):
``manifest`` (dict) and ``state_dict`` (tensors) from :func:`medcolor.nets.checkpoint.load_model_options`,
``model_label`` (name shown in provenance), ``max_chroma_pixels`` (default 2048*2048). The checkpoint's
``chroma_gain`` (``medcolor train --chroma-gain``/``--chroma-centre``, none when absent) scales the
predicted a,b towards its centre (:func:`medcolor.nets.checkpoint.apply_chroma_gain`).
Batched on any device; autocast (float16) on CUDA only.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from medcolor.colorizers.base import Colorizer, check_L
from medcolor.nets.checkpoint import apply_chroma_gain, chroma_gain, network_from_options
from medcolor.types import SeriesContext

__all__ = ["CnnColorizer", "predict_ab"]


def _resize_L(L: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(L.shape[-2:]) == size:
        return L
    if L.shape[-2] >= size[0] and L.shape[-1] >= size[1]:
        return F.interpolate(L, size=size, mode="area")
    return F.interpolate(L, size=size, mode="bilinear", align_corners=False)


def _chroma_size(H: int, W: int, max_pixels: int) -> tuple[int, int]:
    if H * W <= max_pixels:
        return H, W
    k = (max_pixels / (H * W)) ** 0.5
    return max(1, int(H * k)), max(1, int(W * k))


def predict_ab(net: torch.nn.Module, L: torch.Tensor, model_size: int,
               max_chroma_pixels: int = 2048 * 2048) -> torch.Tensor:
    """``L`` ``[B,1,H,W]`` (0..100) -> ab ``[B,2,h,w]`` with ``(h, w)`` = ``(H, W)`` up to
    ``max_chroma_pixels``, else a proportional downscale. No gradients."""
    B, _, H, W = L.shape
    m = int(model_size)
    small = _resize_L(L, (m, m))
    ch, cw = _chroma_size(H, W, max_chroma_pixels)
    L_c = _resize_L(L, (ch, cw))
    use_amp = L.device.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
        # slice by slice on the CPU (batch 8 cost 1.35x more per slice than batch 1 at 512x512,
        # benchmarks/run.py) and for large chroma; whole batches on CUDA
        per_slice = B > 1 and (ch * cw > 1 << 20 or L.device.type != "cuda")
        out = [net(small[i:i + 1], L_c[i:i + 1].float()).float() for i in range(B)] if per_slice \
            else [net(small, L_c).float()]
    return torch.cat(out, dim=0)


class CnnColorizer(Colorizer):
    """Learned chroma from a ``medcolor train`` checkpoint (see the module docstring)."""

    name = "cnn"
    summary = "encoder-decoder predicting a/b from L (luminance prior + per-image curve + U-Net residual)"
    option_names = ("manifest", "state_dict", "model_label", "max_chroma_pixels", "model")
    batched = True

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        super().__init__(device=device, **options)
        self.manifest, self.net, self.model_label = network_from_options(options, "cnn", self.device)
        self.model_size = int(self.manifest.get("model_size", 128))
        self.max_chroma_pixels = int(options.get("max_chroma_pixels") or 2048 * 2048)
        self.chroma_gain = chroma_gain(self.manifest)

    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        """Nothing per series: the network adapts per image (its global-context branch)."""
        self.warnings = []

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        L = check_L(L, self.device)
        return apply_chroma_gain(L, predict_ab(self.net, L, self.model_size, self.max_chroma_pixels), self.chroma_gain)

    def _gain_text(self) -> str:
        """The chroma gain as provenance shows it: ``0.96``, ``0.88,0.94`` (a, b), `` L slope 0.1`` and
        `` towards 27.3,33.3`` (its centre, when not a = b = 0) added."""
        g = self.chroma_gain
        text = f"{g['a']:g}" if g["a"] == g["b"] else f"{g['a']:g},{g['b']:g}"
        text += f" L slope {g['l_slope']:g}" if g["l_slope"] else ""
        return text + (" towards {:g},{:g}".format(*g["centre"]) if g.get("centre") else "")

    def provenance(self) -> dict[str, Any]:
        data = self.manifest.get("training_data") or {}
        params = {"model": self.model_label, "arch": self.manifest.get("architecture"),
                  "model_size": self.model_size, "chroma_gain": self._gain_text(), "trained_steps": self.manifest.get("steps"),
                  "trained_on": f"{data.get('folder', '?')} ({data.get('n_images', '?')} images)"}
        return {"method": f"cnn ({self.model_label})", "parameters": params, "reference_sha256": None,
                "model_sha256": self.manifest.get("weights_sha256")}
