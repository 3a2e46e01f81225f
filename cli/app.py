"""The ``medcolor`` command: parses options, shows progress, calls medcolor's public API. No image logic here."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.markup import escape
from rich.table import Table

from medcolor import __version__
from medcolor.cli import batch_cmd, train_cmd
from medcolor.cli._common import (EXIT_FAILED, EXIT_OK, STATE, ColourArgs, colour_options, err, guard, out,
                                  progress_bar)
from medcolor.cli._globals import GlobalOptionsGroup, setup_logging
from medcolor.cli._summary import outcome_line, print_plan, print_summary, summary_table
from medcolor.errors import MedcolorError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=GlobalOptionsGroup, rich_markup_mode=None,
                  help="Colourise grayscale CT, MRI and X-ray DICOM into RGB Secondary Capture, keeping "
                       "the luminance of the windowed source. Not for primary diagnosis. Global options "
                       "(--debug, -q, -v, -V) may stand anywhere on the command line.")


def _version(value: bool) -> None:
    if value:
        out.print(f"medcolor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logging."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the final line: no progress, "
                                                              "no table, no skipped/warning lines."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging: -v info, -vv debug."),
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version."),
) -> None:
    STATE["debug"], STATE["quiet"] = debug, quiet
    setup_logging(debug, verbose, quiet)


class _SeriesProgress:
    """A Rich progress bar per series, driven by pipeline events."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: str, **info: Any) -> None:
        if event == "series_start":
            self.tasks[info["label"]] = self.progress.add_task(info["label"], total=info["total"])
        elif event == "advance":
            self.progress.advance(self.tasks[info["label"]], info["n"])
        elif event == "series_end":
            r = info["result"]
            task = self.tasks.get(r.label)
            if task is not None:
                status = "[green]done" if r.status == "done" else f"[red]{r.status}"
                self.progress.update(task, description=f"{r.label} {status}")


def _print_result(result) -> None:
    redact = result.redact  # no patient name or ID on the terminal either
    lines = [("warning", f"{s.label}: {w}") for s in result.series for w in s.warnings]
    for o in result.outcomes:
        path, reason = redact(str(o.path)), redact(o.reason)
        if o.status != "done":
            lines.append((o.status, outcome_line(path, reason)))
    c = result.counts()
    print_summary(summary_table("medcolor run", result.series), lines,
                  f"files: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed; "
                  f"report: {result.report_path} (details: report.html beside it)")


def _run(inputs: List[str], options, send: Optional[str] = None, dry_run: bool = False) -> int:
    from medcolor.pipeline import run
    from medcolor.preflight import check_options

    check_options(options, send, command="run", reach=not dry_run)  # every option, before any file is read
    if dry_run:
        from medcolor.plan import plan_run

        return print_plan(plan_run(inputs, options))
    with progress_bar(MofNCompleteColumn(), TimeRemainingColumn(), disable=STATE["quiet"]) as progress:
        result = run(inputs, options, progress=_SeriesProgress(progress))
    _print_result(result)
    if not result.series and not any(o.status == "done" for o in result.outcomes):
        if not result.outcomes:
            err.print("nothing to colour: no file found in the input.", style="red", highlight=False)
            return EXIT_FAILED
        if not result.failed:  # every input skipped for a reason: exit 0, as the README says
            err.print("nothing to colour: every input was skipped (see the reasons above).", highlight=False)
            return EXIT_OK
    code = EXIT_FAILED if result.failed else EXIT_OK
    if send:
        outputs = [o for s in result.series for o in s.outputs]
        code = max(code, batch_cmd.send_outputs(Path(options.output), outputs, send))
    return code


