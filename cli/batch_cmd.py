"""``medcolor batch`` (colour a folder tree, resumable, local processes or Dask) and ``medcolor export``
(C-STORE / STOW-RS the Secondary Capture of an output folder). Parsing and display only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn
from medcolor.cli._common import EXIT_FAILED, EXIT_OK, STATE, ColourArgs, colour_options, err, guard, out, progress_bar
from medcolor.cli._summary import outcome_line, print_summary, summary_table
from medcolor.errors import MedcolorError, environment_fault


def send_outputs(out_dir: Path, outputs: list[str] | None, send: str, calling_aet: str = "MEDCOLOR") -> int:
    """C-STORE ``outputs`` (paths relative to ``out_dir``; None: every SC under it) to ``send``
    (HOST:PORT:AET); prints the counts; returns the exit code (0 only when nothing failed)."""
    from medcolor.pacs import Target, find_instances

    target = Target.parse(send, calling_aet)
    instances = find_instances(out_dir)
    if outputs is not None:
        wanted = {str(Path(o)) for o in outputs}
        instances = [i for i in instances if str(i[0].relative_to(out_dir)) in wanted]
    try:
        return _export_and_print(instances, target, out_dir)
    except (MedcolorError, OSError) as exc:  # the outputs are on disk; the send failed: say so, count it
        fault = environment_fault(exc) or exc
        err.print(f"export to {send}: {len(instances)} failed, nothing stored: {fault.one_line()}", style="red",
                  highlight=False, soft_wrap=True, markup=False)
        return EXIT_FAILED


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
    redact = result.redactor or (lambda text: text)
    lines = [(o.status, outcome_line(result.display(o.path), redact(o.reason)))
             for o in result.outcomes if o.status != "done"]
    c = result.counts()
    resumed = set(result.resumed)
    print_summary(summary_table("medcolor batch", result.series, lambda s: "resumed" if s.label in resumed else ""),
                  lines, f"files: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed; "
                         f"{len(result.coloured)} series coloured, {len(result.resumed)} already done; "
                         f"{result.seconds:.1f} s; {result.json_path}, {result.csv_path}, {result.report_path}")


def register(app: typer.Typer) -> None:
    """Add ``batch`` and ``export`` to the medcolor app."""

    @app.command()
    @colour_options
    def batch(
        in_dir: Path = typer.Argument(..., metavar="IN_DIR", help="Folder to colour (recursive)."),
        out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="Output folder: series, batch.json, batch.csv, report.json/.html."),
        colour: ColourArgs = ColourArgs(),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo series already completed with the same parameters."),
        workers: int = typer.Option(1, "--workers", "-j", help="Local worker processes (series in parallel)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask distributed scheduler address (tcp://HOST:PORT); needs the extra medcolor[scale]."),
        calling_aet: str = typer.Option("MEDCOLOR", "--calling-aet", help="Our AE title for --send."),
    ) -> None:
        """Colour every series under IN_DIR into OUT_DIR; resumable; every file accounted for. --method:
        exemplar | lut | cnn | cyclegan, as for `medcolor run`."""
        def go() -> int:
            from medcolor.batch import run_batch
            from medcolor.preflight import check_options

            send = colour.send
            opts = colour.run_options(out_dir, overwrite)
            if not in_dir.is_dir():
                raise MedcolorError("input folder not found", where=in_dir, hint="pass an existing folder as IN_DIR")
            # every option, the --send host and port included, before hours of work
            check_options(opts, send, calling_aet, command="batch", workers=workers)
            with progress_bar(MofNCompleteColumn(), TimeElapsedColumn(), disable=STATE["quiet"]) as progress:
                result = run_batch(in_dir, opts, workers=workers, scheduler=scheduler,
                                   progress=_BatchProgress(progress))
            _print_batch(result)
            code = EXIT_FAILED if result.failed else EXIT_OK
            if send:
                coloured = set(result.coloured)
                outputs = [o for s in result.series if s.label in coloured for o in s.outputs]
                code = max(code, send_outputs(out_dir, outputs, send, calling_aet))
            return code

        guard(go, out_dir, "rerun the same command to resume (finished series are kept)")

    @app.command()
    def export(
        out_dir: Path = typer.Argument(..., help="A medcolor output folder (every SC instance under it is sent)."),
        host: Optional[str] = typer.Option(None, "--host", help="PACS host (C-STORE SCP)."),
        port: int = typer.Option(104, "--port", help="PACS port."),
        called_aet: Optional[str] = typer.Option(None, "--called-aet", help="The PACS's AE title."),
        calling_aet: str = typer.Option("MEDCOLOR", "--calling-aet", help="Our AE title."),
        retries: int = typer.Option(3, "--retries", help="Retries of transient failures (rejected-transient, aborted, timeout)."),
        timeout: float = typer.Option(30.0, "--timeout", help="Network/DIMSE timeout in seconds."),
        stow: Optional[str] = typer.Option(None, "--stow", help="DICOMweb base URL: STOW-RS instead of C-STORE (needs the extra medcolor[stow])."),
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
            target.reach()
            return _export_and_print(instances, target, out_dir, retries=retries, timeout=timeout)

        guard(go)
