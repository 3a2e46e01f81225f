"""Single-thread cost of each per-slice stage of `medcolor run`, on one 512x512 CT series (the profile
behind docs/benchmarks.md's "what changed"):

    python benchmarks/stages.py [--source DIR] [--n 100] [--repeats 3]

Series: ``make_series`` of benchmarks/pipeline_vs_floor.py (``--n`` slices cycled from ``--source``, default
../shared/data's chest CT, else sample_dicom/ct_chest), window W 1500 L -600. One thread for torch and
OpenCV. Each row is the fastest of ``--repeats`` passes over the slices, in ms per slice (per file for the
scan). Rows:

* scan: ``medcolor.io.scan`` of the folder, per file (``dcmread(stop_before_pixels=True)``, the attributes
  medcolor uses checked, the pixel data's offset located);
* read: ``read_slice`` (modality values, HU) and, for comparison, pydicom ``dcmread`` + ``pixel_array``;
* general path per backend: ``window_to_l``, ``colorize`` (+ upsample), ``lab_to_rgb8_hwc_numpy`` (chroma-only
  gamut map + 8-bit encode), ``measure_rgb8`` (L* of the written pixels, |ΔL|, PSNR, colourfulness);
* value-table path per backend: ``ValueTable.apply`` (all of the above from the series' table), and the
  table's one-off ``build`` time;
* ``ssim`` of L (one-pass kernel) and the old five-blur ``_ssim_cv2``;
* write: ``SecondaryCaptureWriter.write`` of one RGB instance.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT, make_series  # noqa: E402

from medcolor import valuetable  # noqa: E402
from medcolor.color import lab_to_rgb8_hwc_numpy, upsample_ab  # noqa: E402
from medcolor.io import read_slice, scan  # noqa: E402
from medcolor.metrics import _ssim_cv2, measure_rgb8, ssim  # noqa: E402
from medcolor.pipeline import RunOptions, build_colorizer  # noqa: E402
from medcolor.types import Derivation, SeriesContext  # noqa: E402
from medcolor.windowing import resolve_window, window_to_l  # noqa: E402
from medcolor.writers import get_writers  # noqa: E402


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

        scan_s = min(_timed(lambda: scan([folder])) for _ in range(a.repeats))
        rows.append(("scan, per file", scan_s / len(files) * 1e3))
        series = scan([folder]).series[0]
        idx = list(range(len(series.slices)))
        rows.append(("read_slice (modality values)", best(lambda i: read_slice(series.slices[i], series), idx, a.repeats)))
        rows.append(("pydicom dcmread + pixel_array", best(lambda p: pydicom.dcmread(p).pixel_array, files, a.repeats)))
        values = [read_slice(series.slices[i], series) for i in idx]
        sample = np.stack(values[:8])
        window = resolve_window("1500,-600", series, sample)
        Ls = [window_to_l(torch.from_numpy(v)[None, None], window) for v in values]
        rows.append(("window_to_l", best(lambda v: window_to_l(torch.from_numpy(v)[None, None], window), values,
                                         a.repeats)))
        ctx = SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(idx),
                            rows=series.rows, columns=series.columns, inverted=False)
        rgbs = {}
        for method in ("lut", "exemplar"):
            col = build_colorizer(RunOptions(output=work / "unused", method=method), torch.device("cpu"))
            col.prepare(ctx, torch.cat(Ls[:8]))
            with torch.inference_mode():
                def colorize(L, col=col):
                    return upsample_ab(col.colorize(L).float(), (series.rows, series.columns))
                rows.append((f"{method}: colorize + upsample", best(colorize, Ls, a.repeats)))
                abs_ = [colorize(L) for L in Ls]
            pairs = list(zip(Ls, abs_))
            rows.append((f"{method}: lab_to_rgb8_hwc_numpy (gamut map + encode)",
                         best(lambda p: lab_to_rgb8_hwc_numpy(p[0][0, 0].numpy(), p[1][0].numpy()), pairs, a.repeats)))
            rgbs[method] = [lab_to_rgb8_hwc_numpy(L[0, 0].numpy(), ab[0].numpy()) for L, ab in pairs]
            rows.append((f"{method}: measure_rgb8", best(lambda k: measure_rgb8(Ls[k][0, 0].numpy(), rgbs[method][k]),
                                                         idx, a.repeats)))
            t0 = time.perf_counter()
            table = valuetable.build(col, window, False, sample, len(idx) * series.rows * series.columns,
                                     torch.device("cpu"))
            build_ms = (time.perf_counter() - t0) * 1e3
            if table is None:
                rows.append((f"{method}: value table", float("nan")))
                continue
            rows.append((f"{method}: ValueTable.apply (all of the above)", best(table.apply, values, a.repeats)))
            rows.append((f"{method}: ValueTable build, once per series", build_ms))
        outs = [measure_rgb8(Ls[k][0, 0].numpy(), rgbs["lut"][k])[0] for k in idx]
        rows.append(("ssim of L (one-pass kernel)", best(lambda k: ssim(Ls[k][0, 0].numpy(), outs[k], 100.0), idx,
                                                        a.repeats)))
        rows.append(("ssim of L (five cv2 blurs)", best(lambda k: _ssim_cv2(Ls[k][0, 0].numpy(), outs[k], 100.0), idx,
                                                       a.repeats)))
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
