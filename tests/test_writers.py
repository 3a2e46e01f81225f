"""medcolor.writers: RGB Secondary Capture (single- and multi-frame), PNG/TIFF, atomicity, privacy.

Sources are the real files in sample_dicom/ (headers only); outputs are read back with pydicom and
checked attribute by attribute, and every DICOM file is run through dciodvfy (dicom3tools).
"""
from __future__ import annotations

import copy
import dataclasses
import io
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medcolor import __version__
from medcolor.errors import MedcolorError
from medcolor.types import Derivation, Series, SliceRef
from medcolor.writers import (
    IMPLEMENTATION_CLASS_UID,
    MF_TRUE_COLOR_SC_IMAGE_STORAGE,
    SC_IMAGE_STORAGE,
    ImageWriter,
    RGBSecondaryCapture,
    SecondaryCaptureWriter,
    get_writers,
    patient_orientation,
    series_description,
)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_dicom"
CT_FILES = sorted((SAMPLES / "ct_chest").glob("*.dcm"))
MR_FILE = SAMPLES / "mr_shoulder" / "mr2_j2kr.dcm"
XRAY_FILE = SAMPLES / "xray_chest" / "chest_xray.dcm"

DERIVATION = Derivation(
    method="exemplar (welsh)", window="lung W=1500 L=-600 (HU)", parameters="k=5; levels=3",
    reference_sha256="ab" * 32, model_sha256=None, software_version=__version__)

_HEADERS: dict[Path, pydicom.Dataset] = {}


def _header(path: Path) -> pydicom.Dataset:
    if path not in _HEADERS:
        _HEADERS[path] = pydicom.dcmread(path, stop_before_pixels=True)
    return copy.deepcopy(_HEADERS[path])  # tests may modify their copy


def make_series(paths: list[Path], datasets: list[pydicom.Dataset] | None = None) -> Series:
    datasets = datasets or [_header(p) for p in paths]
    refs = []
    for path, ds in zip(paths, datasets):
        position = tuple(float(v) for v in ds.ImagePositionPatient) if "ImagePositionPatient" in ds else None
        refs.append(SliceRef(path, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                             instance_number=int(ds.get("InstanceNumber") or 0), position=position,
                             dataset=ds))
    first = datasets[0]
    return Series(kind="dicom", modality=first.Modality, rows=int(first.Rows),
                  columns=int(first.Columns), slices=refs,
                  series_instance_uid=first.SeriesInstanceUID,
                  study_instance_uid=first.StudyInstanceUID, is_hu=first.Modality == "CT",
                  source_label=str(paths[0].parent))


