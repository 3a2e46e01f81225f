"""``medcolor batch IN_DIR OUT_DIR``: colour every series of a folder tree, resumably, on local worker
processes or a Dask cluster, and account for every input file. The state, keys and records live in
``medcolor.batch_state``; this module runs the tasks.

* Every file under IN_DIR ends up done, skipped (with the reason) or failed (with the reason), in
  ``batch.json`` and ``batch.csv`` (paths relative to IN_DIR, through the run's PhiRedactor), with
  ``report.json`` + ``report.html`` beside them.
* Resumable: a series completed with the same parameters leaves a marker
  ``OUT_DIR/.medcolor/done/<key>.json``; ``key`` is a hash of the series' identity (SeriesInstanceUID and
  its SOPInstanceUIDs; relative paths for non-DICOM) and of the parameters (method, window, reference/model sha256,
  format, multiframe, de-identification, medcolor version). The marker holds only the series' label,
  counts, metrics and output names - no patient data. A rerun skips marked series; ``overwrite`` redoes
  them. Output series numbers are kept per key in ``OUT_DIR/.medcolor/state.json`` so they stay stable
  between runs (and a series coloured with other parameters gets a new number instead of clashing).
* Interrupts: SIGTERM is turned into KeyboardInterrupt (here and in worker processes), so the writers
  abort and remove their staged files; any ``.part`` file left by a write in flight is swept.
* One series is one task: in this process (``workers=1``), on ``workers`` local processes (spawned,
  one torch thread each) or on a Dask distributed cluster (``scheduler``; ``pip install medcolor[scale]``;
  OUT_DIR must be on storage the Dask workers share). A failing series never stops the others.
* De-identification: one UID map per batch, derived from a salt kept in the state file so that every
  worker process (and a resumed run) maps a source UID to the same new UID.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from medcolor.batch_state import (BATCH_CSV, BATCH_JSON, STATE_DIR, BatchResult, BatchState, DerivedUidMap,
                                  SeriesTask, TaskResult, collect, parameters_fingerprint, rel_in, series_identity,
                                  series_key, write_batch_files)
from medcolor.errors import MedcolorError
from medcolor.privacy import PhiRedactor
from medcolor.report import write_report
from medcolor.types import FileOutcome, RunResult, SeriesResult

__all__ = ["BATCH_CSV", "BATCH_JSON", "STATE_DIR", "BatchResult", "BatchState", "DerivedUidMap", "SeriesTask",
           "TaskResult", "parameters_fingerprint", "run_batch", "run_task", "series_identity", "series_key"]

log = logging.getLogger("medcolor")

BatchProgress = Callable[..., None]


# --------------------------------------------------------------------------- worker side

_PROCESS_CACHE: dict[str, Any] = {}


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _worker_init() -> None:
    """Initializer of local worker processes: one torch thread, SIGTERM -> KeyboardInterrupt."""
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    # library warnings (e.g. pydicom's "Invalid value for VR UI") go to the log, not raw to the terminal:
    # the invalid value fails its file with a one-line reason in batch.json and the report
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addHandler(logging.NullHandler())
    logging.getLogger("py.warnings").propagate = False


def run_task(task: SeriesTask, progress: BatchProgress | None = None) -> TaskResult:
    """Colour one series (in whichever process or Dask worker runs this). Never raises for a bad input;
    KeyboardInterrupt passes through after the writers removed their staged files."""
    from medcolor.colorizers import resolve_device
    from medcolor.pipeline import build_colorizer, colour_series

    t0 = time.perf_counter()
    opts = task.options
    cache_key = repr((opts.method, str(opts.reference), opts.device, opts.exemplar_mode, str(opts.tissue_map),
                      str(opts.vgg19_weights), sorted((opts.backend_options or {}).items())))
    entry = _PROCESS_CACHE.get("colorizer")
    if entry is None or entry[0] != cache_key:
        device = resolve_device(opts.device)
        entry = (cache_key, build_colorizer(opts, device), device)
        _PROCESS_CACHE["colorizer"] = entry
    _, colorizer, device = entry
    redactor = PhiRedactor(list(task.redact_terms), enabled=task.redact_enabled)
    uid_map = DerivedUidMap(task.uid_salt) if opts.deidentify else {}
    result, outcomes = colour_series(task.series, task.number, opts, colorizer, device, Path(opts.output),
                                     redactor, uid_map, progress)
    return TaskResult(task.key, task.number, result, outcomes, time.perf_counter() - t0,
                      worker=f"pid {os.getpid()}")


# --------------------------------------------------------------------------- driver


def _files_under(in_dir: Path, out_dir: Path) -> list[Path]:
    """Every regular file under ``in_dir`` (sorted, recursive), leaving out ``out_dir`` if it is inside."""
    out_resolved = out_dir.resolve()
    files = []
    for root, dirs, names in os.walk(in_dir):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if (root_path / d).resolve() != out_resolved)
        files += [root_path / n for n in sorted(names)]
    return files


def _sweep_partials(out_dir: Path) -> int:
    """Remove temporary ``.part`` files a writer in flight may have left (after an interrupt)."""
    n = 0
    for p in Path(out_dir).glob("S[0-9][0-9][0-9]_*/.*.part"):
        p.unlink(missing_ok=True)
        n += 1
    for d in Path(out_dir).glob("S[0-9][0-9][0-9]_*"):
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass
    return n


class _SignalGuard:
    """SIGTERM -> KeyboardInterrupt in this (main) thread while a batch runs."""

    def __enter__(self) -> "_SignalGuard":
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)


def _run_local(tasks: list[SeriesTask], progress: BatchProgress) -> Iterator[TaskResult]:
    for task in tasks:
        yield run_task(task, progress)


def _run_pool(tasks: list[SeriesTask], workers: int) -> Iterator[TaskResult]:
    import multiprocessing as mp

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    futures = {pool.submit(run_task, t): t for t in tasks}
    ok = False
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield _task_outcome(fut, futures[fut])
        ok = True
    finally:
        if not ok:  # interrupted: stop the workers; their writers abort on the SIGTERM-raised interrupt
            for fut in futures:
                fut.cancel()
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except (ProcessLookupError, OSError):
                    pass
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(tasks: list[SeriesTask], scheduler: str) -> Iterator[TaskResult]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise MedcolorError("--scheduler needs Dask distributed", where="--scheduler",
                            hint="pip install 'medcolor[scale]' (dask[distributed])") from None
    try:
        client = Client(scheduler, timeout="20s", set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise MedcolorError(f"cannot reach the Dask scheduler ({type(exc).__name__})", where=scheduler,
                            hint="check the address (tcp://HOST:PORT) and that the scheduler runs") from None
    futures = {}
    ok = False
    try:
        for t in tasks:
            futures[client.submit(run_task, t, key=f"medcolor-{t.key}-{secrets.token_hex(4)}", pure=False,
                                  retries=0)] = t
        for fut in as_completed(list(futures)):
            yield _task_outcome(fut, futures[fut])
        ok = True
    finally:
        if not ok:
            client.cancel(list(futures))
        client.close()


def _task_outcome(fut: Any, task: SeriesTask) -> TaskResult:
    """A finished future's TaskResult; a task that died (worker crash, unpicklable...) becomes a failed
    series rather than stopping the batch."""
    try:
        return fut.result()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001
        s = task.series
        reason = f"worker failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        redact = PhiRedactor(list(task.redact_terms), enabled=task.redact_enabled)
        result = SeriesResult(label=f"S{task.number:03d}_{s.modality}", modality=s.modality, kind=s.kind,
                              n_slices=len(s.slices), rows=s.rows, columns=s.columns, status="failed",
                              error=redact(reason))
        outcomes = list({ref.path: FileOutcome(ref.path, "failed", redact(reason)) for ref in s.slices}.values())
        return TaskResult(task.key, task.number, result, outcomes, 0.0)


def run_batch(in_dir: Path | str, options: Any, workers: int = 1, scheduler: str | None = None,
              progress: BatchProgress | None = None) -> BatchResult:
    """Colour every series under ``in_dir`` into ``options.output`` (see the module docstring).
    ``progress(event, **info)`` gets "planned" (n_tasks, n_resumed), "task_done" (result) and, for
    in-process runs, the pipeline's per-slice events. Raises MedcolorError for bad options only."""
    from medcolor.io import gc_frozen, scan
    from medcolor.preflight import check_numbers

    progress = progress or (lambda *a, **k: None)
    t0 = time.perf_counter()
    in_dir = Path(in_dir)
    out_dir = Path(options.output)
    if not in_dir.is_dir():
        raise MedcolorError("input folder not found", where=in_dir, hint="pass an existing folder as IN_DIR")
    check_numbers(options, workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = in_dir.resolve()
    params = parameters_fingerprint(options)

    found = scan(_files_under(in_dir, out_dir))
    redactor = PhiRedactor.from_series(found.series, enabled=not options.report_phi)
    state = BatchState(out_dir)
    outcomes: list[FileOutcome] = list(found.outcomes)
    results: dict[str, Any] = {}
    order: list[str] = []
    extra: dict[str, dict[str, Any]] = {}
    batch = BatchResult(series=[], outcomes=outcomes, root=root, redactor=redactor)
    tasks: list[SeriesTask] = []
    remote = workers > 1 or scheduler is not None
    task_options = replace(options, reader_workers=0) if remote else options
    for series in found.series:
        key = series_key(series, root, params)
        if key in results:  # the same series twice (cannot happen after scan's de-duplication)
            continue
        number = state.number_for(key)
        marker = None if options.overwrite else state.marker(key)
        order.append(key)
        if marker is not None:
            prev = SeriesResult(**marker["result"])
            results[key] = prev
            failed = {f["path"]: f["reason"] for f in marker.get("failed_files") or []}
            for ref_path in dict.fromkeys(ref.path for ref in series.slices):
                rel = rel_in(ref_path, root)
                if rel in failed:
                    outcomes.append(FileOutcome(ref_path, "failed", failed[rel]))
                else:
                    outcomes.append(FileOutcome(ref_path, "skipped",
                                                f"already done in an earlier run with the same parameters ({prev.label})"))
            batch.resumed.append(prev.label)
            extra[prev.label] = {"resumed": True}
            continue
        tasks.append(SeriesTask(series=series, number=number, key=key, options=task_options,
                                redact_terms=list(redactor.terms), redact_enabled=redactor.enabled,
                                uid_salt=state.salt))
    state.save()
    progress("planned", n_tasks=len(tasks), n_resumed=len(batch.resumed))

    if not remote:
        runner = _run_local(tasks, progress)
    elif scheduler is not None:
        runner = _run_dask(tasks, scheduler)
    else:
        runner = _run_pool(tasks, min(workers, max(1, len(tasks))))
    try:
        with _SignalGuard(), gc_frozen():  # the headers live until the batch ends
            import torch

            threads = torch.get_num_threads()
            try:
                for tr in runner:
                    collect(tr, state, params, root, results, outcomes, batch)
                    progress("task_done", result=tr.result, seconds=tr.seconds)
            finally:
                torch.set_num_threads(threads)
    except KeyboardInterrupt:
        if hasattr(runner, "close"):
            runner.close()
        _sweep_partials(out_dir)
        raise
    batch.series = [results[k] for k in order if k in results]
    # reports name files relative to IN_DIR: strip the input root from reasons and errors too
    prefixes = sorted({str(root) + os.sep, str(in_dir) + os.sep, str(in_dir.absolute()) + os.sep}, key=len, reverse=True)

    def strip(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    for s in batch.series:
        s.error = strip(s.error)
        s.source = strip(s.source)
        s.warnings = [strip(w) for w in s.warnings]
    outcomes[:] = [FileOutcome(o.path, o.status, strip(o.reason)) for o in outcomes]
    batch.seconds = time.perf_counter() - t0
    batch.json_path, batch.csv_path = write_batch_files(out_dir, root, batch, options, params, redactor,
                                                         workers, scheduler)
    relative = [FileOutcome(Path(rel_in(o.path, root)), o.status, o.reason) for o in outcomes]
    run_result = RunResult(series=batch.series, outcomes=relative, report_path=None, device=str(options.device))
    batch.report_path = write_report(out_dir, run_result, options, redactor, seconds=batch.seconds,
                                     title="medcolor batch", extra=extra)
    return batch
