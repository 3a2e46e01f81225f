"""Errors a user can act on: one line saying what, where (file) and what to do."""
from __future__ import annotations

import errno
import socket
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
        return text.replace("\n", " ") + ("" if text.endswith(("?", "!")) else ".")


class SkipInput(MedcolorError):
    """An input that is not an error but is not processed (DICOMDIR, no pixels, already colour, ...)."""


class EnvironmentFault(MedcolorError):
    """A fault of the machine or the network, not of the input or the options (read-only disk, disk full,
    unresolvable host, refused connection...): one line with what to do; the CLI exits 1 for it."""


_ERRNO_HINTS = {
    errno.EROFS: ("the disk is read-only", "choose an -o on a writable disk"),
    errno.EACCES: ("permission denied", "choose an -o you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose an -o you can write to, or fix its permissions"),
    errno.ENOSPC: ("no space left on the disk", "free some space or choose an -o on another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose an -o on another disk"),
    errno.EEXIST: ("exists and is not a folder", "choose another -o (a folder name)"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another -o (a folder name)"),
    errno.ENAMETOOLONG: ("the path is too long", "choose a shorter -o"),
}


def environment_fault(exc: BaseException, where: str | Path | None = None) -> EnvironmentFault | None:
    """The one-line EnvironmentFault for an OSError from the machine or the network (``where``: the file
    or host it concerns, else the error's own file name); None for anything else."""
    if isinstance(exc, EnvironmentFault):
        return exc
    if isinstance(exc, socket.gaierror):
        return EnvironmentFault("cannot resolve the host name", where=where,
                                hint="check the spelling of the host, or use its IP address")
    if isinstance(exc, ConnectionRefusedError):
        return EnvironmentFault("connection refused (nothing listens on that port)", where=where,
                                hint="check the port and that the server runs")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return EnvironmentFault("no answer (timed out)", where=where,
                                hint="check the address, the network and any firewall")
    if not isinstance(exc, OSError):
        return None
    place = where if where is not None else (exc.filename if exc.filename else None)
    what, hint = _ERRNO_HINTS.get(exc.errno or -1, (exc.strerror or type(exc).__name__, "check the path and the disk"))
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        what, hint = "network or host unreachable", "check the address and the network"
    return EnvironmentFault(what, where=place, hint=hint)
