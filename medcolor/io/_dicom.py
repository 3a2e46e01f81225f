"""DICOM sniffing, header reading, per-frame geometry, decoding and the modality LUT.

Tolerant when reading (pydicom's lenient parser, files without preamble/meta, missing Transfer
Syntax), but an empty, zero-filled or text file is never turned into an empty dataset: a file is
only DICOM if it has the ``DICM`` magic at offset 128 or starts with a plausible group 0002/0008
element *and* parses into a dataset with identifying attributes.
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import uid as _uid
from pydicom.dataelem import RawDataElement
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.valuerep import AMBIGUOUS_VR

from medcolor.errors import MedcolorError, SkipInput
from medcolor.io._header import SequenceCache, read_header_fast

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
SEGMENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_PIXEL_TAGS = {(0x7FE0, 0x0010): "PixelData", (0x7FE0, 0x0008): "FloatPixelData",
               (0x7FE0, 0x0009): "DoubleFloatPixelData"}
_MONO = ("MONOCHROME1", "MONOCHROME2")
#: refuse to decode a single frame larger than this many pixels (about 16k x 16k)
MAX_FRAME_PIXELS = 1 << 28
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID",
                "SeriesInstanceUID", "Rows")


@dataclass
class DicomHeader:
    """A parsed header (no pixel data) and what the scan learned about the pixel data element."""

    dataset: Dataset
    transfer_syntax: str
    has_pixels: bool
    pixel_length: int | None = None    # value length of the pixel data element (None: encapsulated)
    pixel_value_offset: int | None = None  # file offset of its value (None when unknown, e.g. deflate)
    fast: bool = False                 # read by medcolor.io._header (reread_header can read it again)


class _DecoderTracebackFilter(logging.Filter):
    """pydicom's decoders log every failed plug-in attempt with ``LOGGER.exception`` (a traceback on the
    user's terminal for a merely corrupt frame). The failure reaches the user as one MedcolorError line,
    so these records are dropped unless medcolor runs with debug logging (``--debug``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None or logging.getLogger("medcolor").isEnabledFor(logging.DEBUG)


_DECODER_LOGGER = logging.getLogger("pydicom.pixels.decoders.base")
if not any(isinstance(f, _DecoderTracebackFilter) for f in _DECODER_LOGGER.filters):
    _DECODER_LOGGER.addFilter(_DecoderTracebackFilter())


def sniff_dicom(head: bytes) -> str | None:
    """Classify the first bytes of a file: "part10" (preamble + DICM), "raw" (no preamble/meta but
    starts like a DICOM data set: group 0002 or 0008, either byte order) or None (not DICOM)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "part10"
    if len(head) < 8:
        return None
    for endian in "<>":
        group, elem = struct.unpack(endian + "HH", head[:4])
        if group in (0x0002, 0x0008) and elem < 0x1000:
            vr = head[4:6]
            if vr.isalpha() and vr.isupper():
                return "raw"
            # implicit VR: 4-byte length that fits in a sane header
            (length,) = struct.unpack(endian + "L", head[4:8])
            if length < 0x10000:
                return "raw"
    return None


def _resolved_syntax(ds: Dataset) -> str:
    """Transfer Syntax UID from the file meta, or guessed from how pydicom parsed the data set."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = bool(getattr(ds, "is_implicit_VR", True)), bool(getattr(ds, "is_little_endian", True))
    if implicit:
        return _uid.ImplicitVRLittleEndian
    return _uid.ExplicitVRLittleEndian if little else _uid.ExplicitVRBigEndian


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if "Traceback (most recent call last)" in text:  # pydicom embeds a traceback in some messages
        text = text[:text.index("Traceback (most recent call last)")]
    text = " ".join(text.split())
    if not isinstance(exc, Exception):  # e.g. pyo3_runtime.PanicException from a Rust decoder
        text = f"{type(exc).__name__}: {text}"
    # pydicom: "Unable to decode as exceptions were raised by all available plugins: a: ..., b: ..."
    text = text.replace("Unable to decode as exceptions were raised by all available plugins:", "").strip()
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


MAX_SEQUENCE_DEPTH = 100     # real objects nest a handful of levels; the corpus has a 50-deep case
MAX_HEADER_ELEMENTS = 500_000


MEMO_MAX_ENTRIES = 100_000  # distinct element values one scan remembers as converted (<= 1 KiB each)
_MEMO_MAX_BYTES = 1024


class ScanMemo:
    """What one scan remembers from file to file: the element values it converted without error
    (``values``, see :func:`_convert_all`) and the undefined-length sequences it read (``sequences``, see
    :mod:`medcolor.io._header`)."""

    def __init__(self) -> None:
        self.values: set = set()
        self.sequences = SequenceCache()


def _memo_key(raw: RawDataElement, charset: str) -> tuple | None:
    """What converting the still-raw element ``raw`` depends on: its tag, VR, bytes, encoding and the
    character set in force (``charset``). None for deferred values, sequences, private tags without an
    explicit VR, ambiguous VRs (resolved from other elements) and values over 1 KiB."""
    value, vr, tag = raw.value, raw.VR, int(raw.tag)
    if value is None or len(value) > _MEMO_MAX_BYTES or tag >> 16 == 0x0002:
        return None
    if vr is None:
        if (tag >> 16) & 1:
            return None   # the implicit VR of a private tag depends on its creator
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    if vr == "SQ" or vr in AMBIGUOUS_VR or " or " in vr:
        return None
    return (tag, vr, value, raw.is_implicit_VR, raw.is_little_endian, charset)


def _convert_all(ds: Dataset, path: Path, memo: set | None = None) -> None:
    """Convert every element of ``ds`` now, sequences included (pydicom converts raw values lazily, so
    an invalid VR or value would otherwise raise far from here). Iterative with bounded depth and
    element count: pydicom's own ``walk`` recurses and re-formats the nested traceback at every level
    when an element fails, which a small fuzzed file turned into a hang.

    ``memo`` (one set per scan): the keys (:func:`_memo_key`) of element values already converted
    without error. The files of a series repeat most of their header byte for byte (patient, study,
    equipment, acquisition): such an element is left for pydicom to convert when it is used, which
    gives the same value and cannot raise, since the same bytes under the same character set converted
    before. Every distinct value is still converted once per scan."""
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    charset = str(ds.original_character_set)
    count = 0
    while stack:
        item, depth = stack.pop()
        if depth > MAX_SEQUENCE_DEPTH:
            raise MedcolorError(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels", where=path,
                                hint="the header is corrupt or hostile; re-export the file")
        # a nested item with a character set of its own is converted in full
        use_memo = memo is not None and (depth == 0 or 0x00080005 not in item)
        # pydicom's element store (tag -> raw or converted element), read directly: the public
        # item.get_item(tag) costs more than the memo lookup it serves
        store = getattr(item, "_dict", None)
        entries = list(store.items()) if isinstance(store, dict) else [(t, item.get_item(t)) for t in item.keys()]
        for tag, raw in entries:
            count += 1
            if count > MAX_HEADER_ELEMENTS:
                raise MedcolorError(f"header has more than {MAX_HEADER_ELEMENTS} elements", where=path,
                                    hint="the header is corrupt or hostile; re-export the file")
            key = None
            if use_memo and type(raw) is RawDataElement:
                key = _memo_key(raw, charset)
                if key is not None and key in memo:
                    continue
            elem = item[tag]  # converts a raw element (raises for an invalid VR or value)
            if key is not None and len(memo) < MEMO_MAX_ENTRIES:
                memo.add(key)
            if elem.VR == "SQ" and elem.value:
                stack.extend((child, depth + 1) for child in elem.value)


def read_header(path: Path, kind: str, memo: ScanMemo | None = None) -> DicomHeader:
    """Read a DICOM header without pixel data. Raises SkipInput when the file parses but is not an
    image we colourise (DICOMDIR, no pixel data, colour, segmentation) and MedcolorError when it is
    unreadable or truncated. ``memo``: shared by the files of one scan (faster, same headers)."""
    lenient = kind == "raw"
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = None if lenient else _fast_header(fp, memo)
            fast = ds is not None
            if ds is None:  # not the plain little-endian case, or a problem: pydicom's own reading
                fp.seek(0)
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=lenient)
            # pydicom converts raw element values lazily: an invalid VR or value would otherwise raise
            # later, far from here; convert every element now (sequences included)
            _convert_all(ds, path, memo.values if memo is not None else None)
            if getattr(ds, "file_meta", None) is not None:
                _convert_all(ds.file_meta, path)
            ts = _resolved_syntax(ds)
            has_pixels, length, offset = False, None, None
            if _uid.UID(ts).is_deflated:
                fp.seek(0)
                full = pydicom.dcmread(fp, force=lenient)
                has_pixels = any(k in full for k in _PIXEL_TAGS.values())
            else:
                implicit, little = _uid.UID(ts).is_implicit_VR, _uid.UID(ts).is_little_endian
                start = fp.tell()
                raw = fp.read(12)
                if len(raw) >= 8:
                    endian = "<" if little else ">"
                    group, elem = struct.unpack(endian + "HH", raw[:4])
                    if (group, elem) in _PIXEL_TAGS:
                        has_pixels = True
                        if implicit:
                            (length,) = struct.unpack(endian + "L", raw[4:8])
                            offset = start + 8
                        elif len(raw) == 12:
                            (length,) = struct.unpack(endian + "L", raw[8:12])
                            offset = start + 12
                        if length == 0xFFFFFFFF:
                            length = None
    except MedcolorError:
        raise
    except Exception as exc:  # pydicom raises many types for malformed headers
        raise MedcolorError(f"unreadable DICOM header ({_one_line(exc)})", where=path,
                            hint="the file is truncated or corrupt; re-export it from the source") from None

    if lenient and (len(ds) < 3 or not any(k in ds for k in _IDENTIFYING)):
        raise SkipInput("not DICOM", where=path)
    meta = getattr(ds, "file_meta", None)
    sop_class = str((meta.get("MediaStorageSOPClassUID") if meta is not None else None)
                    or ds.get("SOPClassUID", ""))
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise SkipInput("DICOMDIR (a media directory, not an image)", where=path,
                        hint="pass the folder instead; the images it lists are found by the folder scan")
    if not has_pixels:
        image_class = "Image Storage" in _uid.UID(sop_class).name if sop_class else False
        if len(ds) == 0 or (("Rows" in ds or image_class) and not _uid.UID(ts).is_deflated):
            raise MedcolorError("image object without pixel data (truncated file?)", where=path,
                                hint="the file is incomplete; copy or export it again")
        what = str(ds.get("Modality", "")) or "object"
        raise SkipInput(f"no pixel data ({what})", where=path)
    if sop_class == SEGMENTATION_SOP_CLASS or str(ds.get("Modality", "")) == "SEG":
        raise SkipInput("segmentation, not a grayscale image", where=path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    spp = _int_attr(ds, "SamplesPerPixel", path, 1) or 1
    if spp != 1 or photometric not in _MONO:
        raise SkipInput(f"already colour ({photometric or 'SamplesPerPixel ' + str(spp)})", where=path)
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        meta = ds.file_meta
    if not meta.get("TransferSyntaxUID"):
        meta.TransferSyntaxUID = _uid.UID(ts)  # in-memory only: the input file is never modified
    header = DicomHeader(ds, ts, has_pixels, length, offset, fast)
    _check_pixel_attributes(ds, path)
    _check_sizes(header, path)
    _check_rescale(ds, path)
    return header


def reread_header(path: Path, memo: ScanMemo | None = None) -> Dataset | None:
    """The header of a file ``read_header`` read (and checked) before on the fast path, read again the same
    way, without converting or checking it again; None when that is no longer possible (the file
    changed): then ``read_header`` it."""
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _fast_header(fp, memo)
    except OSError:
        return None


def _fast_header(fp, memo: ScanMemo | None) -> Dataset | None:  # noqa: ANN001
    """``io._header.read_header_fast`` of the open file, with the scan's sequence cache; None where it
    declines or anything goes wrong (pydicom's own reading then says what)."""
    try:
        return read_header_fast(fp, memo.sequences if memo is not None else None)
    except Exception:  # noqa: BLE001
        return None


def _int_attr(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int | None:
    value = ds.get(keyword, default)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MedcolorError(f"{keyword} {str(value)[:20]!r} is not a number", where=path,
                            hint="the image header is corrupt; re-export it") from None


def _check_pixel_attributes(ds: Dataset, path: Path) -> None:
    """Refuse Image Pixel attributes no decoder can honour, before anything is decoded."""
    for kw in ("Rows", "Columns"):
        v = _int_attr(ds, kw, path)
        if v is None or v <= 0:
            raise MedcolorError("image header lacks Rows/Columns", where=path, hint="the file is not a valid image")
    allocated = _int_attr(ds, "BitsAllocated", path, 16)
    stored = _int_attr(ds, "BitsStored", path, allocated)
    if allocated not in (1, 8, 16, 32, 64):
        raise MedcolorError(f"BitsAllocated {allocated} is not supported", where=path,
                            hint="the image header is corrupt; re-export it")
    if not 1 <= stored <= allocated:  # type: ignore[operator]
        raise MedcolorError(f"BitsStored {stored} does not fit BitsAllocated {allocated}", where=path,
                            hint="the image header is corrupt; re-export it")
    if _int_attr(ds, "PixelRepresentation", path, 0) not in (0, 1):
        raise MedcolorError("PixelRepresentation must be 0 or 1", where=path,
                            hint="the image header is corrupt; re-export it")


def _rescale_sources(ds: Dataset) -> list[Dataset]:
    out = [ds]
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    for groups in (shared or []), (per_frame or []):
        for g in groups:
            seq = g.get("PixelValueTransformationSequence")
            if seq:
                out.append(seq[0])
    return out


def _check_rescale(ds: Dataset, path: Path) -> None:
    """RescaleSlope/Intercept must be finite numbers and the slope non-zero (a zero slope maps every
    pixel to one value)."""
    for src in _rescale_sources(ds):
        for kw in ("RescaleSlope", "RescaleIntercept"):
            if kw not in src:
                continue
            elem = src[kw]
            raw = elem.value
            if raw is None or raw == "":
                continue
            vals = _floats(raw)
            if not vals or not all(np.isfinite(vals)):
                raise MedcolorError(f"{kw} {str(raw)[:20]!r} is not a finite number", where=path,
                                    hint="the rescale attributes are corrupt; re-export the image")
            if kw == "RescaleSlope" and vals[0] == 0.0:
                raise MedcolorError("RescaleSlope is 0 (every pixel would get the same value)", where=path,
                                    hint="the rescale attributes are corrupt; re-export the image")


def n_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _frame_bytes(ds: Dataset) -> int:
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if bits == 1:
        return (rows * cols * spp + 7) // 8
    return rows * cols * spp * ((bits + 7) // 8)


def _check_sizes(header: DicomHeader, path: Path) -> None:
    """Refuse absurd sizes and natively encoded pixel data shorter than Rows*Columns*frames."""
    ds = header.dataset
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows * cols > MAX_FRAME_PIXELS:
        raise MedcolorError(f"image too large ({rows}x{cols} pixels per frame)", where=path,
                            hint=f"medcolor decodes frames of at most {MAX_FRAME_PIXELS} pixels")
    ts = _uid.UID(header.transfer_syntax)
    if ts.is_encapsulated or ts.is_deflated:
        return
    frames = n_frames(ds)
    expected = _frame_bytes(ds) * frames
    if header.pixel_length is not None and header.pixel_value_offset is not None:
        available = min(header.pixel_length, max(0, os.path.getsize(path) - header.pixel_value_offset))
        # odd lengths are padded to even; allow the pad byte
        if available + 1 < expected:
            raise MedcolorError(f"pixel data truncated ({available} of {expected} bytes for "
                                f"{frames} frame(s) of {rows}x{cols})", where=path,
                                hint="the file is incomplete; copy or export it again")
        whole = header.pixel_length // expected if expected else 0
        if whole >= 2 and header.pixel_length - whole * expected <= 1:
            # exactly k frames' worth: frames (or rows) would be silently dropped
            raise MedcolorError(f"pixel data holds {whole} times the {frames} frame(s) of {rows}x{cols} the header "
                                "describes (NumberOfFrames missing or Rows wrong)", where=path,
                                hint="fix NumberOfFrames/Rows or re-export the image")


# ---------------------------------------------------------------- per-frame functional groups

def functional_item(ds: Dataset, frame: int | None, keyword: str) -> Dataset | None:
    """The first item of functional group macro ``keyword`` for ``frame`` (per-frame first, then
    shared), or None. For single-frame or classic files returns None."""
    if frame is not None:
        pf = ds.get("PerFrameFunctionalGroupsSequence")
        if pf is not None and frame < len(pf):
            seq = pf[frame].get(keyword)
            if seq:
                return seq[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(keyword)
        if seq:
            return seq[0]
    return None


def _floats(value: Any) -> list[float]:
    if value is None or value == "":
        return []
    try:
        if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
            return [float(v) for v in value]
        return [float(value)]
    except (TypeError, ValueError):
        return []


def frame_position(ds: Dataset, frame: int | None) -> tuple[float, float, float] | None:
    item = functional_item(ds, frame, "PlanePositionSequence")
    # classic multi-frame files state one position for the whole file: no per-frame position
    src = item if item is not None else (ds if n_frames(ds) == 1 else None)
    if src is None:
        return None
    vals = _floats(src.get("ImagePositionPatient"))
    return (vals[0], vals[1], vals[2]) if len(vals) == 3 else None


def frame_orientation(ds: Dataset, frame: int | None) -> tuple[float, ...] | None:
    item = functional_item(ds, frame, "PlaneOrientationSequence")
    vals = _floats((item if item is not None else ds).get("ImageOrientationPatient"))
    return tuple(vals) if len(vals) == 6 else None


def frame_spacing(ds: Dataset, frame: int | None) -> tuple[float, float] | None:
    item = functional_item(ds, frame, "PixelMeasuresSequence")
    for src, key in ((item, "PixelSpacing"), (ds, "PixelSpacing"), (ds, "ImagerPixelSpacing")):
        if src is not None:
            vals = _floats(src.get(key))
            if len(vals) == 2:
                return (vals[0], vals[1])
    return None


def frame_rescale(ds: Dataset, frame: int | None) -> tuple[float, float, str | None] | None:
    """(slope, intercept, RescaleType) for the frame, or None when there is no linear rescale."""
    item = functional_item(ds, frame, "PixelValueTransformationSequence")
    for src in (item, ds):
        if src is not None and ("RescaleSlope" in src or "RescaleIntercept" in src):
            # one of the pair missing or empty: PS3.3 makes both Type 1; assume slope 1 / intercept 0
            slope = _floats(src.get("RescaleSlope")) or [1.0]
            intercept = _floats(src.get("RescaleIntercept")) or [0.0]
            if slope and intercept:
                rtype = src.get("RescaleType")
                return slope[0], intercept[0], (str(rtype).strip().upper() if rtype else None)
    return None


def file_windows(ds: Dataset, frame: int | None) -> list[tuple[float, float]]:
    """VOI windows (center, width) of the file/frame, in modality-LUT units, in file order."""
    item = functional_item(ds, frame if frame is not None else 0, "FrameVOILUTSequence")
    src = item if item is not None else ds
    centers, widths = _floats(src.get("WindowCenter")), _floats(src.get("WindowWidth"))
    return [(c, w) for c, w in zip(centers, widths) if w > 0]


def is_hounsfield(ds: Dataset, frame: int | None) -> bool:
    """CT and the rescale type is absent or HU (enhanced CT states it per frame)."""
    if str(ds.get("Modality", "")).upper() != "CT":
        return False
    rs = frame_rescale(ds, frame)
    if rs is None:
        return False
    return rs[2] in (None, "", "HU")


# ---------------------------------------------------------------- decoding

#: exceptions that are never a property of the input file: always passed through
_NOT_OURS = (KeyboardInterrupt, SystemExit, GeneratorExit)

_JPEG_FAMILY = {_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit, _uid.JPEGLossless, _uid.JPEGLosslessSV1}


def _decode_with_dcmdjpeg(path: Path, index: int | None, ts: str) -> np.ndarray:
    """Last resort for JPEG data the Python plug-ins refuse (e.g. 12-bit JPEG Extended): let DCMTK's
    dcmdjpeg decompress a temporary copy (the input file is not touched)."""
    tool = shutil.which("dcmdjpeg")
    if tool is None:
        raise RuntimeError("no plug-in decodes it and dcmdjpeg (DCMTK) is not installed")
    with tempfile.TemporaryDirectory(prefix="medcolor-") as tmp:
        out = Path(tmp) / "decoded.dcm"
        res = subprocess.run([tool, str(path), str(out)], capture_output=True, timeout=120)
        if res.returncode != 0 or not out.exists():
            raise RuntimeError("dcmdjpeg failed: " + res.stderr.decode(errors="replace").strip()[:160])
        return pydicom.pixels.pixel_array(str(out), index=index)


def _codestream_dims(frame: bytes, tsu: _uid.UID) -> tuple[int, int, int] | None:
    """(rows, columns, components) stated by a JPEG / JPEG-LS / JPEG 2000 codestream, or None."""
    if tsu in _J2K_FAMILY:
        i = frame.find(b"\xff\x4f\xff\x51")  # SOC + SIZ (also inside a JP2 box)
        if i < 0 or len(frame) < i + 44:
            return None
        x, y, xo, yo = struct.unpack(">4L", frame[i + 8:i + 24])
        (c,) = struct.unpack(">H", frame[i + 40:i + 42])
        return y - yo, x - xo, c
    from pydicom.pixels.utils import _get_jpg_parameters

    info = _get_jpg_parameters(frame)
    if not info or not info.get("height"):
        return None
    return int(info["height"]), int(info["width"]), int(info.get("components", 0))


_J2K_FAMILY = {_uid.JPEG2000, _uid.JPEG2000Lossless, _uid.HTJ2K, _uid.HTJ2KLossless, _uid.HTJ2KLosslessRPCL}


def _check_codestream(path: Path, index: int | None, tsu: _uid.UID, header_ds: Dataset) -> None:
    """Refuse a compressed frame whose codestream size differs from Rows/Columns/SamplesPerPixel:
    some native decoders (GDCM) abort the whole process on such input instead of raising."""
    ds = pydicom.dcmread(str(path), force=True)
    frame = pydicom.encaps.get_frame(ds.PixelData, index or 0, number_of_frames=n_frames(header_ds))
    dims = _codestream_dims(frame, tsu)
    rows, cols = int(header_ds.Rows), int(header_ds.Columns)
    spp = int(header_ds.get("SamplesPerPixel", 1) or 1)
    if dims is not None and (dims[0] not in (0, rows) or dims[1] != cols or dims[2] not in (0, spp)):
        raise MedcolorError(f"compressed frame is {dims[0]}x{dims[1]} with {dims[2]} component(s), the header "
                            f"says {rows}x{cols} with {spp}", where=path, hint="the file is inconsistent; re-export it")


def _decode_encapsulated(path: Path, index: int | None, tsu: _uid.UID, header_ds: Dataset) -> np.ndarray:
    """Try the decoder plug-ins one by one, GDCM last (it aborts the process on some corrupt input rather
    than raising); before GDCM gets a frame, its codestream size is checked against the header."""
    decoder = pydicom.pixels.get_decoder(tsu)
    plugins = list(decoder.available_plugins)
    preferred = list(getattr(decoder, "_available", {}) or [])  # pydicom's own try order, when visible
    plugins.sort(key=lambda p: preferred.index(p) if p in preferred else len(preferred))
    order = [p for p in plugins if p != "gdcm"] + (["gdcm"] if "gdcm" in plugins else [])
    errors: list[str] = []
    for name in order:
        if name == "gdcm":
            _check_codestream(path, index, tsu, header_ds)
        try:
            return pydicom.pixels.pixel_array(str(path), index=index, transfer_syntax_uid=tsu, decoding_plugin=name)
        except _NOT_OURS:
            raise
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{name}: {_one_line(exc)}")
        except BaseException as exc:  # pyo3 PanicException: the data is corrupt; no lenient second try
            raise RuntimeError(f"{name}: {_one_line(exc)}") from None
    raise RuntimeError("; ".join(errors) if errors else "no decoder plug-in is installed for this transfer syntax")


# Fast path for uncompressed little-endian grayscale frames: ``pydicom.pixels.pixel_array(path)``
# re-parses the whole header (~2 ms for a CT slice) only to find where the pixel data starts. The header
# parse the scan already did recorded the value offset of every element it read; the last of them ends
# where that parse stopped, i.e. at the pixel data element. The bytes of the frame are then read
# directly and given pydicom's treatment (dtype, unused high bits). Whenever anything is unusual the
# fast path declines and pydicom decodes as before.

_NATIVE_LE = frozenset((_uid.ImplicitVRLittleEndian, _uid.ExplicitVRLittleEndian))
_PIXEL_DATA_LE = b"\xe0\x7f\x10\x00"  # the (7FE0,0010) tag, little endian
_PIXEL_STOP_TAGS = frozenset((0x7FE00010, 0x7FE00009, 0x7FE00008))  # where stop_before_pixels stops
_MAX_TRAILING_ELEMENTS = 16  # elements re-parsed after the last recorded one before giving up


def _stop_at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_STOP_TAGS


def _element_tell(elem: Any) -> int | None:
    """File offset of an element's value as the reader recorded it (None for elements made in memory)."""
    tell = getattr(elem, "file_tell", None)  # DataElement
    if tell is None:
        tell = getattr(elem, "value_tell", None)  # RawDataElement (not converted yet)
    return tell if isinstance(tell, int) else None


def _pixel_element_start(fp: Any, ds: Dataset, implicit: bool) -> int | None:
    """File offset of the tag that ended the stop-before-pixels parse of ``ds``'s file (the pixel data
    element), or None when unsure. The top-level element read last is re-parsed with pydicom's own
    element reader, which stops exactly where the header parse stopped."""
    from pydicom.filereader import data_element_generator
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

    elements = getattr(ds, "_dict", None)
    if not isinstance(elements, dict):
        return None
    # the data set keeps its elements in the order they were read (a command set, group 0000, is added
    # after them; an element set in memory has no offset): the last one read is normally the last with
    # an offset. Any element of the top level will do, though: the parse onwards from it stops at the
    # same place (checked below: the element must re-parse as itself)
    last_tell, last_tag = -1, None
    for tag, elem in reversed(elements.items()):
        tell = _element_tell(elem)
        if tell is not None and tag >> 16:
            last_tell, last_tag = tell, int(tag)
            break
    if last_tag is None or last_tell < 8:
        return None
    tag_bytes = struct.pack("<HH", last_tag >> 16, last_tag & 0xFFFF)
    first = max(0, last_tell - 12)
    fp.seek(first)
    head = fp.read(last_tell - first)
    if len(head) != last_tell - first:
        return None
    starts = []
    if implicit:
        # implicit VR: tag + 4-byte length; a length whose low bytes read as a VR (two capitals) would
        # make pydicom take the data set for explicit VR: leave such files to pydicom
        vr = head[-4:-2]
        if head[-8:-4] == tag_bytes and not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
            starts.append(last_tell - 8)
    else:
        # explicit VR: tag + VR + 2 reserved + 4-byte length, or tag + VR + 2-byte length (also an element
        # pydicom reads as implicit VR inside an explicit data set)
        if len(head) == 12 and head[:4] == tag_bytes and head[4:6].decode("latin-1") in EXPLICIT_VR_LENGTH_32:
            starts.append(last_tell - 12)
        if head[-8:-4] == tag_bytes:
            starts.append(last_tell - 8)
    for start in starts:
        fp.seek(start)
        gen = data_element_generator(fp, implicit, True, stop_when=_stop_at_pixels, defer_size=256)
        first_elem = next(gen, None)
        if first_elem is None or int(first_elem.tag) != last_tag or _element_tell(first_elem) != last_tell:
            continue
        for count, _ in enumerate(gen, 1):  # normally none: the element read last is followed by pixel data
            if count > _MAX_TRAILING_ELEMENTS:
                return None
        return fp.tell()
    return None


#: SamplesPerPixel, Rows, Columns, BitsAllocated, BitsStored, PixelRepresentation
_NATIVE_ATTRS = (0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280103)


def _native_attr(ds: Dataset, tag: int, default: Any = None) -> Any:
    """``ds[tag].value`` (``default`` when absent), without the keyword lookups of ``ds.get``."""
    elem = ds._dict.get(tag)
    if elem is None:
        return default
    if not isinstance(elem, pydicom.dataelem.DataElement):
        elem = ds[tag]  # converts a raw element
    return elem.value


def is_native_le(ds: Dataset) -> bool:
    """Whether ``ds``'s pixel data is uncompressed little endian: read by plain file I/O (which releases
    the GIL), not decoded."""
    return _resolved_syntax(ds) in _NATIVE_LE


def _read_native_frame(path: Path, ds: Dataset, tsu: _uid.UID, index: int | None) -> np.ndarray | None:
    """The frame ``pydicom.pixels.pixel_array(path, index=index, transfer_syntax_uid=tsu)`` returns (same
    dtype, same values, writeable), read without re-parsing the header, for Implicit/Explicit VR Little
    Endian, one sample per pixel, MONOCHROME1/2, 8/16/32 bits allocated. None whenever the file is not
    plainly such a file (the caller then asks pydicom, which also produces the error messages)."""
    if tsu not in _NATIVE_LE:
        return None
    try:
        values = [_native_attr(ds, tag) for tag in _NATIVE_ATTRS]
        if not all(type(v) is int for v in values):  # noqa: E721 - a multi-valued or text value: pydicom decides
            return None
        spp, rows, cols, allocated, stored, pixrep = values
        frames = _native_attr(ds, 0x00280008, 1)
        if (spp != 1 or _native_attr(ds, 0x00280004) not in _MONO or allocated not in (8, 16, 32)
                or not 1 <= stored <= allocated or pixrep not in (0, 1) or not 0 < rows <= 0xFFFF
                or not 0 < cols <= 0xFFFF or not isinstance(frames, int) or isinstance(frames, bool)
                or frames < 1):
            return None
        if index is None:
            if frames != 1:
                return None
            k = 0
        elif type(index) is int and 0 <= index < frames:  # noqa: E721
            k = index
        else:
            return None
        nbytes = rows * cols * (allocated // 8)
        with open(path, "rb") as fp:
            start = _pixel_element_start(fp, ds, tsu.is_implicit_VR)
            if start is None:
                return None
            fp.seek(start)
            head = fp.read(12)
            if len(head) < 12 or head[:4] != _PIXEL_DATA_LE:
                return None
            if tsu.is_implicit_VR:
                (length,) = struct.unpack("<L", head[4:8])
                value_offset = start + 8
            else:
                if head[4:6] not in (b"OB", b"OW"):
                    return None
                (length,) = struct.unpack("<L", head[8:12])
                value_offset = start + 12
            end = value_offset + (k + 1) * nbytes
            if length == 0xFFFFFFFF or (k + 1) * nbytes > length or end > os.fstat(fp.fileno()).st_size:
                return None
            fp.seek(value_offset + k * nbytes)
            arr = np.empty((rows, cols), dtype=np.dtype(f"<{'ui'[pixrep]}{allocated // 8}"))
            if fp.readinto(memoryview(arr).cast("B")) != nbytes:
                return None
    except Exception:  # noqa: BLE001 - anything unexpected: pydicom decodes (and reports) it
        return None
    if stored < allocated:
        # pydicom's correct_unused_bits (on by default for native data): a left then a right shift by the
        # unused bits, i.e. unsigned values lose the unused high bits (the same as masking them off, in
        # one pass), signed values are sign-extended from bit BitsStored - 1
        if pixrep == 0:
            np.bitwise_and(arr, arr.dtype.type((1 << stored) - 1), out=arr)
        else:
            shift = allocated - stored
            np.left_shift(arr, shift, out=arr)
            np.right_shift(arr, shift, out=arr)
    return arr


def decode_frame(path: Path, header_ds: Dataset, frame: int | None) -> np.ndarray:
    """Stored values of one frame ([rows, cols], native dtype), decoding any supported syntax.
    Only the requested frame is decoded for multi-frame files."""
    ts = _resolved_syntax(header_ds)
    tsu = _uid.UID(ts)
    frames = n_frames(header_ds)
    index = frame if frames > 1 else None
    rows, cols = int(header_ds.Rows), int(header_ds.Columns)
    if rows * cols > MAX_FRAME_PIXELS:
        raise MedcolorError(f"image too large ({rows}x{cols} pixels per frame)", where=path)
    if not tsu.is_encapsulated and not tsu.is_deflated:
        need = _frame_bytes(header_ds) * frames
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise MedcolorError(f"cannot read file ({_one_line(exc)})", where=path) from None
        if need > size:
            raise MedcolorError(f"pixel data truncated (needs {need} bytes, file has {size})", where=path,
                                hint="the file is incomplete; copy or export it again")
    if frame is not None and not 0 <= frame < frames:
        raise MedcolorError(f"frame {frame} out of range (file has {frames})", where=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if tsu.is_deflated:
                full = pydicom.dcmread(str(path), force=True)
                if not full.file_meta.get("TransferSyntaxUID"):
                    full.file_meta.TransferSyntaxUID = tsu
                arr = pydicom.pixels.pixel_array(full, index=index)
            else:
                try:
                    if tsu.is_encapsulated:
                        arr = _decode_encapsulated(path, index, tsu, header_ds)
                    else:
                        arr = _read_native_frame(path, header_ds, tsu, index)
                        if arr is None:
                            arr = pydicom.pixels.pixel_array(str(path), index=index, transfer_syntax_uid=tsu)
                except MedcolorError:
                    raise
                except _NOT_OURS:
                    raise
                except BaseException as exc:
                    # a Rust plug-in (pylibjpeg-rle) panics on corrupt data with pyo3's PanicException, a
                    # BaseException that pydicom does not catch: the data is corrupt, no other decoder is
                    # tried (pydicom's own RLE decoder would silently return a damaged frame)
                    if tsu not in _JPEG_FAMILY or not isinstance(exc, Exception):
                        raise
                    arr = _decode_with_dcmdjpeg(path, index, ts)
    except MedcolorError:
        raise
    except FileNotFoundError:
        raise MedcolorError("file not found", where=path, hint="was it moved or deleted after the scan?") from None
    except _NOT_OURS:
        raise
    except BaseException as exc:  # decoder plug-ins raise anything, incl. pyo3 PanicException (BaseException)
        raise MedcolorError(f"cannot decode pixel data ({tsu.name}): {_one_line(exc)}", where=path,
                            hint="the pixel data is truncated or corrupt, or needs a decoder plug-in "
                                 "(see medcolor doctor)") from None
    if arr.ndim == 3 and index is None and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (rows, cols):
        raise MedcolorError(f"decoded frame has shape {arr.shape}, header says {rows}x{cols}", where=path,
                            hint="the file is inconsistent; re-export it")
    return arr


def apply_modality(arr: np.ndarray, ds: Dataset, frame: int | None) -> np.ndarray:
    """Stored values -> modality values (HU for CT) as float32: per-frame or shared Pixel Value
    Transformation (enhanced), Modality LUT Sequence, Rescale Slope/Intercept, or identity."""
    item = functional_item(ds, frame, "PixelValueTransformationSequence")
    if item is None and "ModalityLUTSequence" in ds:
        return np.asarray(pydicom.pixels.apply_modality_lut(arr, ds), dtype=np.float32)
    rs = frame_rescale(ds, frame)
    out = arr.astype(np.float32)
    if rs is not None:
        slope, intercept, _ = rs
        if slope != 1.0:
            out *= np.float32(slope)
        if intercept != 0.0:
            out += np.float32(intercept)
    return out
