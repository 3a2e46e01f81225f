"""The ``medcolor`` command: parses options, shows progress, calls medcolor's public API. No image logic here."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from medcolor import __version__
from medcolor.errors import MedcolorError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Colourise grayscale CT, MRI and X-ray DICOM into RGB Secondary Capture, keeping "
                       "the luminance of the windowed source. Not for primary diagnosis.")
out = Console()
err = Console(stderr=True)
STATE: dict[str, Any] = {"debug": False}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _version(value: bool) -> None:
    if value:
        out.print(f"medcolor {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logging."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    STATE["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(message)s")


def _guard(fn: Callable[[], int]) -> None:
    """Run a command; turn MedcolorError into one line and an exit code, never a traceback (unless --debug)."""
    try:
        code = fn()
    except MedcolorError as e:
        if STATE["debug"]:
            raise
        err.print(f"error: {e.one_line()}", style="bold red", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_USAGE)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted:[/] no partial output was left; rerun to finish.")
        raise typer.Exit(130)
    except typer.Exit:
        raise
    except Exception as e:  # an internal error: still one line unless --debug
        if STATE["debug"]:
            raise
        err.print(f"[bold red]internal error:[/] {type(e).__name__}: {e}. Rerun with --debug and report it.",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(code)


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
    table = Table(title="medcolor run", show_lines=False)
    for col in ("series", "slices", "status", "window", "method", "mean |ΔL|", "p99 |ΔL|", "colourfulness"):
        table.add_column(col)
    for s in result.series:
        sm = s.summary
        table.add_row(s.label, str(s.n_slices), s.status if s.status == "done" else f"[red]{s.status}",
                      s.window, s.method,
                      f"{sm['delta_l_mean']:.3f}" if sm else "-", f"{sm['delta_l_p99_max']:.3f}" if sm else "-",
                      f"{sm['colourfulness_mean']:.1f}" if sm else "-")
    out.print(table)
    for s in result.series:
        for w in s.warnings:
            err.print(f"warning: {s.label}: {w}", style="yellow", highlight=False, soft_wrap=True, markup=False)
        if s.error:
            err.print(f"failed: {s.label}: {s.error}", style="red", highlight=False, soft_wrap=True, markup=False)
    redact = result.redact  # no patient name or ID on the terminal either
    for o in result.outcomes:
        path, reason = redact(str(o.path)), redact(o.reason)
        if o.status == "failed":
            err.print(f"failed: {reason}" if path in reason else f"failed: {path}: {reason}",
                      style="red", highlight=False, soft_wrap=True, markup=False)
        elif o.status == "skipped":
            err.print(f"skipped: {path}: {reason}", style="dim", highlight=False, soft_wrap=True, markup=False)
    c = result.counts()
    out.print(f"files: {c['done']} done, {c['skipped']} skipped, {c['failed']} failed; "
              f"report: {result.report_path}", highlight=False)


def _run(inputs: List[str], options, send: Optional[str] = None) -> int:
    from medcolor.pipeline import run

    if send:
        from medcolor.pacs import Target

        Target.parse(send).check()  # fail on a typo before colouring

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=False, disable=not err.is_terminal) as progress:
        result = run(inputs, options, progress=_SeriesProgress(progress))
    _print_result(result)
    if not result.series and not any(o.status == "done" for o in result.outcomes):
        err.print("[red]nothing to colour:[/] no grayscale image series found in the input.")
        return EXIT_FAILED
    code = EXIT_FAILED if result.failed else EXIT_OK
    if send:
        from medcolor.cli.batch_cmd import send_outputs

        outputs = [o for s in result.series for o in s.outputs]
        code = max(code, send_outputs(Path(options.output), outputs, send))
    return code


@app.command()
def run(
    inputs: List[str] = typer.Argument(..., help="DICOM file(s), folder(s) (recursive) or glob(s); NIfTI, PNG/JPEG/TIFF too."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder (created)."),
    method: str = typer.Option("exemplar", "--method", "-m", help="Backend: exemplar | lut | cnn | cyclegan (see `medcolor doctor`)."),
    ref: Optional[Path] = typer.Option(None, "--ref", help="Exemplar reference photo (default: the shipped beef_marbled.jpg)."),
    window: Optional[str] = typer.Option(None, "--window", "-w", help="Preset name, W,L (e.g. 1500,-600), 'file' or 'percentile[:LO,HI]'. Default: the file's window, else the modality's default."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N (fails if CUDA is asked for and absent)."),
    fmt: str = typer.Option("dicom", "--format", "-f", help="dicom | png | tiff | both (dicom + png)."),
    multiframe: bool = typer.Option(False, "--multiframe", help="Write one Multi-frame True Color SC per series."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Slices per batch through the backend."),
    exemplar_mode: str = typer.Option("auto", "--exemplar-mode", help="auto (tissue on CT in HU, else welsh) | tissue (colour by Hounsfield class and photo population) | gram (tissue + VGG-19 style transfer) | welsh (luminance + texture) | reinhard (global tint)."),
    tissue_map: Optional[Path] = typer.Option(None, "--tissue-map", help="exemplar tissue/gram: JSON map of Hounsfield class -> photo population, e.g. {\"bone\": \"fat\"} (see docs/tissue.md)."),
    vgg19_weights: Optional[Path] = typer.Option(None, "--vgg19-weights", help="exemplar gram: local torchvision VGG-19 state dict (never downloaded); default: fixed random features."),
    deidentify: bool = typer.Option(False, "--deidentify", help="Apply the PS3.15 basic profile to copied attributes."),
    report_phi: bool = typer.Option(False, "--report-phi", help="Allow patient names/IDs in the report (off by default)."),
    workers: int = typer.Option(1, "--reader-workers", help="Reader processes feeding the backend (0 = read in the main process)."),
    send: Optional[str] = typer.Option(None, "--send", help="C-STORE the written SC to HOST:PORT:AET right after writing."),
    model: Optional[str] = typer.Option(None, "--model", help="cnn/cyclegan model: a shipped name (meat, retina; default meat) or a checkpoint from `medcolor train`."),
    no_l_lock: bool = typer.Option(False, "--no-l-lock", help="cyclegan only: write G_color's raw RGB (its own L; the report shows the ΔL it caused) instead of its chroma on the source L."),
) -> None:
    """Colourise the series found in INPUTS and write Secondary Capture (and/or PNG) with report.json/.html."""
    from medcolor.pipeline import RunOptions

    opts = RunOptions(output=output, method=method, reference=ref, window=window, device=device, fmt=fmt,
                      multiframe=multiframe, overwrite=overwrite, batch_size=batch_size,
                      exemplar_mode=exemplar_mode, deidentify=deidentify, report_phi=report_phi,
                      reader_workers=workers, tissue_map=tissue_map, vgg19_weights=vgg19_weights,
                      backend_options={**({"model": model} if model else {}), **({"l_lock": False} if no_l_lock else {})})
    _guard(lambda: _run(inputs, opts, send=send))


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
    """Colour the shipped CT sample with the shipped beef reference (lung window) and say where it went."""
    from medcolor.pipeline import RunOptions

    def go() -> int:
        root = _find_sample(sample)
        ref = root / "refs" / "beef_marbled.jpg"
        opts = RunOptions(output=output, method="exemplar", reference=ref if ref.is_file() else None,
                          window="lung", device=device, fmt="both", overwrite=True)
        code = _run([str(root / "ct_chest")], opts)
        out.print(f"\nDemo results: DICOM and PNG under [bold]{output.resolve()}[/] "
                  f"(report: {output.resolve() / 'report.json'})", highlight=False)
        return code

    _guard(go)


@app.command()
def doctor() -> None:
    """Versions, devices, transfer syntaxes that decode, backends and what each lacks."""
    from medcolor.colorizers import list_backends
    from medcolor.doctor import devices, tools, transfer_syntaxes, versions

    def go() -> int:
        t = Table(title="versions")
        t.add_column("package"); t.add_column("version")
        for k, v in versions().items():
            t.add_row(k, v)
        out.print(t)
        t = Table(title="devices")
        t.add_column("device"); t.add_column("")
        for k, v in devices().items():
            t.add_row(k, v)
        out.print(t)
        t = Table(title="transfer syntaxes (decode)")
        t.add_column("syntax"); t.add_column("decodes"); t.add_column("plug-ins / what to install")
        for s in transfer_syntaxes():
            t.add_row(s.name, "[green]yes" if s.available else "[red]no", ", ".join(s.plugins) or s.hint)
        out.print(t)
        t = Table(title="backends (--method)")
        t.add_column("name"); t.add_column("available"); t.add_column("what / what it lacks")
        for b in list_backends():
            t.add_row(b.name, "[green]yes" if b.available else "[red]no", b.summary if b.available else b.reason)
        out.print(t)
        t = Table(title="tools")
        t.add_column("tool"); t.add_column("path")
        for k, v in tools().items():
            t.add_row(k, v)
        out.print(t)
        return EXIT_OK

    _guard(go)


@app.command()
def presets() -> None:
    """The named CT windows (Hounsfield units) and where their values come from."""
    from medcolor.windowing import PRESET_SOURCES, PRESETS

    t = Table(title="CT window presets (--window NAME)")
    for col in ("name", "width (HU)", "level (HU)", "source"):
        t.add_column(col)
    for name, w in PRESETS.items():
        t.add_row(name, f"{w.width:g}", f"{w.center:g}", PRESET_SOURCES.get(name, ""))
    out.print(t)
    out.print("Also: --window W,L  |  --window file (the file's VOI)  |  --window percentile[:LO,HI] (MR, X-ray)")


# commands that live in their own modules (training/evaluation; batch/export)
from medcolor.cli import batch_cmd, train_cmd  # noqa: E402

train_cmd.register(app)
batch_cmd.register(app)


def main() -> None:
    app(prog_name="medcolor")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
