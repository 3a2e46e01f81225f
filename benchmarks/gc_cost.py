"""Time the cyclic garbage collector takes inside `medcolor.pipeline.run` (issue 16), with and without the
scan's pause of the collector and the run's ``gc.freeze`` of what is alive after the scan:

    python benchmarks/gc_cost.py [--source DIR] [--sizes 100,400] [--method exemplar] [--repeats 2]

Series: ``make_series`` of benchmarks/pipeline_vs_floor.py (512x512 slices cycled from ``--source``, default
../shared/data's chest CT, else sample_dicom/ct_chest), window W 1500 L -600, exemplar with
sample_dicom/refs/beef_marbled.jpg (lut: no reference). Each run is ``pipeline.run`` in this process (torch
and the backend loaded, as in ``medcolor run``); ``gc.callbacks`` count the collections of each generation
and the seconds spent in them. "as before" replaces ``medcolor.io._scan._gc_paused`` and ``gc_frozen`` with
no-ops (the A/B). Rows: size, variant, the run's seconds, collections and seconds per generation; the
fastest of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT, make_series  # noqa: E402

from medcolor import pipeline  # noqa: E402
from medcolor.io import _scan  # noqa: E402
from medcolor.pipeline import RunOptions  # noqa: E402


def timed_run(folder: Path, out: Path, options: RunOptions) -> tuple[float, dict[int, list[float]]]:
    """(seconds of ``pipeline.run``, {generation: [collections, seconds in them]})."""
    spent: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    start: list[float] = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            spent[info["generation"]][0] += 1
            spent[info["generation"]][1] += time.perf_counter() - start[0]

    shutil.rmtree(out, ignore_errors=True)
    gc.collect()
    gc.callbacks.append(callback)
    try:
        t0 = time.perf_counter()
        pipeline.run([folder], options)
        return time.perf_counter() - t0, spent
    finally:
        gc.callbacks.remove(callback)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--sizes", default="100,400")
    ap.add_argument("--method", default="exemplar", choices=("exemplar", "lut"))
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medcolor-gc-"))
    shipped = (_scan._gc_paused, _scan.gc_frozen, pipeline.gc_frozen)
    try:
        ref = ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg" if a.method == "exemplar" else None
        options = RunOptions(output=work / "out", method=a.method, reference=ref, window="1500,-600")
        print(f"pipeline.run, {a.method}, 512x512 CT from {a.source.name}; fastest of {a.repeats}")
        print(f"{'slices':>6}  {'variant':<10} {'run s':>6}  collections (seconds) per generation 0 / 1 / 2")
        for n in (int(s) for s in a.sizes.split(",")):
            folder = make_series(a.source, n, work / f"in{n}")
            for variant in ("shipped", "as before"):
                off = variant == "as before"
                _scan._gc_paused = contextlib.nullcontext if off else shipped[0]
                _scan.gc_frozen = pipeline.gc_frozen = contextlib.nullcontext if off else shipped[1]
                runs = [timed_run(folder, work / "out", options) for _ in range(a.repeats)]
                seconds, spent = min(runs, key=lambda r: r[0])
                gens = " / ".join(f"{int(c)} ({s:.3f})" for c, s in spent.values())
                print(f"{n:>6}  {variant:<10} {seconds:6.2f}  {gens}")
    finally:
        _scan._gc_paused, _scan.gc_frozen, pipeline.gc_frozen = shipped
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
