"""Small colour images and tiny cnn checkpoints for the cnn/train/evaluate tests (no shared data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import BEEF

TINY = dict(steps=3, size=32, batch_size=2, base=8, levels=2, val_every=0, checkpoint_every=0)


def make_crops(folder: Path, n: int = 4, size: int = 72) -> Path:
    """``n`` colour crops of the shipped beef photo (PNG, one JPEG) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.open(BEEF).convert("RGB")
    W, H = im.size
    rng = np.random.default_rng(7)
    for i in range(n):
        x, y = int(rng.integers(0, W - size)), int(rng.integers(0, H - size))
        crop = im.crop((x, y, x + size, y + size))
        crop.save(folder / (f"crop{i}.jpg" if i == n - 1 else f"crop{i}.png"), quality=95)
    return folder


def tiny_config(data: Path, out: Path, **kw):
    from medcolor.train.loop import TrainConfig

    args = dict(TINY)
    args.update(kw)
    return TrainConfig(data=data, output=out, **args)
