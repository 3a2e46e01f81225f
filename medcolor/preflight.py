"""Every option of ``run`` and ``batch`` checked before any input is read or any output created.

``check_options`` raises a one-line MedcolorError (the CLI: rc 2) for a bad option -- method, device,
format, model, reference, window, ``--send`` syntax, an output folder that holds an earlier run's results
-- and an EnvironmentFault (rc 1) for what the machine or network refuses: an ``-o`` that is a file, a
read-only or unwritable output disk, a ``--send`` host that does not resolve or a port that refuses.
Nothing here reads an input file or writes anything.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medcolor.errors import EnvironmentFault, MedcolorError

__all__ = ["check_numbers", "check_options", "check_output", "earlier_results"]

#: What a finished ``run`` leaves in its output folder (besides the series folders S001_*, S002_*, ...).
RUN_FILES = ("report.json", "report.html")


def check_options(options: Any, send: str | None = None, calling_aet: str = "MEDCOLOR", *, command: str = "run",
                  workers: int = 1, reach: bool = True) -> None:
    """Check ``options`` (a RunOptions) and ``send`` (HOST:PORT:AET) for ``command`` ("run" | "batch").
    ``reach``: also resolve the ``--send`` host and connect to its port (seconds, before hours of work)."""
    from medcolor.colorizers import resolve_device
    from medcolor.colorizers.registry import load_backend_class
    from medcolor.pipeline import DEFAULT_REFERENCE
    from medcolor.windowing import parse_window_spec

    check_numbers(options, workers)
    method = options.method.strip().lower()
    load_backend_class(method)
    resolve_device(options.device)
    for flag, value in (("--ref", options.reference), ("--tissue-map", options.tissue_map),
                        ("--vgg19-weights", options.vgg19_weights)):
        if value is not None and method != "exemplar":
            raise MedcolorError(f"{flag} is only used by --method exemplar, not {method}", where=flag,
                                hint=f"drop {flag} or use --method exemplar")
    if method == "exemplar" and options.tissue_map is not None:  # a small JSON: read and checked here
        from medcolor.colorizers.hounsfield import read_tissue_map

        read_tissue_map(options.tissue_map)
    if options.reference is not None and not Path(options.reference).is_file():
        raise MedcolorError("reference photo not found", where=options.reference, hint="check --ref")
    if method == "exemplar" and options.reference is None and not DEFAULT_REFERENCE.is_file():
        raise MedcolorError("the default reference photo is missing", where=DEFAULT_REFERENCE,
                            hint="give --ref PHOTO or reinstall medcolor")
    if method in ("cnn", "cyclegan"):
        from medcolor.nets.checkpoint import resolve_model

        resolve_model((options.backend_options or {}).get("model"), method)
    parse_window_spec(options.window)
    if send:
        from medcolor.pacs import Target

        target = Target.parse(send, calling_aet)
        target.check()
        if reach:
            target.reach()
    check_output(Path(options.output), overwrite=options.overwrite, refuse_earlier=command == "run")


def check_numbers(options: Any, workers: int = 1) -> None:
    """The output format is known, the batch size and the number of workers at least 1."""
    from medcolor.pipeline import FORMATS

    if options.fmt not in FORMATS:
        raise MedcolorError(f"unknown output format {options.fmt!r}", where="--format",
                            hint=f"use one of {', '.join(FORMATS)}")
    if options.batch_size < 1:
        raise MedcolorError("batch size must be at least 1", where="--batch-size")
    if workers < 1:
        raise MedcolorError("--workers must be at least 1", where="--workers")


def earlier_results(out_dir: Path) -> list[str]:
    """Names (relative to ``out_dir``) of an earlier run's results in it: its reports and the files of its
    series folders, sorted."""
    if not out_dir.is_dir():
        return []
    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    for folder in sorted(out_dir.glob("S[0-9][0-9][0-9]_*")):
        if folder.is_dir():
            found += sorted(f"{folder.name}/{p.name}" for p in folder.iterdir() if not p.name.startswith("."))
    return found


def check_output(out_dir: Path, overwrite: bool = False, refuse_earlier: bool = True) -> None:
    """The output folder can be made and written, and (``refuse_earlier`` without ``overwrite``) holds no
    earlier run's results, which a new run must never replace. Creates nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise EnvironmentFault("exists and is a file, not a folder", where=out_dir,
                               hint="choose another -o (a folder name)")
    if refuse_earlier and not overwrite:
        found = earlier_results(out_dir)
        if found:
            shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
            raise MedcolorError(f"holds an earlier run's results ({shown})", where=out_dir,
                                hint="pass --overwrite to replace them, or choose another -o")
    probe = out_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise EnvironmentFault(f"{probe} is a file, not a folder", where=out_dir,
                               hint="choose another -o (a folder name)")
    read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    if read_only:
        raise EnvironmentFault("the disk is read-only", where=out_dir, hint="choose an -o on a writable disk")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise EnvironmentFault(f"{probe} is not writable (permission denied)", where=out_dir,
                               hint="choose an -o you can write to, or fix its permissions")
