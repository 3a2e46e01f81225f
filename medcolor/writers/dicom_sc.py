"""RGB Secondary Capture DICOM: the object (:class:`RGBSecondaryCapture`) and its writer.

One validating class builds the per-series constant part of the dataset once from a reference
(source) dataset, highdicom style, and is strict when writing: every element is checked against its VR
and the IOD's Type 1/2 attributes are required before anything reaches the disk. The writer
(:class:`SecondaryCaptureWriter`) only sets per-instance fields (SOPInstanceUID, InstanceNumber,
SourceImageSequence, ContentDate/Time, PixelData) for each slice and writes atomically.

Two SOP classes (PS3.4 B.5):

* Secondary Capture Image Storage ``1.2.840.10008.5.1.4.1.1.7`` (PS3.3 A.8.1): one instance per
  source slice (``multiframe=False``).
* Multi-frame True Color Secondary Capture Image Storage ``1.2.840.10008.5.1.4.1.1.7.4`` (PS3.3
  A.8.5): one instance holding every frame in slice order (``multiframe=True``); frames are spooled
  to a hidden temporary file so memory stays bounded, and nothing is visible until ``close()``.

Only a whitelist of patient/study attributes is copied from the source (decoded with the source's
character set, re-encoded as UTF-8 ``ISO_IR 192`` when any is non-ASCII); private tags and everything
else are never copied. ``deidentify=True`` applies the PS3.15 E.1 basic profile to those attributes.
"""
from __future__ import annotations

import hashlib
import math
import re
import secrets
import shutil
import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydicom import config as pydicom_config
from pydicom import dcmwrite
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_file_meta_info
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import MAX_VALUE_LEN, DSfloat, validate_value

from medcolor import __version__
from medcolor.errors import MedcolorError
from medcolor.types import Derivation, Series, SliceRef
from medcolor.writers._files import (
    CloseOnSuccess,
    StagedFiles,
    checked_path,
    refuse_existing,
    series_dir,
    temp_path,
    unlink_quietly,
)

__all__ = [
    "SC_IMAGE_STORAGE",
    "MF_TRUE_COLOR_SC_IMAGE_STORAGE",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "Deidentifier",
    "RGBSecondaryCapture",
    "SecondaryCaptureWriter",
    "patient_orientation",
    "series_description",
]

SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
MF_TRUE_COLOR_SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7.4"
# Fixed, 2.25-rooted: generate_uid(prefix=None, entropy_srcs=["medcolor implementation class"])
IMPLEMENTATION_CLASS_UID = "2.25.329302744544793296509113371306208301612"
IMPLEMENTATION_VERSION_NAME = f"MEDCOLOR_{__version__}"[:16]

# CID 7005 Contributing Equipment Purpose of Reference: equipment that processed composite
# instances to create new composite instances (109103 "Modifying Equipment" is for equipment that
# changed instances *without* creating new ones).
PURPOSE_PROCESSING = ("109102", "DCM", "Processing Equipment")
PURPOSE_DEIDENTIFYING = ("109104", "DCM", "De-identifying Equipment")
# CID 7050 De-identification Method
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# Frame Increment Pointer targets (PS3.3 C.8.6.3): the SC Multi-frame Vector module's vectors.
SLICE_LOCATION_VECTOR = 0x00182005
FRAME_LABEL_VECTOR = 0x00182002

_PIXEL_DATA_TAG = 0x7FE00010
# set by RGBSecondaryCapture.instance() for a single-frame instance; every other element is the same
# for the whole series and is encoded once (see _InstanceEncoder)
_PER_INSTANCE_TAGS = frozenset({0x00080018, 0x00080023, 0x00080033, 0x00082112, 0x00200013})
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+\.dcm")
_MAX_PIXEL_BYTES = 0xFFFFFFFE  # 32-bit explicit length, even

# The whitelist: (keyword, VR, type in the SC IOD). Nothing else is ever copied from a source.
_COPIED: tuple[tuple[str, str, int], ...] = (
    ("PatientName", "PN", 2),
    ("PatientID", "LO", 2),
    ("PatientBirthDate", "DA", 2),
    ("PatientSex", "CS", 2),
    ("PatientAge", "AS", 3),
    ("PatientIdentityRemoved", "CS", 3),
    ("DeidentificationMethod", "LO", 3),
    ("StudyInstanceUID", "UI", 1),
    ("StudyDate", "DA", 2),
    ("StudyTime", "TM", 2),
    ("StudyID", "SH", 2),
    ("AccessionNumber", "SH", 2),
    ("ReferringPhysicianName", "PN", 2),
    ("StudyDescription", "LO", 3),
    ("BodyPartExamined", "CS", 3),
)
# CID 7050 options contradicted by the basic profile as applied here (dates and characteristics gone)
_RETAIN_OPTIONS_REMOVED = frozenset({"113106", "113107", "113108"})
_CODE_KEYWORDS = ("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
                  "LongCodeValue", "URNCodeValue")

# PS3.15 Table E.1-1 actions for the copied attributes: Z = empty, X = remove, K = keep,
# U = consistent new UID. PatientName/PatientID are replaced (D) by the Deidentifier.
_BASIC_PROFILE_ACTIONS = {
    "PatientBirthDate": "Z", "PatientSex": "Z", "PatientAge": "X", "StudyDate": "Z",
    "StudyTime": "Z", "StudyID": "Z", "AccessionNumber": "Z", "ReferringPhysicianName": "Z",
    "StudyDescription": "X", "BodyPartExamined": "K", "StudyInstanceUID": "U",
}

