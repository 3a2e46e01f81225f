"""Pushing medcolor's Secondary Capture into a PACS: a C-STORE SCU that checks every status.

``export(paths, target)`` stores each instance with pynetdicom, proposing Secondary Capture Image
Storage and Multi-frame True Color SC Image Storage with Explicit VR Little Endian (and each file's own
transfer syntax, as a separate presentation context). Every C-STORE response is classified (PS3.4
B.2.3, PS3.7 C):

* ``0x0000`` stored;
* ``0xB000`` (coercion of data elements), ``0xB007`` (data set does not match SOP class), ``0xB006``
  (elements discarded), and any other 0x0001 / 0xBxxx: stored with a warning;
* ``0xA7xx`` (out of resources), ``0xA9xx`` (data set does not match SOP class), ``0xCxxx`` (cannot
  understand), ``0x0122`` (SOP class not supported), anything else, or a presentation context the peer
  did not accept: failed;
* no response (association aborted, released, DIMSE timeout), connection refused, association rejected
  *transient*: retried on a new association with exponential back-off, then failed.

An association rejected *permanently* (unknown called AE title, ...) fails every remaining instance at
once. Nothing here logs patient data: results carry file paths relative to the export folder.
Optional DICOMweb STOW-RS: :func:`stow` (``pip install medcolor[stow]``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from medcolor.errors import MedcolorError, environment_fault

log = logging.getLogger("medcolor")

SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SC_FAMILY = (SC_IMAGE_STORAGE, "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
             "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4")
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

WARNING_STATUSES = {0xB000: "coercion of data elements", 0xB007: "data set does not match SOP class",
                    0xB006: "elements discarded", 0x0001: "warning"}
TRANSIENT_REJECT = 0x02


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    called_aet: str
    calling_aet: str = "MEDCOLOR"

    @classmethod
    def parse(cls, text: str, calling_aet: str = "MEDCOLOR") -> "Target":
        """``HOST:PORT:AET`` (as given to ``--send``)."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[0] or not parts[2]:
            raise MedcolorError(f"cannot parse {text!r}", where="--send", hint="use HOST:PORT:AET, e.g. pacs:104:ORTHANC")
        return cls(parts[0], int(parts[1]), parts[2], calling_aet)

    def check(self) -> None:
        for name, aet in (("--called-aet", self.called_aet), ("--calling-aet", self.calling_aet)):
            if not aet or len(aet) > 16 or "\\" in aet or not aet.isascii() or not aet.strip():
                raise MedcolorError(f"invalid AE title {aet!r}", where=name, hint="1 to 16 ASCII characters, no backslash")
        if not 0 < self.port < 65536:
            raise MedcolorError(f"invalid port {self.port}", where="--port", hint="1..65535")

    def reach(self, timeout: float = 5.0) -> None:
        """Resolve the host and open (then close) a TCP connection to the port, so that a typo in the host,
        a refused port or a silent address fails in seconds, before any colouring: EnvironmentFault."""
        import socket

        where = f"{self.host}:{self.port}"
        try:
            socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            with socket.create_connection((self.host, self.port), timeout=timeout):
                pass
        except OSError as exc:
            raise environment_fault(exc, where) from None


@dataclass
class InstanceResult:
    path: str
    sop_class_uid: str
    status: str            # stored | warning | failed
    code: int | None = None
    message: str = ""
    attempts: int = 0


@dataclass
class ExportResult:
    instances: list[InstanceResult] = field(default_factory=list)
    seconds: float = 0.0
    associations: int = 0

    def counts(self) -> dict[str, int]:
        out = {"stored": 0, "warning": 0, "failed": 0}
        for r in self.instances:
            out[r.status] += 1
        return out

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.instances)


def classify_status(code: int | None) -> tuple[str, str]:
    """``(status, message)`` for a C-STORE response status (None: no response)."""
    if code is None:
        return "retry", "no response (association aborted or timed out)"
    if code == 0x0000:
        return "stored", "success"
    if code in WARNING_STATUSES or (code & 0xF000) == 0xB000:
        return "warning", f"warning 0x{code:04X}: {WARNING_STATUSES.get(code, 'warning')}"
    if (code & 0xFF00) == 0xA700:
        return "failed", f"refused 0x{code:04X}: out of resources"
    if (code & 0xFF00) == 0xA900:
        return "failed", f"error 0x{code:04X}: data set does not match SOP class"
    if (code & 0xF000) == 0xC000:
        return "failed", f"error 0x{code:04X}: cannot understand"
    if code == 0x0122:
        return "failed", "refused 0x0122: SOP class not supported"
    if code == 0x0124:
        return "failed", "refused 0x0124: not authorized"
    return "failed", f"failure 0x{code:04X}"


def find_instances(out_dir: Path) -> list[tuple[Path, str, str]]:
    """Every Secondary Capture instance under ``out_dir`` as ``(path, SOPClassUID, TransferSyntaxUID)``,
    sorted; hidden files/folders (temporary ``.part`` files, ``.medcolor``) are left out."""
    import pydicom

    found = []
    root = Path(out_dir)
    for p in sorted(root.rglob("*.dcm")):
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:  # noqa: BLE001 - not a DICOM file we wrote
            continue
        sop = str(ds.get("SOPClassUID", ""))
        if sop in SC_FAMILY:
            found.append((p, sop, str(ds.file_meta.get("TransferSyntaxUID", EXPLICIT_VR_LE))))
    return found


