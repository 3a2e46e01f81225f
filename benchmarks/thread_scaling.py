"""How the per-slice chain of `medcolor run` scales with the pool's threads, with and without the SC write
(issue 16: where the time goes once the scan is done):

    python benchmarks/thread_scaling.py [--source DIR] [--n 400] [--threads 1,2,3]

Series: ``make_series`` of benchmarks/pipeline_vs_floor.py (``--n`` 512x512 slices cycled from ``--source``,
default ../shared/data's chest CT, else sample_dicom/ct_chest), scanned once, window W 1500 L -600. For lut
and exemplar (``sample_dicom/refs/beef_marbled.jpg``), the pipeline's own chain (``pipeline._Chain`` with the
series' value table: read, look-up, measures, and with ``write`` the DICOM SC writer) runs every slice on a
``ThreadPoolExecutor`` of each thread count, as ``_run_series`` does. Rows: wall ms per slice, CPU ms per
slice (user + system of the whole process) and their ratio (how many cores the chain kept busy).
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT, make_series  # noqa: E402

from medcolor import pipeline  # noqa: E402
from medcolor.io import scan  # noqa: E402
from medcolor.pipeline import RunOptions  # noqa: E402
from medcolor.types import Derivation, SeriesContext  # noqa: E402
from medcolor.windowing import resolve_window, window_to_l  # noqa: E402
from medcolor.writers import get_writers  # noqa: E402


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--threads", default="1,2,3")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="medcolor-scaling-"))
    try:
        series = scan([make_series(a.source, a.n, work / "in")]).series[0]
        n = len(series.slices)
        sample = pipeline._read_sample(series, 8, {})
        window = resolve_window("1500,-600", series, sample)
        ctx = SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu, n_slices=n,
                            rows=series.rows, columns=series.columns, inverted=False)
        print(f"{n}-slice 512x512 CT from {a.source.name}; per-slice chain after the scan; ms per slice")
        for method in ("lut", "exemplar"):
            ref = ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg" if method == "exemplar" else None
            col = pipeline.build_colorizer(RunOptions(output=work, method=method, reference=ref), torch.device("cpu"))
            col.prepare(ctx, window_to_l(torch.from_numpy(sample)[:, None], window))
            deriv = Derivation(method=method, window=window.describe(), parameters="", reference_sha256=None,
                               model_sha256=None, software_version="bench")
            for threads in (int(t) for t in a.threads.split(",")):
                for write in (False, True):
                    writers = get_writers("dicom", work / "out", series, deriv, 1, overwrite=True) if write else []
                    chain = pipeline._Chain(series, window, False, col, writers)
                    chain.table = pipeline._build_table(chain, sample, torch.device("cpu"))
                    with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                        list(pool.map(chain.slice, range(min(8, n))))          # warm-up (numba, caches)
                        c0, t0 = cpu_s(), time.perf_counter()
                        list(pool.map(chain.slice, range(n)))
                        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
                    for w in writers:
                        w.abort()
                    what = "read, look-up, measures, write" if write else "read, look-up, measures"
                    print(f"{method:8s} {what:31s} threads={threads}: wall {wall / n * 1e3:5.2f}  "
                          f"CPU {cpu / n * 1e3:5.2f}  cores busy {cpu / wall:4.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