_TYPE1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
          "ConversionType", "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
          "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration")
_TYPE1_MF = ("NumberOfFrames", "BurnedInAnnotation")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber",
          "InstanceNumber", "PatientOrientation", "ContentDate", "ContentTime")

# BodyPartExamined values of unpaired structures (PS3.16 Annex L, as dciodvfy applies it): Laterality
# (Type 2C) must then be absent. For any other or unknown body part it is present, empty if unknown.
UNPAIRED_BODY_PARTS = frozenset(
    "ABDOMEN ABDOMENPELVIS AORTA BLADDER BRAIN CERVIX CEREBELLUM CHEST CHESTABDOMEN CHESTABDPELVIS "
    "COCCYX COLON CSPINE CTSPINE DUODENUM ESOPHAGUS FACE GALLBLADDER HEAD HEADNECK HEART ILEUM JAW "
    "JEJUNUM LARYNX LIVER LSPINE LSSPINE MEDIASTINUM MOUTH NECK NECKCHEST NOSE PANCREAS PELVIS PENIS "
    "PHARYNX PROSTATE RECTUM SKULL SPINE SPLEEN STERNUM STOMACH THYROID TLSPINE TONGUE TRACHEA TSPINE "
    "URETHRA UTERUS VAGINA WHOLEBODY".split())