def structured_rgb(rows: int, columns: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)
    rgb[: rows // 4, :, 0] = np.arange(columns, dtype=np.uint64) % 256  # a ramp, to catch transposes
    return rgb


def write_series(writer, series: Series, seed: int = 0) -> tuple[list[Path], list[np.ndarray]]:
    images = [structured_rgb(series.rows, series.columns, seed + i) for i in range(len(series.slices))]
    for i, (ref, rgb) in enumerate(zip(series.slices, images)):
        writer.write(i, ref, rgb)
    return writer.close(), images


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) reported by dciodvfy for one file."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (dicom3tools) not installed")
    result = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return ([ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")])


def assert_valid(path: Path) -> list[str]:
    errors, warnings = dciodvfy(path)
    assert errors == [], f"{path.name}: {errors}"
    return warnings


def visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- single-frame


def test_single_frame_ct_provenance_pixels_and_validity(tmp_path: Path) -> None:
    series = make_series(CT_FILES)
    # a private tag and non-whitelisted attributes in the source must never reach the output
    series.slices[0].dataset.private_block(0x0013, "EVIL", create=True).add_new(0x01, "LO", "secret")
    out = tmp_path / "out"
    writer = SecondaryCaptureWriter(out, series, DERIVATION, 7)
    paths, images = write_series(writer, series)

    assert [p.relative_to(out).as_posix() for p in paths] == \
        [f"S007_CT/IM{i:05d}.dcm" for i in range(1, len(CT_FILES) + 1)]
    series_uids, sop_uids = set(), set()
    for i, (path, rgb, ref) in enumerate(zip(paths, images, series.slices)):
        ds = pydicom.dcmread(path)
        src = ref.dataset
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == SC_IMAGE_STORAGE
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID
        series_uids.add(ds.SeriesInstanceUID)
        sop_uids.add(ds.SOPInstanceUID)
        assert ds.SeriesNumber == 7 and ds.InstanceNumber == i + 1
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert ds.SeriesDescription == "Colourised (exemplar) - NOT FOR PRIMARY DIAGNOSIS"
        assert ds.DerivationDescription == DERIVATION.description()
        assert "sha256 " + "ab" * 32 in ds.DerivationDescription
        assert len(ds.SourceImageSequence) == 1
        item = ds.SourceImageSequence[0]
        assert item.ReferencedSOPClassUID == src.SOPClassUID
        assert item.ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert "ReferencedFrameNumber" not in item
        equipment = ds.ContributingEquipmentSequence[0]
        assert equipment.Manufacturer == "medcolor" and equipment.SoftwareVersions == __version__
        assert equipment.ContributionDateTime
        purpose = equipment.PurposeOfReferenceCodeSequence[0]
        assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("109102", "DCM")
        assert ds.ConversionType == "WSD" and ds.Modality == "CT"
        assert ds.SecondaryCaptureDeviceSoftwareVersions == __version__
        assert [float(v) for v in ds.PixelSpacing] == [float(v) for v in src.PixelSpacing]
        assert list(ds.PatientOrientation) == ["L", "P"]
        assert ds.BurnedInAnnotation == "NO"
        assert "Laterality" not in ds  # CHEST is unpaired: Laterality must be absent
        assert ds.ContentDate and ds.ContentTime
        # image pixel module, and the pixels bit-exact
        assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration) == (3, "RGB", 0)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (8, 8, 7, 0)
        assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns)
        np.testing.assert_array_equal(ds.pixel_array, rgb)
        # patient/study whitelist copied, nothing else
        for kw in ("PatientName", "PatientID", "PatientSex", "PatientAge", "StudyDate", "StudyTime",
                   "StudyDescription", "BodyPartExamined", "PatientIdentityRemoved"):
            assert str(ds[kw].value) == str(src[kw].value), kw
        for kw in ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
            assert kw in ds  # Type 2, present even if empty
        for kw in ("Manufacturer", "KVP", "SliceThickness", "ImagePositionPatient", "ProtocolName",
                   "RescaleIntercept", "WindowCenter", "ReferencedImageSequence", "AcquisitionDate"):
            assert kw not in ds, kw
        assert not any(elem.tag.is_private for elem in ds.iterall())
        assert "SpecificCharacterSet" not in ds  # all ASCII
        assert_valid(path)
    assert len(series_uids) == 1 and len(sop_uids) == len(paths)
    # names come from counters only
    for path in visible_files(out):
        assert "Lung_Dx" not in str(path) and series.slices[0].dataset.StudyInstanceUID not in str(path)


def test_template_is_built_once_and_validates() -> None:
    series = make_series(CT_FILES[:1])
    sc = RGBSecondaryCapture.from_reference(
        series.slices[0].dataset, rows=512, columns=512, derivation=DERIVATION, series_number=1,
        series_instance_uid=pydicom.uid.generate_uid())
    sc.validate()
    ds = sc.instance(sop_instance_uid="1.2.3.4", instance_number=5, sources=series.slices)
    assert ds is sc.dataset and ds.InstanceNumber == 5 and "PixelData" not in ds
    del sc.dataset.PatientID
    with pytest.raises(MedcolorError, match="Type 2 PatientID missing"):
        sc.validate()


# --------------------------------------------------------------------------- multi-frame


