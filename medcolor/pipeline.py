"""load -> window -> L -> colorize -> gamut map -> write -> report, with accounting of every input.

``run(inputs, options)`` is the one entry point the CLI uses. Per series it reads a few slices to resolve
the window and to let the backend build its series-level state, then streams every slice through a
torch DataLoader (a reader worker process), colours batches on the chosen device, and hands 8-bit RGB
to the writers on a writer thread, so reading, computing and writing overlap. An uncompressed series on a
value table skips the reader process: two finish threads read, colour and measure each slice.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch

from medcolor import __version__, valuetable
from medcolor.color import lab_to_rgb8, lab_to_rgb8_hwc_numpy, upsample_ab
from medcolor.colorizers import get_colorizer, resolve_device
from medcolor.errors import MedcolorError
from medcolor.io import SliceItems, read_image_rgb, read_item, read_slice, reads_by_file_io, scan
from medcolor.metrics import measure_rgb8, ssim
from medcolor.privacy import PhiRedactor
from medcolor.report import write_report
from medcolor.types import Derivation, FileOutcome, Series, SeriesContext
from medcolor.windowing import resolve_window, window_to_l
from medcolor.writers import get_writers

log = logging.getLogger("medcolor")

DEFAULT_REFERENCE = Path(__file__).parent / "data" / "beef_marbled.jpg"
FORMATS = ("dicom", "png", "tiff", "both")

ProgressCallback = Callable[..., None]


@dataclass
class RunOptions:
    """Options of ``medcolor run`` (see ``medcolor run --help`` for their meaning)."""

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


@dataclass
class SeriesResult:
    """What happened to one input series (no patient data: labels are counters and modalities)."""

    label: str
    modality: str
    kind: str
    n_slices: int
    rows: int
    columns: int
    status: str = "done"            # done | failed | partial
    error: str = ""
    window: str = ""
    method: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    reference_sha256: str | None = None
    model_sha256: str | None = None
    outputs: list[str] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fast_path: dict[str, Any] = field(default_factory=dict)  # the series' value table (valuetable.describe)
    description: str = ""           # the source's SeriesDescription, through the run's PhiRedactor
    patient: str = ""               # "name (ID)" of the source; only with --report-phi
    tissue: dict[str, Any] = field(default_factory=dict)     # exemplar tissue/gram: populations, legend


@dataclass
class RunResult:
    series: list[SeriesResult]
    outcomes: list[FileOutcome]
    report_path: Path | None
    device: str
    redact: Callable[[str], str] = str  # the run's PhiRedactor: apply to anything shown to the user

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes) or any(s.status != "done" for s in self.series)

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out


def _noop(*_: Any, **__: Any) -> None:
    return None


def build_colorizer(options: RunOptions, device: torch.device):
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
    device = resolve_device(options.device)
    colorizer = build_colorizer(options, device)
    t0 = time.perf_counter()
    found = scan(inputs)
    outcomes: list[FileOutcome] = list(found.outcomes)
    redactor = PhiRedactor.from_series(found.series, enabled=not options.report_phi)
    out_dir = Path(options.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress("scan_done", n_series=len(found.series), n_outcomes=len(outcomes),
             seconds=time.perf_counter() - t0)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    if device.type == "cpu" and options.reader_workers > 0:
        # the work is already spread over a reader process and the colour, measure and write threads:
        # OpenCV's own pool would only oversubscribe them; a per-pixel backend leaves torch the cores the
        # reader does not use, a network (batched) backend is most of the work and keeps them all
        if not getattr(colorizer, "batched", False):
            torch.set_num_threads(max(1, cpu_count() - 1))
        cv2.setNumThreads(1)
    try:
        results = _run_all(found, options, colorizer, device, out_dir, outcomes, redactor, progress)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    run_result = RunResult(series=results, outcomes=outcomes, report_path=None, device=str(device), redact=redactor)
    run_result.report_path = write_report(out_dir, run_result, options, redactor,
                                          seconds=time.perf_counter() - t0)
    return run_result


def _run_all(found, options: RunOptions, colorizer, device: torch.device, out_dir: Path,
             outcomes: list[FileOutcome], redactor: PhiRedactor, progress: ProgressCallback) -> list[SeriesResult]:
    results: list[SeriesResult] = []
    uid_map: dict[str, str] = {}
    for number, series in enumerate(found.series, start=1):
        result, series_outcomes = colour_series(series, number, options, colorizer, device, out_dir, redactor,
                                                uid_map, progress)
        outcomes.extend(series_outcomes)
        results.append(result)
    return results


def colour_series(series: Series, number: int, options: RunOptions, colorizer, device: torch.device,
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
    first = series.slices[0].dataset if series.slices else None
    if first is not None:
        result.description = redactor(str(first.get("SeriesDescription", "") or ""))
        if options.report_phi:
            result.patient = f"{first.get('PatientName', '') or ''} ({first.get('PatientID', '') or ''})"
    progress("series_start", label=label, total=len(series.slices), source=redactor(series.source_label))
    slice_status: dict[int, str] = {}
    try:
        _run_series(series, number, result, colorizer, options, device, out_dir, slice_status, uid_map,
                    progress)
    except MedcolorError as err:
        result.status = "failed"
        result.error = redactor(err.one_line())
    except KeyboardInterrupt:
        raise
    except Exception as err:  # an internal error must not stop the other series
        log.debug("internal error in %s", label, exc_info=True)
        result.status = "failed"
        result.error = redactor(f"{series.source_label}: internal error {type(err).__name__}: {err}. "
                                "Run with --debug and report it")
    series_outcomes = _series_outcomes(series, result, slice_status, redactor)
    progress("series_end", result=result)
    return result, series_outcomes


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


def _read_sample(series: Series, k: int, slice_status: dict[int, str]) -> tuple[np.ndarray, list[int]]:
    values, used = [], []
    for i in _sample_indices(len(series.slices), k):
        try:
            values.append(read_slice(series.slices[i], series))
            used.append(i)
        except MedcolorError as err:
            slice_status[i] = err.one_line()
    if not values:
        raise MedcolorError("no slice of this series could be read", where=series.source_label,
                            hint="check the files (see the per-file errors)")
    return np.stack(values), used


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _run_series(series: Series, number: int, result: SeriesResult, colorizer, options: RunOptions,
                device: torch.device, out_dir: Path, slice_status: dict[int, str], uid_map: dict[str, str],
                progress: ProgressCallback) -> None:
    t_start = time.perf_counter()
    sample, _ = _read_sample(series, options.sample_slices, slice_status)
    window = resolve_window(options.window, series, sample)
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
    result.warnings.extend(getattr(colorizer, "warnings", []) or [])
    derivation = Derivation(method=result.method, window=result.window,
                            parameters="; ".join(f"{k}={v}" for k, v in result.parameters.items()),
                            reference_sha256=result.reference_sha256, model_sha256=result.model_sha256,
                            software_version=__version__)
    writers = get_writers(options.fmt, out_dir, series, derivation, number, multiframe=options.multiframe,
                           overwrite=options.overwrite, deidentify=options.deidentify, uid_map=uid_map)
    # a per-pixel backend on integer values: the whole chain tabulated once for the series
    table = valuetable.build(colorizer, window, invert, sample, len(series.slices) * series.rows * series.columns,
                             device)
    result.fast_path = valuetable.describe(table)
    result.timings["prepare_s"] = time.perf_counter() - t_start

    def general(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Modality values [B,1,H,W] -> (windowed L, the L to encode, ab at full size), per slice on
        the CPU for per-pixel backends (memory-bound: a batch-sized set of temporaries falls out of
        cache, measured 2x slower per slice at batch 8), whole batches for networks or on a GPU."""
        with torch.inference_mode():
            L = window_to_l(values, window, invert=invert)
            if getattr(colorizer, "batched", False) or device.type != "cpu":
                ab = colorizer.colorize(L)
            else:
                ab = torch.cat([colorizer.colorize(L[j:j + 1]) for j in range(L.shape[0])])
            ab = upsample_ab(ab.float(), (series.rows, series.columns))
            L_enc = L
            if ab.shape[1] == 3:  # a backend that replaces L (cyclegan --no-l-lock)
                L_enc, ab = ab[:, :1].clamp(0.0, 100.0), ab[:, 1:].contiguous()
        return L, L_enc, ab

    # uncompressed slices on the value table: each slice is read, coloured and measured on a finish thread
    # (the read is file I/O, so no reader process and no hand-over of every slice from it)
    direct = table is not None and reads_by_file_io(series)
    workers = options.reader_workers if len(series.slices) > options.batch_size and not direct else 0
    loader = [] if direct else torch.utils.data.DataLoader(
        SliceItems(series), batch_size=options.batch_size, num_workers=workers, shuffle=False,
        worker_init_fn=_worker_init if workers else None, prefetch_factor=4 if workers else None,
        persistent_workers=False)
    pending: list[Future] = []
    per_slice: dict[int, dict[str, Any]] = {}
    t_compute = 0.0
    ok = False
    # Batches from the reader process: the main thread windows and colours, two "finish" threads encode to
    # 8-bit RGB and measure it (numba and OpenCV kernels that release the GIL); one thread writes. They
    # overlap with each other and with the reader process. Direct: the finish threads read too.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="medcolor-finish") as finish_pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="medcolor-writer") as write_pool:
        try:
            for index in range(len(series.slices)) if direct else ():
                pending.append(finish_pool.submit(_read_values, series, index, table, general, per_slice,
                                                  slice_status, write_pool, writers))
                _drain(pending, 2 * options.batch_size)
                progress("advance", label=result.label, n=1)
            for batch in loader:
                t1 = time.perf_counter()
                indices = [int(i) for i in batch["index"]]
                errors = list(batch.get("error", [""] * len(indices)))
                good = [k for k, e in enumerate(errors) if not e]
                for k, e in enumerate(errors):
                    if e:
                        slice_status[indices[k]] = str(e)
                if good:
                    images = batch["image"] if len(good) == len(indices) else batch["image"][good]
                    images = images.to(device=device, dtype=torch.float32)
                    if images.ndim == 3:
                        images = images.unsqueeze(1)
                    if table is not None:  # the whole slice on a finish thread
                        for j, k in enumerate(good):
                            index = indices[k]
                            pending.append(finish_pool.submit(_finish_values, index, images[j, 0].numpy(), table,
                                                              general, per_slice, write_pool, writers,
                                                              series.slices[index]))
                    else:
                        L, L_enc, ab = general(images)
                        for j, k in enumerate(good):
                            index = indices[k]
                            pending.append(finish_pool.submit(_finish_slice, index, *_finish_job(L, L_enc, ab, j),
                                                              per_slice, write_pool, writers, series.slices[index]))
                t_compute += time.perf_counter() - t1
                _drain(pending, 4 * options.batch_size)
                progress("advance", label=result.label, n=len(indices))
            for fut in pending:
                fut.result().result()
            for w in writers:
                result.outputs.extend(_rel(p, out_dir) for p in w.close())
            ok = True
        finally:
            if not ok:
                for fut in pending:
                    fut.cancel()
                finish_pool.shutdown(wait=True, cancel_futures=True)
                write_pool.shutdown(wait=True, cancel_futures=True)
                for w in writers:
                    w.abort()
    result.slices = [per_slice[i] for i in sorted(per_slice)]
    result.summary = _summarize(result.slices)
    result.timings["compute_s"] = t_compute
    result.timings["total_s"] = time.perf_counter() - t_start
    n_bad = sum(1 for i in range(len(series.slices)) if slice_status.get(i))
    if n_bad:
        result.status = "partial" if per_slice else "failed"
        result.error = f"{n_bad} of {len(series.slices)} slices could not be read"
        if not per_slice:
            raise MedcolorError("no slice of this series could be read", where=series.source_label,
                                hint="check the files (see the per-file errors)")