_ENUMERATED = {"PatientSex": ("M", "F", "O"), "PatientIdentityRemoved": ("YES", "NO")}
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_AS = re.compile(r"^\d{3}[DWMY]$")
_CS = re.compile(r"^[A-Z0-9 _]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


# --------------------------------------------------------------------------- helpers (pure)


def series_description(derivation: Derivation) -> str:
    """``"Colourised (<method>) - NOT FOR PRIMARY DIAGNOSIS"`` (LO, at most 64 characters)."""
    words = (derivation.method or "").split()
    method = _CONTROL.sub("", words[0]) if words else "unknown"
    return f"Colourised ({method}) - NOT FOR PRIMARY DIAGNOSIS"[:64]


def patient_orientation(iop: Sequence[float] | None) -> list[str] | None:
    """PatientOrientation (PS3.3 C.7.6.1.1.1) from ImageOrientationPatient direction cosines.

    The first value is the direction of the rows (increasing column index), the second that of the
    columns; each is the principal letter (L/R, P/A, H/F) followed by up to two refinements in order
    of magnitude. Returns None when ``iop`` is missing or malformed. Axial ``1\\0\\0\\0\\1\\0`` gives
    ``["L", "P"]``.
    """
    try:
        values = [float(v) for v in iop] if iop is not None else []
    except (TypeError, ValueError):
        return None
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        return None

    def letters(vec: list[float]) -> str:
        axes = [(abs(vec[0]), "L" if vec[0] > 0 else "R"), (abs(vec[1]), "P" if vec[1] > 0 else "A"),
                (abs(vec[2]), "H" if vec[2] > 0 else "F")]
        picked = sorted((a for a in axes if a[0] > 1e-3), key=lambda a: -a[0])
        return "".join(letter for _, letter in picked)

    row, col = letters(values[:3]), letters(values[3:])
    return [row, col] if row and col else None


def _first_item(ds: Dataset, *keywords: str) -> Dataset | None:
    """Follow ``keywords`` through first sequence items; None when any step is missing."""
    cur: Any = ds
    for kw in keywords:
        seq = cur.get(kw) if cur is not None else None
        if not seq:
            return None
        cur = seq[0]
    return cur


def _image_orientation(ds: Dataset | None, frame: int | None) -> list[float] | None:
    """ImageOrientationPatient of a (possibly enhanced multi-frame) dataset, or None."""
    if ds is None:
        return None
    iop = ds.get("ImageOrientationPatient")
    if not iop:
        item = _first_item(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence")
        if item is None and frame is not None:
            per_frame = ds.get("PerFrameFunctionalGroupsSequence")
            if per_frame and frame < len(per_frame):
                item = _first_item(per_frame[frame], "PlaneOrientationSequence")
        iop = item.get("ImageOrientationPatient") if item is not None else None
    try:
        values = [float(v) for v in iop] if iop else None
    except (TypeError, ValueError):
        return None
    return values if values and len(values) == 6 and all(map(math.isfinite, values)) else None


def _pixel_spacing(ds: Dataset | None, fallback: tuple[float, float] | None) -> list[float] | None:
    spacing = ds.get("PixelSpacing") if ds is not None else None
    if not spacing and ds is not None:
        item = _first_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
        spacing = item.get("PixelSpacing") if item is not None else None
    if not spacing:
        spacing = fallback
    try:
        values = [float(v) for v in spacing] if spacing else None
    except (TypeError, ValueError):
        return None
    if not values or len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return values


def _ds(value: float) -> DSfloat:
    return DSfloat(value, auto_format=True)


def _clean_text(value: Any, vr: str) -> str:
    text = _CONTROL.sub("", str(value)).strip()
    return text[: MAX_VALUE_LEN.get(vr, 64)]


def _clean_value(vr: str, value: Any) -> Any:
    """A copied source value made valid for ``vr`` (tolerant reading): truncated, or None if unusable.

    None means "unknown": the attribute is written empty (Type 2) or left out (Type 3).
    """
    if value is None or value == "":
        return None
    if vr == "PN":
        groups = str(value).replace("\\", "").split("=")[:3]
        text = "=".join(g[:64] for g in groups).strip()
        return text or None
    if vr in ("DA", "TM", "AS"):
        text = str(value).strip()
        pattern = {"DA": _DA, "TM": _TM, "AS": _AS}[vr]
        return text if pattern.match(text) else None
    if vr == "UI":
        text = str(value).strip().rstrip("\x00")
        try:
            validate_value("UI", text, pydicom_config.RAISE)
        except ValueError:
            return None
        return text or None
    if vr in ("LO", "SH", "CS"):
        multi = not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")
        items = list(value) if multi else [value]
        cleaned = [_clean_text(v, vr) for v in items]
        if vr == "CS":
            cleaned = [c.upper() for c in cleaned if _CS.match(c.upper())]
        cleaned = [c for c in cleaned if c]
        if not cleaned:
            return None
        return cleaned[0] if len(cleaned) == 1 else cleaned
    return None


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _copy_codes(seq: Any) -> list[Dataset]:
    """Code items with only the code attributes (never private or other nested data)."""
    out = []
    for src in seq or []:
        item = Dataset()
        for kw in _CODE_KEYWORDS:
            if kw in src and src[kw].value not in (None, ""):
                value = _clean_value("LO" if kw == "CodeMeaning" else "SH", src[kw].value)
                if kw in ("LongCodeValue", "URNCodeValue"):
                    value = str(src[kw].value)
                if value is not None:
                    setattr(item, kw, value)
        if "CodeMeaning" in item and "CodingSchemeDesignator" in item:
            out.append(item)
    return out


def _has_non_ascii(ds: Dataset) -> bool:
    for elem in ds:
        if elem.VR == "SQ":
            if any(_has_non_ascii(item) for item in elem.value):
                return True
        elif elem.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC"):
            values = elem.value if elem.VM > 1 else [elem.value]
            if any(v is not None and not str(v).isascii() for v in values):
                return True
    return False


def _laterality(ds: Dataset | None) -> str:
    """R or L from the source's Laterality or ImageLaterality, else "" (unknown)."""
    for keyword in ("Laterality", "ImageLaterality"):
        value = str(ds.get(keyword, "") or "").strip().upper() if ds is not None else ""
        if value in ("R", "L"):
            return value
    return ""


def _now() -> datetime:
    return datetime.now().astimezone()


def _source_says_yes(ds: Dataset | None, keyword: str) -> bool:
    return ds is not None and str(ds.get(keyword, "") or "").strip().upper() == "YES"


# --------------------------------------------------------------------------- de-identification


class Deidentifier:
    """PS3.15 E.1 basic profile for the attributes a medcolor SC copies.

    ``uid_map`` maps original values to replacements and makes them consistent within a run: pass the
    same dict to every writer of a run (and to whatever de-identifies the source) to keep studies and
    references together. Keys are original UIDs, or ``"PatientID:<original>"`` for pseudonymous IDs.
    """

    METHOD = "medcolor basic profile (PS3.15 E.1)"
    PATIENT_NAME = "ANONYMOUS^"  # family name component; the bare form is "retired" for dciodvfy

    def __init__(self, uid_map: dict[str, str] | None = None) -> None:
        self.uid_map: dict[str, str] = uid_map if uid_map is not None else {}

    def uid(self, original: str) -> str:
        """A new 2.25 UID for ``original``, the same one every time within this map."""
        new = self.uid_map.get(original)
        if new is None:
            new = generate_uid(prefix=None)
            self.uid_map[original] = new
        return new

    def patient_id(self, original: str | None) -> str:
        """A pseudonymous PatientID: salted hash of the original, consistent within the map."""
        key = f"PatientID:{original or ''}"
        new = self.uid_map.get(key)
        if new is None:
            salt = self.uid_map.setdefault("PatientID:__salt__", secrets.token_hex(16))
            digest = hashlib.sha256(f"{salt}:{original or ''}".encode()).hexdigest()
            new = f"ANON-{digest[:12].upper()}"
            self.uid_map[key] = new
        return new


# --------------------------------------------------------------------------- the DICOM object


class RGBSecondaryCapture:
    """The per-series constant part of a medcolor RGB Secondary Capture (single- or multi-frame).

    Build it with :meth:`from_reference`; it validates itself (:meth:`validate`) and raises
    MedcolorError rather than produce an invalid object. :meth:`instance` fills the per-instance
    fields *in place* and returns the same Dataset (reuse keeps a write at a few milliseconds), so
    write or copy the result before the next call.
    """

    def __init__(self, dataset: Dataset, *, multiframe: bool,
                 deidentifier: Deidentifier | None = None,
                 orientation: list[float] | None = None, where: str | Path | None = None) -> None:
        self.dataset = dataset
        self.multiframe = multiframe
        self.deidentifier = deidentifier
        self.orientation = orientation
        self.where = where
        self.validate()

    # ----------------------------------------------------------------- builder

    @classmethod
    def from_reference(
        cls,
        reference: Dataset | None,
        *,
        rows: int,
        columns: int,
        derivation: Derivation,
        series_number: int,
        series_instance_uid: str,
        study_instance_uid: str | None = None,
        modality: str | None = None,
        multiframe: bool = False,
        pixel_spacing: tuple[float, float] | None = None,
        burned_in_annotation: bool | None = None,
        deidentifier: Deidentifier | None = None,
        where: str | Path | None = None,
    ) -> RGBSecondaryCapture:
        """Build from the source slice's header (``reference``; None for NIfTI/plain images).

        Copies only the whitelisted patient/study attributes of ``reference``; ``study_instance_uid``
        is used when the reference has none (a new one is generated when both are missing).
        ``burned_in_annotation`` overrides the reference's BurnedInAnnotation (None: YES only if the
        reference says YES). With ``deidentifier`` the PS3.15 basic profile is applied and a
        reference with burned-in annotation is refused.
        """
        if rows <= 0 or columns <= 0:
            raise ValueError(f"rows and columns must be positive, got {rows}x{columns}")
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        sop_class = MF_TRUE_COLOR_SC_IMAGE_STORAGE if multiframe else SC_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        burned_in = (_source_says_yes(reference, "BurnedInAnnotation")
                     if burned_in_annotation is None else burned_in_annotation)
        if deidentifier is not None and burned_in:
            raise MedcolorError("source has burned-in annotation (BurnedInAnnotation YES)", where=where,
                                hint="it cannot be de-identified by header changes; remove --deidentify "
                                     "or clean the pixels first")

        # Patient, General Study, Patient Study: the whitelist only, Type 2 present even if empty
        for keyword, vr, type_ in _COPIED:
            value = None
            if reference is not None and keyword in reference:
                try:
                    value = _clean_value(vr, reference[keyword].value)
                except Exception:  # undecodable source value: tolerant reading, treat as unknown
                    value = None
                if keyword in _ENUMERATED and value not in _ENUMERATED[keyword]:
                    value = None
            if value is None and type_ == 3:
                continue
            ds.add_new(keyword, vr, value if value is not None else "")
        if reference is not None and "DeidentificationMethodCodeSequence" in reference:
            codes = _copy_codes(reference.DeidentificationMethodCodeSequence)
            if codes:
                ds.DeidentificationMethodCodeSequence = DicomSequence(codes)
        if ds.get("PatientIdentityRemoved") == "YES" and not ds.get("DeidentificationMethod") \
                and not ds.get("DeidentificationMethodCodeSequence"):
            ds.DeidentificationMethod = "not recorded in the source"
        if not ds.StudyInstanceUID:
            ds.StudyInstanceUID = study_instance_uid or generate_uid()

        now = _now()
        if reference is None and deidentifier is None:
            # a study medcolor creates (NIfTI / plain image): dated when it was created
            ds.StudyDate = now.strftime("%Y%m%d")
            ds.StudyTime = now.strftime("%H%M%S")
        if deidentifier is not None:
            cls._apply_basic_profile(ds, deidentifier)

        # SOP Common
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = generate_uid()  # placeholder, replaced per instance
        # General Series
        ds.Modality = _clean_value("CS", modality or (reference.get("Modality") if reference else None)
                                   or "OT") or "OT"
        ds.SeriesInstanceUID = series_instance_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = series_description(derivation)
        if str(ds.get("BodyPartExamined", "")) not in UNPAIRED_BODY_PARTS:
            ds.Laterality = _laterality(reference)
        if deidentifier is None:
            ds.SeriesDate = now.strftime("%Y%m%d")
            ds.SeriesTime = now.strftime("%H%M%S")
        # SC Equipment
        ds.ConversionType = "WSD"
        ds.SecondaryCaptureDeviceManufacturer = "medcolor"
        ds.SecondaryCaptureDeviceManufacturerModelName = "medcolor"
        ds.SecondaryCaptureDeviceSoftwareVersions = __version__
        # General Image
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.InstanceNumber = 1  # placeholder
        ds.ContentDate = ""
        ds.ContentTime = ""
        orientation = _image_orientation(reference, 0 if reference is not None and
                                         "PerFrameFunctionalGroupsSequence" in reference else None)
        ds.PatientOrientation = patient_orientation(orientation) or ""
        ds.BurnedInAnnotation = "YES" if burned_in else "NO"
        if reference is not None and str(reference.get("RecognizableVisualFeatures", "")) in ("YES", "NO"):
            ds.RecognizableVisualFeatures = reference.RecognizableVisualFeatures
        if reference is not None and str(reference.get("LossyImageCompression", "")) == "01":
            # once lossy, always lossy (PS3.3 C.7.6.1.1.5)
            ds.LossyImageCompression = "01"
            for kw in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
                if reference.get(kw):
                    ds[kw] = DataElement(kw, reference[kw].VR, reference[kw].value)
        # General Reference (in General Image before 2021)
        ds.DerivationDescription = derivation.description()
        ds.SourceImageSequence = DicomSequence()
        # Image Pixel: 8-bit interleaved RGB
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.Rows = rows
        ds.Columns = columns
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        # SC Image: Basic Pixel Spacing Calibration Macro (Pixel Spacing 1C, "may be present")
        spacing = _pixel_spacing(reference, pixel_spacing)
        if spacing is not None:
            ds.PixelSpacing = [_ds(v) for v in spacing]
        if deidentifier is None:
            ds.DateOfSecondaryCapture = now.strftime("%Y%m%d")
            ds.TimeOfSecondaryCapture = now.strftime("%H%M%S")
        if multiframe:
            # Multi-frame + SC Multi-frame Image + SC Multi-frame Vector (set per instance)
            ds.NumberOfFrames = 1  # Frame Increment Pointer and its vector only when > 1 frame
        # SOP Common: Contributing Equipment
        ds.ContributingEquipmentSequence = DicomSequence(
            [cls._equipment(PURPOSE_PROCESSING, derivation, now if deidentifier is None else None)])
        if deidentifier is not None:
            ds.ContributingEquipmentSequence.append(cls._equipment(PURPOSE_DEIDENTIFYING, None, None))
        if _has_non_ascii(ds):
            ds.SpecificCharacterSet = "ISO_IR 192"
        return cls(ds, multiframe=multiframe, deidentifier=deidentifier, orientation=orientation,
                   where=where)

    @staticmethod
    def _equipment(purpose: tuple[str, str, str], derivation: Derivation | None,
                   when: datetime | None) -> Dataset:
        item = Dataset()
        item.Manufacturer = "medcolor"
        item.ManufacturerModelName = "medcolor"
        item.SoftwareVersions = __version__
        if when is not None:
            item.ContributionDateTime = when.strftime("%Y%m%d%H%M%S.%f%z")
        if derivation is not None:
            item.ContributionDescription = _clean_text(f"colourisation, method {derivation.method}", "LO")
        else:
            item.ContributionDescription = Deidentifier.METHOD
        item.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(*purpose)])
        return item

    @staticmethod
    def _apply_basic_profile(ds: Dataset, deid: Deidentifier) -> None:
        ds.PatientName = Deidentifier.PATIENT_NAME
        ds.PatientID = deid.patient_id(str(ds.get("PatientID", "") or ""))
        for keyword, action in _BASIC_PROFILE_ACTIONS.items():
            if keyword not in ds:
                continue
            if action == "Z":
                ds[keyword].value = ""
            elif action == "X":
                del ds[keyword]
            elif action == "U":
                ds[keyword].value = deid.uid(str(ds[keyword].value))
        ds.PatientIdentityRemoved = "YES"
        methods = ds.get("DeidentificationMethod") or []
        methods = [methods] if isinstance(methods, str) else list(methods)
        ds.DeidentificationMethod = methods + [Deidentifier.METHOD] if methods else Deidentifier.METHOD
        # the source's "retain" options no longer hold for what this profile removed
        codes = [c for c in ds.get("DeidentificationMethodCodeSequence") or []
                 if c.get("CodeValue") not in _RETAIN_OPTIONS_REMOVED]
        if not any(c.get("CodeValue") == BASIC_PROFILE[0] for c in codes):
            codes.insert(0, _code_item(*BASIC_PROFILE))
        ds.DeidentificationMethodCodeSequence = DicomSequence(codes)
        ds.LongitudinalTemporalInformationModified = "REMOVED"

    # ----------------------------------------------------------------- validation

    def validate(self) -> None:
        """Strict check before writing: IOD Type 1/2 attributes, RGB pixel module, every value's VR,
        no private tags. Raises MedcolorError naming the source."""
        ds = self.dataset
        problems: list[str] = []
        for kw in _TYPE1 + (_TYPE1_MF if self.multiframe else ()):
            if kw not in ds or ds[kw].value in (None, "", []):
                problems.append(f"Type 1 {kw} missing or empty")
        for kw in _TYPE2:
            if kw not in ds:
                problems.append(f"Type 2 {kw} missing")
        expected = {"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0,
                    "BitsAllocated": 8, "BitsStored": 8, "HighBit": 7, "PixelRepresentation": 0}
        for kw, value in expected.items():
            if ds.get(kw) != value:
                problems.append(f"{kw} must be {value}")
        if list(ds.get("ImageType", [])) != ["DERIVED", "SECONDARY"]:
            problems.append("ImageType must be DERIVED\\SECONDARY")
        for elem in ds.iterall():
            if elem.tag.is_private:
                problems.append(f"private tag {elem.tag}")
                continue
            if elem.VR == "SQ" or elem.value is None:
                continue
            values = elem.value if elem.VM > 1 else [elem.value]
            try:
                for v in values:
                    if elem.VR in ("IS", "DS"):
                        v = str(v)  # validate the string that will be written
                    validate_value(elem.VR, v, pydicom_config.RAISE)
            except (ValueError, TypeError) as exc:
                problems.append(f"{elem.keyword or elem.tag}: {exc}")
        if problems:
            raise MedcolorError(f"would write an invalid Secondary Capture ({'; '.join(problems)})",
                                where=self.where, hint="report this as a medcolor bug with --debug")

    # ----------------------------------------------------------------- per instance

    def source_values(self, ref: SliceRef) -> tuple[str, str, int | None] | None:
        """(ReferencedSOPClassUID, ReferencedSOPInstanceUID, ReferencedFrameNumber or None) of the
        SourceImageSequence item for ``ref``; None when its UIDs are unknown."""
        ds = ref.dataset
        sop_class = ref.sop_class_uid or (ds.get("SOPClassUID") if ds is not None else None)
        sop_instance = ref.sop_instance_uid or (ds.get("SOPInstanceUID") if ds is not None else None)
        if not sop_class or not sop_instance:
            return None
        sop_instance = str(sop_instance)
        if self.deidentifier is not None:
            sop_instance = self.deidentifier.uid(sop_instance)
        # a frame number only for a multi-frame source (dciodvfy: never for a single-frame SOP class)
        frame = ref.frame + 1 if ref.frame is not None and (ds is None or "NumberOfFrames" in ds) else None
        return str(sop_class), sop_instance, frame

    def source_item(self, ref: SliceRef) -> Dataset | None:
        """A SourceImageSequence item for ``ref`` (None when its UIDs are unknown)."""
        values = self.source_values(ref)
        if values is None:
            return None
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID, frame = values
        if frame is not None:
            item.ReferencedFrameNumber = frame
        return item

    def instance(self, *, sop_instance_uid: str, instance_number: int, sources: Sequence[SliceRef],
                 content: datetime | None = None) -> Dataset:
        """Fill the per-instance fields and return the (shared, mutated) Dataset, without PixelData.

        ``sources`` are the source slices in frame order (one for single-frame). For multi-frame the
        frame count and the Frame Increment Pointer vector are set from them: SliceLocationVector when
        every source has a position and the orientation is known, else FrameLabelVector.
        """
        ds = self.dataset
        ds.SOPInstanceUID = sop_instance_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
        ds.InstanceNumber = instance_number
        if content is not None and self.deidentifier is None:
            ds.ContentDate = content.strftime("%Y%m%d")
            ds.ContentTime = content.strftime("%H%M%S.%f")
        items = [item for item in (self.source_item(ref) for ref in sources) if item is not None]
        ds.SourceImageSequence = DicomSequence(items)
        if "SourceImageSequence" in ds and not items:
            del ds.SourceImageSequence
        if self.multiframe:
            n = len(sources)
            ds.NumberOfFrames = n
            for kw in ("FrameIncrementPointer", "SliceLocationVector", "FrameLabelVector"):
                if kw in ds:
                    del ds[kw]
            locations = self._slice_locations(sources) if n > 1 else None
            if n == 1:
                pass  # Type 1C: only when Number of Frames > 1
            elif locations is not None:
                ds.FrameIncrementPointer = SLICE_LOCATION_VECTOR
                ds.SliceLocationVector = [_ds(v) for v in locations]
            else:
                ds.FrameIncrementPointer = FRAME_LABEL_VECTOR
                ds.FrameLabelVector = [f"slice {i + 1}" for i in range(n)]
        return ds

    def _slice_locations(self, sources: Sequence[SliceRef]) -> list[float] | None:
        if self.orientation is None or any(ref.position is None for ref in sources):
            return None
        row = np.asarray(self.orientation[:3], dtype=float)
        col = np.asarray(self.orientation[3:], dtype=float)
        normal = np.cross(row, col)
        if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-6:
            return None
        return [round(float(np.dot(np.asarray(ref.position, dtype=float), normal)), 4)
                for ref in sources]