def test_multiframe_ct_one_instance_all_frames(tmp_path: Path) -> None:
    series = make_series(CT_FILES)
    out = tmp_path / "out"
    writer = SecondaryCaptureWriter(out, series, DERIVATION, 8, multiframe=True)
    images = [structured_rgb(512, 512, 100 + i) for i in range(len(series.slices))]
    order = [3, 0, 5, 1, 4, 2]  # arrival order differs from slice order
    for i in order:
        assert writer.write(i, series.slices[i], images[i]) is None
    assert visible_files(out) == [] or all(p.name.startswith(".") for p in visible_files(out))
    paths = writer.close()
    assert [p.relative_to(out).as_posix() for p in paths] == ["S008_CT/MF00001.dcm"]
    assert visible_files(out) == paths  # the spool is gone
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == MF_TRUE_COLOR_SC_IMAGE_STORAGE
    assert ds.NumberOfFrames == len(series.slices) and ds.InstanceNumber == 1
    assert ds.FrameIncrementPointer == 0x00182005  # Slice Location Vector
    locations = [float(v) for v in ds.SliceLocationVector]
    assert locations == [float(ref.dataset.ImagePositionPatient[2]) for ref in series.slices]
    assert [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence] == \
        [ref.sop_instance_uid for ref in series.slices]
    assert ds.BurnedInAnnotation == "NO"
    assert ds.StudyInstanceUID == series.study_instance_uid
    np.testing.assert_array_equal(ds.pixel_array, np.stack(images))
    assert_valid(paths[0])


@pytest.mark.parametrize("multiframe", [False, True])
@pytest.mark.parametrize("source", ["mr", "xray"])
def test_mr_and_xray_sources(tmp_path: Path, source: str, multiframe: bool) -> None:
    path = MR_FILE if source == "mr" else XRAY_FILE
    series = make_series([path])
    writer = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 2, multiframe=multiframe)
    paths, images = write_series(writer, series, seed=7)
    assert len(paths) == 1
    ds = pydicom.dcmread(paths[0])
    src = series.slices[0].dataset
    assert ds.Modality == src.Modality
    assert paths[0].parent.name == f"S002_{src.Modality}"
    assert ds.SourceImageSequence[0].ReferencedSOPClassUID == src.SOPClassUID
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    frames = ds.pixel_array if not multiframe else ds.pixel_array.reshape(1024, 1024, 3)
    np.testing.assert_array_equal(frames, images[0])
    if multiframe:
        assert ds.NumberOfFrames == 1 and "FrameIncrementPointer" not in ds  # 1C: only when > 1
    if source == "mr":
        # row cosines (0.57, 0.82, 0): principal P then L; column cosines (0, 0, -1): F
        assert list(ds.PatientOrientation) == ["PL", "F"]
        assert ds.Laterality == ""  # body part unknown: present and empty
    else:
        assert ds.PatientOrientation == ""  # no ImageOrientationPatient in the DX source
        assert "PixelSpacing" not in ds
    assert_valid(paths[0])


def test_multiframe_references_frames_of_a_multiframe_source(tmp_path: Path) -> None:
    ds = _header(CT_FILES[0])
    ds.SOPClassUID = pydicom.uid.EnhancedCTImageStorage  # pretend: a 3-frame enhanced CT
    ds.NumberOfFrames = 3
    path = CT_FILES[0]
    refs = [SliceRef(path, frame=f, sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                     dataset=ds) for f in range(3)]
    series = Series(kind="dicom", modality="CT", rows=512, columns=512, slices=refs,
                    study_instance_uid=ds.StudyInstanceUID)
    for multiframe in (False, True):
        writer = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 4 + multiframe, multiframe=multiframe)
        paths, _ = write_series(writer, series)
        items = [item for p in paths for item in pydicom.dcmread(p).SourceImageSequence]
        assert [item.ReferencedFrameNumber for item in items] == [1, 2, 3]
        if multiframe:
            assert pydicom.dcmread(paths[0]).FrameIncrementPointer == 0x00182002  # no positions
        for p in paths:
            assert_valid(p)
    # a frame index on a single-frame source (no NumberOfFrames) gives no ReferencedFrameNumber
    single = make_series(CT_FILES[:1])
    single.slices[0].frame = 0
    paths, _ = write_series(SecondaryCaptureWriter(tmp_path, single, DERIVATION, 6), single)
    assert "ReferencedFrameNumber" not in pydicom.dcmread(paths[0]).SourceImageSequence[0]


