"""A/B of the value table's look-up: ``ValueTable.apply`` (the numba gather kernel, ``medcolor._gather``)
against the same look-ups written with numpy, on the slices ``medcolor run`` colours:

    python benchmarks/gather_ab.py [--source DIR] [--repeats 5]

For lut and exemplar (W 1500 L -600) on every slice of ``--source`` (default ../shared/data's chest CT, else
sample_dicom/ct_chest): the series' table as the pipeline builds it, then per slice value -> row -> L_in,
the texture level (exemplar), row + level -> rgb8 and L_out. Prints, single-threaded, the fastest of
``--repeats`` passes in ms per slice for both, and checks that they give the same arrays. The product keeps
the kernel only while its row shows it pays.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT  # noqa: E402

from medcolor import pipeline  # noqa: E402
from medcolor.io import read_slice, scan  # noqa: E402
from medcolor.types import SeriesContext  # noqa: E402
from medcolor.valuetable import ValueTable  # noqa: E402
from medcolor.windowing import resolve_window  # noqa: E402


def numpy_apply(t: ValueTable, values: np.ndarray):
    """``ValueTable.apply`` with numpy look-ups (for clamped linear windows, as here)."""
    off = np.clip(values, t.lo, t.lo + t.n_rows - 1) - np.float32(t.lo)
    row = off.astype(np.intp)
    if not np.array_equal(row, off):
        return None
    l_in = t.l_tab.take(row)
    cell = row if t.levels is None else row * t.n_levels + t.levels(l_in)
    return l_in, t.rgb_tab.take(cell, axis=0), t.lout_tab.take(cell)


def best_ms(fn, items, repeats: int) -> float:
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
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    series = scan([a.source]).series[0]
    values = [read_slice(ref, series) for ref in series.slices]
    sample = np.stack(values[:8])
    window = resolve_window("1500,-600", series, sample)
    print(f"value-table look-up, {len(values)} {series.rows}x{series.columns} slices of {a.source.name}, "
          f"W 1500 L -600; one thread; fastest of {a.repeats}; ms per slice")
    for method in ("lut", "exemplar"):
        col = pipeline.build_colorizer(pipeline.RunOptions(output=Path("unused"), method=method), torch.device("cpu"))
        chain = pipeline._Chain(series, window, False, col, [])
        col.prepare(SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=len(values),
                                  rows=series.rows, columns=series.columns),
                    chain.to_L(torch.from_numpy(sample)[:, None]))
        table = pipeline._build_table(chain, sample, torch.device("cpu"))
        for v in values:
            assert all(np.array_equal(x, y) for x, y in zip(table.apply(v), numpy_apply(table, v)))
        print(f"{method + ': ValueTable.apply (numba gather kernel)':62s} {best_ms(table.apply, values, a.repeats):8.2f}")
        print(f"{method + ': the same look-ups in numpy':62s} "
              f"{best_ms(lambda v: numpy_apply(table, v), values, a.repeats):8.2f}")


if __name__ == "__main__":
    main()
