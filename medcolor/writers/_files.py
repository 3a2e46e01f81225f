"""Output naming and atomic file creation shared by every writer.

Names come from counters only (series number, modality, slice index), never from patient data or
UIDs. A file is written under a hidden temporary name in its final directory (``.<name>.<pid>.<n>.part``);
the files of one output series are renamed into place together when the series is complete
(``StagedFiles.commit``), so neither a half-written file nor a half-written series is ever published:
an interrupted or failed series leaves nothing behind.
"""
from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from medcolor.errors import MedcolorError
from medcolor.types import Series

_COUNTER = itertools.count(1)
PART_SUFFIX = ".part"


def modality_label(modality: str | None) -> str:
    """The modality as a safe directory-name component: upper-case letters and digits, else "OT"."""
    label = re.sub(r"[^A-Z0-9]", "", (modality or "").upper())[:16]
    return label or "OT"


def series_dir(out_dir: Path, series_number: int, modality: str | None) -> Path:
    """``out_dir/S{nnn}_{MOD}`` for one output series."""
    if not isinstance(series_number, int) or series_number < 0:
        raise ValueError(f"series_number must be a non-negative int, got {series_number!r}")
    return Path(out_dir) / f"S{series_number:03d}_{modality_label(modality)}"


def check_rgb(rgb: Any, rows: int, columns: int) -> None:
    """ValueError unless ``rgb`` is a uint8 array [rows, columns, 3]."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"rgb must be a uint8 array [H, W, 3], got {dtype} {shape}")
    if rgb.shape[:2] != (rows, columns):
        raise ValueError(f"rgb is {rgb.shape[0]}x{rgb.shape[1]}, the series is {rows}x{columns}")


def check_index(index: Any) -> int:
    """``index`` as an int, ValueError unless it is a non-negative integer (not a bool)."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    return int(index)


def checked_path(out_dir: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``out_dir`` (no traversal, no symlink escape), else MedcolorError."""
    root = Path(out_dir).resolve()
    resolved = Path(path).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise MedcolorError("output path escapes the output folder", where=path,
                            hint="choose another -o")
    return path


def temp_path(final: Path, tag: str = "") -> Path:
    """A unique hidden temporary name next to ``final`` (same directory, so rename is atomic)."""
    return final.with_name(f".{final.name}{tag}.{os.getpid()}.{next(_COUNTER)}{PART_SUFFIX}")


def refuse_existing(final: Path, overwrite: bool) -> None:
    """MedcolorError when ``final`` exists and overwriting is not allowed."""
    if not overwrite and os.path.lexists(final):
        raise MedcolorError("output exists", where=final, hint="pass --overwrite or choose another -o")


def publish(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move a finished temporary file to its final name atomically.

    Without ``overwrite`` the move never replaces an existing file, even one created concurrently
    (hard link + unlink; falls back to check-then-rename where hard links are unsupported).
    The temporary file is gone afterwards in every case.
    """
    try:
        if overwrite:
            os.replace(tmp, final)
            return
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise MedcolorError("output exists", where=final,
                                hint="pass --overwrite or choose another -o") from None
        except OSError:  # filesystem without hard links
            refuse_existing(final, overwrite=False)
            os.replace(tmp, final)
    finally:
        unlink_quietly(tmp)


def unlink_quietly(path: Path | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class StagedFiles:
    """The files of one output series: written under temporary names, published together.

    ``stage(final)`` refuses an existing ``final`` (unless overwriting) and returns the temporary path
    to write; ``commit()`` renames every staged file into place (in staging order); ``discard()``
    removes every temporary file. Both are idempotent.
    """

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self._staged: dict[Path, Path] = {}  # final -> temporary

    def stage(self, final: Path) -> Path:
        refuse_existing(final, self.overwrite)
        old = self._staged.pop(final, None)
        unlink_quietly(old)
        tmp = temp_path(final)
        self._staged[final] = tmp
        return tmp

    def commit(self) -> list[Path]:
        published = []
        try:
            while self._staged:
                final, tmp = next(iter(self._staged.items()))
                publish(tmp, final, self.overwrite)
                del self._staged[final]
                published.append(final)
        finally:
            self.discard()
        return published

    def discard(self) -> None:
        for tmp in self._staged.values():
            unlink_quietly(tmp)
        self._staged.clear()


class SeriesFiles:
    """Base of the series writers: the output folder of one series, its staged files, close and abort.

    A subclass implements ``write(index, ref, rgb)``: it checks its arguments with :meth:`_accept`,
    writes each file to the temporary path :meth:`_stage` gives, and records it in ``_written``.
    :meth:`close` publishes every staged file together (after :meth:`_finish`, for what is written
    only at the end), :meth:`abort` removes them; both then :meth:`_release` what the writer holds.
    As a context manager: ``close()`` when the block succeeds, ``abort()`` when it raises.
    """

    def __init__(self, out_dir: Path, series: Series, series_number: int, overwrite: bool) -> None:
        self.out_dir = Path(out_dir)
        self.series = series
        self.series_number = series_number
        self.overwrite = overwrite
        self.directory = checked_path(self.out_dir, series_dir(self.out_dir, series_number, series.modality))
        self._written: dict[int, Path] = {}
        self._staged = StagedFiles(overwrite)
        self._closed = False
        self._made = False   # the series folder exists (made by the first file)

    def _accept(self, index: Any, rgb: Any) -> int:
        """``index`` as an int, after checking the writer is open and ``rgb`` is the series' size."""
        if self._closed:
            raise RuntimeError("writer is closed")
        check_rgb(rgb, self.series.rows, self.series.columns)
        return check_index(index)

    def _stage(self, final: Path) -> Path:
        """The temporary path to write ``final`` under (folder made; ``final`` refused if it exists,
        unless overwriting)."""
        if not self._made:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._made = True
        return self._staged.stage(final)

    def _finish(self) -> None:
        """Write what is written only when the series is complete (before publishing)."""

    def _release(self) -> None:
        """Free what the writer holds besides its staged files."""

    def close(self) -> list[Path]:
        """Publish the series' files together; returns them in slice order. Idempotent."""
        if not self._closed:
            try:
                self._finish()
                self._staged.commit()
            except BaseException:
                self.abort()
                raise
            self._closed = True
            self._release()
        return [self._written[i] for i in sorted(self._written)]

    def abort(self) -> None:
        """Remove every temporary file: nothing of an unfinished series is published. Idempotent."""
        self._closed = True
        self._staged.discard()
        self._written.clear()
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
