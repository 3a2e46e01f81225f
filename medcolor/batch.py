"""``medcolor batch IN_DIR OUT_DIR``: colour every series of a folder tree, resumably, on local worker
processes or a Dask cluster, and account for every input file.

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

import csv
import hashlib
import io
import json
import logging
import os
import secrets
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from medcolor import __version__
from medcolor.errors import MedcolorError
from medcolor.io import sha256_file
from medcolor.privacy import PhiRedactor
from medcolor.report import write_json_atomic, write_report
from medcolor.types import FileOutcome, RunResult, Series, SeriesResult

log = logging.getLogger("medcolor")

STATE_DIR = ".medcolor"
BATCH_JSON = "batch.json"
BATCH_CSV = "batch.csv"

BatchProgress = Callable[..., None]


# --------------------------------------------------------------------------- data


@dataclass
class SeriesTask:
    """One series to colour: everything a worker needs (picklable; sent to processes and Dask)."""

    series: Series
    number: int
    key: str
    options: Any                       # RunOptions (output = OUT_DIR)
    redact_terms: list[str]
    redact_enabled: bool
    uid_salt: str


@dataclass
class TaskResult:
    key: str
    number: int
    result: Any                        # SeriesResult
    outcomes: list[FileOutcome]
    seconds: float
    worker: str = ""


@dataclass
class BatchResult:
    series: list[Any]                  # SeriesResult of every series (this run's and resumed ones)
    outcomes: list[FileOutcome]
    resumed: list[str] = field(default_factory=list)     # labels of series skipped as already done
    coloured: list[str] = field(default_factory=list)    # labels of series coloured by this run
    json_path: Path | None = None
    csv_path: Path | None = None
    report_path: Path | None = None
    seconds: float = 0.0
    n_slices_coloured: int = 0
    root: Path | None = None
    redactor: PhiRedactor | None = None

    def display(self, path: Path) -> str:
        """A file's path for people: relative to IN_DIR, through the run's PhiRedactor."""
        text = _rel_in(path, self.root) if self.root is not None else str(path)
        return self.redactor(text) if self.redactor is not None else text

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out


class DerivedUidMap(dict):
    """A de-identification UID map whose new UIDs derive from a per-batch salt: every process that
    holds the same salt maps a source UID to the same new ``2.25`` UID (consistent within a batch even
    across workers and resumed runs). Used through ``Deidentifier``'s ``get``/``setdefault``."""

    def __init__(self, salt: str) -> None:
        super().__init__()
        self.salt = salt
        self["PatientID:__salt__"] = salt

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key in self:
            return self[key]
        if key.startswith("PatientID:"):
            return default
        digest = hashlib.sha256(f"{self.salt}:{key}".encode()).digest()
        value = f"2.25.{int.from_bytes(digest[:16], 'big')}"
        self[key] = value
        return value


# --------------------------------------------------------------------------- keys and state


def parameters_fingerprint(options: Any) -> dict[str, Any]:
    """The parameters that decide a series' output (no paths, no patient data)."""
    from medcolor.pipeline import DEFAULT_REFERENCE

    ref = None
    if options.method == "exemplar":
        ref_path = Path(options.reference or DEFAULT_REFERENCE)
        if not ref_path.is_file():
            raise MedcolorError("reference photo not found", where=ref_path, hint="check --ref")
        ref = sha256_file(ref_path)
    backend: dict[str, Any] = {}
    for k, v in sorted((options.backend_options or {}).items()):
        if isinstance(v, (str, Path)) and Path(v).is_file():
            backend[k] = "sha256:" + sha256_file(Path(v))  # a model/checkpoint file: by content
        else:
            backend[k] = repr(v)
    return {"method": options.method, "window": options.window or "default", "reference_sha256": ref,
            "backend": backend, "format": options.fmt, "multiframe": options.multiframe,
            "exemplar_mode": options.exemplar_mode if options.method == "exemplar" else None,
            **{k: "sha256:" + sha256_file(Path(v)) for k, v in (("tissue_map", options.tissue_map),
                                                                ("vgg19_weights", options.vgg19_weights))
               if v and Path(v).is_file()},
            "deidentify": options.deidentify, "medcolor": __version__}


def series_identity(series: Series, root: Path) -> str:
    """What makes a series the same series again (only its hash is stored): for DICOM the
    SeriesInstanceUID and its instances' SOPInstanceUIDs (frames), so moving or renaming the folder
    keeps it; otherwise the file paths relative to IN_DIR and their sizes."""
    if series.kind == "dicom" and all(ref.sop_instance_uid for ref in series.slices):
        return json.dumps({"uid": series.series_instance_uid or "",
                           "instances": sorted(f"{ref.sop_instance_uid}#{'' if ref.frame is None else ref.frame}"
                                               for ref in series.slices)})
    files = []
    for ref in series.slices:
        try:
            rel = ref.path.resolve().relative_to(root)
        except ValueError:
            rel = ref.path
        size = ref.path.stat().st_size if ref.path.exists() else -1
        files.append(f"{rel.as_posix()}#{'' if ref.frame is None else ref.frame}#{size}")
    return json.dumps({"uid": series.series_instance_uid or "", "files": sorted(files)})


