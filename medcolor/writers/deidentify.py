"""PS3.15 E.1 Basic Application Level Confidentiality Profile for what a medcolor SC copies.

A medcolor Secondary Capture copies only a short whitelist of patient and study attributes from its
source (see :mod:`medcolor.writers.sc_iod`); :meth:`Deidentifier.apply` applies the basic profile to
those: names and IDs replaced, dates and characteristics emptied or removed, the Study Instance UID
and every referenced SOP Instance UID replaced by new UIDs that stay consistent within a run (the
``uid_map``). Burned-in annotation cannot be removed by header changes: such sources are refused.
(Log and report redaction, a different job, is :mod:`medcolor.privacy`.)
"""
from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from medcolor.errors import MedcolorError

__all__ = ["BASIC_PROFILE", "PURPOSE_DEIDENTIFYING", "Deidentifier", "code_item"]

# CID 7050 De-identification Method; CID 7005 Contributing Equipment Purpose of Reference
BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
PURPOSE_DEIDENTIFYING = ("109104", "DCM", "De-identifying Equipment")
# CID 7050 options contradicted by the profile as applied here (dates and characteristics gone)
_RETAIN_OPTIONS_REMOVED = frozenset({"113106", "113107", "113108"})

# PS3.15 Table E.1-1 actions for the copied attributes: Z = empty, X = remove, K = keep,
# U = consistent new UID. PatientName and PatientID are replaced (D) by apply().
BASIC_PROFILE_ACTIONS = {
    "PatientBirthDate": "Z", "PatientSex": "Z", "PatientAge": "X", "StudyDate": "Z",
    "StudyTime": "Z", "StudyID": "Z", "AccessionNumber": "Z", "ReferringPhysicianName": "Z",
    "StudyDescription": "X", "BodyPartExamined": "K", "StudyInstanceUID": "U",
}


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


class Deidentifier:
    """The basic profile with a run-wide map of replacements.

    ``uid_map`` maps original values to replacements and makes them consistent within a run: pass the
    same dict to every writer of a run to keep studies and references together. Keys are original
    UIDs, or ``"PatientID:<original>"`` for pseudonymous IDs (salted with ``"PatientID:__salt__"``).
    Only ``get``, ``setdefault`` and item assignment are used, so a dict subclass may derive values.
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

    @staticmethod
    def refuse_burned_in(burned_in: bool, where: str | Path | None) -> None:
        """MedcolorError when the pixels carry burned-in annotation (header changes cannot remove it)."""
        if burned_in:
            raise MedcolorError("source has burned-in annotation (BurnedInAnnotation YES)", where=where,
                                hint="it cannot be de-identified by header changes; remove --deidentify "
                                     "or clean the pixels first")

    def apply(self, ds: Dataset) -> None:
        """Apply the profile in place to the copied patient/study attributes of ``ds`` and record it
        (PatientIdentityRemoved, DeidentificationMethod and its code sequence)."""
        ds.PatientName = self.PATIENT_NAME
        ds.PatientID = self.patient_id(str(ds.get("PatientID", "") or ""))
        for keyword, action in BASIC_PROFILE_ACTIONS.items():
            if keyword not in ds:
                continue
            if action == "Z":
                ds[keyword].value = ""
            elif action == "X":
                del ds[keyword]
            elif action == "U":
                ds[keyword].value = self.uid(str(ds[keyword].value))
        ds.PatientIdentityRemoved = "YES"
        methods = ds.get("DeidentificationMethod") or []
        methods = [methods] if isinstance(methods, str) else list(methods)
        ds.DeidentificationMethod = methods + [self.METHOD] if methods else self.METHOD
        # the source's "retain" options no longer hold for what this profile removed
        codes = [c for c in ds.get("DeidentificationMethodCodeSequence") or []
                 if c.get("CodeValue") not in _RETAIN_OPTIONS_REMOVED]
        if not any(c.get("CodeValue") == BASIC_PROFILE[0] for c in codes):
            codes.insert(0, code_item(*BASIC_PROFILE))
        ds.DeidentificationMethodCodeSequence = DicomSequence(codes)
        ds.LongitudinalTemporalInformationModified = "REMOVED"
