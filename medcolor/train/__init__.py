"""Training of the learned backends (``cnn``, ``cyclegan``): data, losses, loops, checkpoint writing.

    from medcolor.train import TrainConfig, train
    train(TrainConfig(data="photos/", output="model.pt", max_minutes=10))

The networks and checkpoint reading are :mod:`medcolor.nets` (inference never imports this package).
Submodules are imported lazily (MONAI is only needed by the data pipeline).
"""
from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "train", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in ("TrainConfig", "train"):
        from medcolor.train import loop

        return getattr(loop, name)
    if name == "save_checkpoint":
        from medcolor.train import checkpoint

        return checkpoint.save_checkpoint
    raise AttributeError(f"module 'medcolor.train' has no attribute {name!r}")
