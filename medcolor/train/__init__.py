"""Training of the learned backends (``cnn``): data, losses, loop, checkpoints with manifests.

    from medcolor.train import TrainConfig, train
    train(TrainConfig(data="photos/", output="model.pt", max_minutes=10))

Submodules are imported lazily (MONAI is only needed by the data pipeline).
"""
from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "train", "load_checkpoint", "save_checkpoint", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name in ("TrainConfig", "train"):
        from medcolor.train import loop

        return getattr(loop, name)
    if name in ("load_checkpoint", "save_checkpoint", "resolve_model"):
        from medcolor.train import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'medcolor.train' has no attribute {name!r}")
