"""read -> window -> L -> colour -> encode -> measure -> write, per slice, with accounting of every input.

``run(inputs, options)`` is the one entry point the CLI uses; ``colour_series`` colours one series (``run``
calls it for every series, ``medcolor.batch`` once per task). Per series, a few slices are read to resolve
the window and to let the backend build its series-level state; for a per-pixel backend on integer values
the colour stage is then a per-series value table (``medcolor.valuetable``), built from this module's own
stage functions (``_Chain.keys``). Every slice then goes through one chain of stages (``_Chain``) on one
thread pool:

* per-pixel backends on the CPU: the whole chain of a slice on a pool thread -- read, window, colour (the
  table's look-up, which is pure and thread-safe, or the backend), encode, measure, write;
* network backends (``Colorizer.batched``) and any GPU: batches are read by a DataLoader (reader
  processes), windowed and coloured on the main thread, a whole batch at a time; each slice is then
  encoded, measured and written on a pool thread.

The backend is called from one thread at a time (a lock), as the Colorizer contract promises; writers are
called one at a time too, and stage every file before publishing it atomically.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from medcolor import __version__, texture, valuetable
from medcolor.color import lab_to_rgb8, to_hwc_numpy, upsample_ab
from medcolor.colorizers import get_colorizer, resolve_device
from medcolor.colorizers.base import Colorizer
from medcolor.errors import MedcolorError, environment_fault
from medcolor.io import (SliceItems, check_modality, gc_frozen, hounsfield_note, read_image_rgb, read_item, read_slice,
                         scan, set_modality)
from medcolor.metrics import lightness, measure_slice, summarize_series
from medcolor.privacy import PhiRedactor
from medcolor.report import write_report
from medcolor.types import Derivation, FileOutcome, RunResult, Series, SeriesContext, SeriesResult, Window
from medcolor.windowing import resolve_window, window_to_l
from medcolor.writers import FORMATS, get_writers

__all__ = ["RunOptions", "RunResult", "SeriesResult", "run", "colour_series", "build_colorizer", "FORMATS",
           "DEFAULT_REFERENCE"]

log = logging.getLogger("medcolor")

DEFAULT_REFERENCE = Path(__file__).parent / "data" / "beef_marbled.jpg"

ProgressCallback = Callable[..., None]


@dataclass
class RunOptions:
    """Options of ``medcolor run`` (see ``medcolor run --help`` for their meaning). ``reader_workers``:
    reader processes feeding a network backend (or any GPU) its batches; per-pixel backends on the CPU
    read on the pipeline's own threads."""

    output: Path
    method: str = "exemplar"
    reference: Path | None = None
    window: str | None = None
    device: str = "auto"
    fmt: str = "dicom"
    multiframe: bool = False
    overwrite: bool = False
    batch_size: int = 8
    reader_workers: int = 1
    exemplar_mode: str = "auto"
    deidentify: bool = False
    report_phi: bool = False
    sample_slices: int = 8
    backend_options: dict[str, Any] = field(default_factory=dict)
    tissue_map: Path | None = None      # exemplar tissue/gram: JSON class -> population overrides
    vgg19_weights: Path | None = None   # exemplar gram: local torchvision VGG-19 state dict
    modality: str | None = None         # --modality for NIfTI / volume / image inputs (CT: values are HU)
    reformat: tuple[str, ...] = ()      # --reformat planes (medcolor.reformat); empty: the slices as stored
    reformat_spacing: float | None = None  # --reformat-spacing, mm in-plane


def _noop(*_: Any, **__: Any) -> None:
    return None


def build_colorizer(options: RunOptions, device: torch.device) -> Colorizer:
    """The backend for this run, built once (the reference photo is read here, not by the backend)."""
    backend_options = dict(options.backend_options)
    if options.method == "exemplar":
        ref = options.reference or DEFAULT_REFERENCE
        rgb, sha = read_image_rgb(ref)
        from medcolor.colorizers.exemplar import read_exemplar_files  # --tissue-map, --vgg19-weights: read here
        backend_options.update(reference_rgb=rgb, reference_sha256=sha, mode=options.exemplar_mode,
                               **read_exemplar_files(options.tissue_map, options.vgg19_weights))
    for flag, value in (("--ref", options.reference), ("--tissue-map", options.tissue_map),
                        ("--vgg19-weights", options.vgg19_weights)):
        if value is not None and options.method != "exemplar":
            raise MedcolorError(f"{flag} is only used by --method exemplar, not {options.method}", where=flag,
                                hint=f"drop {flag} or use --method exemplar")
    method = options.method.strip().lower()
    if method in ("cnn", "cyclegan"):  # the checkpoint is read here, not by the backend
        from medcolor.nets.checkpoint import load_model_options

        backend_options.update(load_model_options(backend_options.pop("model", None), method))
    return get_colorizer(options.method, device=device, **backend_options)


