"""The summary shown after ``run`` and ``batch``: one table that fits 80 columns (series, the source it came
from, slices, status, short window and method, mean |ΔL|, colourfulness), then one line per file not done.
Every detail (full window, parameters, p99/max |ΔL|, timings, reasons) stays in report.json/report.html."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

from rich import box
from rich.table import Table

from medcolor.cli._common import STATE, err, out

#: Column widths: with the one-space column divider, 79 characters in all.
_WIDTHS = {"series": 7, "source": 15, "n": 3, "status": 7, "window": 17, "method": 12, "|ΔL|": 5, "colour": 6}


def short_window(text: str) -> str:
    """'percentile(1,99) W=194 L=145 (modality)' -> 'p1-99 W194 L145'; 'sRGB gray to CIE L*' -> 'sRGB->L*'."""
    if text.startswith("sRGB"):
        return "sRGB->L*"
    text = re.sub(r"\s*\((HU|modality|srgb)\)$", "", text)
    text = re.sub(r"percentile\(([\d.]+),([\d.]+)\)", r"p\1-\2", text)
    return text.replace("W=", "W").replace("L=", "L")


def short_method(text: str) -> str:
    """'exemplar (tissue)' -> 'exemplar/tis'; the full method is in the report."""
    m = re.match(r"^(\w+)\s*\((\w+)", text or "")
    return f"{m.group(1)}/{m.group(2)[:3]}" if m else (text or "-")


def short_source(text: str, width: int = _WIDTHS["source"]) -> str:
    """The last part of the source path (a file or folder name), cut at its start to ``width`` so that
    the end (and the extension) stays."""
    name = (Path(text).name or text) if text else "-"
    return name if len(name) <= width else "…" + name[-(width - 1):]


def outcome_line(path: str, reason: str) -> str:
    """One file's line: ``path: reason``, or the reason alone when it already starts with the path."""
    return reason if reason.startswith(path) else f"{path}: {reason}"


def summary_table(title: str, series: Iterable[Any], note: Callable[[Any], str] = lambda s: "") -> Table:
    """The summary of ``series`` (SeriesResult); ``note(s)`` replaces the status when not empty."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=0, show_edge=False, title_justify="left")
    for col, width in _WIDTHS.items():
        table.add_column(col, max_width=width, min_width=min(width, len(col)), no_wrap=True, overflow="ellipsis",
                         justify="right" if col in ("n", "|ΔL|", "colour") else "left")
    for s in series:
        sm = s.summary
        status = note(s) or s.status
        table.add_row(s.label, short_source(s.source), str(s.n_slices),
                      status if status in ("done", "resumed") else f"[red]{status}",
                      short_window(s.window) or "-", short_method(s.method),
                      f"{sm['delta_l_mean']:.3f}" if sm else "-", f"{sm['colourfulness_mean']:.1f}" if sm else "-")
    return table


def print_summary(table: Table, lines: list[tuple[str, str]], final: str) -> None:
    """The table (unless --quiet), then each ``(kind, text)`` line on stderr (failed in red, skipped and
    warnings unless --quiet), then ``final`` (the counts and where the reports are)."""
    if not STATE.get("quiet") and table.row_count:
        out.print(table)
    styles = {"failed": "red", "warning": "yellow", "skipped": "dim"}
    for kind, text in lines:
        if kind == "failed" or not STATE.get("quiet"):
            err.print(f"{kind}: {text}", style=styles.get(kind, ""), highlight=False, soft_wrap=True, markup=False)
    out.print(final, highlight=False, soft_wrap=True)


def print_plan(plan: Any) -> int:
    """``--dry-run``: the series found and what would be written; returns the exit code (0, or 1 when no
    series would be coloured and some input failed)."""
    table = Table(title=f"medcolor run --dry-run: would write under {plan.output}", box=box.SIMPLE_HEAD,
                  pad_edge=False, padding=0, show_edge=False, title_justify="left")
    for col, width in (("series", 8), ("source", 16), ("n", 4), ("window", 24), ("would write", 22)):
        table.add_column(col, max_width=width, no_wrap=True, overflow="ellipsis",
                         justify="right" if col == "n" else "left")
    for s in plan.series:
        table.add_row(s.folder + "/", short_source(s.source), str(s.n_slices), short_window(s.window), s.writes)
    lines = [(o.status, outcome_line(str(o.path), o.reason)) for o in plan.outcomes]
    failed = sum(1 for o in plan.outcomes if o.status == "failed")
    print_summary(table, lines, f"dry run: {len(plan.series)} series; {len(plan.outcomes) - failed} input files "
                                f"skipped, {failed} failed; would also write {' and '.join(plan.reports)}; "
                                "nothing was written")
    return 1 if failed and not plan.series else 0