# --------------------------------------------------------------------------- files, atomicity


def test_overwrite_refused_then_allowed(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:2])
    write_series(SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1), series)
    again = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1)
    with pytest.raises(MedcolorError, match="output exists") as info:
        again.write(0, series.slices[0], structured_rgb(512, 512, 0))
    assert "--overwrite" in str(info.value) and "IM00001.dcm" in str(info.value)
    again.abort()
    paths, images = write_series(SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1, overwrite=True),
                                 series, seed=50)
    np.testing.assert_array_equal(pydicom.dcmread(paths[0]).pixel_array, images[0])
    write_series(SecondaryCaptureWriter(tmp_path, series, DERIVATION, 2, multiframe=True), series)
    with pytest.raises(MedcolorError, match="output exists"):
        SecondaryCaptureWriter(tmp_path, series, DERIVATION, 2, multiframe=True)
    assert not list(tmp_path.rglob("*.part"))


def test_abort_leaves_no_temporary_files(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:3])
    writer = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1, multiframe=True)
    writer.write(0, series.slices[0], structured_rgb(512, 512, 0))
    assert list(tmp_path.rglob(".*.part"))  # the frame spool, hidden
    writer.abort()
    assert visible_files(tmp_path) == []
    with pytest.raises(RuntimeError):
        writer.write(1, series.slices[1], structured_rgb(512, 512, 1))
    # context manager: an exception aborts
    with pytest.raises(KeyError):
        with SecondaryCaptureWriter(tmp_path, series, DERIVATION, 3, multiframe=True) as w:
            w.write(0, series.slices[0], structured_rgb(512, 512, 0))
            raise KeyError("boom")
    assert visible_files(tmp_path) == []
    single = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 4)
    write_series(single, series)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


def test_bad_rgb_and_index(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:1])
    writer = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1)
    ref = series.slices[0]
    for bad in (np.zeros((512, 512, 3), np.uint16), np.zeros((512, 512), np.uint8),
                np.zeros((256, 512, 3), np.uint8), np.zeros((512, 512, 4), np.uint8), [[0]]):
        with pytest.raises(ValueError):
            writer.write(0, ref, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        writer.write(-1, ref, np.zeros((512, 512, 3), np.uint8))
    # a non-contiguous view is accepted and written in C order
    rgb = np.ascontiguousarray(structured_rgb(512, 512, 3)[:, :, ::-1])[:, :, ::-1]
    assert not rgb.flags.c_contiguous
    path = writer.write(0, ref, rgb)
    assert not path.exists()  # published with the whole series at close()
    assert writer.close() == [path]
    np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, rgb)
    assert visible_files(tmp_path) == [path]


@pytest.mark.filterwarnings("ignore:Invalid value:UserWarning", "ignore:The value length:UserWarning")
def test_modality_cannot_escape_the_output_folder(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:1])
    series.modality = "../../etc"
    series.slices[0].dataset.Modality = "../../etc"
    writer = SecondaryCaptureWriter(tmp_path / "out", series, DERIVATION, 1)
    paths, _ = write_series(writer, series)
    assert paths[0].resolve().is_relative_to((tmp_path / "out").resolve())
    assert paths[0].parent.name == "S001_ETC"


# --------------------------------------------------------------------------- privacy