def series_key(series: Series, root: Path, params: dict[str, Any]) -> str:
    text = series_identity(series, root) + json.dumps(params, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class BatchState:
    """``OUT_DIR/.medcolor``: the state file (series numbers by key, the de-identification salt) and the
    completion markers. Written atomically; no patient data."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = Path(out_dir) / STATE_DIR
        self.done_dir = self.dir / "done"
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "state.json"
        data: dict[str, Any] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        self.numbers: dict[str, int] = {str(k): int(v) for k, v in (data.get("numbers") or {}).items()}
        self.salt: str = str(data.get("uid_salt") or secrets.token_hex(16))

    def number_for(self, key: str) -> int:
        if key not in self.numbers:
            used = set(self.numbers.values())
            used |= {int(p.name[1:4]) for p in self.dir.parent.glob("S[0-9][0-9][0-9]_*") if p.name[1:4].isdigit()}
            self.numbers[key] = next(n for n in range(1, 10**6) if n not in used)
        return self.numbers[key]

    def save(self) -> None:
        write_json_atomic(self.path, {"format": 1, "numbers": self.numbers, "uid_salt": self.salt})
        os.chmod(self.path, 0o600)

    def marker(self, key: str) -> dict[str, Any] | None:
        path = self.done_dir / f"{key}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        outputs = data.get("result", {}).get("outputs") or []
        if not all((self.dir.parent / o).is_file() for o in outputs):
            return None  # outputs removed since: redo
        return data

    def mark_done(self, key: str, params: dict[str, Any], result: Any, outcomes: list[dict[str, str]]) -> None:
        write_json_atomic(self.done_dir / f"{key}.json", {
            "key": key, "medcolor_version": __version__,
            "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "parameters": params, "result": {**asdict(result), "patient": ""}, "failed_files": outcomes})

    def drop(self, key: str) -> None:
        (self.done_dir / f"{key}.json").unlink(missing_ok=True)


# --------------------------------------------------------------------------- worker side

_PROCESS_CACHE: dict[str, Any] = {}


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _worker_init() -> None:
    """Initializer of local worker processes: one torch thread, SIGTERM -> KeyboardInterrupt."""
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


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
    from medcolor.io import scan
    from medcolor.pipeline import FORMATS

    progress = progress or (lambda *a, **k: None)
    t0 = time.perf_counter()
    in_dir = Path(in_dir)
    out_dir = Path(options.output)
    if not in_dir.is_dir():
        raise MedcolorError("input folder not found", where=in_dir, hint="pass an existing folder as IN_DIR")
    if options.fmt not in FORMATS:
        raise MedcolorError(f"unknown output format {options.fmt!r}", where="--format",
                            hint=f"use one of {', '.join(FORMATS)}")
    if options.batch_size < 1:
        raise MedcolorError("batch size must be at least 1", where="--batch-size")
    if workers < 1:
        raise MedcolorError("--workers must be at least 1", where="--workers")
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
                rel = _rel_in(ref_path, root)
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
        with _SignalGuard():
            import torch

            threads = torch.get_num_threads()
            try:
                for tr in runner:
                    _collect(tr, state, params, root, results, outcomes, batch)
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
        s.warnings = [strip(w) for w in s.warnings]
    outcomes[:] = [FileOutcome(o.path, o.status, strip(o.reason)) for o in outcomes]
    batch.seconds = time.perf_counter() - t0
    batch.json_path, batch.csv_path = _write_batch_files(out_dir, root, batch, options, params, redactor,
                                                         workers, scheduler)
    relative = [FileOutcome(Path(_rel_in(o.path, root)), o.status, o.reason) for o in outcomes]
    run_result = RunResult(series=batch.series, outcomes=relative, report_path=None, device=str(options.device))
    batch.report_path = write_report(out_dir, run_result, options, redactor, seconds=batch.seconds,
                                     title="medcolor batch", extra=extra)
    return batch


def _rel_in(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _collect(tr: TaskResult, state: BatchState, params: dict[str, Any], root: Path, results: dict[str, Any],
             outcomes: list[FileOutcome], batch: BatchResult) -> None:
    results[tr.key] = tr.result
    outcomes.extend(tr.outcomes)
    if tr.result.status in ("done", "partial"):
        failed = [{"path": _rel_in(o.path, root), "reason": o.reason} for o in tr.outcomes if o.status == "failed"]
        state.mark_done(tr.key, params, tr.result, failed)
        batch.coloured.append(tr.result.label)
        batch.n_slices_coloured += len(tr.result.slices)
    else:
        state.drop(tr.key)


def _write_batch_files(out_dir: Path, root: Path, batch: BatchResult, options: Any, params: dict[str, Any],
                       redactor: PhiRedactor, workers: int, scheduler: str | None) -> tuple[Path, Path]:
    rows = []
    for o in sorted(batch.outcomes, key=lambda o: _rel_in(o.path, root)):
        rows.append({"path": redactor(_rel_in(o.path, root)), "status": o.status, "reason": redactor(o.reason)})
    series = [{"label": s.label, "modality": s.modality, "status": s.status, "error": s.error,
               "n_slices": s.n_slices, "n_outputs": len(s.outputs), "resumed": s.label in batch.resumed,
               "outputs_folder": str(Path(s.outputs[0]).parent) if s.outputs else None,
               "delta_l_mean": s.summary.get("delta_l_mean"), "colourfulness_mean": s.summary.get("colourfulness_mean"),
               "seconds": round(float(s.timings.get("total_s", 0.0)), 3)} for s in batch.series]
    data = {"medcolor_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": redactor(str(root.name)), "workers": workers, "scheduler": bool(scheduler),
            "parameters": params, "seconds": round(batch.seconds, 3), "counts": batch.counts(),
            "series_coloured": len(batch.coloured), "series_resumed": len(batch.resumed),
            "slices_coloured": batch.n_slices_coloured, "series": series, "files": rows}
    json_path = write_json_atomic(out_dir / BATCH_JSON, data)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["path", "status", "reason"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    csv_path = out_dir / BATCH_CSV
    tmp = out_dir / f".{BATCH_CSV}.{os.getpid()}.part"
    try:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, csv_path)
    finally:
        tmp.unlink(missing_ok=True)
    return json_path, csv_path
