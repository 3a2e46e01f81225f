"""Reading what an SC takes from its source header, tolerantly: a malformed value becomes "unknown".

The whitelist of copied patient/study attributes, value cleaning per VR (a copied value is made valid
or dropped, never written as found), and the geometry an SC records (orientation, pixel spacing,
laterality), including from enhanced multi-frame functional groups.
"""
from __future__ import annotations

import math
import re
from typing import Any

from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import MAX_VALUE_LEN, validate_value

# The whitelist: (keyword, VR, type in the SC IOD). Nothing else is ever copied from a source.
COPIED: tuple[tuple[str, str, int], ...] = (
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
_CODE_KEYWORDS = ("CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
                  "LongCodeValue", "URNCodeValue")
_ENUMERATED = {"PatientSex": ("M", "F", "O"), "PatientIdentityRemoved": ("YES", "NO")}
_PATTERNS = {"DA": re.compile(r"^\d{8}$"), "TM": re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$"),
             "AS": re.compile(r"^\d{3}[DWMY]$")}
_CS = re.compile(r"^[A-Z0-9 _]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_TEXT_VRS = ("PN", "LO", "SH", "ST", "LT", "UT", "UC")


def says_yes(ds: Dataset | None, keyword: str) -> bool:
    """Whether ``ds`` has ``keyword`` (a YES/NO attribute) set to YES."""
    return ds is not None and str(ds.get(keyword, "") or "").strip().upper() == "YES"


def clean_text(value: Any, vr: str) -> str:
    """``value`` as one text value of ``vr``: control characters and backslashes removed, stripped,
    truncated to the VR's maximum length."""
    text = _CONTROL.sub("", str(value)).strip()
    return text[: MAX_VALUE_LEN.get(vr, 64)]


def clean_value(vr: str, value: Any) -> Any:
    """A copied source value made valid for ``vr`` (truncated), or None if unusable ("unknown": the
    attribute is then written empty if Type 2, left out if Type 3)."""
    if value is None or value == "":
        return None
    if vr == "PN":
        groups = str(value).replace("\\", "").split("=")[:3]
        text = "=".join(g[:64] for g in groups).strip()
        return text or None
    if vr in _PATTERNS:
        text = str(value).strip()
        return text if _PATTERNS[vr].match(text) else None
    if vr == "UI":
        text = str(value).strip().rstrip("\x00")
        try:
            validate_value("UI", text, pydicom_config.RAISE)
        except ValueError:
            return None
        return text or None
    if vr in ("LO", "SH", "CS"):
        multi = not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")
        cleaned = [clean_text(v, vr) for v in (list(value) if multi else [value])]
        if vr == "CS":
            cleaned = [c.upper() for c in cleaned if _CS.match(c.upper())]
        cleaned = [c for c in cleaned if c]
        if not cleaned:
            return None
        return cleaned[0] if len(cleaned) == 1 else cleaned
    return None


def copy_patient_study(ds: Dataset, reference: Dataset | None) -> None:
    """Patient, General Study and Patient Study attributes of the whitelist into ``ds``: each cleaned,
    Type 2 present even if empty; the source's de-identification record (method and codes) kept."""
    for keyword, vr, type_ in COPIED:
        value = None
        if reference is not None and keyword in reference:
            try:
                value = clean_value(vr, reference[keyword].value)
            except Exception:  # undecodable source value: tolerant reading, treat as unknown
                value = None
            if keyword in _ENUMERATED and value not in _ENUMERATED[keyword]:
                value = None
        if value is not None or type_ != 3:
            ds.add_new(keyword, vr, value if value is not None else "")
    if reference is not None and "DeidentificationMethodCodeSequence" in reference:
        codes = _copy_codes(reference.DeidentificationMethodCodeSequence)
        if codes:
            ds.DeidentificationMethodCodeSequence = DicomSequence(codes)
    if ds.get("PatientIdentityRemoved") == "YES" and not ds.get("DeidentificationMethod") \
            and not ds.get("DeidentificationMethodCodeSequence"):
        ds.DeidentificationMethod = "not recorded in the source"


def _copy_codes(seq: Any) -> list[Dataset]:
    """Code items with only the code attributes (never private or other nested data)."""
    out = []
    for src in seq or []:
        item = Dataset()
        for kw in _CODE_KEYWORDS:
            if kw in src and src[kw].value not in (None, ""):
                if kw in ("LongCodeValue", "URNCodeValue"):
                    value = str(src[kw].value)
                else:
                    value = clean_value("LO" if kw == "CodeMeaning" else "SH", src[kw].value)
                if value is not None:
                    setattr(item, kw, value)
        if "CodeMeaning" in item and "CodingSchemeDesignator" in item:
            out.append(item)
    return out


def has_non_ascii(ds: Dataset) -> bool:
    """Whether any text value of ``ds`` (nested sequences included) is not ASCII."""
    for elem in ds:
        if elem.VR == "SQ":
            if any(has_non_ascii(item) for item in elem.value):
                return True
        elif elem.VR in _TEXT_VRS:
            values = elem.value if elem.VM > 1 else [elem.value]
            if any(v is not None and not str(v).isascii() for v in values):
                return True
    return False


def laterality(ds: Dataset | None) -> str:
    """R or L from the source's Laterality or ImageLaterality, else "" (unknown)."""
    for keyword in ("Laterality", "ImageLaterality"):
        value = str(ds.get(keyword, "") or "").strip().upper() if ds is not None else ""
        if value in ("R", "L"):
            return value
    return ""


def _first_item(ds: Dataset, *keywords: str) -> Dataset | None:
    """Follow ``keywords`` through first sequence items; None when any step is missing."""
    cur: Any = ds
    for kw in keywords:
        seq = cur.get(kw) if cur is not None else None
        if not seq:
            return None
        cur = seq[0]
    return cur


def _floats(values: Any, n: int, positive: bool = False) -> list[float] | None:
    try:
        out = [float(v) for v in values] if values else None
    except (TypeError, ValueError):
        return None
    if not out or len(out) != n or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        return None
    return out


def image_orientation(ds: Dataset | None) -> list[float] | None:
    """ImageOrientationPatient of a dataset, or of an enhanced multi-frame's shared or first frame's
    functional groups; None when missing or malformed."""
    if ds is None:
        return None
    iop = ds.get("ImageOrientationPatient")
    if not iop:
        item = _first_item(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence") \
            or _first_item(ds, "PerFrameFunctionalGroupsSequence", "PlaneOrientationSequence")
        iop = item.get("ImageOrientationPatient") if item is not None else None
    return _floats(iop, 6)


def pixel_spacing(ds: Dataset | None, fallback: tuple[float, float] | None) -> list[float] | None:
    """PixelSpacing of a dataset (or its shared functional groups), else ``fallback``; None when
    unknown or malformed."""
    spacing = ds.get("PixelSpacing") if ds is not None else None
    if not spacing and ds is not None:
        item = _first_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
        spacing = item.get("PixelSpacing") if item is not None else None
    return _floats(spacing or fallback, 2, positive=True)