def test_deidentify_basic_profile_consistent_within_a_run(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:3])
    uid_map: dict[str, str] = {}
    w1 = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1, deidentify=True, uid_map=uid_map)
    w2 = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 2, deidentify=True, uid_map=uid_map,
                                multiframe=True)
    paths = write_series(w1, series)[0] + write_series(w2, series)[0]
    src = series.slices[0].dataset
    outputs = [pydicom.dcmread(p) for p in paths]
    study_uids = {ds.StudyInstanceUID for ds in outputs}
    assert len(study_uids) == 1 and src.StudyInstanceUID not in study_uids
    assert uid_map[src.StudyInstanceUID] in study_uids
    for ds in outputs:
        assert ds.PatientName.family_name == "ANONYMOUS"
        assert ds.PatientID.startswith("ANON-") and ds.PatientID == outputs[0].PatientID
        assert src.PatientID not in ds.PatientID
        for kw in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber",
                   "StudyID", "ReferringPhysicianName", "ContentDate", "ContentTime"):
            assert ds[kw].value in ("", None), kw
        for kw in ("PatientAge", "StudyDescription", "SeriesDate", "DateOfSecondaryCapture",
                   "InstanceCreationDate"):
            assert kw not in ds, kw
        assert ds.PatientIdentityRemoved == "YES"
        assert "medcolor basic profile (PS3.15 E.1)" in list(ds.DeidentificationMethod)
        codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert "113100" in codes and "113107" not in codes and "113108" not in codes
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        purposes = [e.PurposeOfReferenceCodeSequence[0].CodeValue for e in ds.ContributingEquipmentSequence]
        assert purposes == ["109102", "109104"]
        for item in ds.SourceImageSequence:
            assert item.ReferencedSOPInstanceUID in uid_map.values()
        text = str(ds)
        assert "Lung_Dx" not in text and "20070425" not in text
        assert_valid(Path(ds.filename))


def test_deidentify_refuses_burned_in_annotation(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:2])
    series.slices[1].dataset.BurnedInAnnotation = "YES"
    with pytest.raises(MedcolorError, match="burned-in annotation") as info:
        SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1, deidentify=True)
    assert "--deidentify" in str(info.value)
    assert visible_files(tmp_path) == []
    # without de-identification the output says what the pixels carry
    paths, _ = write_series(SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1), series)
    assert pydicom.dcmread(paths[0]).BurnedInAnnotation == "YES"


def test_non_ascii_patient_name_from_latin1_source(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_FILES[0])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDescription = "Thorax ÄÖÜ"
    src_path = tmp_path / "latin1.dcm"
    ds.save_as(src_path, enforce_file_format=True)
    assert "Müller".encode("latin-1") in src_path.read_bytes()
    series = make_series([src_path], [pydicom.dcmread(src_path, stop_before_pixels=True)])
    paths, _ = write_series(SecondaryCaptureWriter(tmp_path / "out", series, DERIVATION, 1), series)
    raw = paths[0].read_bytes()
    assert "Müller^Jürgen".encode("utf-8") in raw
    out = pydicom.dcmread(paths[0])
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert str(out.PatientName) == "Müller^Jürgen" and out.StudyDescription == "Thorax ÄÖÜ"
    assert "Müller" not in str(paths[0])
    assert_valid(paths[0])


@pytest.mark.filterwarnings("ignore:Invalid value:UserWarning", "ignore:The value length:UserWarning")
def test_messy_source_values_are_cleaned_not_copied_verbatim(tmp_path: Path) -> None:
    ds = _header(CT_FILES[0])
    ds.PatientAge = "53 years"  # invalid AS: dropped (Type 3)
    ds.StudyDate = "2007-04-25"  # invalid DA: empty (Type 2)
    ds.StudyDescription = "x" * 80  # LO too long: truncated
    ds.PatientSex = "female"  # invalid CS: empty
    series = make_series([CT_FILES[0]], [ds])
    paths, _ = write_series(SecondaryCaptureWriter(tmp_path, series, DERIVATION, 1), series)
    out = pydicom.dcmread(paths[0])
    assert "PatientAge" not in out and out.StudyDate == "" and out.PatientSex == ""
    assert out.StudyDescription == "x" * 64
    assert_valid(paths[0])


