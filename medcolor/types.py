"""Plain data shared along the pipeline (no behaviour, no I/O).

Shapes and units are stated on each field. Nothing here holds pixel data of a whole series. The run's
results (SeriesResult, RunResult) are what the report, the batch runner and the CLI read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

InputKind = Literal["dicom", "nifti", "image", "volume"]


@dataclass(eq=False)
class SliceRef:
    """One 2-D slice of a series: a single-frame file, or one frame of a multi-frame file or volume.

    ``dataset`` is the file's pydicom Dataset *without* PixelData (None for NIfTI and plain images);
    for a multi-frame file every frame shares it. ``frame`` is the 0-based frame index, or None for a
    single-frame file. ``position`` is ImagePositionPatient (mm) of this slice/frame when known.
    ``pixel_offset`` is the file offset (bytes) where frame 0's pixel values start when the file holds its
    frames uncompressed, little endian, 8/16/32 bits a sample, in a Pixel Data element long enough for all
    of them (found once by the scan; such a frame is read as plain file I/O); None otherwise (pydicom
    decodes it), and for NIfTI and plain images.
    """

    path: Path
    frame: int | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    instance_number: int | None = None
    position: tuple[float, float, float] | None = None
    dataset: Any = None
    pixel_offset: int | None = None


@dataclass(eq=False)
class Series:
    """A group of slices that are coloured together and written as one output series.

    kind: "dicom" | "nifti" | "image" | "volume" (MHA/NRRD, or a reformatted plane held in memory).
    ``modality`` is the DICOM Modality ("CT", "MR", "DX", "CR", "OT" for plain images). ``is_hu`` is True
    when the modality-LUT output is in Hounsfield units.
    ``file_windows`` holds the file's VOI windows as (center, width) pairs, in modality-LUT units, in the
    file's order (empty when it has none). ``photometric`` is "MONOCHROME1" or "MONOCHROME2".
    ``bits`` is BitsStored (8 for 8-bit plain images). ``warnings`` are messages for the report and log
    (duplicates dropped, ...), never holding patient data.
    """

    kind: InputKind
    modality: str
    rows: int
    columns: int
    slices: list[SliceRef]
    series_instance_uid: str | None = None
    study_instance_uid: str | None = None
    is_hu: bool = False
    file_windows: list[tuple[float, float]] = field(default_factory=list)
    photometric: str = "MONOCHROME2"
    bits: int = 16
    pixel_spacing: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)
    source_label: str = ""  # a path to show the user (folder or file); not patient data
    derived_from: list[SliceRef] = field(default_factory=list)  # a reformatted plane: every source slice


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file: status "done" | "skipped" | "failed" and a one-line reason."""

    path: Path
    status: Literal["done", "skipped", "failed"]
    reason: str = ""


@dataclass(frozen=True)
class Window:
    """A linear VOI window. ``units`` says what the values are: "HU", "modality" (stored values after
    the modality LUT, not HU) or "srgb" (8-bit sRGB gray: L is the CIE L* of the gray, not linear).
    ``name`` says where it came from: a preset name, "custom", "file", "percentile(1,99)", "srgb".
    """

    center: float
    width: float
    name: str = "custom"
    units: Literal["HU", "modality", "srgb"] = "HU"

    def describe(self) -> str:
        if self.units == "srgb":
            return "sRGB gray to CIE L*"
        return f"{self.name} W={self.width:g} L={self.center:g} ({self.units})"


@dataclass(frozen=True)
class SeriesContext:
    """What a colouriser may know about the series it colours (no file paths, no patient data)."""

    modality: str
    window: Window
    is_hu: bool
    n_slices: int
    rows: int
    columns: int
    inverted: bool = False  # True when L was inverted (MONOCHROME1): L = 100 - windowed value


@dataclass(frozen=True)
class Derivation:
    """Provenance a writer records, as plain strings: the writer never knows which backend ran."""

    method: str                        # e.g. "exemplar (welsh)"
    window: str                        # Window.describe()
    parameters: str = ""               # short "k=v; k=v" string
    reference_sha256: str | None = None
    model_sha256: str | None = None
    software_version: str = ""

    def description(self) -> str:
        """DerivationDescription text (ST, at most 1024 characters)."""
        parts = [f"Colourised by medcolor {self.software_version}", f"method {self.method}",
                 f"window {self.window}"]
        if self.parameters:
            parts.append(self.parameters)
        if self.reference_sha256:
            parts.append(f"reference sha256 {self.reference_sha256}")
        if self.model_sha256:
            parts.append(f"model sha256 {self.model_sha256}")
        parts.append("L channel kept from the source; not for primary diagnosis")
        return "; ".join(parts)[:1024]


@dataclass
class SeriesResult:
    """What happened to one input series (no patient data: labels are counters and modalities).

    ``slices``: one record per coloured slice (``index`` and the figures of ``metrics.measure_slice``);
    ``summary``: their summary (``n_slices``, ``delta_l_mean``, ``delta_l_p99_max``, ``delta_l_max``,
    ``colourfulness_mean``, ``psnr_l_mean``, ``ssim_l_mean``); ``fast_path``: the series' value table
    (``valuetable.describe``)."""

    label: str
    modality: str
    kind: str
    n_slices: int
    rows: int
    columns: int
    status: str = "done"            # done | failed | partial
    error: str = ""
    window: str = ""
    method: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    reference_sha256: str | None = None
    model_sha256: str | None = None
    outputs: list[str] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fast_path: dict[str, Any] = field(default_factory=dict)
    description: str = ""           # the source's SeriesDescription, through the run's PhiRedactor
    patient: str = ""               # "name (ID)" of the source; only with --report-phi
    tissue: dict[str, Any] = field(default_factory=dict)     # exemplar tissue/gram: populations, legend
    source: str = ""                # the input file or folder it came from, through the run's PhiRedactor


@dataclass
class RunResult:
    """Every series' result and every input file's outcome of one run (or batch)."""

    series: list[SeriesResult]
    outcomes: list[FileOutcome]
    report_path: Path | None
    device: str
    redact: Callable[[str], str] = str  # the run's PhiRedactor: apply to anything shown to the user

    @property
    def failed(self) -> bool:
        return any(o.status == "failed" for o in self.outcomes) or any(s.status != "done" for s in self.series)

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out