def _build_ae(target: Target, instances: Sequence[tuple[Path, str, str]], timeout: float):
    from pynetdicom import AE

    ae = AE(ae_title=target.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    sops = sorted({sop for _, sop, _ in instances} | {SC_IMAGE_STORAGE})
    for sop in sops:
        ae.add_requested_context(sop, [EXPLICIT_VR_LE])
    for sop, ts in sorted({(sop, ts) for _, sop, ts in instances if ts != EXPLICIT_VR_LE}):
        ae.add_requested_context(sop, [ts])
    return ae


def export(paths: Iterable[Path | tuple[Path, str, str]], target: Target, *, root: Path | None = None,
           retries: int = 3, backoff: float = 0.5, timeout: float = 30.0,
           progress: Callable[[InstanceResult], None] | None = None) -> ExportResult:
    """C-STORE every instance to ``target``; see the module docstring for how statuses are counted.
    ``paths``: files, or ``(path, sop_class_uid, transfer_syntax_uid)`` from :func:`find_instances`."""
    import pydicom

    target.check()
    if not log.isEnabledFor(logging.DEBUG):  # pynetdicom logs every refusal as ERROR; we report them ourselves
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    items: list[tuple[Path, str, str]] = []
    for p in paths:
        if isinstance(p, tuple):
            items.append(p)
        else:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            items.append((Path(p), str(ds.SOPClassUID), str(ds.file_meta.get("TransferSyntaxUID", EXPLICIT_VR_LE))))
    result = ExportResult()
    t0 = time.perf_counter()

    def rel(p: Path) -> str:
        if root is not None:
            try:
                return str(Path(p).relative_to(root))
            except ValueError:
                pass
        return str(p)

    queue = list(range(len(items)))
    attempts = [0] * len(items)
    done: dict[int, InstanceResult] = {}
    ae = _build_ae(target, items, timeout) if items else None
    failures_in_row = 0
    while queue:
        assoc = ae.associate(target.host, target.port, ae_title=target.called_aet)
        result.associations += 1
        if not assoc.is_established:
            rejected = assoc.is_rejected
            prim = getattr(assoc.acceptor, "primitive", None)
            rj_result = getattr(prim, "result", None) if rejected else None
            if rejected and rj_result != TRANSIENT_REJECT:
                reason = (f"association rejected (permanent): {getattr(prim, 'reason_str', '')}".strip()
                          if prim is not None else "association rejected (permanent)")
                for i in queue:
                    done[i] = InstanceResult(rel(items[i][0]), items[i][1], "failed", None, reason, attempts[i] + 1)
                    _notify(progress, done[i])
                queue = []
                break
            what = ("association rejected (transient)" if rejected else
                    "no presentation context accepted" if prim is not None else
                    "cannot connect (connection refused or no answer)")
            failures_in_row += 1
            if failures_in_row > retries:
                for i in queue:
                    done[i] = InstanceResult(rel(items[i][0]), items[i][1], "failed", None,
                                             f"{what} to {target.host}:{target.port} ({failures_in_row} tries)",
                                             attempts[i] + 1)
                    _notify(progress, done[i])
                queue = []
                break
            time.sleep(backoff * 2 ** (failures_in_row - 1))
            continue
        failures_in_row = 0
        retry_queue: list[int] = []
        try:
            while queue:
                i = queue.pop(0)
                path, sop, ts = items[i]
                if not assoc.is_established:
                    retry_queue.append(i)
                    continue
                attempts[i] += 1
                try:
                    status = assoc.send_c_store(path)
                    code = int(status.Status) if status is not None and "Status" in status else None
                    kind, message = classify_status(code)
                except ValueError as exc:  # no accepted presentation context for this SOP class/syntax
                    kind, code, message = "failed", None, f"not accepted by the peer: {' '.join(str(exc).split())[:160]}"
                except (RuntimeError, OSError) as exc:
                    kind, code, message = "retry", None, f"association lost ({type(exc).__name__})"
                if kind == "retry":
                    if attempts[i] <= retries:
                        retry_queue.append(i)
                        continue
                    kind, message = "failed", f"{message}; gave up after {attempts[i]} tries"
                done[i] = InstanceResult(rel(path), sop, kind, code, message, attempts[i])
                _notify(progress, done[i])
        finally:
            if assoc.is_established:
                assoc.release()
        if retry_queue:
            queue = retry_queue + queue
            time.sleep(backoff * 2 ** (min(attempts[j] for j in retry_queue) - 1))
    result.instances = [done[i] for i in sorted(done)]
    result.seconds = time.perf_counter() - t0
    return result


def _notify(progress: Callable[[InstanceResult], None] | None, r: InstanceResult) -> None:
    if progress is not None:
        progress(r)


def stow(paths: Iterable[Path], url: str, root: Path | None = None) -> ExportResult:
    """DICOMweb STOW-RS of every file to ``url`` (the service's base URL) through dicomweb-client, one
    request per instance so each is accounted for. Failed instances carry the HTTP error."""
    try:
        from dicomweb_client.api import DICOMwebClient
    except ImportError:
        raise MedcolorError("--stow needs dicomweb-client", where="--stow",
                            hint="pip install 'medcolor[stow]'") from None
    import pydicom

    client = DICOMwebClient(url=url)
    result = ExportResult()
    t0 = time.perf_counter()
    for p in paths:
        p = Path(p)
        name = str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else str(p)
        ds = pydicom.dcmread(p)
        try:
            rsp = client.store_instances(datasets=[ds])
            failed = rsp.get("00081198", {}).get("Value") if rsp is not None else None
            if failed:
                result.instances.append(InstanceResult(name, str(ds.SOPClassUID), "failed", None, "refused by the server"))
            else:
                result.instances.append(InstanceResult(name, str(ds.SOPClassUID), "stored", None, "stored"))
        except Exception as exc:  # noqa: BLE001 - account for every instance
            result.instances.append(InstanceResult(name, str(ds.SOPClassUID), "failed", None,
                                                   f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"))
    result.seconds = time.perf_counter() - t0
    return result