# --------------------------------------------------------------------------- non-DICOM sources


@pytest.mark.parametrize("kind", ["image", "nifti"])
def test_non_dicom_series(tmp_path: Path, kind: str) -> None:
    refs = [SliceRef(tmp_path / "photo.png")] if kind == "image" else \
        [SliceRef(tmp_path / "vol.nii.gz", frame=i) for i in range(2)]
    series = Series(kind=kind, modality="OT", rows=64, columns=48, slices=refs,
                    pixel_spacing=(0.5, 0.5) if kind == "nifti" else None)
    writer = SecondaryCaptureWriter(tmp_path / "out", series, DERIVATION, 1)
    paths, images = write_series(writer, series)
    outputs = [pydicom.dcmread(p) for p in paths]
    assert len({ds.StudyInstanceUID for ds in outputs}) == 1
    for ds, rgb in zip(outputs, images):
        assert ds.Modality == "OT" and "SourceImageSequence" not in ds
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert ds.PatientName == "" and ds.PatientID == "" and len(ds.StudyDate) == 8
        np.testing.assert_array_equal(ds.pixel_array, rgb)
        assert_valid(Path(ds.filename))
    assert paths[0].parent.name == "S001_OT"


def test_multiframe_odd_pixel_length_is_padded(tmp_path: Path) -> None:
    refs = [SliceRef(tmp_path / "vol.nii.gz", frame=i, position=(0.0, 0.0, 2.0 * i)) for i in range(3)]
    series = Series(kind="nifti", modality="MR", rows=33, columns=47, slices=refs)
    writer = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 9, multiframe=True)
    paths, images = write_series(writer, series)
    assert (33 * 47 * 3 * 3) % 2 == 1
    ds = pydicom.dcmread(paths[0])
    assert len(ds.PixelData) == 33 * 47 * 3 * 3 + 1
    np.testing.assert_array_equal(ds.pixel_array, np.stack(images))
    assert ds.FrameIncrementPointer == 0x00182002  # no orientation known: frame labels
    assert_valid(paths[0])


# --------------------------------------------------------------------------- PNG / TIFF


def test_png_writer_names_and_content(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:2])
    writer = ImageWriter(tmp_path, series, 3, derivation=DERIVATION)
    paths, images = write_series(writer, series)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["S003_CT/IM00001.png",
                                                                    "S003_CT/IM00002.png"]
    for path, rgb in zip(paths, images):
        with Image.open(path) as im:
            assert im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), rgb)
            assert im.info.get("Software") == f"medcolor {__version__}"
            assert "Lung_Dx" not in str(im.info)
    with pytest.raises(MedcolorError, match="output exists"):
        ImageWriter(tmp_path, series, 3).write(0, series.slices[0], images[0])

    photo = Series(kind="image", modality="OT", rows=40, columns=30,
                   slices=[SliceRef(Path("/data/truth/case_017.png"))])
    for fmt in ("png", "tiff"):
        w = ImageWriter(tmp_path, photo, 4, fmt=fmt)
        rgb = structured_rgb(40, 30, 9)
        path = w.write(0, photo.slices[0], rgb)
        assert path.name == f"case_017_color.{fmt}" and "case_017" in path.stem
        assert not path.exists() and w.close() == [path]
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), rgb)
    assert not list(tmp_path.rglob("*.part"))


