"""DICOM headers: sniffing, reading with pydicom (pixel data left on disk), checking the attributes medcolor
uses, per-frame geometry and the modality LUT.

Tolerant when reading: pydicom's lenient parser, files without preamble or file meta, a missing Transfer
Syntax, and invalid values in elements medcolor never reads. Strict about what it uses: every attribute of
:data:`USED_KEYWORDS` (and of the functional group macros and code items it reads) must convert, the Image
Pixel attributes must describe frames a decoder can produce, and uncompressed pixel data must hold every
frame. An empty, zero-filled or text file is never an empty dataset: a file is DICOM only if it has the
``DICM`` magic at offset 128, or starts with a plausible group 0002/0008 element *and* parses into a dataset
with identifying attributes.
"""
from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import pydicom
from pydicom import uid as _uid
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import data_element_generator, data_element_offset_to_value
from pydicom.sequence import Sequence

from medcolor.errors import MedcolorError, SkipInput

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
SEGMENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
PIXEL_DATA_TAG = 0x7FE00010
_PIXEL_TAGS = frozenset((PIXEL_DATA_TAG, 0x7FE00008, 0x7FE00009))  # Pixel Data, Float and Double Float
_MONO = ("MONOCHROME1", "MONOCHROME2")
#: refuse to decode a single frame larger than this many pixels (about 16k x 16k)
MAX_FRAME_PIXELS = 1 << 28
_IDENTIFYING = ("SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID",
                "SeriesInstanceUID", "Rows")
_NATIVE_LE = frozenset((_uid.ImplicitVRLittleEndian, _uid.ExplicitVRLittleEndian))

#: The top-level attributes medcolor reads from every source header (io, windowing, the writers, the PHI
#: redactor): each must convert, or the file fails at scan time, naming it. Any other element may hold an
#: invalid value: medcolor never reads it, and never copies it (the writers copy a whitelist).
USED_KEYWORDS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "Modality", "InstanceNumber", "DirectoryRecordSequence", "BurnedInAnnotation",
    # Image Pixel, Multi-frame, Presentation LUT
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored",
    "PixelRepresentation", "NumberOfFrames", "PresentationLUTShape",
    # geometry, modality LUT, VOI LUT
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ImagerPixelSpacing", "RescaleSlope",
    "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "WindowCenter", "WindowWidth",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
    # redacted from logs and reports (privacy.PHI_KEYWORDS)
    "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName",
)
#: The attributes read from a series' reference header only (its first slice: copied into the SC output or
#: shown in the report; the code items too): checked once per series by :func:`drop_invalid_copied`.
REFERENCE_KEYWORDS = (
    "PatientSex", "PatientAge", "PatientIdentityRemoved", "DeidentificationMethod",
    "DeidentificationMethodCodeSequence", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription", "BodyPartExamined", "SeriesDescription",
    "RecognizableVisualFeatures", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "Laterality", "ImageLaterality",
)
_CODE_KEYWORDS = ("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue",
                  "URNCodeValue")
_META_KEYWORDS = ("TransferSyntaxUID", "MediaStorageSOPClassUID")
#: the functional group macros medcolor reads (enhanced objects), and what it reads in their items
_MACRO_KEYWORDS = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing",),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth"),
}
_LUT_KEYWORDS = ("LUTDescriptor", "LUTData", "ModalityLUTType")


@dataclass
class DicomHeader:
    """A parsed header (no pixel data) and where its frames start on disk."""

    dataset: Dataset
    #: file offset of frame 0 when the Pixel Data holds every frame uncompressed, little endian, 8/16/32 bits
    #: a sample (a frame is then plain file I/O); None when pydicom decodes the frames
    pixel_offset: int | None = None


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


def resolved_syntax(ds: Dataset) -> str:
    """Transfer Syntax UID from the file meta, or guessed from how pydicom parsed the data set."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = _encoding(ds)
    if implicit:
        return _uid.ImplicitVRLittleEndian
    return _uid.ExplicitVRLittleEndian if little else _uid.ExplicitVRBigEndian


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) as pydicom read the data set."""
    implicit, little = ds.original_encoding
    if implicit is None:
        return True, True
    return bool(implicit), bool(little)


def one_line(exc: BaseException) -> str:
    """An exception as one short line (pydicom embeds tracebacks and plug-in lists in some messages)."""
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        text = text[:text.index("Traceback (most recent call last)")]
    text = " ".join(text.split())
    if not isinstance(exc, Exception):  # e.g. pyo3_runtime.PanicException from a Rust decoder
        text = f"{type(exc).__name__}: {text}"
    # pydicom: "Unable to decode as exceptions were raised by all available plugins: a: ..., b: ..."
    text = text.replace("Unable to decode as exceptions were raised by all available plugins:", "").strip()
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def _tags(keywords: tuple[str, ...]) -> frozenset[int]:
    return frozenset(tag_for_keyword(k) for k in keywords)


