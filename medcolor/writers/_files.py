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

from medcolor.errors import MedcolorError

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


class CloseOnSuccess:
    """Mixin for series writers: as a context manager, ``close()`` when the block succeeds and
    ``abort()`` when it raises (so an unfinished series publishes nothing)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()  # type: ignore[attr-defined]
        else:
            self.abort()  # type: ignore[attr-defined]