def run(inputs: Sequence[str | Path], options: RunOptions, progress: ProgressCallback | None = None) -> RunResult:
    """Colour every image series found in ``inputs`` and write outputs and ``report.json`` to
    ``options.output``. Raises MedcolorError only for problems with the options themselves; problems
    with an input are recorded as failed outcomes and the other inputs are still processed."""
    progress = progress or _noop
    if options.fmt not in FORMATS:
        raise MedcolorError(f"unknown output format {options.fmt!r}", where="--format",
                            hint=f"use one of {', '.join(FORMATS)}")
    if options.batch_size < 1:
        raise MedcolorError("batch size must be at least 1", where="--batch-size")
    from medcolor import reformat

    modality, planes = check_modality(options.modality), reformat.parse_planes(options.reformat)
    reformat.check_options(planes, options.reformat_spacing, options.multiframe)
    device = resolve_device(options.device)
    colorizer = build_colorizer(options, device)
    t0 = time.perf_counter()
    found = scan(inputs)
    with gc_frozen():  # the headers live until the run ends
        outcomes: list[FileOutcome] = list(found.outcomes)
        redactor = PhiRedactor.from_series(found.series, enabled=not options.report_phi)
        out_dir = Path(options.output)
        out_dir.mkdir(parents=True, exist_ok=True)
        progress("scan_done", n_series=len(found.series), n_outcomes=len(outcomes),
                 seconds=time.perf_counter() - t0)
        results: list[SeriesResult] = []
        uid_map: dict[str, str] = {}
        number = 1
        for series in found.series:
            note = set_modality(series, modality)
            series.warnings.extend([note] if note else [])
            if planes:
                done, series_outcomes = reformat.colour_planes(
                    series, number, planes, options, colorizer, device, colour_series,
                    _sample_indices(len(series.slices), options.sample_slices), out_dir=out_dir, redactor=redactor,
                    uid_map=uid_map, progress=progress)
            else:
                result, series_outcomes = colour_series(series, number, options, colorizer, device, out_dir, redactor,
                                                        uid_map, progress)
                done = [result]
            outcomes.extend(series_outcomes)
            results.extend(done)
            number += len(done)
        run_result = RunResult(series=results, outcomes=outcomes, report_path=None, device=str(device), redact=redactor)
        run_result.report_path = write_report(out_dir, run_result, options, redactor,
                                              seconds=time.perf_counter() - t0)
        return run_result


def colour_series(series: Series, number: int, options: RunOptions, colorizer: Colorizer, device: torch.device,
                  out_dir: Path, redactor: PhiRedactor, uid_map: dict[str, str],
                  progress: ProgressCallback | None = None) -> tuple[SeriesResult, list[FileOutcome]]:
    """Colour one series as output series ``number`` (``out_dir/S{number:03d}_{MOD}``); never raises for a
    problem with the input (the result says failed, with the reason), only KeyboardInterrupt passes through.
    Returns the series result and one outcome per input file of the series. ``uid_map``: the run's
    de-identification map (share one per run). Used by ``run`` and by ``medcolor.batch`` per task."""
    progress = progress or _noop
    label = f"S{number:03d}_{series.modality}"
    result = SeriesResult(label=label, modality=series.modality, kind=series.kind,
                          n_slices=len(series.slices), rows=series.rows, columns=series.columns,
                          warnings=[redactor(w) for w in series.warnings])
    result.source = redactor(series.source_label)
    first = series.slices[0].dataset if series.slices else None
    if first is not None:
        result.description = redactor(str(first.get("SeriesDescription", "") or ""))
        if options.report_phi:
            result.patient = f"{first.get('PatientName', '') or ''} ({first.get('PatientID', '') or ''})"
    progress("series_start", label=label, total=len(series.slices), source=redactor(series.source_label))
    slice_status: dict[int, str] = {}
    try:
        with _threads(colorizer, device):
            _run_series(series, number, result, colorizer, options, device, out_dir, slice_status, uid_map,
                        progress)
    except MedcolorError as err:
        result.status = "failed"
        result.error = redactor(err.one_line())
    except KeyboardInterrupt:
        raise
    except OSError as err:  # the disk (read-only, full...): what to do, not "report it"
        result.status = "failed"
        result.error = redactor(environment_fault(err).one_line())  # type: ignore[union-attr]
    except Exception as err:  # an internal error must not stop the other series
        log.debug("internal error in %s", label, exc_info=True)
        result.status = "failed"
        result.error = redactor(f"{series.source_label}: internal error {type(err).__name__}: {err}. "
                                "Run with --debug and report it")
    series_outcomes = _series_outcomes(series, result, slice_status, redactor)
    progress("series_end", result=result)
    return result, series_outcomes


