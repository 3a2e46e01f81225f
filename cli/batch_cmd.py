"""``medcolor batch`` (colour a folder tree, resumable, local processes or Dask) and ``medcolor export``
(C-STORE / STOW-RS the Secondary Capture of an output folder). Parsing and display only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from medcolor.cli._common import EXIT_FAILED, EXIT_OK, ColourArgs, colour_options, err, guard, out, progress_bar
from medcolor.errors import MedcolorError


def send_outputs(out_dir: Path, outputs: list[str] | None, send: str, calling_aet: str = "MEDCOLOR") -> int:
    """C-STORE ``outputs`` (paths relative to ``out_dir``; None: every SC under it) to ``send``
    (HOST:PORT:AET); prints the counts; returns the exit code (0 only when nothing failed)."""
    from medcolor.pacs import Target, find_instances

    target = Target.parse(send, calling_aet)
    instances = find_instances(out_dir)
    if outputs is not None:
        wanted = {str(Path(o)) for o in outputs}
        instances = [i for i in instances if str(i[0].relative_to(out_dir)) in wanted]
    return _export_and_print(instances, target, out_dir)


def _export_and_print(instances, target, out_dir: Path, retries: int = 3, timeout: float = 30.0) -> int:
    from medcolor.pacs import export

    if not instances:
        out.print(f"export: no Secondary Capture instance to send in {out_dir}", highlight=False)
        return EXIT_OK
    with progress_bar(MofNCompleteColumn(), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(f"C-STORE to {target.called_aet}@{target.host}:{target.port}", total=len(instances))
        result = export(instances, target, root=out_dir, retries=retries, timeout=timeout,
                        progress=lambda r: progress.advance(task))
    return _print_export(result, f"{target.called_aet}@{target.host}:{target.port}")


def _print_export(result, where: str) -> int:
    for r in result.instances:
        if r.status == "failed":
            err.print(f"[red]failed:[/] {r.path}: {r.message}", highlight=False, soft_wrap=True)
        elif r.status == "warning":
            err.print(f"[yellow]warning:[/] {r.path}: {r.message}", highlight=False, soft_wrap=True)
    c = result.counts()
    n = len(result.instances)
    rate = n / result.seconds if result.seconds > 0 else 0.0
    out.print(f"export to {where}: {c['stored']} stored, {c['warning']} stored with warnings, "
              f"{c['failed']} failed ({n} instances, {result.seconds:.1f} s, {rate:.1f} instances/s)",
              highlight=False)
    return EXIT_FAILED if result.failed else EXIT_OK


class _BatchProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = None
        self.slices: dict[str, Any] = {}

    def __call__(self, event: str, **info: Any) -> None:
        if event == "planned":
            self.task = self.progress.add_task(f"series ({info['n_resumed']} already done)", total=info["n_tasks"])
        elif event == "task_done" and self.task is not None:
            self.progress.advance(self.task, 1)


def _print_batch(result) -> None:
    table = Table(title="medcolor batch")
    for col in ("series", "files", "status", "method", "window", "mean |ΔL|", "colourfulness", "note"):
        table.add_column(col)
    for s in result.series:
        sm = s.summary
        status = s.status if s.status == "done" else f"[red]{s.status}"
        note = "resumed" if s.label in result.resumed else (s.error[:60] if s.error else "")
        table.add_row(s.label, str(s.n_slices), status, s.method or "-", s.window or "-",
                      f"{sm['delta_l_mean']:.3f}" if sm else "-", f"{sm['colourfulness_mean']:.1f}" if sm else "-",
                      note, )
    out.print(table)
    files = Table(title="files not coloured by this run")
    for col in ("file", "status", "reason"):
        files.add_column(col)
    n = 0
    for o in result.outcomes:
        if o.status != "done":
            n += 1
            files.add_row(result.display(o.path), "[red]failed" if o.status == "failed" else o.status,
                          result.redactor(o.reason) if result.redactor else o.reason)
    if n:
        out.print(files)
    c = result.counts()
    out.print(f"files: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed; "
              f"{len(result.coloured)} series coloured, {len(result.resumed)} already done; "
              f"{result.seconds:.1f} s; {result.json_path}, {result.csv_path}, {result.report_path}",
              highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``batch`` and ``export`` to the medcolor app."""

    @app.command()
    @colour_options
    def batch(
        in_dir: Path = typer.Argument(..., help="Folder to colour (recursive)."),
        out_dir: Path = typer.Argument(..., help="Output folder: series, batch.json, batch.csv, report.json/.html."),
        colour: ColourArgs = ColourArgs(),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo series already completed with the same parameters."),
        workers: int = typer.Option(1, "--workers", "-j", help="Local worker processes (series in parallel)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask distributed scheduler address (tcp://HOST:PORT); needs medcolor[scale]."),
        calling_aet: str = typer.Option("MEDCOLOR", "--calling-aet", help="Our AE title for --send."),
    ) -> None:
        """Colour every series under IN_DIR into OUT_DIR; resumable; every file accounted for."""
        def go() -> int:
            from medcolor.batch import run_batch
            from medcolor.pacs import Target

            send = colour.send
            if send:
                Target.parse(send, calling_aet).check()  # a typo fails before hours of work
            opts = colour.run_options(out_dir, overwrite)
            with progress_bar(MofNCompleteColumn(), TimeElapsedColumn()) as progress:
                result = run_batch(in_dir, opts, workers=workers, scheduler=scheduler,
                                   progress=_BatchProgress(progress))
            _print_batch(result)
            code = EXIT_FAILED if result.failed else EXIT_OK
            if send:
                coloured = set(result.coloured)
                outputs = [o for s in result.series if s.label in coloured for o in s.outputs]
                code = max(code, send_outputs(out_dir, outputs, send, calling_aet))
            return code

        guard(go)

    @app.command()
    def export(
        out_dir: Path = typer.Argument(..., help="A medcolor output folder (every SC instance under it is sent)."),
        host: Optional[str] = typer.Option(None, "--host", help="PACS host (C-STORE SCP)."),
        port: int = typer.Option(104, "--port", help="PACS port."),
        called_aet: Optional[str] = typer.Option(None, "--called-aet", help="The PACS's AE title."),
        calling_aet: str = typer.Option("MEDCOLOR", "--calling-aet", help="Our AE title."),
        retries: int = typer.Option(3, "--retries", help="Retries of transient failures (rejected-transient, aborted, timeout)."),
        timeout: float = typer.Option(30.0, "--timeout", help="Network/DIMSE timeout in seconds."),
        stow: Optional[str] = typer.Option(None, "--stow", help="DICOMweb base URL: STOW-RS instead of C-STORE (needs medcolor[stow])."),
    ) -> None:
        """C-STORE (or STOW-RS) every Secondary Capture instance under OUT_DIR; exit code 1 if any failed."""
        def go() -> int:
            from medcolor.pacs import Target, find_instances, stow as stow_rs

            if not out_dir.is_dir():
                raise MedcolorError("output folder not found", where=out_dir, hint="pass a medcolor output folder")
            instances = find_instances(out_dir)
            if stow:
                return _print_export(stow_rs([i[0] for i in instances], stow, root=out_dir), stow)
            if not host or not called_aet:
                raise MedcolorError("--host and --called-aet are needed", where="medcolor export",
                                    hint="e.g. --host pacs.example --port 104 --called-aet ORTHANC (or --stow URL)")
            target = Target(host, port, called_aet, calling_aet)
            target.check()
            return _export_and_print(instances, target, out_dir, retries=retries, timeout=timeout)

        guard(go)
