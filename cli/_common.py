"""What every ``medcolor`` command shares: the consoles, the exit codes, the one error handler
(:func:`guard`), the progress bar, and the options ``run`` and ``batch`` share (:class:`ColourArgs`,
declared once and added to both commands by :func:`colour_options`).

User-visible messages and exit codes live here, so a change to them is made once for every command.
"""
from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, get_type_hints

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn

from medcolor.cli._globals import on_disk
from medcolor.errors import MedcolorError, environment_fault

if TYPE_CHECKING:
    from medcolor.pipeline import RunOptions

out = Console()
err = Console(stderr=True)
STATE: dict[str, Any] = {"debug": False, "quiet": False}   # set by the app's --debug, --quiet

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def guard(fn: Callable[[], int], output: Path | None = None, resume_hint: str = "") -> None:
    """Run a command body and exit with its code. A MedcolorError becomes one line and EXIT_USAGE, an
    EnvironmentFault or OSError (disk, network) one line and EXIT_FAILED, an interrupt one line saying what
    is on disk in ``output`` (then ``resume_hint``) and EXIT_INTERRUPTED, any other exception one line and
    EXIT_FAILED: never a traceback, unless ``--debug``."""
    started = time.time()
    try:
        code = fn()
    except (MedcolorError, OSError) as e:
        if STATE["debug"]:
            raise
        fault = environment_fault(e)
        err.print(f"error: {(fault or e).one_line()}", style="bold red", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_FAILED if fault is not None else EXIT_USAGE)
    except KeyboardInterrupt:
        err.print(f"interrupted: {on_disk(output, started)}{'; ' + resume_hint if resume_hint else ''}.",
                  style="bold red", highlight=False, soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    except typer.Exit:
        raise
    except Exception as e:  # an internal error: still one line unless --debug
        if STATE["debug"]:
            raise
        err.print(f"[bold red]internal error:[/] {type(e).__name__}: {e}. Rerun with --debug and report it.",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(code)


def progress_bar(*columns: ProgressColumn, transient: bool = False, disable: bool = False) -> Progress:
    """A Rich progress bar on stderr (description, bar, then ``columns``); off when stderr is not a
    terminal."""
    return Progress(TextColumn("{task.description}"), BarColumn(), *columns, console=err, transient=transient,
                    disable=disable or not err.is_terminal)


@dataclass(frozen=True)
class ColourArgs:
    """The options ``medcolor run`` and ``medcolor batch`` share (each field is one option)."""

    method: Annotated[str, typer.Option(
        "--method", "-m", help="Backend: exemplar | lut | cnn | cyclegan (see `medcolor doctor`).")] = "exemplar"
    ref: Annotated[Optional[Path], typer.Option(
        "--ref", help="Exemplar reference photo (default: the shipped beef_marbled.jpg).")] = None
    window: Annotated[Optional[str], typer.Option(
        "--window", "-w", help="Preset name, W,L (e.g. 1500,-600), 'file' or 'percentile[:LO,HI]'. Default: the "
                               "file's window, else the modality's default.")] = None
    device: Annotated[str, typer.Option(
        "--device", help="auto | cpu | cuda | cuda:N (fails if CUDA is asked for and absent).")] = "auto"
    fmt: Annotated[str, typer.Option("--format", "-f", help="dicom | png | tiff | both (dicom + png) | nifti | nrrd | mha (one RGB volume a series).")] = "dicom"
    multiframe: Annotated[bool, typer.Option(
        "--multiframe", help="Write one Multi-frame True Color SC per series.")] = False
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Slices per batch through the backend.")] = 8
    exemplar_mode: Annotated[str, typer.Option(
        "--exemplar-mode", help="auto (tissue on CT in HU, else welsh) | tissue (colour by Hounsfield class and "
                                "photo population) | gram (tissue + VGG-19 style transfer) | welsh (luminance + "
                                "texture) | reinhard (global tint).")] = "auto"
    tissue_map: Annotated[Optional[Path], typer.Option(
        "--tissue-map", help="exemplar tissue/gram: JSON map of Hounsfield class -> photo population, e.g. "
                             "{\"bone\": \"fat\"} (see docs/tissue.md).")] = None
    vgg19_weights: Annotated[Optional[Path], typer.Option(
        "--vgg19-weights", help="exemplar gram: local torchvision VGG-19 state dict (never downloaded); default: "
                                "fixed random features.")] = None
    deidentify: Annotated[bool, typer.Option(
        "--deidentify", help="Apply the PS3.15 basic profile to copied attributes; refuses sources with "
                             "BurnedInAnnotation YES.")] = False
    report_phi: Annotated[bool, typer.Option(
        "--report-phi", help="Allow patient names/IDs in the reports (off by default).")] = False
    send: Annotated[Optional[str], typer.Option(
        "--send", help="C-STORE the Secondary Capture written by this run to HOST:PORT:AET.")] = None
    model: Annotated[Optional[str], typer.Option(
        "--model", help="cnn/cyclegan model: a shipped name (cnn: retina, no default; cyclegan: meat, the "
                        "default) or a checkpoint from `medcolor train`. `medcolor doctor` lists the shipped "
                        "models (withdrawn ones marked).")] = None

    def run_options(self, output: Path, overwrite: bool, backend_options: dict[str, Any] | None = None,
                    **fields_: Any) -> "RunOptions":
        """The pipeline's RunOptions for these options (``fields_``: other RunOptions fields)."""
        from medcolor.pipeline import RunOptions

        backend = {**({"model": self.model} if self.model else {}), **(backend_options or {})}
        return RunOptions(output=output, method=self.method, reference=self.ref, window=self.window,
                          device=self.device, fmt=self.fmt, multiframe=self.multiframe, overwrite=overwrite,
                          batch_size=self.batch_size, exemplar_mode=self.exemplar_mode, tissue_map=self.tissue_map,
                          vgg19_weights=self.vgg19_weights, deidentify=self.deidentify,
                          report_phi=self.report_phi, backend_options=backend, **fields_)


def colour_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a Typer command with a ``colour: ColourArgs`` parameter: Typer sees the fields of
    :class:`ColourArgs` as options in its place, and ``command`` gets them back as one ColourArgs."""
    hints = get_type_hints(ColourArgs, include_extras=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in fields(ColourArgs)]
    params: list[inspect.Parameter] = []
    for p in inspect.signature(command, eval_str=True).parameters.values():
        params.extend(shared if p.name == "colour" else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)])

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        colour = ColourArgs(**{f.name: kwargs.pop(f.name) for f in fields(ColourArgs)})
        return command(colour=colour, **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper
