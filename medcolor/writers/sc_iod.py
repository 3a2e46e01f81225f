"""The RGB Secondary Capture object medcolor writes: which attributes it has, and their values.

Two SOP classes (PS3.4 B.5):

* Secondary Capture Image Storage (PS3.3 A.8.1): one instance per source slice.
* Multi-frame True Color Secondary Capture Image Storage (PS3.3 A.8.5): one instance, every frame.

:class:`RGBSecondaryCapture` builds the series-constant part of the dataset once from a reference
(source) dataset with :meth:`~RGBSecondaryCapture.from_reference` (after highdicom's style): tolerant when
reading the source (a malformed value becomes "unknown"), strict when writing (every element checked
against its VR and the IOD's Type 1/2 attributes required, else MedcolorError). Only a whitelist of
patient/study attributes is copied (decoded with the source's character set, written as UTF-8
``ISO_IR 192`` when any is non-ASCII); private tags and everything else never are.
:meth:`~RGBSecondaryCapture.instance` sets the per-instance attributes and the pixel data, ready for
``pydicom.dcmwrite``. Files are not this module's business (see :mod:`medcolor.writers.dicom_sc`).

highdicom's ``SCImage`` was tried for this (see docs/architecture.md, medcolor.writers): it is
single-frame only, and the object medcolor promises needs most of its attributes overridden.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from io import BufferedIOBase, BytesIO
from pathlib import Path

import numpy as np
from pydicom import config as pydicom_config
from pydicom import dcmread, dcmwrite
from pydicom import uid as dicom_uid
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import Tag
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat, validate_value

from medcolor import __version__
from medcolor.errors import MedcolorError
from medcolor.types import Derivation, SliceRef
from medcolor.writers import _source
from medcolor.writers._source import clean_text, clean_value, image_orientation, says_yes
from medcolor.writers.deidentify import PURPOSE_DEIDENTIFYING, Deidentifier, code_item

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "MF_TRUE_COLOR_SC_IMAGE_STORAGE",
    "SC_IMAGE_STORAGE",
    "RGBSecondaryCapture",
    "patient_orientation",
    "series_description",
]

SC_IMAGE_STORAGE = dicom_uid.SecondaryCaptureImageStorage
MF_TRUE_COLOR_SC_IMAGE_STORAGE = dicom_uid.MultiFrameTrueColorSecondaryCaptureImageStorage
# Fixed, 2.25-rooted: generate_uid(prefix=None, entropy_srcs=["medcolor implementation class"])
IMPLEMENTATION_CLASS_UID = "2.25.329302744544793296509113371306208301612"
IMPLEMENTATION_VERSION_NAME = f"MEDCOLOR_{__version__}"[:16]

# CID 7005: equipment that processed composite instances to create new ones (109103 "Modifying
# Equipment" is for equipment that changed instances *without* creating new ones)
PURPOSE_PROCESSING = ("109102", "DCM", "Processing Equipment")
# Frame Increment Pointer targets (PS3.3 C.8.6.3): the SC Multi-frame Vector module's vectors
SLICE_LOCATION_VECTOR = 0x00182005
FRAME_LABEL_VECTOR = 0x00182002

_TYPE1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
          "ConversionType", "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
          "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration")
_TYPE1_MF = ("NumberOfFrames", "BurnedInAnnotation")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber",
          "InstanceNumber", "PatientOrientation", "ContentDate", "ContentTime")
_RGB8 = {"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0,
         "BitsAllocated": 8, "BitsStored": 8, "HighBit": 7, "PixelRepresentation": 0}
# a referenced UID is copied verbatim (it must match its source), so only its repertoire and length
# are required: real archives hold UIDs with leading-zero components that still identify the source
_REFERENCE_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_SOURCE_IMAGE_SEQUENCE = 0x00082112

# BodyPartExamined values of unpaired structures (PS3.16 Annex L, as dciodvfy applies it): Laterality
# (Type 2C) must then be absent. For any other or unknown body part it is present, empty if unknown.
UNPAIRED_BODY_PARTS = frozenset(
    "ABDOMEN ABDOMENPELVIS AORTA BLADDER BRAIN CERVIX CEREBELLUM CHEST CHESTABDOMEN CHESTABDPELVIS "
    "COCCYX COLON CSPINE CTSPINE DUODENUM ESOPHAGUS FACE GALLBLADDER HEAD HEADNECK HEART ILEUM JAW "
    "JEJUNUM LARYNX LIVER LSPINE LSSPINE MEDIASTINUM MOUTH NECK NECKCHEST NOSE PANCREAS PELVIS PENIS "
    "PHARYNX PROSTATE RECTUM SKULL SPINE SPLEEN STERNUM STOMACH THYROID TLSPINE TONGUE TRACHEA TSPINE "
    "URETHRA UTERUS VAGINA WHOLEBODY".split())


def series_description(derivation: Derivation) -> str:
    """``"Colourised (<method>) - NOT FOR PRIMARY DIAGNOSIS"`` (LO, at most 64 characters)."""
    words = (derivation.method or "").split()
    method = clean_text(words[0], "LO") if words else "unknown"
    return f"Colourised ({method or 'unknown'}) - NOT FOR PRIMARY DIAGNOSIS"[:64]


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


def _ds(value: float) -> DSfloat:
    return DSfloat(value, auto_format=True)


def _byte_length(value: bytes | BufferedIOBase) -> int:
    if isinstance(value, BufferedIOBase):
        at = value.tell()
        end = value.seek(0, 2)
        value.seek(at)
        return end - at
    return len(value)


def _as_read_back(ds: Dataset) -> Dataset:
    """``ds`` written by pydicom and read back: the same attributes, but those never set again stay in
    the encoded form pydicom read them in, and ``dcmwrite`` copies such elements as they are (its
    writer encodes only the ones set per instance, so a series' files cost about a minimal SC's)."""
    buffer = DicomBytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return dcmread(BytesIO(buffer.getvalue()))


class RGBSecondaryCapture:
    """The per-series constant part of a medcolor RGB Secondary Capture (single- or multi-frame).

    Build it with :meth:`from_reference`; it validates itself (:meth:`validate`) and raises
    MedcolorError rather than produce an invalid object. :meth:`instance` fills the per-instance
    attributes *in place* and returns the same Dataset (one template per series keeps a write cheap),
    so write it before the next call; not thread-safe.
    """

    def __init__(self, dataset: Dataset, *, multiframe: bool, deidentifier: Deidentifier | None = None,
                 orientation: list[float] | None = None, where: str | Path | None = None) -> None:
        self.dataset = dataset
        self.multiframe = multiframe
        self.deidentifier = deidentifier
        self.orientation = orientation
        self.where = where
        self.frame_shape = (int(dataset.Rows), int(dataset.Columns), 3)
        self._shared_sources: tuple[tuple[int, ...], RawDataElement] | None = None
        self.validate()
        self.dataset = _as_read_back(dataset)

    # ----------------------------------------------------------------- builder

    @classmethod
    def from_reference(cls, reference: Dataset | None, *, rows: int, columns: int, derivation: Derivation,
                       series_number: int, series_instance_uid: str, study_instance_uid: str | None = None,
                       modality: str | None = None, multiframe: bool = False,
                       pixel_spacing: tuple[float, float] | None = None,
                       burned_in_annotation: bool | None = None, deidentifier: Deidentifier | None = None,
                       where: str | Path | None = None) -> RGBSecondaryCapture:
        """Build from the source slice's header (``reference``; None for NIfTI/plain images).

        Copies only the whitelisted patient/study attributes of ``reference``; ``study_instance_uid``
        is used when the reference has none (a new one is generated when both are missing).
        ``burned_in_annotation`` overrides the reference's BurnedInAnnotation (None: YES only if the
        reference says YES). With ``deidentifier`` the PS3.15 basic profile is applied and a
        reference with burned-in annotation is refused.
        """
        if rows <= 0 or columns <= 0:
            raise ValueError(f"rows and columns must be positive, got {rows}x{columns}")
        burned_in = says_yes(reference, "BurnedInAnnotation") if burned_in_annotation is None \
            else burned_in_annotation
        if deidentifier is not None:
            Deidentifier.refuse_burned_in(burned_in, where)
        sop_class = MF_TRUE_COLOR_SC_IMAGE_STORAGE if multiframe else SC_IMAGE_STORAGE
        now = None if deidentifier is not None else datetime.now().astimezone()
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = generate_uid()  # placeholder until instance()

        _source.copy_patient_study(ds, reference)
        if not ds.StudyInstanceUID:
            ds.StudyInstanceUID = study_instance_uid or generate_uid()
        if reference is None and now is not None:  # a study medcolor creates (NIfTI / plain image)
            ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        if deidentifier is not None:
            deidentifier.apply(ds)
        cls._add_series(ds, reference, derivation, series_number, series_instance_uid, modality, now)
        orientation = image_orientation(reference)
        cls._add_image(ds, reference, derivation, orientation, burned_in, rows, columns,
                       _source.pixel_spacing(reference, pixel_spacing), multiframe, now)
        ds.ContributingEquipmentSequence = DicomSequence([cls._equipment(PURPOSE_PROCESSING, derivation, now)])
        if deidentifier is not None:
            ds.ContributingEquipmentSequence.append(cls._equipment(PURPOSE_DEIDENTIFYING, None, None))
        if _source.has_non_ascii(ds):
            ds.SpecificCharacterSet = "ISO_IR 192"
        return cls(ds, multiframe=multiframe, deidentifier=deidentifier, orientation=orientation, where=where)

    @staticmethod
    def _add_series(ds: Dataset, reference: Dataset | None, derivation: Derivation, series_number: int,
                    series_instance_uid: str, modality: str | None, now: datetime | None) -> None:
        """General Series and SC Equipment."""
        source_modality = modality or (reference.get("Modality") if reference is not None else None)
        ds.Modality = clean_value("CS", source_modality or "OT") or "OT"
        ds.SeriesInstanceUID = series_instance_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = series_description(derivation)
        if str(ds.get("BodyPartExamined", "")) not in UNPAIRED_BODY_PARTS:
            ds.Laterality = _source.laterality(reference)
        if now is not None:
            ds.SeriesDate, ds.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.ConversionType = "WSD"
        ds.SecondaryCaptureDeviceManufacturer = "medcolor"
        ds.SecondaryCaptureDeviceManufacturerModelName = "medcolor"
        ds.SecondaryCaptureDeviceSoftwareVersions = __version__

    @staticmethod
    def _add_image(ds: Dataset, reference: Dataset | None, derivation: Derivation,
                   orientation: list[float] | None, burned_in: bool, rows: int, columns: int,
                   spacing: list[float] | None, multiframe: bool, now: datetime | None) -> None:
        """General Image, General Reference, Image Pixel, SC Image and (placeholders for) Multi-frame."""
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.InstanceNumber = 1  # placeholder until instance()
        ds.ContentDate = ""
        ds.ContentTime = ""
        ds.PatientOrientation = patient_orientation(orientation) or ""
        ds.BurnedInAnnotation = "YES" if burned_in else "NO"
        if reference is not None and str(reference.get("RecognizableVisualFeatures", "")) in ("YES", "NO"):
            ds.RecognizableVisualFeatures = reference.RecognizableVisualFeatures
        if reference is not None and str(reference.get("LossyImageCompression", "")) == "01":
            ds.LossyImageCompression = "01"  # once lossy, always lossy (PS3.3 C.7.6.1.1.5)
            for kw in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
                if reference.get(kw):
                    ds[kw] = DataElement(kw, reference[kw].VR, reference[kw].value)
        ds.DerivationDescription = derivation.description()
        for keyword, value in _RGB8.items():
            setattr(ds, keyword, value)
        ds.Rows, ds.Columns = rows, columns
        if spacing is not None:  # Basic Pixel Spacing Calibration Macro (1C, "may be present")
            ds.PixelSpacing = [_ds(v) for v in spacing]
        if now is not None:
            ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        if multiframe:
            ds.NumberOfFrames = 1  # set by instance(); Frame Increment Pointer only for > 1 frame

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
            item.ContributionDescription = clean_text(f"colourisation, method {derivation.method}", "LO")
        else:
            item.ContributionDescription = Deidentifier.METHOD
        item.PurposeOfReferenceCodeSequence = DicomSequence([code_item(*purpose)])
        return item

    # ----------------------------------------------------------------- validation

    def validate(self) -> None:
        """Strict check of the template: IOD Type 1/2 attributes, the RGB pixel module, every value
        against its VR, no private tags. MedcolorError naming the source otherwise."""
        ds = self.dataset
        problems = [f"Type 1 {kw} missing or empty" for kw in _TYPE1 + (_TYPE1_MF if self.multiframe else ())
                    if kw not in ds or ds[kw].value in (None, "", [])]
        problems += [f"Type 2 {kw} missing" for kw in _TYPE2 if kw not in ds]
        invalid: list[str] = []
        problems += [f"{kw} must be {value}" for kw, value in _RGB8.items() if ds.get(kw) != value]
        if list(ds.get("ImageType", [])) != ["DERIVED", "SECONDARY"]:
            problems.append("ImageType must be DERIVED\\SECONDARY")
        for elem in ds.iterall():
            if elem.tag.is_private:
                problems.append(f"private tag {elem.tag}")
            elif elem.VR != "SQ" and elem.value is not None and elem.tag != 0x7FE00010:
                try:
                    for v in elem.value if elem.VM > 1 else [elem.value]:
                        validate_value(elem.VR, str(v) if elem.VR in ("IS", "DS") else v, pydicom_config.RAISE)
                except (ValueError, TypeError):
                    invalid.append(f"{elem.keyword or elem.tag} {elem.value!r} is not a valid {elem.VR} value")
        if invalid and not problems:  # the values come from the source: the input is at fault, not medcolor
            uid = any(" UI value" in text for text in invalid)
            raise MedcolorError(f"the source's {'; '.join(invalid)}", where=self.where,
                                hint="correct the source file" + (", or pass --deidentify to give the output new UIDs"
                                                                   if uid else ""))
        problems += invalid
        if problems:
            raise MedcolorError(f"would write an invalid Secondary Capture ({'; '.join(problems)})",
                                where=self.where, hint="report this as a medcolor bug with --debug")

    # ----------------------------------------------------------------- per instance

    def source_values(self, ref: SliceRef) -> tuple[str, str, int | None] | None:
        """(ReferencedSOPClassUID, ReferencedSOPInstanceUID, ReferencedFrameNumber or None) of the
        SourceImageSequence item for ``ref``; None when its UIDs are unknown. MedcolorError naming the
        source file for a UID that is not one (it would be written verbatim)."""
        ds = ref.dataset
        sop_class = ref.sop_class_uid or (ds.get("SOPClassUID") if ds is not None else None)
        sop_instance = ref.sop_instance_uid or (ds.get("SOPInstanceUID") if ds is not None else None)
        if not sop_class or not sop_instance:
            return None
        sop_class, sop_instance = str(sop_class), str(sop_instance)
        if self.deidentifier is not None:
            sop_instance = self.deidentifier.uid(sop_instance)
        for name, value in (("SOPClassUID", sop_class), ("SOPInstanceUID", sop_instance)):
            if len(value) > 64 or not _REFERENCE_UID.fullmatch(value):
                raise MedcolorError(f"the source's {name} is not a valid UID, so the colourised image "
                                    "cannot reference it", where=ref.path,
                                    hint="fix the source header, or pass --deidentify to reference it by a "
                                         "new UID")
        # a frame number only for a multi-frame source (dciodvfy: never for a single-frame SOP class)
        frame = ref.frame + 1 if ref.frame is not None and (ds is None or "NumberOfFrames" in ds) else None
        return sop_class, sop_instance, frame

    def source_item(self, ref: SliceRef) -> Dataset | None:
        """A SourceImageSequence item for ``ref`` (None when its UIDs are unknown)."""
        values = self.source_values(ref)
        if values is None:
            return None
        sop_class, sop_instance, frame = values
        item = Dataset()  # checked by source_values; a leading-zero component is kept without a warning
        item.add(DataElement(0x00081150, "UI", sop_class, validation_mode=pydicom_config.IGNORE))
        item.add(DataElement(0x00081155, "UI", sop_instance, validation_mode=pydicom_config.IGNORE))
        if frame is not None:
            item.ReferencedFrameNumber = frame
        return item

    def _set_sources(self, ds: Dataset, sources: Sequence[SliceRef]) -> None:
        """SourceImageSequence for ``sources``. A long list repeated instance after instance (every image of a
        reformatted plane names every source image) is encoded once and then written as those bytes."""
        key = tuple(id(ref) for ref in sources)
        if self._shared_sources is not None and self._shared_sources[0] == key:
            ds[_SOURCE_IMAGE_SEQUENCE] = self._shared_sources[1]
            return
        items = [item for item in (self.source_item(ref) for ref in sources) if item is not None]
        if items:
            ds.SourceImageSequence = DicomSequence(items)
        elif "SourceImageSequence" in ds:
            del ds.SourceImageSequence
        if len(items) > 8 and not self.multiframe:
            buffer = DicomBytesIO()
            buffer.is_little_endian, buffer.is_implicit_VR = True, False
            write_data_element(buffer, ds["SourceImageSequence"])
            value = buffer.getvalue()[12:]  # after tag, VR, reserved and the 4-byte length
            length = int.from_bytes(buffer.getvalue()[8:12], "little")
            if length == 0xFFFFFFFF:
                value = value[:-8]  # the writer adds the sequence delimiter again
            raw = RawDataElement(Tag(_SOURCE_IMAGE_SEQUENCE), "SQ", length, value, 0, False, True)
            self._shared_sources = (key, raw)

    def instance(self, *, sop_instance_uid: str, instance_number: int, sources: Sequence[SliceRef],
                 content: datetime | None = None, pixel_data: bytes | BufferedIOBase | None = None) -> Dataset:
        """Fill the per-instance attributes and return the (shared, mutated) Dataset.

        ``sources``: the source slices in frame order (one for single-frame). ``pixel_data``: the
        frames, interleaved RGB in frame order, as bytes or a readable, seekable binary file positioned
        at the first frame (streamed by ``dcmwrite``), of the frames' length (a file: plus the pad byte
        when that is odd). Multi-frame: the frame count and the Frame Increment Pointer's vector come from
        ``sources``: SliceLocationVector when every source has a position and the orientation is
        known, else FrameLabelVector. ``content`` (not with de-identification): ContentDate/Time.
        """
        if not isinstance(instance_number, int) or instance_number < 1:
            raise ValueError(f"instance_number must be a positive int, got {instance_number!r}")
        validate_value("UI", sop_instance_uid, pydicom_config.RAISE)
        ds = self.dataset
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
        ds.InstanceNumber = instance_number
        if content is not None and self.deidentifier is None:
            ds.ContentDate, ds.ContentTime = content.strftime("%Y%m%d"), content.strftime("%H%M%S.%f")
        self._set_sources(ds, sources)
        if self.multiframe:
            self._set_frames(ds, sources)
        if pixel_data is not None:
            n_bytes = math.prod(self.frame_shape) * (len(sources) if self.multiframe else 1)
            # pydicom pads an odd-length bytes value, but writes a streamed one's odd length before
            # padding it (pydicom 3.0): a stream must come padded
            padded = n_bytes + (n_bytes & 1)
            allowed = (padded,) if isinstance(pixel_data, BufferedIOBase) else (n_bytes, padded)
            if _byte_length(pixel_data) not in allowed:
                raise ValueError(f"pixel data is {_byte_length(pixel_data)} bytes, {len(sources)} frame(s) of "
                                 f"{self.frame_shape[0]}x{self.frame_shape[1]} RGB need {' or '.join(map(str, sorted(set(allowed))))}")
            ds["PixelData"] = DataElement(0x7FE00010, "OB", pixel_data)
        return ds

    def _set_frames(self, ds: Dataset, sources: Sequence[SliceRef]) -> None:
        n = len(sources)
        ds.NumberOfFrames = n
        for kw in ("FrameIncrementPointer", "SliceLocationVector", "FrameLabelVector"):
            if kw in ds:
                del ds[kw]
        if n == 1:
            return  # Type 1C: only when Number of Frames > 1
        locations = self._slice_locations(sources)
        if locations is not None:
            ds.FrameIncrementPointer = SLICE_LOCATION_VECTOR
            ds.SliceLocationVector = [_ds(v) for v in locations]
        else:
            ds.FrameIncrementPointer = FRAME_LABEL_VECTOR
            ds.FrameLabelVector = [f"slice {i + 1}" for i in range(n)]

    def _slice_locations(self, sources: Sequence[SliceRef]) -> list[float] | None:
        if self.orientation is None or any(ref.position is None for ref in sources):
            return None
        normal = np.cross(np.asarray(self.orientation[:3], dtype=float), np.asarray(self.orientation[3:], dtype=float))
        if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-6:
            return None
        return [round(float(np.dot(np.asarray(ref.position, dtype=float), normal)), 4) for ref in sources]
