"""Colourisation backends: registry + one module per backend.

    from medcolor.colorizers import get_colorizer, list_backends, resolve_device
    col = get_colorizer("exemplar", device="cpu", reference_rgb=rgb, reference_sha256=sha)
    col.prepare(ctx, sample_L)      # once per series
    ab = col.colorize(L)            # [B,1,H,W] L 0..100 -> [B,2,h,w] ab

Backend modules are imported lazily (only when asked for by name).
"""
from medcolor.colorizers.base import Colorizer, local_mean_std, resolve_device
from medcolor.colorizers.registry import (
    ENTRY_POINT_GROUP,
    BackendInfo,
    backend_names,
    get_colorizer,
    list_backends,
    load_backend_class,
    register_backend,
)

__all__ = [
    "Colorizer", "BackendInfo", "ENTRY_POINT_GROUP", "backend_names", "get_colorizer", "list_backends",
    "load_backend_class", "local_mean_std", "register_backend", "resolve_device",
]