def test_get_writers_both(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:1])
    writers = get_writers("both", tmp_path, series, DERIVATION, 5)
    assert [type(w) for w in writers] == [SecondaryCaptureWriter, ImageWriter]
    rgb = structured_rgb(512, 512, 1)
    for w in writers:
        w.write(0, series.slices[0], rgb)
    names = sorted(p.name for w in writers for p in w.close())
    assert names == ["IM00001.dcm", "IM00001.png"]
    with pytest.raises(MedcolorError, match="unknown output format"):
        get_writers("jpeg", tmp_path, series, DERIVATION, 5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize("iop, expected", [
    ([1, 0, 0, 0, 1, 0], ["L", "P"]),          # axial
    ([1, 0, 0, 0, 0, -1], ["L", "F"]),         # coronal
    ([0, 1, 0, 0, 0, -1], ["P", "F"]),         # sagittal
    ([-1, 0, 0, 0, -1, 0], ["R", "A"]),
    ([0.8, 0.6, 0, 0, 0, -1], ["LP", "F"]),    # oblique: principal first
    (None, None),
    ([1, 0, 0], None),
])
def test_patient_orientation(iop, expected) -> None:
    assert patient_orientation(iop) == expected


def test_series_description_is_lo() -> None:
    long = Derivation(method="a" * 100 + " (x)", window="w")
    assert len(series_description(long)) == 64
    assert series_description(Derivation(method="", window="w")).startswith("Colourised (unknown)")


def test_an_aborted_series_publishes_nothing(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:3])
    writers = get_writers("both", tmp_path, series, DERIVATION, 6)
    for w in writers:
        w.write(0, series.slices[0], structured_rgb(512, 512, 0))
        w.write(1, series.slices[1], structured_rgb(512, 512, 1))
    for w in writers:
        w.abort()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------------------- one template, many instances


