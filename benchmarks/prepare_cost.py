"""What the exemplar's per-series preparation costs (issue 16: a fixed cost of every run and every series of a
batch), with the two choices it makes for speed against what they replaced:

    python benchmarks/prepare_cost.py [--source DIR] [--window 1500,-600] [--repeats 5]

Input: the series at ``--source`` (default ../shared/data's 30-slice chest CT if present, else
sample_dicom/ct_chest), its sample of 8 slices read and windowed as ``medcolor run`` does, and the exemplar
backend with sample_dicom/refs/beef_marbled.jpg in ``tissue`` mode. In this process, fastest of ``--repeats``:

* ``Colorizer.prepare`` as shipped, and with ``welsh.sorted_values`` replaced by ``torch.sort`` (the A/B of
  numpy's sort);
* the Hounsfield class of every informative sample pixel: class weights per pixel (as before) against per
  distinct L, then indexed per pixel (as shipped); the two must agree pixel for pixel.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT  # noqa: E402

from medcolor import pipeline  # noqa: E402
from medcolor.colorizers import welsh  # noqa: E402
from medcolor.colorizers.hounsfield import class_weights, hu_from_l  # noqa: E402
from medcolor.io import scan  # noqa: E402
from medcolor.types import SeriesContext  # noqa: E402
from medcolor.windowing import resolve_window, window_to_l  # noqa: E402


def fastest(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--window", default="1500,-600")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()

    series = scan([a.source]).series[0]
    sample = pipeline._read_sample(series, 8, {})
    window = resolve_window(a.window, series, sample)
    sample_l = window_to_l(torch.from_numpy(sample).unsqueeze(1), window, invert=False)
    ctx = SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(series.slices),
                        rows=series.rows, columns=series.columns, inverted=False)
    options = pipeline.RunOptions(output=Path("unused"), method="exemplar", exemplar_mode="tissue",
                                  reference=ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg")
    colorizer = pipeline.build_colorizer(options, torch.device("cpu"))
    colorizer.prepare(ctx, sample_l)   # the process-wide tables (gamut map) built once, outside the timings
    shipped = fastest(lambda: colorizer.prepare(ctx, sample_l), a.repeats)
    numpy_sort = welsh.sorted_values
    welsh.sorted_values = lambda x: torch.sort(x).values
    try:
        torch_sort = fastest(lambda: colorizer.prepare(ctx, sample_l), a.repeats)
    finally:
        welsh.sorted_values = numpy_sort

    L = sample_l.flatten()
    L = L[(L > 0.5) & (L < 99.5)]
    values = torch.unique(L)

    def by_pixel() -> torch.Tensor:
        return class_weights(hu_from_l(L, window)).argmax(dim=0)

    def by_distinct() -> torch.Tensor:     # as tissue.build_tissue_tables does it
        v, w = torch.unique(L, return_inverse=True)
        return class_weights(hu_from_l(v, window)).argmax(dim=0)[w]

    if not torch.equal(by_pixel(), by_distinct()):
        raise SystemExit("FAIL: the classes per distinct L differ from the classes per pixel")
    t_pixel = fastest(by_pixel, a.repeats)
    t_distinct = fastest(by_distinct, a.repeats)

    print(f"{a.source.name}: 8-slice sample, {L.numel()} informative pixels ({values.numel()} distinct L), "
          f"window {window.describe()}, fastest of {a.repeats}")
    print(f"exemplar tissue prepare, as shipped (numpy sort)      {shipped:7.3f} s")
    print(f"exemplar tissue prepare, with torch.sort              {torch_sort:7.3f} s")
    print(f"Hounsfield class of each pixel: weights per pixel     {t_pixel:7.3f} s")
    print(f"Hounsfield class of each pixel: per distinct L        {t_distinct:7.3f} s (the same classes)")


if __name__ == "__main__":
    main()
