"""CNN inference throughput at 512x512 (batch 1 and 8) next to the DICOM I/O floor.

    python benchmarks/cnn_inference.py [--model retina] [--device auto] [--slices 48] [--source DIR]

``--model``: a shipped cnn model name (``retina``, the only one since ``meat`` was withdrawn) or a
checkpoint from ``medcolor train``.

* ``cnn colorize``: ``CnnColorizer.colorize`` on [B,1,512,512] L batches (the network at the model
  resolution + the per-pixel curves at 512x512), after two warm-up batches;
* ``cnn colorize + Lab->RGB8``: the same plus the pipeline's join to L and 8-bit encoding;
* the I/O floors of the first issue (pydicom read; read + write of an RGB SC), measured here on the
  sample CT cycled to ``--slices`` slices (``benchmarks/pipeline_vs_floor.py`` helpers).
Prints slices/s per row (best of 3 rounds). Threads: torch's default (all cores).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from medcolor.color import lab_to_rgb8  # noqa: E402
from medcolor.colorizers import get_colorizer, resolve_device  # noqa: E402
from medcolor.nets.checkpoint import load_model_options  # noqa: E402


def rate(fn, batch: int, n: int, rounds: int = 3) -> float:
    """Best of ``rounds`` timings of ``n`` slices (the machine is shared: the best is the least disturbed)."""
    fn()
    fn()
    reps = max(1, n // batch)
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = max(best, reps * batch / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="retina")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--slices", type=int, default=48)
    ap.add_argument("--source", type=Path, default=ROOT / "sample_dicom" / "ct_chest")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    col = get_colorizer("cnn", device=dev, **load_model_options(a.model))
    gen = torch.Generator().manual_seed(0)
    rows = []
    for b in (1, 8):
        L = (torch.rand(b, 1, 512, 512, generator=gen) * 100).to(dev)
        with torch.inference_mode():
            rows.append((f"cnn colorize, batch {b}", rate(lambda: col.colorize(L), b, a.slices)))
            rows.append((f"cnn colorize + Lab->RGB8, batch {b}",
                         rate(lambda: lab_to_rgb8(L, col.colorize(L)), b, a.slices)))
    try:
        from pipeline_vs_floor import floor, make_series

        with tempfile.TemporaryDirectory() as tmp:
            series = make_series(a.source, a.slices, Path(tmp) / "ct")
            floor(series, None)
            t = floor(series, None)
            rows.append(("I/O floor: pydicom read", a.slices / t))
            t = floor(series, Path(tmp) / "w")
            rows.append(("I/O floor: read + write RGB SC", a.slices / t))
    except Exception as exc:  # noqa: BLE001 - the floor is context, not the subject
        print(f"(I/O floor not measured: {type(exc).__name__}: {exc})")
    print(f"device {dev}, torch threads {torch.get_num_threads()}, model {a.model}, 512x512")
    print(f"{'what':40s} {'slices/s':>9s}")
    for name, r in rows:
        print(f"{name:40s} {r:9.1f}")


if __name__ == "__main__":
    main()
