"""Keeping patient identity out of logs, reports and file names.

Output names are counters, never patient data. Messages may still carry an input path that a user named
after a patient (``/archive/DOE^JOHN/...``): ``PhiRedactor`` removes every patient name part and
patient ID read from the inputs' headers from any string before it reaches a log line or a report.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from pydicom.multival import MultiValue

from medcolor.types import Series

PHI_KEYWORDS = ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
                "PatientMotherBirthName", "PatientBirthDate")
MIN_TERM = 3  # shorter name parts ("Li", "Jr") would redact ordinary words


@dataclass
class PhiRedactor:
    terms: list[str] = field(default_factory=list)
    enabled: bool = True

    @classmethod
    def from_series(cls, series: Iterable[Series], enabled: bool = True) -> "PhiRedactor":
        terms: set[str] = set()
        for s in series:
            seen = set()
            for ref in s.slices:
                ds = ref.dataset
                if ds is None or id(ds) in seen:
                    continue
                seen.add(id(ds))
                terms.update(phi_terms(ds))
        return cls(sorted(terms, key=len, reverse=True), enabled)

    def __call__(self, text: str) -> str:
        if not self.enabled or not text or not self.terms:
            return text
        return self._pattern().sub("[redacted]", text)

    def _pattern(self) -> re.Pattern[str]:
        if not hasattr(self, "_re"):
            self._re = re.compile("|".join(re.escape(t) for t in self.terms), re.IGNORECASE)
        return self._re


def phi_terms(ds) -> set[str]:
    """Patient name parts and IDs of one dataset, as strings worth redacting."""
    terms: set[str] = set()
    for kw in PHI_KEYWORDS:
        value = ds.get(kw)
        if value is None or value == "":
            continue
        values = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
        for v in values:
            text = str(v).strip()
            if not text:
                continue
            terms.add(text)
            for part in re.split(r"[\^=\s,]+", text):
                if len(part) >= MIN_TERM:
                    terms.add(part)
    return {t for t in terms if len(t) >= MIN_TERM}