def _latin1_series(tmp_path: Path) -> Series:
    ds = pydicom.dcmread(CT_FILES[0])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    paths = []
    for k in range(3):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        paths.append(tmp_path / f"latin1_{k}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return make_series(paths, [pydicom.dcmread(src, stop_before_pixels=True) for src in paths])


def test_instance_written_to_memory_reads_back() -> None:
    """The IOD alone: one template, its instance written to memory by dcmwrite and read back."""
    series = make_series(CT_FILES[:2])
    sc = RGBSecondaryCapture.from_reference(
        series.slices[0].dataset, rows=512, columns=512, derivation=DERIVATION, series_number=3,
        series_instance_uid=pydicom.uid.generate_uid())
    rgb = structured_rgb(512, 512, 4)
    when = datetime(2024, 5, 6, 7, 8, 9, 123456)
    ds = sc.instance(sop_instance_uid="1.2.3.4", instance_number=2, sources=series.slices[1:],
                     content=when, pixel_data=rgb.tobytes())
    buf = pydicom.filebase.DicomBytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    assert back.SOPInstanceUID == back.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert back.file_meta.MediaStorageSOPClassUID == SC_IMAGE_STORAGE
    assert back.InstanceNumber == 2 and back.SeriesNumber == 3
    assert (back.ContentDate, back.ContentTime) == ("20240506", "070809.123456")
    assert [i.ReferencedSOPInstanceUID for i in back.SourceImageSequence] == [series.slices[1].sop_instance_uid]
    assert back["PixelData"].VR == "OB"
    np.testing.assert_array_equal(back.pixel_array, rgb)
    with pytest.raises(ValueError, match="pixel data is"):
        sc.instance(sop_instance_uid="1.2.3.5", instance_number=1, sources=series.slices[:1],
                    pixel_data=rgb[:256].tobytes())
    with pytest.raises(ValueError):
        sc.instance(sop_instance_uid="1.2.3.é", instance_number=1, sources=series.slices[:1])


@pytest.mark.parametrize("case", ["ct", "latin1", "deidentify", "image"])
def test_each_instance_of_a_series_has_its_own_values(tmp_path: Path, case: str) -> None:
    """The writer reuses one template per series: every file must still carry its own UIDs, number,
    source reference and pixels, and nothing of the slice written before it."""
    if case == "latin1":
        series = _latin1_series(tmp_path)
    elif case == "image":
        series = Series(kind="image", modality="OT", rows=33, columns=17,
                        slices=[SliceRef(tmp_path / "a.png", frame=k) for k in range(3)])
    else:
        series = make_series(CT_FILES[:3])
    writer = SecondaryCaptureWriter(tmp_path / "out", series, DERIVATION, 4, deidentify=case == "deidentify")
    paths, images = write_series(writer, series)
    outputs = [pydicom.dcmread(p) for p in paths]
    assert len({ds.SOPInstanceUID for ds in outputs}) == len(paths)
    assert len({ds.SeriesInstanceUID for ds in outputs}) == 1 and len({ds.StudyInstanceUID for ds in outputs}) == 1
    for k, (ds, rgb, ref) in enumerate(zip(outputs, images, series.slices)):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.InstanceNumber == k + 1
        np.testing.assert_array_equal(ds.pixel_array, rgb)
        if case == "image":
            assert "SourceImageSequence" not in ds
        else:
            expected = ref.sop_instance_uid if case != "deidentify" else writer._deidentifier.uid(ref.sop_instance_uid)
            assert [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence] == [expected]
        if case == "deidentify":
            assert ds.ContentDate == "" and ds.ContentTime == ""
        else:
            datetime.strptime(ds.ContentDate + ds.ContentTime, "%Y%m%d%H%M%S.%f")
        if case == "latin1":
            assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jürgen"
            assert "Müller^Jürgen".encode() in paths[k].read_bytes()
    assert "PixelData" not in writer.template.dataset  # no slice kept between writes
    assert_valid(paths[0])
    assert_valid(paths[-1])


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # pydicom reading the leading zero
def test_a_source_uid_that_is_not_a_uid_fails_before_anything_is_written(tmp_path: Path) -> None:
    series = make_series(CT_FILES[:3])
    bad = series.slices[2]
    series.slices[2] = dataclasses.replace(bad, sop_instance_uid="1.2.3.\u00e9")
    with pytest.raises(MedcolorError, match="not a valid UID") as info:
        SecondaryCaptureWriter(tmp_path / "out", series, DERIVATION, 4)
    assert str(bad.path) in str(info.value) and "--deidentify" in str(info.value)
    assert not (tmp_path / "out").exists()
    # de-identified, the reference is a new UID: written and valid
    paths, _ = write_series(SecondaryCaptureWriter(tmp_path / "deid", series, DERIVATION, 4, deidentify=True),
                            series)
    assert_valid(paths[2])
    # a leading-zero component (common in real archives) is referenced verbatim: it must match the source
    series.slices[2] = dataclasses.replace(bad, sop_instance_uid="1.2.840.0123.5")
    paths, _ = write_series(SecondaryCaptureWriter(tmp_path / "zero", series, DERIVATION, 4), series)
    assert pydicom.dcmread(paths[2]).SourceImageSequence[0].ReferencedSOPInstanceUID == "1.2.840.0123.5"


def test_multiframe_frames_in_slice_order_with_a_missing_slice(tmp_path: Path) -> None:
    """Frames arrive out of order and one slice never arrives (unreadable): the file holds the others
    in slice order, each referencing its own source, and the spool is gone."""
    series = make_series(CT_FILES[:5])
    writer = SecondaryCaptureWriter(tmp_path, series, DERIVATION, 3, multiframe=True)
    images = {i: structured_rgb(512, 512, 40 + i) for i in range(5)}
    for i in (4, 0, 3, 1):  # slice 2 missing
        writer.write(i, series.slices[i], images[i])
    paths = writer.close()
    ds = pydicom.dcmread(paths[0])
    assert ds.NumberOfFrames == 4
    np.testing.assert_array_equal(ds.pixel_array, np.stack([images[i] for i in (0, 1, 3, 4)]))
    assert [item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence] == \
        [series.slices[i].sop_instance_uid for i in (0, 1, 3, 4)]
    assert [float(v) for v in ds.SliceLocationVector] == \
        [float(series.slices[i].dataset.ImagePositionPatient[2]) for i in (0, 1, 3, 4)]
    assert visible_files(tmp_path) == paths
    assert "PixelData" not in writer.template.dataset
    assert_valid(paths[0])