class _InstanceEncoder:
    """Explicit VR Little Endian bytes of a single-frame instance of one series' template, the same
    bytes ``dcmwrite(fp, ds, enforce_file_format=True)`` writes (tested), but with every element that
    does not change between instances encoded once: only the file meta and the per-instance elements
    (``_PER_INSTANCE_TAGS``) are encoded per slice, and the pixels go to the file as one buffer."""

    def __init__(self, dataset: Dataset) -> None:
        fixed = correct_ambiguous_vr(Dataset({t: e for t, e in dataset.items() if t not in _PER_INSTANCE_TAGS
                                              and t != _PIXEL_DATA_TAG}), True)
        self.encodings = dataset.get("SpecificCharacterSet", "iso8859")
        self._meta: tuple[bytes, bytes] | None = None   # see prepare_direct
        self._segments: list[bytes] = []
        self._constant: dict[int, bytes] = {}
        self.fixed = {tag: self._encode(fixed[tag]) for tag in fixed.keys()
                      if not (tag.element == 0 and tag.group > 6)}

    def _encode(self, elem: DataElement) -> bytes:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, elem, self.encodings)
        return fp.getvalue()

    def header(self, ds: Dataset) -> bytes:
        """Preamble, file meta and every element of ``ds`` before the pixel data."""
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        fp.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
        parts = [fp.getvalue()]
        for tag in sorted(set(self.fixed) | {t for t in ds.keys() if t in _PER_INSTANCE_TAGS}):
            parts.append(self.fixed[tag] if tag in self.fixed else self._encode(ds[tag]))
        return b"".join(parts)

    @staticmethod
    def pixel_header(n_bytes: int) -> bytes:
        return struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, n_bytes + (n_bytes & 1))

    def prepare_direct(self, first_header: bytes, dataset: Dataset, content_set: bool) -> None:
        """Ready :meth:`direct` from the first instance's ``header`` bytes (written by pydicom) and
        its ``dataset``: the file meta around its Media Storage SOP Instance UID, and the series-constant
        elements between the per-instance ones. ``content_set``: whether ContentDate/Time change
        per instance (else they are the template's, encoded once)."""
        meta_start = 128 + 4
        (meta_length,) = struct.unpack_from("<I", first_header, meta_start + 8)
        meta = first_header[meta_start + 12:meta_start + 12 + meta_length]
        uid_elem = _short(0x00020003, b"UI", _ui_bytes(str(dataset.file_meta.MediaStorageSOPInstanceUID)))
        at = meta.find(uid_elem)
        if at < 0 or meta.find(uid_elem, at + 1) >= 0:
            return  # not the layout expected: every instance through pydicom
        self._meta = (meta[:at], meta[at + len(uid_elem):])
        self._constant = {} if content_set else {t: self._encode(dataset[t]) if t in dataset else b""
                                                 for t in (0x00080023, 0x00080033)}
        cuts = sorted(_PER_INSTANCE_TAGS)
        self._segments = [b"".join(self.fixed[t] for t in sorted(self.fixed)
                                   if (i == 0 or t > cuts[i - 1]) and (i == len(cuts) or t < cuts[i]))
                          for i in range(len(cuts) + 1)]

    def direct(self, sop_instance_uid: str, instance_number: int, content: datetime | None,
               source: tuple[str, str, int | None] | None) -> bytes | None:
        """The same bytes as :meth:`header` of the dataset ``RGBSecondaryCapture.instance`` would give for
        these per-instance values, encoded here without building it; None when a value is not plain
        ASCII (then use :meth:`header`), or before :meth:`prepare_direct` succeeded."""
        if self._meta is None:
            return None
        texts = [sop_instance_uid] + (list(source[:2]) if source is not None else [])
        if not all(t.isascii() and "\\" not in t for t in texts):
            return None
        uid = _ui_bytes(sop_instance_uid)
        meta = self._meta[0] + _short(0x00020003, b"UI", uid) + self._meta[1]
        if content is not None:
            date = _short(0x00080023, b"DA", _text_bytes(content.strftime("%Y%m%d")))
            time = _short(0x00080033, b"TM", _text_bytes(content.strftime("%H%M%S.%f")))
        else:
            date, time = self._constant[0x00080023], self._constant[0x00080033]
        sources = b""
        if source is not None:
            sop_class, sop_instance, frame = source
            body = (_short(0x00081150, b"UI", _ui_bytes(sop_class)) + _short(0x00081155, b"UI", _ui_bytes(sop_instance))
                    + (_short(0x00081160, b"IS", _text_bytes(str(frame))) if frame is not None else b""))
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
            sources = struct.pack("<HH2sHI", 0x0008, 0x2112, b"SQ", 0, len(item)) + item
        seg = self._segments
        return b"".join((b"\x00" * 128, b"DICM", _short(0x00020000, b"UL", struct.pack("<I", len(meta))), meta,
                         seg[0], _short(0x00080018, b"UI", uid), seg[1], date, seg[2], time, seg[3], sources,
                         seg[4], _short(0x00200013, b"IS", _text_bytes(str(instance_number))), seg[5]))