def _finish_job(L: torch.Tensor, L_enc: torch.Tensor, ab: torch.Tensor, j: int) -> tuple:
    """``_finish_slice``'s (l_in, l_out, ab, rgb) for slice ``j`` of a batch: the CPU hands the arrays to the
    fused kernel on the finish thread; another device encodes here (the torch path) and sends the RGB."""
    Lj, Ej, abj = L[j:j + 1], L_enc[j:j + 1], ab[j:j + 1]
    if L.device.type == "cpu":
        return Lj[0, 0].numpy(), Ej[0, 0].numpy(), abj[0].numpy(), None
    return Lj[0, 0].cpu().numpy(), None, None, _encode_hwc(Ej, abj)


def _drain(pending: list[Future], limit: int) -> None:
    """Wait for the oldest queued slices (finished and written) until at most ``limit`` remain: bounds the
    memory held by slices in flight."""
    while len(pending) > limit:
        pending.pop(0).result().result()


def _read_values(series: Series, index: int, table: valuetable.ValueTable, general, per_slice: dict,
                 slice_status: dict[int, str], write_pool: ThreadPoolExecutor, writers) -> Future:
    """On a finish thread: read slice ``index`` and ``_finish_values`` it; a slice that cannot be read
    gets its reason in ``slice_status`` (and a done future: nothing to write)."""
    item = read_item(series, index)
    if item["error"]:
        slice_status[index] = item["error"]
        return _NOTHING
    return _finish_values(index, item["image"][0], table, general, per_slice, write_pool, writers,
                          series.slices[index])