_USED_TAGS = _tags(USED_KEYWORDS)
_META_TAGS = _tags(_META_KEYWORDS)
_MACRO_TAGS = {macro: _tags(keywords) for macro, keywords in _MACRO_KEYWORDS.items()}
_LUT_TAGS = _tags(_LUT_KEYWORDS)
_REFERENCE_TAGS = _tags(REFERENCE_KEYWORDS)
_CODE_TAGS = _tags(_CODE_KEYWORDS)


def _items(ds: Dataset, keyword: str) -> Sequence | tuple:
    value = ds.get(keyword)
    return value if isinstance(value, Sequence) else ()


def _used_items(ds: Dataset) -> Iterator[tuple[Dataset, frozenset[int]]]:
    """(data set, the tags medcolor reads in it for every file): the file meta, the top level, the Modality
    LUT items and the functional group macros."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield meta, _META_TAGS
    yield ds, _USED_TAGS
    for item in _items(ds, "ModalityLUTSequence"):
        yield item, _LUT_TAGS
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in _items(ds, groups):
            for macro, tags in _MACRO_TAGS.items():
                for item in _items(group, macro):
                    yield item, tags


def _invalid(item: Dataset, tags: frozenset[int]) -> Iterator[tuple[int, Exception]]:
    """(tag, pydicom's error) of each of ``tags`` in ``item`` whose value does not convert (pydicom converts
    a value when it is first read: an invalid VR or value would otherwise raise far from here)."""
    for tag in tags.intersection(item.keys()):
        try:
            item[tag]
        except Exception as exc:  # noqa: BLE001 - pydicom raises several types for invalid values
            yield tag, exc


def _check_used(ds: Dataset) -> None:
    """Convert every attribute medcolor reads in each file; ValueError naming the first that fails."""
    for item, tags in _used_items(ds):
        for tag, exc in _invalid(item, tags):
            raise ValueError(f"{keyword_for_tag(tag)}: {exc}")


def drop_invalid_copied(ds: Dataset) -> list[str]:
    """Check the attributes read from a series' reference header (:data:`REFERENCE_KEYWORDS` and its
    de-identification code items); each whose value does not convert is removed from the header in memory
    (so it is never copied; the file is not touched). Returns their keywords."""
    dropped = _drop_invalid(ds, _REFERENCE_TAGS)
    for item in _items(ds, "DeidentificationMethodCodeSequence"):  # the sequence itself was checked first
        dropped += _drop_invalid(item, _CODE_TAGS)
    return dropped


def _drop_invalid(item: Dataset, tags: frozenset[int]) -> list[str]:
    bad = [tag for tag, _exc in _invalid(item, tags)]
    for tag in bad:
        del item[tag]
    return [keyword_for_tag(tag) for tag in bad]


def _pixel_element(fp: BinaryIO, ds: Dataset, ts: _uid.UID) -> tuple[int, int | None, int | None] | None:
    """(tag, value length, file offset of the value) of the pixel data element where the stop-before-pixels
    read of ``fp`` stopped; None when the data set has none. The length is None when undefined
    (encapsulated), the offset None for a deflated file (its data set is not at file offsets)."""
    if ts.is_deflated:
        fp.seek(0)
        full = pydicom.dcmread(fp, force=True)
        tag = next((t for t in _PIXEL_TAGS if t in full), None)
        return None if tag is None else (tag, None, None)
    start = fp.tell()
    implicit, little = _encoding(ds)
    seen: list[tuple] = []  # (tag, VR, length) of the next element, its value not read
    next(data_element_generator(fp, implicit, little, stop_when=lambda *e: seen.append(e) or True), None)
    if not seen or seen[0][0] not in _PIXEL_TAGS:
        return None
    tag, vr, length = seen[0]
    return int(tag), None if length == 0xFFFFFFFF else length, start + data_element_offset_to_value(implicit, vr)


def read_header(path: Path, kind: str) -> DicomHeader:
    """Read a DICOM header without pixel data (``kind`` "raw": a file without preamble, read leniently).
    Raises SkipInput when the file parses but is not an image medcolor colourises (DICOMDIR, no pixel
    data, colour, segmentation) and MedcolorError when it is unreadable, truncated or inconsistent."""
    lenient = kind == "raw"
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=lenient)
            ts = _uid.UID(resolved_syntax(ds))
            pixels = _pixel_element(fp, ds, ts)
            _check_used(ds)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for malformed headers
        raise MedcolorError(f"unreadable DICOM header ({one_line(exc)})", where=path,
                            hint="the file is truncated or corrupt; re-export it from the source") from None

    if lenient and (len(ds) < 3 or not any(k in ds for k in _IDENTIFYING)):
        raise SkipInput("not DICOM", where=path)
    meta = getattr(ds, "file_meta", None)
    sop_class = str((meta.get("MediaStorageSOPClassUID") if meta is not None else None)
                    or ds.get("SOPClassUID", ""))
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise SkipInput("DICOMDIR (a media directory, not an image)", where=path,
                        hint="pass the folder instead; the images it lists are found by the folder scan")
    if pixels is None:
        image_class = "Image Storage" in _uid.UID(sop_class).name if sop_class else False
        if len(ds) == 0 or (("Rows" in ds or image_class) and not ts.is_deflated):
            raise MedcolorError("image object without pixel data (truncated file?)", where=path,
                                hint="the file is incomplete; copy or export it again")
        what = str(ds.get("Modality", "")) or "object"
        raise SkipInput(f"no pixel data ({what})", where=path)
    if sop_class == SEGMENTATION_SOP_CLASS or str(ds.get("Modality", "")) == "SEG":
        raise SkipInput("segmentation, not a grayscale image", where=path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    spp = int_attr(ds, "SamplesPerPixel", path, 1) or 1
    if spp != 1 or photometric not in _MONO:
        raise SkipInput(f"already colour ({photometric or 'SamplesPerPixel ' + str(spp)})", where=path)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if not meta.get("TransferSyntaxUID"):
        meta.TransferSyntaxUID = ts  # in-memory only: the input file is never modified
    _check_pixel_attributes(ds, path)
    offset = _check_sizes(ds, ts, pixels, path)
    _check_rescale(ds, path)
    return DicomHeader(ds, offset)


def int_attr(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int | None:
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
        v = int_attr(ds, kw, path)
        if v is None or v <= 0:
            raise MedcolorError("image header lacks Rows/Columns", where=path, hint="the file is not a valid image")
    allocated = int_attr(ds, "BitsAllocated", path, 16)
    stored = int_attr(ds, "BitsStored", path, allocated)
    if allocated not in (1, 8, 16, 32, 64):
        raise MedcolorError(f"BitsAllocated {allocated} is not supported", where=path,
                            hint="the image header is corrupt; re-export it")
    if not 1 <= stored <= allocated:  # type: ignore[operator]
        raise MedcolorError(f"BitsStored {stored} does not fit BitsAllocated {allocated}", where=path,
                            hint="the image header is corrupt; re-export it")
    if int_attr(ds, "PixelRepresentation", path, 0) not in (0, 1):
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


def frame_bytes(ds: Dataset) -> int:
    """Bytes of one uncompressed frame."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if bits == 1:
        return (rows * cols * spp + 7) // 8
    return rows * cols * spp * ((bits + 7) // 8)


def _check_sizes(ds: Dataset, ts: _uid.UID, pixels: tuple[int, int | None, int | None], path: Path) -> int | None:
    """Refuse absurd sizes, and uncompressed pixel data shorter than Rows x Columns x frames or exactly k >= 2
    times that. Returns :attr:`DicomHeader.pixel_offset`."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows * cols > MAX_FRAME_PIXELS:
        raise MedcolorError(f"image too large ({rows}x{cols} pixels per frame)", where=path,
                            hint=f"medcolor decodes frames of at most {MAX_FRAME_PIXELS} pixels")
    tag, length, offset = pixels
    if ts.is_encapsulated or length is None or offset is None:
        return None
    frames = n_frames(ds)
    expected = frame_bytes(ds) * frames
    available = min(length, max(0, os.path.getsize(path) - offset))
    # odd lengths are padded to even; allow the pad byte
    if available + 1 < expected:
        raise MedcolorError(f"pixel data truncated ({available} of {expected} bytes for "
                            f"{frames} frame(s) of {rows}x{cols})", where=path,
                            hint="the file is incomplete; copy or export it again")
    whole = length // expected if expected else 0
    if whole >= 2 and length - whole * expected <= 1:
        # exactly k frames' worth: frames (or rows) would be silently dropped
        raise MedcolorError(f"pixel data holds {whole} times the {frames} frame(s) of {rows}x{cols} the header "
                            "describes (NumberOfFrames missing or Rows wrong)", where=path,
                            hint="fix NumberOfFrames/Rows or re-export the image")
    plain = (tag == PIXEL_DATA_TAG and ts in _NATIVE_LE and _encoding(ds)[1] and available >= expected
             and int_attr(ds, "BitsAllocated", path, 16) in (8, 16, 32))
    return offset if plain else None


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