@contextlib.contextmanager
def _threads(colorizer: Colorizer, device: torch.device) -> Iterator[None]:
    """Thread counts for one series. OpenCV: one (the pool threads already spread the slices over the
    cores). torch on the main thread: a network keeps every core for its batches; with a per-pixel backend
    the main thread only prepares the series, on one core fewer than there are (as many OpenMP threads as
    cores stall whenever another process holds one of them), while a side thread loads the numba kernels
    (``_warm_kernels``). Only on that path, which forks no reader process, and joined before the series
    ends: a fork while a thread imports would leave the child waiting for the import lock for ever."""
    saved = torch.get_num_threads(), cv2.getNumThreads()
    warm = None
    if device.type == "cpu" and not colorizer.batched:
        torch.set_num_threads(max(1, cpu_count() - 1))
        warm = threading.Thread(target=_warm_kernels, name="medcolor-warm", daemon=True)
        warm.start()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])
        if warm is not None:
            warm.join()


def _series_outcomes(series: Series, result: SeriesResult, slice_status: dict[int, str],
                     redactor: PhiRedactor) -> list[FileOutcome]:
    """One outcome per input file of the series: done, or failed with the first reason seen."""
    per_file: dict[Path, FileOutcome] = {}
    for i, ref in enumerate(series.slices):
        reason = slice_status.get(i, "")
        if result.status == "failed":
            reason = reason or result.error
        status = "failed" if reason else "done"
        prev = per_file.get(ref.path)
        if prev is None or (prev.status == "done" and status == "failed"):
            per_file[ref.path] = FileOutcome(ref.path, status, redactor(reason))
    return list(per_file.values())


