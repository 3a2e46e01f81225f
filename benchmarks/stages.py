"""Single-thread cost of each per-slice stage of `medcolor run`, on one 512x512 CT series (the profile
behind docs/benchmarks.md's "what changed"):

    python benchmarks/stages.py [--source DIR] [--n 100] [--repeats 3]

Series: ``make_series`` of benchmarks/pipeline_vs_floor.py (``--n`` slices cycled from ``--source``, default
../shared/data's chest CT, else sample_dicom/ct_chest), window W 1500 L -600. One thread for torch and
OpenCV. Each row is the fastest of ``--repeats`` passes over the slices, in ms per slice (per file for the
scan). Rows:

* scan: ``medcolor.io.scan`` of the folder, per file (``dcmread(stop_before_pixels=True)``, the attributes
  medcolor uses checked, the pixel data's offset located), and the same without the scan's pause of the
  cyclic garbage collector (the A/B of that pause);
* read: ``read_slice`` (modality values, HU) and, for comparison, pydicom ``dcmread`` + ``pixel_array``;
* general path per backend (the pipeline's ``_Chain`` stages): ``to_L`` (window), ``colour`` (backend +
  upsample), ``encode`` (chroma-only gamut map + 8-bit sRGB, torch), ``measure_slice`` (L* of the written
  pixels, |ΔL|, PSNR, SSIM, colourfulness);
* value-table path per backend: ``ValueTable.apply`` (window, colour and encode by look-up, and the L* of
  the colours), ``measure_slice`` given that L*, and the table's one-off ``build`` time;
* parts of the measure: ``lightness`` (L* of 8-bit sRGB), ``ssim`` of L as the run computes it (skimage's
  default SSIM with OpenCV's box filter), skimage's own ``structural_similarity`` for the same SSIM and,
  for comparison, with Gaussian weights (sigma 1.5, as medcolor reported before), colourfulness;
* write: the SC writer's ``write`` of one RGB instance.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pydicom
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT, make_series  # noqa: E402

from skimage.metrics import structural_similarity  # noqa: E402

from medcolor import metrics, pipeline  # noqa: E402
from medcolor.io import _scan, read_slice, scan  # noqa: E402
from medcolor.pipeline import RunOptions, build_colorizer  # noqa: E402
from medcolor.types import Derivation, SeriesContext  # noqa: E402
from medcolor.windowing import resolve_window  # noqa: E402
from medcolor.writers import get_writers  # noqa: E402


def _scan_gc_running(folder: Path) -> None:
    """``scan`` without its pause of the cyclic garbage collector (the A/B reference for that pause)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _scan._scan([folder])


def best(fn, items, repeats: int, warm: bool = True) -> float:
    """Fastest of ``repeats`` passes of ``fn`` over ``items``, ms per item (one warm-up call first)."""
    if warm:
        fn(items[0])
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        out = min(out, (time.perf_counter() - t0) / len(items) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="medcolor-stages-"))
    rows: list[tuple[str, float]] = []
    try:
        folder = make_series(a.source, a.n, work / "in")
        files = sorted(folder.glob("*.dcm"))

        rows.append(("scan, per file", min(_timed(lambda: scan([folder])) for _ in range(a.repeats)) / len(files) * 1e3))
        rows.append(("scan, per file, cyclic GC not paused (A/B)",
                     min(_timed(lambda: _scan_gc_running(folder)) for _ in range(a.repeats)) / len(files) * 1e3))
        series = scan([folder]).series[0]
        idx = list(range(len(series.slices)))
        rows.append(("read_slice (modality values)", best(lambda i: read_slice(series.slices[i], series), idx, a.repeats)))
        rows.append(("pydicom dcmread + pixel_array", best(lambda p: pydicom.dcmread(p).pixel_array, files, a.repeats)))
        values = [read_slice(series.slices[i], series) for i in idx]
        sample = np.stack(values[:8])
        window = resolve_window("1500,-600", series, sample)
        ctx = SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(idx),
                            rows=series.rows, columns=series.columns, inverted=False)
        tensors = [torch.from_numpy(v)[None, None] for v in values]
        rgbs = {}
        for method in ("lut", "exemplar"):
            col = build_colorizer(RunOptions(output=work / "unused", method=method), torch.device("cpu"))
            chain = pipeline._Chain(series, window, False, col, [])
            Ls = [chain.to_L(t) for t in tensors]
            if method == "lut":
                rows.append(("window (to_L)", best(chain.to_L, tensors, a.repeats)))
            col.prepare(ctx, torch.cat(Ls[:8]))
            rows.append((f"{method}: colour (backend + upsample)", best(chain.colour, Ls, a.repeats)))
            pairs = [chain.colour(L) for L in Ls]
            rows.append((f"{method}: encode (gamut map + 8-bit sRGB, torch)", best(lambda p: chain.encode(*p), pairs,
                                                                                   a.repeats)))
            rgbs[method] = [chain.encode(*p)[0] for p in pairs]
            rows.append((f"{method}: measure_slice", best(lambda k: metrics.measure_slice(Ls[k][0, 0].numpy(),
                                                                                          rgbs[method][k]),
                                                          idx, a.repeats)))
            t0 = time.perf_counter()
            table = pipeline._build_table(chain, sample, torch.device("cpu"))
            build_ms = (time.perf_counter() - t0) * 1e3
            if table is None:
                rows.append((f"{method}: value table", float("nan")))
                continue
            rows.append((f"{method}: ValueTable.apply (window, colour, encode, L*)", best(table.apply, values, a.repeats)))
            applied = [table.apply(v) for v in values]
            rows.append((f"{method}: measure_slice given the table's L*",
                         best(lambda d: metrics.measure_slice(*d), applied, a.repeats)))
            rows.append((f"{method}: ValueTable build, once per series", build_ms))
        l_in = [L[0, 0].numpy() for L in Ls]
        outs = [metrics.lightness(rgb) for rgb in rgbs["exemplar"]]
        rows.append(("lightness (L* of 8-bit sRGB)", best(metrics.lightness, rgbs["exemplar"], a.repeats)))
        rows.append(("ssim of L (metrics.ssim: the run's)",
                     best(lambda k: metrics.ssim(l_in[k], outs[k], 100.0), idx, a.repeats)))
        rows.append(("ssim of L (skimage, its defaults: the same SSIM)",
                     best(lambda k: structural_similarity(l_in[k], outs[k], data_range=100.0), idx, a.repeats)))
        rows.append(("ssim of L (skimage, Gaussian sigma 1.5)",
                     best(lambda k: structural_similarity(l_in[k], outs[k], data_range=100.0, gaussian_weights=True,
                                                          sigma=1.5, use_sample_covariance=False), idx, a.repeats)))
        rows.append(("colourfulness", best(metrics.colourfulness, rgbs["exemplar"], a.repeats)))
        deriv = Derivation(method="lut", window=window.describe(), parameters="", reference_sha256=None,
                           model_sha256=None, software_version="bench")
        out = work / "out"
        writer = get_writers("dicom", out, series, deriv, 1, overwrite=True)[0]
        rows.append(("SC write of one instance", best(lambda k: writer.write(k, series.slices[k], rgbs["lut"][k]),
                                                      idx, 1, warm=False)))
        writer.abort()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{a.n}-slice 512x512 CT from {a.source.name}; one thread; fastest of {a.repeats}; ms per slice")
    for name, ms in rows:
        print(f"{name:58s} {ms:8.2f}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
