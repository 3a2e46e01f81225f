"""``medcolor batch`` (colour a folder tree, resumable, local processes or Dask) and ``medcolor export``
(C-STORE / STOW-RS the Secondary Capture of an output folder). Parsing and display only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medcolor.errors import MedcolorError


def send_outputs(out_dir: Path, outputs: list[str] | None, send: str, calling_aet: str = "MEDCOLOR") -> int:
    """C-STORE ``outputs`` (paths relative to ``out_dir``; None: every SC under it) to ``send``
    (HOST:PORT:AET); prints the counts; returns the exit code (0 only when nothing failed)."""
    from medcolor.pacs import SC_FAMILY, Target, find_instances

    target = Target.parse(send, calling_aet)
    instances = find_instances(out_dir)
    if outputs is not None:
        wanted = {str(Path(o)) for o in outputs}
        instances = [i for i in instances if str(i[0].relative_to(out_dir)) in wanted and i[1] in SC_FAMILY]
    return _export_and_print(instances, target, out_dir)


def _export_and_print(instances, target, out_dir: Path, retries: int = 3, timeout: float = 30.0) -> int:
    from medcolor.cli.app import EXIT_FAILED, EXIT_OK, err, out
    from medcolor.pacs import export

    if not instances:
        out.print(f"export: no Secondary Capture instance to send in {out_dir}", highlight=False)
        return EXIT_OK
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(f"C-STORE to {target.called_aet}@{target.host}:{target.port}", total=len(instances))
        result = export(instances, target, root=out_dir, retries=retries, timeout=timeout,
                        progress=lambda r: progress.advance(task))
    return _print_export(result, f"{target.called_aet}@{target.host}:{target.port}")


def _print_export(result, where: str) -> int:
    from medcolor.cli.app import EXIT_FAILED, EXIT_OK, err, out

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
    from medcolor.cli.app import out

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
    def batch(
        in_dir: Path = typer.Argument(..., help="Folder to colour (recursive)."),
        out_dir: Path = typer.Argument(..., help="Output folder: series, batch.json, batch.csv, report.json/.html."),
        method: str = typer.Option("exemplar", "--method", "-m", help="Backend: exemplar | lut | cnn (see `medcolor doctor`)."),
        ref: Optional[Path] = typer.Option(None, "--ref", help="Exemplar reference photo (default: the shipped beef_marbled.jpg)."),
        window: Optional[str] = typer.Option(None, "--window", "-w", help="Preset name, W,L, 'file' or 'percentile[:LO,HI]'."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
        fmt: str = typer.Option("dicom", "--format", "-f", help="dicom | png | tiff | both."),
        multiframe: bool = typer.Option(False, "--multiframe", help="One Multi-frame True Color SC per series."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo series already completed with the same parameters."),
        batch_size: int = typer.Option(8, "--batch-size", "-b", help="Slices per batch through the backend."),
        exemplar_mode: str = typer.Option("auto", "--exemplar-mode", help="auto (tissue on CT in HU, else welsh) | tissue | gram | welsh | reinhard (see `medcolor run --help`)."),
        tissue_map: Optional[Path] = typer.Option(None, "--tissue-map", help="exemplar tissue/gram: JSON map of Hounsfield class -> photo population."),
        vgg19_weights: Optional[Path] = typer.Option(None, "--vgg19-weights", help="exemplar gram: local torchvision VGG-19 state dict."),
        deidentify: bool = typer.Option(False, "--deidentify", help="PS3.15 basic profile; refuses BurnedInAnnotation YES sources."),
        report_phi: bool = typer.Option(False, "--report-phi", help="Allow patient names/IDs in the reports."),
        workers: int = typer.Option(1, "--workers", "-j", help="Local worker processes (series in parallel)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask distributed scheduler address (tcp://HOST:PORT); needs medcolor[scale]."),
        send: Optional[str] = typer.Option(None, "--send", help="C-STORE the series coloured by this run to HOST:PORT:AET."),
        model: Optional[str] = typer.Option(None, "--model", help="cnn model: a shipped name (meat, retina) or a checkpoint path."),
        calling_aet: str = typer.Option("MEDCOLOR", "--calling-aet", help="Our AE title for --send."),
    ) -> None:
        """Colour every series under IN_DIR into OUT_DIR; resumable; every file accounted for."""
        from medcolor.cli.app import EXIT_FAILED, EXIT_OK, _guard, err
        from medcolor.pipeline import RunOptions

        def go() -> int:
            from medcolor.batch import run_batch
            from medcolor.pacs import Target

            if send:
                Target.parse(send, calling_aet).check()  # a typo fails before hours of work
            opts = RunOptions(output=out_dir, method=method, reference=ref, window=window, device=device, fmt=fmt,
                              multiframe=multiframe, overwrite=overwrite, batch_size=batch_size,
                              exemplar_mode=exemplar_mode, deidentify=deidentify, report_phi=report_phi,
                              tissue_map=tissue_map, vgg19_weights=vgg19_weights,
                              backend_options={"model": model} if model else {})
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err, transient=False, disable=not err.is_terminal) as progress:
                result = run_batch(in_dir, opts, workers=workers, scheduler=scheduler,
                                   progress=_BatchProgress(progress))
            _print_batch(result)
            code = EXIT_FAILED if result.failed else EXIT_OK
            if send:
                coloured = set(result.coloured)
                outputs = [o for s in result.series if s.label in coloured for o in s.outputs]
                code = max(code, send_outputs(out_dir, outputs, send, calling_aet))
            return code

        _guard(go)

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
        from medcolor.cli.app import _guard

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

        _guard(go)