def _short(tag: int, vr: bytes, value: bytes) -> bytes:
    """An explicit VR little endian element with a 2-byte length (UI, UL, DA, TM, IS, ...)."""
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _ui_bytes(uid: str) -> bytes:
    value = uid.encode("ascii")
    return value + b"\x00" if len(value) & 1 else value


def _text_bytes(text: str) -> bytes:
    value = text.encode("ascii")
    return value + b" " if len(value) & 1 else value


# --------------------------------------------------------------------------- the writer


def _check_rgb(rgb: Any, rows: int, columns: int) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"rgb must be a uint8 array [H, W, 3], got {dtype} {shape}")
    if rgb.shape[:2] != (rows, columns):
        raise ValueError(f"rgb is {rgb.shape[0]}x{rgb.shape[1]}, the series is {rows}x{columns}")


def _check_index(index: Any) -> int:
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    return int(index)


class SecondaryCaptureWriter(CloseOnSuccess):
    """Writes one colourised series as RGB Secondary Capture DICOM.

    Files: ``out_dir/S{series_number:03d}_{MODALITY}/IM{index+1:05d}.dcm`` (one per slice), or
    ``.../MF00001.dcm`` with ``multiframe=True`` (written by :meth:`close`). Names come from counters
    only. Every file is written under a hidden ``.part`` name and renamed; an existing file is never
    replaced unless ``overwrite``. The writer never modifies its inputs.

    ``uid_map`` (with ``deidentify=True``): original-to-new UID/ID map shared by the writers of a run.
    Usable as a context manager (``close()`` on success, ``abort()`` on an exception). Not
    thread-safe: the per-series dataset is reused between writes, so use one writer per thread.
    Files are renamed into place but not fsync'ed (atomic for readers, not durable across a crash).
    """

    def __init__(self, out_dir: Path, series: Series, derivation: Derivation, series_number: int, *,
                 multiframe: bool = False, overwrite: bool = False, deidentify: bool = False,
                 uid_map: dict[str, str] | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.series = series
        self.derivation = derivation
        self.series_number = series_number
        self.multiframe = multiframe
        self.overwrite = overwrite
        self.deidentify = deidentify
        self.series_instance_uid = generate_uid()
        self.directory = checked_path(self.out_dir, series_dir(self.out_dir, series_number,
                                                               series.modality))
        self._deidentifier = Deidentifier(uid_map) if deidentify else None
        is_dicom = series.kind == "dicom"
        first = series.slices[0] if series.slices else None
        reference = first.dataset if (is_dicom and first is not None) else None
        where = first.path if first is not None else (series.source_label or None)
        burned_in = any(_source_says_yes(ref.dataset, "BurnedInAnnotation")
                        for ref in series.slices if is_dicom)
        if is_dicom:
            study = series.study_instance_uid
        else:
            study = generate_uid()  # a new study for NIfTI / plain images, once per writer
        self.template = RGBSecondaryCapture.from_reference(
            reference, rows=series.rows, columns=series.columns, derivation=derivation,
            series_number=series_number, series_instance_uid=self.series_instance_uid,
            study_instance_uid=study, modality=series.modality if series.modality else None,
            multiframe=multiframe, pixel_spacing=series.pixel_spacing, burned_in_annotation=burned_in,
            deidentifier=self._deidentifier, where=where)
        self._written: dict[int, Path] = {}
        self._temps: set[Path] = set()
        self._staged = StagedFiles(overwrite)
        self._closed = False
        # multi-frame spool: frames in arrival order in a hidden file; (index -> (slot, ref))
        self._frames: dict[int, tuple[int, SliceRef]] = {}
        self._spool: BinaryIO | None = None
        self._spool_path: Path | None = None
        self._frame_bytes = series.rows * series.columns * 3
        self._encoder: _InstanceEncoder | None = None
        self._made_directory = False
        if multiframe:
            refuse_existing(self._final("MF00001.dcm"), overwrite)

    # ----------------------------------------------------------------- public API

    @property
    def study_instance_uid(self) -> str:
        return str(self.template.dataset.StudyInstanceUID)

    def write(self, index: int, ref: SliceRef, rgb: np.ndarray) -> Path | None:
        """Write slice ``index`` (0-based; InstanceNumber index+1) coloured from source ``ref``.

        ``rgb``: uint8 [rows, columns, 3] sRGB (ValueError otherwise). Returns the file written, or
        None in multi-frame mode (the file appears at :meth:`close`).
        """
        if self._closed:
            raise RuntimeError("writer is closed")
        index = _check_index(index)
        _check_rgb(rgb, self.series.rows, self.series.columns)
        if self._deidentifier is not None and _source_says_yes(ref.dataset, "BurnedInAnnotation"):
            raise MedcolorError("source has burned-in annotation (BurnedInAnnotation YES)",
                                where=ref.path, hint="remove --deidentify or clean the pixels first")
        if self.multiframe:
            self._spool_frame(index, ref, rgb)
            return None
        final = self._final(f"IM{index + 1:05d}.dcm")  # an existing file is refused by _write_file
        uid, content = generate_uid(), (_now() if self._deidentifier is None else None)
        header = None
        if self._encoder is not None:  # the per-instance elements encoded directly (same bytes)
            header = self._encoder.direct(uid, index + 1, content, self.template.source_values(ref))
        if header is None:  # the first file, or a value direct() leaves to pydicom
            ds = self.template.instance(sop_instance_uid=uid, instance_number=index + 1, sources=[ref],
                                        content=content)
            first = self._encoder is None
            if first:
                self._encoder = _InstanceEncoder(ds)
            header = self._encoder.header(ds)
            if first:
                self._encoder.prepare_direct(header, ds, content is not None)
        pixels = memoryview(np.ascontiguousarray(rgb)).cast("B")

        def pixel_writer(fp: BinaryIO) -> None:
            fp.write(self._encoder.pixel_header(len(pixels)))
            fp.write(pixels)
            if len(pixels) & 1:
                fp.write(b"\x00")

        self._write_file(final, header, pixel_writer)
        self._written[index] = final
        return final

    def close(self) -> list[Path]:
        """Finish the series; returns the files written, in slice order (the multi-frame file is
        written here). Idempotent."""
        if self._closed:
            return [self._written[i] for i in sorted(self._written)]
        try:
            if self.multiframe and self._frames:
                self._write_multiframe()
            self._staged.commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._drop_spool()
        return [self._written[i] for i in sorted(self._written)]

    def abort(self) -> None:
        """Stop and remove every temporary file: nothing of an unfinished series is published.
        Idempotent."""
        self._closed = True
        self._staged.discard()
        for tmp in list(self._temps):
            unlink_quietly(tmp)
        self._temps.clear()
        self._written.clear()
        self._drop_spool()

    # ----------------------------------------------------------------- internals

    def _final(self, name: str) -> Path:
        # the directory was checked to be inside out_dir (checked_path) when the writer was made; a
        # counter-built file name stays in it, and a link at that name is replaced, never followed
        if not _PLAIN_NAME.fullmatch(name):
            raise ValueError(f"not a plain output file name: {name!r}")
        return self.directory / name

    def _write_file(self, final: Path, ds: Dataset | bytes, pixel_writer: Any = None) -> None:
        """Write ``final`` under a temporary name; it is published with the series at close().
        ``ds``: the dataset, or its encoded bytes; ``pixel_writer(fp)`` appends the pixel data."""
        if not self._made_directory:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._made_directory = True
        tmp = self._staged.stage(final)
        with open(tmp, "xb") as fp:
            if isinstance(ds, bytes):
                fp.write(ds)
            else:
                dcmwrite(fp, ds, enforce_file_format=True)
            if pixel_writer is not None:
                pixel_writer(fp)

    def _spool_frame(self, index: int, ref: SliceRef, rgb: np.ndarray) -> None:
        if index in self._frames:
            raise ValueError(f"frame {index} was already written")
        if (len(self._frames) + 1) * self._frame_bytes > _MAX_PIXEL_BYTES:
            raise MedcolorError("series too large for one multi-frame file (4 GiB pixel data)",
                                where=ref.path, hint="write single-frame instances instead")
        if self._spool is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._spool_path = temp_path(self.directory / "MF00001.dcm", ".frames")
            self._spool = open(self._spool_path, "xb+")
        self._spool.write(memoryview(np.ascontiguousarray(rgb)).cast("B"))
        self._frames[index] = (len(self._frames), ref)

    def _write_multiframe(self) -> None:
        final = self._final("MF00001.dcm")
        refuse_existing(final, self.overwrite)
        order = sorted(self._frames)
        sources = [self._frames[i][1] for i in order]
        slots = [self._frames[i][0] for i in order]
        ds = self.template.instance(sop_instance_uid=generate_uid(), instance_number=1,
                                    sources=sources, content=_now())
        spool = self._spool
        assert spool is not None
        spool.flush()
        length = len(order) * self._frame_bytes
        padded = length + (length & 1)
        frame_bytes = self._frame_bytes

        def pixel_writer(fp: BinaryIO) -> None:
            fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, padded))
            if slots == list(range(len(slots))):  # arrived in order: one stream copy
                spool.seek(0)
                shutil.copyfileobj(spool, fp, 16 * 1024 * 1024)
            else:
                for slot in slots:
                    spool.seek(slot * frame_bytes)
                    fp.write(spool.read(frame_bytes))
            if padded != length:
                fp.write(b"\x00")

        self._write_file(final, ds, pixel_writer)
        self._written[0] = final

    def _drop_spool(self) -> None:
        if self._spool is not None:
            try:
                self._spool.close()
            except OSError:
                pass
            self._spool = None
        unlink_quietly(self._spool_path)
        self._spool_path = None
        self._frames.clear()
