"""Errors a user can act on: one line saying what, where (file) and what to do."""
from __future__ import annotations

from pathlib import Path


class MedcolorError(Exception):
    """An error caused by the input or the options, shown to the user as one line (no traceback).

    ``str(err)`` is ``"<where>: <what>. <hint>"``; ``where`` is a file path or an option name and never
    carries patient data.
    """

    def __init__(self, what: str, where: str | Path | None = None, hint: str | None = None) -> None:
        self.what = what.rstrip(".")
        self.where = str(where) if where is not None else None
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f". {self.hint.rstrip('.')}"
        return text.replace("\n", " ") + "."


class SkipInput(MedcolorError):
    """An input that is not an error but is not processed (DICOMDIR, no pixels, already colour, ...)."""