def _sample_indices(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def _read_sample(series: Series, k: int, slice_status: dict[int, str]) -> np.ndarray:
    values = []
    for i in _sample_indices(len(series.slices), k):
        try:
            values.append(read_slice(series.slices[i], series))
        except MedcolorError as err:
            slice_status[i] = err.one_line()
    if not values:
        raise MedcolorError("no slice of this series could be read", where=series.source_label,
                            hint="check the files (see the per-file errors)")
    return np.stack(values)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


@dataclass(eq=False)
class _Chain:
    """The per-slice stages of one series. Pool threads call ``slice`` (the whole chain) or ``finish_lab``
    (encode + measure + write); the main thread calls ``to_L``/``colour`` on whole batches."""

    series: Series
    window: Window
    invert: bool
    colorizer: Colorizer
    writers: list
    table: valuetable.ValueTable | None = None
    _colour_lock: threading.Lock = field(default_factory=threading.Lock)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    def to_L(self, values: torch.Tensor) -> torch.Tensor:
        """Modality values -> the windowed L (0..100), MONOCHROME1 inverted."""
        return window_to_l(values, self.window, invert=self.invert)

    def colour(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L ``[B,1,H,W]`` -> (the L to encode, ab ``[B,2,H,W]`` at full size). The L to encode is ``L`` itself
        except for a backend that replaces it (cyclegan ``--no-l-lock``)."""
        with self._colour_lock, torch.inference_mode():
            ab = self.colorizer.colorize(L)
        ab = upsample_ab(ab.float(), tuple(L.shape[-2:]))
        if ab.shape[1] == 3:
            return ab[:, :1].clamp(0.0, 100.0), ab[:, 1:].contiguous()
        return L, ab

    @staticmethod
    def encode(L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
        """Chroma-only gamut map and 8-bit sRGB: ``[B,H,W,3]`` uint8 on the CPU."""
        with torch.inference_mode():
            return to_hwc_numpy(lab_to_rgb8(L, ab))

    def keys(self, values: np.ndarray, level: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stages for a list of keys (``valuetable.KeyChain``): the same window, backend (at those keys),
        encoding and L* as the general path gives a pixel with those keys."""
        L = self.to_L(torch.from_numpy(values).view(1, 1, 1, -1))
        lv = None if level is None else torch.from_numpy(level).view(1, 1, 1, -1)
        with self._colour_lock, torch.inference_mode():
            ab = self.colorizer.colorize_keys(L, lv)
        rgb = self.encode(L, ab.float())[0]                                     # [1, N, 3]
        return L.reshape(-1).numpy(), rgb[0], lightness(rgb)[0]

    def slice(self, index: int) -> dict[str, Any] | str:
        """On a pool thread: the whole chain for slice ``index``. Returns its report record, or the reason it
        could not be read."""
        item = read_item(self.series, index)
        if item["error"]:
            return item["error"]
        values = item["image"][0]
        done = self.table.apply(values) if self.table is not None else None
        if done is not None:
            return self.finish(index, *done)
        L = self.to_L(torch.from_numpy(values)[None, None])
        return self.finish(index, L[0, 0].numpy(), self.encode(*self.colour(L))[0])

    def finish_lab(self, index: int, L: torch.Tensor, L_enc: torch.Tensor, ab: torch.Tensor) -> dict[str, Any]:
        """On a pool thread: encode one slice of a coloured batch (``[1,1,H,W]``, ``[1,2,H,W]``, on the batch's
        device), measure and write it. Encoding per slice keeps the memory of a batch's encoding bounded."""
        return self.finish(index, L[0, 0].cpu().numpy(), self.encode(L_enc, ab)[0])

    def finish(self, index: int, l_in: np.ndarray, rgb: np.ndarray, l_out: np.ndarray | None = None) -> dict[str, Any]:
        """Measure one coloured slice against its windowed L and write it."""
        record = {"index": index, **measure_slice(l_in, rgb, l_out)}
        with self._write_lock:
            for w in self.writers:
                w.write(index, self.series.slices[index], rgb)
        return record


def _build_table(chain: _Chain, sample: np.ndarray, device: torch.device) -> valuetable.ValueTable | None:
    """The series' value table, for a per-pixel backend on the CPU (None otherwise, or when it does not pay)."""
    keys = chain.colorizer.pixel_keys()
    if keys is None or device.type != "cpu" or chain.colorizer.batched:
        return None
    levels = None if not keys.texture_size else functools.partial(
        texture.levels, size=keys.texture_size, scale=keys.texture_scale, n_levels=keys.texture_levels)
    series = chain.series
    return valuetable.build(chain.keys, 1 if levels is None else keys.texture_levels, levels, chain.window, sample,
                            len(series.slices) * series.rows * series.columns)


@functools.cache
def _warm_kernels() -> None:
    """Load the per-slice numba kernels (from numba's disk cache: ~0.4 s, mostly numba's start-up) through
    the slices' own calls on tiny inputs; once per process, on a side thread (``_threads``)."""
    try:
        z = np.zeros
        t = valuetable.ValueTable(lo=0, n_rows=2, n_levels=2, l_tab=z(2, np.float32), rgb_tab=z((4, 3), np.uint8),
                                  lout_tab=z(4, np.float32), clamp_lo=True, clamp_hi=True,
                                  levels=functools.partial(texture.levels, size=5, scale=1.0, n_levels=2))
        for table in (t, dataclasses.replace(t, n_levels=1, levels=None)):
            measure_slice(*table.apply(z((8, 8), np.float32)))
    except Exception:  # noqa: BLE001 - a side thread must not print a traceback; the slices report it
        log.debug("loading the numba kernels failed", exc_info=True)


def _run_series(series: Series, number: int, result: SeriesResult, colorizer: Colorizer, options: RunOptions,
                device: torch.device, out_dir: Path, slice_status: dict[int, str], uid_map: dict[str, str],
                progress: ProgressCallback) -> None:
    t_start = time.perf_counter()
    sample = _read_sample(series, options.sample_slices, slice_status)
    window = resolve_window(options.window, series, sample)
    result.warnings.extend(note for note in [hounsfield_note(series, sample)] if note)
    invert = series.photometric == "MONOCHROME1"
    result.window = window.describe()
    sample_l = window_to_l(torch.from_numpy(sample).to(device).unsqueeze(1), window, invert=invert)
    ctx = SeriesContext(modality=series.modality, window=window, is_hu=series.is_hu,
                        n_slices=len(series.slices), rows=series.rows, columns=series.columns, inverted=invert)
    colorizer.prepare(ctx, sample_l)
    prov = colorizer.provenance()
    result.method = prov.get("method", options.method)
    result.parameters = dict(prov.get("parameters", {}))
    result.reference_sha256 = prov.get("reference_sha256")
    result.model_sha256 = prov.get("model_sha256")
    result.tissue = dict(prov.get("tissue") or {})
    result.warnings.extend(colorizer.warnings)
    derivation = Derivation(method=result.method, window=result.window,
                            parameters="; ".join(f"{k}={v}" for k, v in result.parameters.items()),
                            reference_sha256=result.reference_sha256, model_sha256=result.model_sha256,
                            software_version=__version__)
    writers = get_writers(options.fmt, out_dir, series, derivation, number, multiframe=options.multiframe,
                          overwrite=options.overwrite, deidentify=options.deidentify, uid_map=uid_map)
    chain = _Chain(series, window, invert, colorizer, writers)
    chain.table = _build_table(chain, sample, device)
    result.fast_path = valuetable.describe(chain.table)
    result.timings["prepare_s"] = time.perf_counter() - t_start
    t_slices = time.perf_counter()
    per_slice: dict[int, dict[str, Any]] = {}
    pool = ThreadPoolExecutor(max_workers=_pool_threads(), thread_name_prefix="medcolor-slice",
                              initializer=torch.set_num_threads, initargs=(1,))
    pending: deque[tuple[int, Future]] = deque()

    def collect(limit: int) -> None:
        """Wait for the oldest slices in flight until at most ``limit`` remain (bounds the memory they hold)."""
        while len(pending) > limit:
            index, fut = pending.popleft()
            record = fut.result()
            if isinstance(record, str):
                slice_status[index] = record
            else:
                per_slice[index] = record
            progress("advance", label=result.label, n=1)

    ok = False
    try:
        limit = max(4 * _pool_threads(), options.batch_size)
        if colorizer.batched or device.type != "cpu":
            for index, fut in _batched(chain, options, device, pool, slice_status):
                if fut is None:
                    progress("advance", label=result.label, n=1)
                    continue
                pending.append((index, fut))
                collect(limit)
        else:
            for index in range(len(series.slices)):
                pending.append((index, pool.submit(chain.slice, index)))
                collect(limit)
        collect(0)
        for w in writers:
            result.outputs.extend(_rel(p, out_dir) for p in w.close())
        ok = True
    finally:
        if not ok:
            for _, fut in pending:
                fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        if not ok:
            for w in writers:
                w.abort()
    result.slices = [per_slice[i] for i in sorted(per_slice)]
    result.summary = summarize_series(result.slices)
    result.timings["compute_s"] = time.perf_counter() - t_slices
    result.timings["total_s"] = time.perf_counter() - t_start
    n_bad = sum(1 for i in range(len(series.slices)) if slice_status.get(i))
    if n_bad:
        result.status = "partial" if per_slice else "failed"
        result.error = f"{n_bad} of {len(series.slices)} slices could not be read"
        if not per_slice:
            raise MedcolorError("no slice of this series could be read", where=series.source_label,
                                hint="check the files (see the per-file errors)")


def _batched(chain: _Chain, options: RunOptions, device: torch.device, pool: ThreadPoolExecutor,
             slice_status: dict[int, str]) -> Iterator[tuple[int, Future | None]]:
    """Network backends and any GPU: batches from a DataLoader, windowed and coloured here (whole batches on
    ``device``); each slice's encode + measure + write submitted to ``pool``. Yields (index, its future), or
    (index, None) for a slice that could not be read (its reason in ``slice_status``)."""
    n = len(chain.series.slices)
    workers = options.reader_workers if n > options.batch_size else 0
    loader = torch.utils.data.DataLoader(
        SliceItems(chain.series), batch_size=options.batch_size, num_workers=workers, shuffle=False,
        worker_init_fn=_worker_init if workers else None, prefetch_factor=4 if workers else None,
        persistent_workers=False)
    for batch in loader:
        indices = [int(i) for i in batch["index"]]
        good = [k for k, e in enumerate(batch["error"]) if not e]
        for k, e in enumerate(batch["error"]):
            if e:
                slice_status[indices[k]] = str(e)
                yield indices[k], None
        if not good:
            continue
        images = batch["image"] if len(good) == len(indices) else batch["image"][good]
        L = chain.to_L(images.to(device=device, dtype=torch.float32))
        L_enc, ab = chain.colour(L)
        for j, k in enumerate(good):
            yield indices[k], pool.submit(chain.finish_lab, indices[k], L[j:j + 1], L_enc[j:j + 1], ab[j:j + 1])


def _pool_threads() -> int:
    """Threads of the per-slice pool: one per CPU core the process may use. Each runs torch on one thread
    (torch's thread count is per OS thread: a new thread would otherwise take one per core)."""
    return max(1, cpu_count())


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