@app.command()
@colour_options
def run(
    inputs: List[str] = typer.Argument(..., metavar="INPUTS", help="DICOM file(s), folder(s) (recursive) or glob(s); NIfTI, PNG/JPEG/TIFF too."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (created)."),
    colour: ColourArgs = ColourArgs(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    workers: int = typer.Option(1, "--reader-workers", help="Reader processes feeding the backend (0 = read in the main process)."),
    no_l_lock: bool = typer.Option(False, "--no-l-lock", help="cyclegan only: write G_color's raw RGB (its own L; the report shows the ΔL it caused) instead of its chroma on the source L."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the series found and what would be written; write nothing."),
    modality: Optional[str] = typer.Option(None, "--modality", help="Modality of NIfTI/MHA/NRRD/image inputs, e.g. CT (values are Hounsfield units: the CT presets apply). DICOM keeps its own."),
    reformat: Optional[List[str]] = typer.Option(None, "--reformat", help="Write multi-planar reformats instead of the stored slices: axial, coronal, sagittal (repeat or comma list); one derived series per plane."),
    reformat_spacing: Optional[float] = typer.Option(None, "--reformat-spacing", help="In-plane spacing of --reformat planes in mm (default: the source's finest spacing)."),
) -> None:
    """Colourise the series found in INPUTS and write Secondary Capture (and/or PNG) with report.json/.html."""
    def go() -> int:
        opts = colour.run_options(output, overwrite, {"l_lock": False} if no_l_lock else None, reader_workers=workers,
                                  modality=modality, reformat=tuple(reformat or ()), reformat_spacing=reformat_spacing)
        return _run(inputs, opts, send=colour.send, dry_run=dry_run)

    guard(go, output, "rerun with --overwrite to redo it, or choose another -o")


def _find_sample(sample: Optional[Path]) -> Path:
    candidates = [sample] if sample else [Path.cwd() / "sample_dicom", Path(__file__).resolve().parents[1] / "sample_dicom"]
    for c in candidates:
        if c is not None and (c / "ct_chest").is_dir():
            return c
    raise MedcolorError("the shipped sample data (sample_dicom/ct_chest) was not found", where="medcolor demo",
                        hint="run from the medcolor checkout or pass --sample PATH_TO/sample_dicom")


@app.command()
def demo(
    output: Path = typer.Option(Path("medcolor-demo"), "-o", "--output", help="Where to write the demo results."),
    sample: Optional[Path] = typer.Option(None, "--sample", help="The sample_dicom folder of a medcolor checkout."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Colour the shipped CT sample with the shipped beef reference (lung window); writes DICOM, PNG,
    report.json and report.html (open it in a browser) under -o."""
    from medcolor.pipeline import RunOptions

    def go() -> int:
        root = _find_sample(sample)
        ref = root / "refs" / "beef_marbled.jpg"
        opts = RunOptions(output=output, method="exemplar", reference=ref if ref.is_file() else None,
                          window="lung", device=device, fmt="both", overwrite=True)
        code = _run([str(root / "ct_chest")], opts)
        out.print(f"\nDemo results: DICOM and PNG under {output.resolve()}; open "
                  f"{output.resolve() / 'report.html'} in a browser (data: report.json)", highlight=False)
        return code

    guard(go, output)


@app.command()
def doctor() -> None:
    """Versions, devices, transfer syntaxes that decode, backends and what each lacks."""
    from medcolor.colorizers import list_backends
    from medcolor.doctor import devices, models, tools, transfer_syntaxes, versions

    def go() -> int:
        _table("versions", ("package", "version"), ((k, escape(v)) for k, v in versions().items()))
        _table("devices", ("device", ""), devices().items())
        _table("transfer syntaxes (decode)", ("syntax", "decodes", "plug-ins / what to install"),
               ((s.name, _yes_no(s.available), ", ".join(s.plugins) or s.hint) for s in transfer_syntaxes()))
        _table("backends (--method)", ("name", "available", "what / what it lacks"),
               ((b.name, _yes_no(b.available), b.summary if b.available else b.reason) for b in list_backends()))
        _table("shipped models (--model NAME)", ("method", "name", "status", "what"),
               ((m, n, escape(s) if s in ("default", "available") else f"[red]{escape(s)}", escape(d))
                for m, n, s, d in models()))
        _table("tools", ("tool", "path"), tools().items())
        return EXIT_OK

    guard(go)


def _yes_no(ok: bool) -> str:
    return "[green]yes" if ok else "[red]no"


def _table(title: str, columns: tuple[str, ...], rows) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*row)
    out.print(t)


@app.command()
def presets() -> None:
    """The named CT windows (Hounsfield units) and where their values come from."""
    from medcolor.windowing import PRESET_SOURCES, PRESETS

    _table("CT window presets (--window NAME)", ("name", "width (HU)", "level (HU)", "source"),
           ((name, f"{w.width:g}", f"{w.center:g}", PRESET_SOURCES.get(name, "")) for name, w in PRESETS.items()))
    out.print("Also: --window W,L  |  --window file (the file's VOI)  |  --window percentile[:LO,HI] (MR, X-ray)")


# commands that live in their own modules (training/evaluation; batch/export)
train_cmd.register(app)
batch_cmd.register(app)


def main() -> None:
    app(prog_name="medcolor")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
