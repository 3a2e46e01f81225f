"""The global options (``--debug``, ``-q/--quiet``, ``-v/-vv/--verbose``, ``-V/--version``) anywhere on the
command line, the logging they set up, and the truthful message after an interrupt."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup

#: Flags that belong to the ``medcolor`` app itself, wherever they stand on the command line.
GLOBAL_FLAGS = frozenset({"--debug", "-q", "--quiet", "-v", "-vv", "--verbose", "-V", "--version"})


class GlobalOptionsGroup(TyperGroup):
    """A Typer group that moves the global flags given after the subcommand in front of it, so that
    ``medcolor run ... --debug`` means what ``medcolor --debug run ...`` means (as dcmtk's and MONAI's
    tools accept). Everything after ``--`` is left alone."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        head = [a for a in args[:end] if a in GLOBAL_FLAGS]
        rest = [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]
        return super().parse_args(ctx, head + rest)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The subcommand, with the plain usage line of :class:`PlainUsageCommand` (it adds no state)."""
        command = super().get_command(ctx, cmd_name)
        if type(command) is TyperCommand:
            command.__class__ = PlainUsageCommand
        return command


def setup_logging(debug: bool, verbose: int, quiet: bool) -> None:
    """WARNING by default, INFO with ``-v``, DEBUG with ``-vv`` or ``--debug``, ERROR with ``--quiet``.
    Python warnings of the libraries (e.g. pydicom's "Invalid value for VR UI" while reading a source)
    go to the log: shown with ``-v``, otherwise left to the per-file reasons in the report."""
    level = logging.DEBUG if debug or verbose >= 2 else logging.INFO if verbose == 1 else \
        logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s", force=True)
    quiet_libraries(shown=verbose >= 1 or debug)


def quiet_libraries(shown: bool = False) -> None:
    """Route Python warnings to the ``py.warnings`` logger, visible only when ``shown`` (also called in
    batch worker processes, which do not inherit this process's set-up)."""
    import pydicom.config  # noqa: F401 - pydicom sets its logger's level when imported: set ours after

    logging.captureWarnings(True)
    level = logging.WARNING if shown else logging.ERROR
    logging.getLogger("py.warnings").setLevel(level)
    logging.getLogger("pydicom").setLevel(level)
    if not shown:
        warnings.filterwarnings("ignore", message=r"Invalid value for VR", category=UserWarning)


def on_disk(out_dir: Path | None, since: float = 0.0) -> str:
    """What an interrupted run left in ``out_dir``, in words: the number of output files and whether this
    run (started at ``since``, a time.time()) wrote the report (never "nothing" when something is there)."""
    if out_dir is None or not Path(out_dir).is_dir():
        return "nothing was written"
    files = [p for p in Path(out_dir).rglob("*") if p.is_file() and not p.name.endswith(".part")
             and ".medcolor" not in p.relative_to(out_dir).parts]
    images = [p for p in files if p.parent != Path(out_dir)]
    report_path = Path(out_dir) / "report.json"
    report = report_path.is_file() and report_path.stat().st_mtime >= since
    if not files:
        return f"nothing was written to {out_dir}"
    return (f"{out_dir} holds {len(images)} output file{'s' if len(images) != 1 else ''} and "
            + ("report.json" if report else "no report of this run (report.json was not written)"))


class PlainUsageCommand(TyperCommand):
    """A command whose usage line names its arguments as people write them (``INPUTS...``, ``[NAME]``
    when optional) instead of Typer's ``{inputs}...``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = (param.metavar or param.name or "").rstrip(".").upper()
                name += "..." if param.nargs != 1 else ""
                pieces.append(name if param.required else f"[{name}]")
        return pieces
