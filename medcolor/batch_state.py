"""State and records of ``medcolor batch`` (see ``medcolor.batch``): the task/result data, the series
keys and parameter fingerprint that make a batch resumable, the ``OUT_DIR/.medcolor`` state file and
completion markers, the per-batch de-identification UID map, and ``batch.json`` / ``batch.csv``.
No process, pool or signal handling here: that is ``medcolor.batch``."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medcolor import __version__
from medcolor.errors import MedcolorError
from medcolor.io import sha256_file
from medcolor.privacy import PhiRedactor
from medcolor.report import write_json_atomic
from medcolor.types import FileOutcome, Series

STATE_DIR = ".medcolor"
BATCH_JSON = "batch.json"
BATCH_CSV = "batch.csv"

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
        text = rel_in(path, self.root) if self.root is not None else str(path)
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


def rel_in(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def collect(tr: TaskResult, state: BatchState, params: dict[str, Any], root: Path, results: dict[str, Any],
             outcomes: list[FileOutcome], batch: BatchResult) -> None:
    results[tr.key] = tr.result
    outcomes.extend(tr.outcomes)
    if tr.result.status in ("done", "partial"):
        failed = [{"path": rel_in(o.path, root), "reason": o.reason} for o in tr.outcomes if o.status == "failed"]
        state.mark_done(tr.key, params, tr.result, failed)
        batch.coloured.append(tr.result.label)
        batch.n_slices_coloured += len(tr.result.slices)
    else:
        state.drop(tr.key)


def write_batch_files(out_dir: Path, root: Path, batch: BatchResult, options: Any, params: dict[str, Any],
                       redactor: PhiRedactor, workers: int, scheduler: str | None) -> tuple[Path, Path]:
    rows = []
    for o in sorted(batch.outcomes, key=lambda o: rel_in(o.path, root)):
        rows.append({"path": redactor(rel_in(o.path, root)), "status": o.status, "reason": redactor(o.reason)})
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