_NOTHING: Future = Future()
_NOTHING.set_result(None)


def _finish_values(index: int, values: np.ndarray, table: valuetable.ValueTable, general, per_slice: dict,
                   write_pool: ThreadPoolExecutor, writers, ref) -> Future:
    """On a finish thread: colour one slice of modality values [H,W] through the series' value table,
    measure it and queue it for the writer; a slice the table does not cover takes the general path."""
    done = table.apply(values)
    if done is None:
        L, L_enc, ab = general(torch.from_numpy(values)[None, None])
        return _finish_slice(index, *_finish_job(L, L_enc, ab, 0), per_slice, write_pool, writers, ref)
    rgb, l_in, l_out, measures = done
    per_slice[index] = _slice_record(index, l_in, l_out, measures)
    return write_pool.submit(_write_all, writers, index, ref, rgb)


def _encode_hwc(L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
    """One slice's L [1,1,H,W] and ab [1,2,H,W] -> 8-bit sRGB [H,W,3] (chroma-only gamut mapping);
    the fused CPU kernel writes channel-last directly, other devices use the torch path."""
    if L.device.type == "cpu":
        return lab_to_rgb8_hwc_numpy(L[0, 0].numpy(), ab[0].numpy())
    return lab_to_rgb8(L, ab)[0].permute(1, 2, 0).contiguous().cpu().numpy()


def _finish_slice(index: int, l_in: np.ndarray, l_out: np.ndarray | None, ab: np.ndarray | None,
                  rgb: np.ndarray | None, per_slice: dict[int, dict[str, Any]], write_pool: ThreadPoolExecutor,
                  writers, ref) -> Future:
    """On a finish thread: encode L [H,W] (the windowed ``l_in``, or a backend's own ``l_out``) + ab
    [2,H,W] to 8-bit RGB (unless ``rgb`` is given), measure it against the windowed L, and queue it
    for the writer thread. Returns the write's future."""
    if rgb is None:
        rgb = lab_to_rgb8_hwc_numpy(l_in if l_out is None else l_out, ab)
    per_slice[index] = _slice_metrics(index, l_in, rgb)
    return write_pool.submit(_write_all, writers, index, ref, rgb)


def _write_all(writers, index: int, ref, rgb: np.ndarray) -> None:
    for w in writers:
        w.write(index, ref, rgb)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _slice_metrics(index: int, l_in: np.ndarray, rgb: np.ndarray) -> dict[str, Any]:
    l_out, measures = measure_rgb8(l_in, rgb)
    return _slice_record(index, l_in, l_out, measures)


def _slice_record(index: int, l_in: np.ndarray, l_out: np.ndarray, measures: dict[str, float]) -> dict[str, Any]:
    return {"index": index, **{k: float(v) for k, v in measures.items()},
            "ssim_l": float(ssim(l_in, l_out, data_range=100.0))}


def _summarize(slices: list[dict[str, Any]]) -> dict[str, Any]:
    if not slices:
        return {}
    def col(k: str) -> np.ndarray:
        return np.array([s[k] for s in slices], dtype=np.float64)
    psnrs = col("psnr_l")
    finite = psnrs[np.isfinite(psnrs)]
    return {
        "n_slices": len(slices),
        "delta_l_mean": float(col("delta_l_mean").mean()),
        "delta_l_p99_max": float(col("delta_l_p99").max()),
        "delta_l_max": float(col("delta_l_max").max()),
        "colourfulness_mean": float(col("colourfulness").mean()),
        "psnr_l_mean": float(finite.mean()) if finite.size else float("inf"),
        "ssim_l_mean": float(col("ssim_l").mean()),
    }


def result_as_dict(result: SeriesResult) -> dict[str, Any]:
    return asdict(result)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
