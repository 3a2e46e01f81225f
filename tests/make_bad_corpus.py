"""Generate the bad-input corpus tests/data/bad/ from real files (deterministic).

Sources: the sample CT (sample_dicom/ct_chest, downsampled to 64x64 so the corpus stays small), the
sample reference photo, and pydicom's shipped test files (never fetched from the network). Each case is a
folder ``tests/data/bad/<case>/`` given to ``medcolor run`` as one input; ``expected.json`` says, per
case, the ``--window`` to use, the expected status and a reason substring for every file, and how many
output DICOM files and series must appear. ``tests/test_bad_inputs.py`` drives every case through the
real pipeline.

    python tests/make_bad_corpus.py            # (re)write tests/data/bad/
"""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

ROOT = Path(__file__).resolve().parents[1]
CT_DIR = ROOT / "sample_dicom" / "ct_chest"
BEEF = ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg"
PYD = Path(os.path.dirname(pydicom.__file__)) / "data"
PYD_FILES = PYD / "test_files"
OUT = ROOT / "tests" / "data" / "bad"
SIZE = 64
UID_ROOT = "1.2.826.0.1.3680043.10.1234."  # fixed: the corpus is deterministic

CASES: dict[str, dict] = {}


def expect(case: str, files: dict[str, tuple[str, str]], *, outputs: int, series: int = -1,
           window: str | None = None, note: str = "", **extra) -> None:
    """files: name -> (status, reason substring; "" for done)."""
    CASES[case] = {"note": note, "window": window, "outputs": outputs,
                   "series": series if series >= 0 else (1 if outputs else 0),
                   "files": {k: {"status": s, "reason": r} for k, (s, r) in files.items()}, **extra}


def case_dir(case: str) -> Path:
    d = OUT / case
    d.mkdir(parents=True, exist_ok=True)
    return d


def uid(n: int | str) -> str:
    return f"{UID_ROOT}{n}"


# ---------------------------------------------------------------- base images

def _ct_sources() -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted(CT_DIR.glob("*.dcm"))]


_CT = _ct_sources()


def small_ct(k: int = 0, *, z: float | None = None) -> Dataset:
    """Slice ``k`` of the sample CT, downsampled to 64x64, with fixed UIDs, private tags dropped."""
    src = _CT[k % len(_CT)]
    ds = copy.deepcopy(src)
    ds.remove_private_tags()
    step = int(src.Rows) // SIZE
    arr = src.pixel_array[::step, ::step][:SIZE, :SIZE].copy()
    ds.Rows, ds.Columns = arr.shape
    ds.PixelSpacing = [float(v) * step for v in src.PixelSpacing]
    ds.PixelData = arr.tobytes()
    ds.StudyInstanceUID = uid("1")
    ds.SeriesInstanceUID = uid("1.1")
    ds.SOPInstanceUID = uid(f"1.1.{k + 1}")
    ds.InstanceNumber = k + 1
    if z is not None:
        ds.ImagePositionPatient = [float(v) for v in ds.ImagePositionPatient[:2]] + [float(z)]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def save(ds: Dataset, path: Path, **kw) -> Path:
    ds.save_as(path, enforce_file_format=kw.pop("enforce", True), **kw)
    return path


def ct_bytes(k: int = 0) -> bytes:
    buf = io.BytesIO()
    small_ct(k).save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def pixel_offset(data: bytes) -> int:
    """Offset of the (7FE0,0010) element tag in an explicit VR little endian file."""
    return data.rindex(b"\xe0\x7f\x10\x00")


# ---------------------------------------------------------------- cases

def make_control() -> None:
    d = case_dir("control_ct")
    for k in range(3):
        save(small_ct(k), d / f"ct{k}.dcm")
    expect("control_ct", {f"ct{k}.dcm": ("done", "") for k in range(3)}, outputs=3,
           note="three good 64x64 CT slices: the baseline every other case is compared with")


def make_truncation() -> None:
    data = ct_bytes()
    d = case_dir("truncated_header")
    (d / "cut.dcm").write_bytes(data[:400])
    expect("truncated_header", {"cut.dcm": ("failed", "")}, outputs=0,
           note="file cut in the middle of the header")
    d = case_dir("truncated_pixeldata")
    (d / "cut.dcm").write_bytes(data[:len(data) - 3000])
    expect("truncated_pixeldata", {"cut.dcm": ("failed", "pixel data truncated")}, outputs=0,
           note="file cut inside PixelData")
    d = case_dir("truncated_with_good")
    (d / "cut.dcm").write_bytes(data[:len(data) - 3000])
    for k in (1, 2):
        save(small_ct(k), d / f"ct{k}.dcm")
    expect("truncated_with_good", {"cut.dcm": ("failed", "pixel data truncated"), "ct1.dcm": ("done", ""),
                                   "ct2.dcm": ("done", "")}, outputs=2,
           note="one truncated slice in an otherwise good series: the rest is processed")
    d = case_dir("pixeldata_header_only")
    off = pixel_offset(data)
    (d / "cut.dcm").write_bytes(data[:off + 6])
    expect("pixeldata_header_only", {"cut.dcm": ("failed", "")}, outputs=0,
           note="file ends inside the PixelData element header")


def make_no_pixels() -> None:
    d = case_dir("no_pixeldata")
    ds = small_ct()
    del ds.PixelData
    save(ds, d / "nopix.dcm")
    expect("no_pixeldata", {"nopix.dcm": ("failed", "without pixel data")}, outputs=0,
           note="CT Image Storage without PixelData (Orthanc Issue22-NoPixelData)")
    d = case_dir("rtstruct")
    shutil.copy(PYD_FILES / "rtstruct.dcm", d / "rtstruct.dcm")
    expect("rtstruct", {"rtstruct.dcm": ("skipped", "no pixel data")}, outputs=0,
           note="a non-image object (pydicom rtstruct.dcm)")


def make_not_dicom() -> None:
    d = case_dir("not_dicom")
    (d / "notes.dcm").write_text("This is a text file, not an image.\n" * 10)
    from PIL import Image

    img = Image.open(BEEF).convert("RGB").resize((32, 32))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    (d / "photo.dcm").write_bytes(buf.getvalue())
    (d / "empty.dcm").write_bytes(b"")
    (d / "zeros.dcm").write_bytes(bytes(4096))
    (d / "short.dcm").write_bytes(b"\x08\x00")
    (d / "ff.dcm").write_bytes(b"\xff" * 600)
    expect("not_dicom", {"notes.dcm": ("skipped", "not DICOM"), "photo.dcm": ("skipped", "not DICOM"),
                         "empty.dcm": ("skipped", "empty"), "zeros.dcm": ("skipped", "not DICOM"),
                         "short.dcm": ("skipped", "not DICOM"), "ff.dcm": ("skipped", "not DICOM")},
           outputs=0, note="text, a JPEG renamed .dcm, empty, zero-filled, 2-byte and 0xFF-filled files")
    d = case_dir("preamble_only")
    (d / "dicm.dcm").write_bytes(bytes(128) + b"DICM")
    expect("preamble_only", {"dicm.dcm": ("failed", "")}, outputs=0,
           note="a preamble and DICM magic and nothing else")


def make_no_meta() -> None:
    d = case_dir("no_preamble_no_meta")
    ds = small_ct()
    del ds.file_meta
    ds.save_as(d / "implicit.dcm", implicit_vr=True, little_endian=True, enforce_file_format=False)
    ds = small_ct(1)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    # drop preamble and DICM but keep the group 0002 meta elements
    (d / "meta_no_preamble.dcm").write_bytes(data[132:])
    expect("no_preamble_no_meta", {"implicit.dcm": ("done", ""), "meta_no_preamble.dcm": ("done", "")},
           outputs=2, note="raw implicit-VR data set without preamble or meta; meta group without preamble")
    d = case_dir("pydicom_no_meta")
    shutil.copy(PYD_FILES / "ExplVR_BigEndNoMeta.dcm", d / "bigend_nometa.dcm")
    shutil.copy(PYD_FILES / "meta_missing_tsyntax.dcm", d / "missing_tsyntax.dcm")
    expect("pydicom_no_meta", {"bigend_nometa.dcm": ("skipped", "no pixel data (RTPLAN)"),
                               "missing_tsyntax.dcm": ("failed", "Rows/Columns")},
           outputs=0, note="pydicom's big-endian RT Plan without meta, and a meta group without Transfer "
                           "Syntax UID over a data set with PixelData but no image attributes")


def make_dicomdir() -> None:
    d = case_dir("dicomdir")
    shutil.copy(PYD_FILES / "dicomdirtests" / "DICOMDIR", d / "DICOMDIR")
    expect("dicomdir", {"DICOMDIR": ("skipped", "DICOMDIR")}, outputs=0, note="pydicom's DICOMDIR")


def make_size_mismatch() -> None:
    d = case_dir("rows_too_large")
    ds = small_ct()
    ds.Rows = 128
    save(ds, d / "rows128.dcm")
    expect("rows_too_large", {"rows128.dcm": ("failed", "pixel data truncated")}, outputs=0,
           note="Rows says 128 but the buffer holds 64 rows (Orthanc DummyCTInvalidRows)")
    d = case_dir("rows_too_small")
    ds = small_ct()
    ds.Rows = 32
    save(ds, d / "rows32.dcm")
    expect("rows_too_small", {"rows32.dcm": ("failed", "NumberOfFrames missing or Rows wrong")}, outputs=0,
           note="Rows says 32 but the buffer holds exactly 2x that: refused, not silently cropped")
    d = case_dir("bits_mismatch")
    ds = small_ct()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    save(ds, d / "bits32.dcm")
    expect("bits_mismatch", {"bits32.dcm": ("failed", "pixel data truncated")}, outputs=0,
           note="BitsAllocated 32 with a 16-bit buffer")
    d = case_dir("pixel_excess")
    ds = small_ct()
    ds.PixelData = ds.PixelData + bytes(1000)
    save(ds, d / "excess.dcm")
    expect("pixel_excess", {"excess.dcm": ("done", "")}, outputs=1,
           note="1000 trailing bytes after a whole frame: the frame is read, the rest ignored")


def make_enormous() -> None:
    d = case_dir("enormous")
    ds = small_ct()
    ds.Rows, ds.Columns = 65535, 65535
    save(ds, d / "huge_frame.dcm")
    ds = small_ct(1)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 16000, 16000, 100000
    save(ds, d / "huge_frames.dcm")
    ds = small_ct(2)
    ds.Rows, ds.Columns = 0, 64
    save(ds, d / "zero_rows.dcm")
    expect("enormous", {"huge_frame.dcm": ("failed", "too large"),
                        "huge_frames.dcm": ("failed", "pixel data truncated"),
                        "zero_rows.dcm": ("failed", "Rows/Columns")}, outputs=0,
           note="headers claiming 65535x65535, 100000 frames of 16000x16000, and Rows 0: refused "
                "before any allocation")


def make_bits() -> None:
    d = case_dir("bits_odd")
    ds = small_ct()
    ds.HighBit = 3  # BitsStored 12: HighBit should be 11
    save(ds, d / "highbit3.dcm")
    ds = small_ct(1)
    ds.BitsStored, ds.HighBit = 13, 12
    save(ds, d / "bits13.dcm")
    ds = small_ct(2)
    ds.BitsStored, ds.HighBit = 17, 16
    save(ds, d / "bits17.dcm")
    expect("bits_odd", {"highbit3.dcm": ("done", ""), "bits13.dcm": ("done", ""),
                        "bits17.dcm": ("failed", "BitsStored 17")}, outputs=2,
           note="HighBit inconsistent (ignored, as pydicom does), BitsStored 13 (valid), BitsStored 17 > "
                "BitsAllocated 16 (refused)")
    d = case_dir("signed_unsigned")
    ds = small_ct()
    ds.PixelRepresentation = 1
    save(ds, d / "signed.dcm")
    shutil.copy(PYD_FILES / "J2K_pixelrep_mismatch.dcm", d / "j2k_pixelrep_mismatch.dcm")
    expect("signed_unsigned", {"signed.dcm": ("done", ""), "j2k_pixelrep_mismatch.dcm": ("done", "")},
           outputs=2, series=2, note="PixelRepresentation 1 on unsigned 12-bit data (header trusted); "
                                        "pydicom's J2K pixel-representation mismatch file")


def make_photometric() -> None:
    d = case_dir("monochrome1")
    ds = small_ct()
    arr = np.frombuffer(ds.PixelData, np.uint16).reshape(SIZE, SIZE)
    ds.PhotometricInterpretation = "MONOCHROME1"
    save(ds, d / "mono1.dcm")
    expect("monochrome1", {"mono1.dcm": ("done", "")}, outputs=1, inverted_vs="control_ct/ct0.dcm",
           note="MONOCHROME1: output L must be 100 - L of the MONOCHROME2 original")
    d = case_dir("presentation_lut_inverse")
    ds = small_ct()
    ds.PresentationLUTShape = "INVERSE"
    save(ds, d / "inverse.dcm")
    expect("presentation_lut_inverse", {"inverse.dcm": ("done", "")}, outputs=1,
           inverted_vs="control_ct/ct0.dcm",
           note="MONOCHROME2 with Presentation LUT Shape INVERSE is displayed inverted, like MONOCHROME1")
    d = case_dir("monochrome1_inverse")
    ds = small_ct()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PresentationLUTShape = "INVERSE"
    save(ds, d / "mono1_inverse.dcm")
    expect("monochrome1_inverse", {"mono1_inverse.dcm": ("done", "")}, outputs=1,
           inverted_vs="control_ct/ct0.dcm",
           note="MONOCHROME1 + INVERSE (as the DX module requires): inverted once, like MONOCHROME1")
    del arr


def make_rescale() -> None:
    d = case_dir("rescale_slope_missing")
    ds = small_ct()
    del ds.RescaleSlope
    save(ds, d / "noslope.dcm")
    expect("rescale_slope_missing", {"noslope.dcm": ("done", "")}, outputs=1, same_as="control_ct/ct0.dcm",
           note="RescaleIntercept without RescaleSlope: slope 1 is assumed (same output as the control)")
    d = case_dir("rescale_slope_zero")
    ds = small_ct()
    ds.RescaleSlope = 0
    save(ds, d / "zero.dcm")
    expect("rescale_slope_zero", {"zero.dcm": ("failed", "RescaleSlope")}, outputs=0,
           note="RescaleSlope 0 would map every pixel to one value: refused")
    d = case_dir("rescale_slope_negative")
    ds = small_ct()
    ds.RescaleSlope = -1
    ds.RescaleIntercept = 1024
    save(ds, d / "negative.dcm")
    expect("rescale_slope_negative", {"negative.dcm": ("done", "")}, outputs=1, window="1500,-600",
           note="RescaleSlope -1 is applied as stated")
    d = case_dir("rescale_garbage")
    ds = small_ct()
    ds["RescaleSlope"].VR = "DS"
    ds["RescaleSlope"]._value = "abc"  # not a number
    save(ds, d / "garbage.dcm")
    expect("rescale_garbage", {"garbage.dcm": ("failed", "RescaleSlope")}, outputs=0,
           note="RescaleSlope 'abc' (not a number): refused")
    d = case_dir("modality_lut_sequence")
    ds = small_ct()
    del ds.RescaleSlope, ds.RescaleIntercept
    if "RescaleType" in ds:
        del ds.RescaleType
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item["LUTDescriptor"].VR = "US"
    item.ModalityLUTType = "HU"
    item.LUTData = [int(v) for v in np.arange(4096, dtype=np.uint16)]  # identity LUT
    item["LUTData"].VR = "US"
    ds.ModalityLUTSequence = Sequence([item])
    save(ds, d / "mlut.dcm")
    expect("modality_lut_sequence", {"mlut.dcm": ("done", "")}, outputs=1, window="percentile",
           note="a Modality LUT Sequence instead of rescale attributes")
    d = case_dir("rescale_type_not_hu")
    ds = small_ct()
    ds.RescaleType = "US"
    save(ds, d / "us.dcm")
    expect("rescale_type_not_hu", {"us.dcm": ("failed", "Hounsfield")}, outputs=0, window="lung",
           note="CT whose RescaleType is not HU, with an HU preset asked: one clear line")


def make_voi() -> None:
    d = case_dir("multiple_voi")
    ds = small_ct()
    ds.WindowCenter = [40, -600, 300]
    ds.WindowWidth = [400, 1500, 0]
    ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG", "BROKEN"]
    save(ds, d / "voi.dcm")
    expect("multiple_voi", {"voi.dcm": ("done", "")}, outputs=1, window_text="W=400 L=40",
           note="three VOI windows (the last with width 0): the first valid one is used by default")
    d = case_dir("voi_invalid")
    ds = small_ct()
    ds.WindowCenter = 40
    ds.WindowWidth = 0
    save(ds, d / "voi0.dcm")
    expect("voi_invalid", {"voi0.dcm": ("done", "")}, outputs=1, window_text="soft_tissue",
           note="the only VOI window has width 0: ignored, the CT default preset is used")


def make_compressed() -> None:
    d = case_dir("broken_compressed")
    ds = small_ct()
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = bytearray(buf.getvalue())
    # the RLE header of the only fragment: claim 15 segments with absurd offsets
    off = data.rindex(b"\xfe\xff\x00\xe0") + 8  # first fragment value (after the empty offset table)
    data[off:off + 8] = (15).to_bytes(4, "little") + (0xFFFFFF00).to_bytes(4, "little")
    (d / "rle_bad_header.dcm").write_bytes(bytes(data))
    ds = small_ct(1)
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data2 = bytearray(buf.getvalue())
    (d / "rle_cut.dcm").write_bytes(bytes(data2[:len(data2) - 2000]))
    j2k = (PYD_FILES / "JPEG2000.dcm").read_bytes()
    (d / "j2k_cut.dcm").write_bytes(j2k[:len(j2k) - 1500])
    expect("broken_compressed", {"rle_bad_header.dcm": ("failed", "decode"),
                                 "rle_cut.dcm": ("failed", "decode"), "j2k_cut.dcm": ("failed", "")}, outputs=0, note="RLE frame with a corrupt segment table, RLE and JPEG 2000 files cut short")
    d = case_dir("compressed_ok")
    shutil.copy(PYD_FILES / "MR_small_RLE.dcm", d / "mr_rle.dcm")
    shutil.copy(PYD_FILES / "image_dfl.dcm", d / "deflated.dcm")
    expect("compressed_ok", {"mr_rle.dcm": ("done", ""), "deflated.dcm": ("done", "")}, outputs=2,
           series=2, note="valid RLE and deflated files (pydicom test files)")


def make_fuzz_regressions() -> None:
    """Inputs found by benchmarks/fuzz_reader.py, rebuilt deterministically (minimised by hand)."""
    d = case_dir("fuzz_rle_segment_overrun")
    ds = small_ct()
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = bytearray(buf.getvalue())
    frag = data.rindex(b"\xfe\xff\x00\xe0") + 8  # the frame's fragment (after the empty offset table)
    seg2 = int.from_bytes(data[frag + 8:frag + 12], "little")
    data[frag + seg2] = 0x7F  # segment 2 starts with a 128-byte literal run that overruns the frame
    (d / "rle_overrun.dcm").write_bytes(bytes(data))
    expect("fuzz_rle_segment_overrun", {"rle_overrun.dcm": ("failed", "decode")}, outputs=0,
           note="fuzz finding: pylibjpeg-rle panics (pyo3 PanicException, a BaseException) on an RLE literal "
                "run past the end of the frame; it escaped every `except Exception` and crashed the run")
    d = case_dir("fuzz_gdcm_abort")
    ds = pydicom.dcmread(PYD_FILES / "MR_small_jpeg_ls_lossless.dcm")
    ds.Columns = 23644  # the JPEG-LS codestream is 64x64
    save(ds, d / "jls_columns.dcm")
    ds = pydicom.dcmread(PYD_FILES / "JPEG2000.dcm")
    ds.Rows = int(ds.Rows) * 2
    save(ds, d / "j2k_rows.dcm")
    expect("fuzz_gdcm_abort", {"jls_columns.dcm": ("failed", "compressed frame is 64x64"),
                               "j2k_rows.dcm": ("failed", "")}, outputs=0,
           note="fuzz finding: a JPEG-LS frame whose Columns disagree with the codestream made GDCM throw a C++ "
                "exception that aborted the whole process (SIGABRT, every other series lost); now the "
                "codestream size is checked before GDCM sees a frame, and GDCM is tried last")
    d = case_dir("fuzz_invalid_vr")
    data = ct_bytes()
    i = data.index(b"\x20\x00\x13\x00IS")  # InstanceNumber
    (d / "bad_vr.dcm").write_bytes(data[:i + 4] + b"IW" + data[i + 6:])
    data = ct_bytes(1)
    i = data.index(b"\x28\x00\x04\x00CS")  # PhotometricInterpretation
    (d / "bad_vr_pi.dcm").write_bytes(data[:i + 4] + b"\x55\xd3" + data[i + 6:])
    expect("fuzz_invalid_vr", {"bad_vr.dcm": ("failed", "unreadable DICOM header"),
                               "bad_vr_pi.dcm": ("failed", "unreadable DICOM header")}, outputs=0,
           note="fuzz finding: an unknown VR ('IW', 0x55D3) raised lazily after the header was read, caught "
                "only by the scan's last-resort handler ('unreadable (...)')")
    d = case_dir("fuzz_nested_sq_hang")
    shutil.copy(Path(__file__).parent / "data" / "fuzz_regressions" / "hang_nested_sq.dcm", d / "nested_sq.dcm")
    expect("fuzz_nested_sq_hang", {"nested_sq.dcm": ("failed", "without pixel data")}, outputs=0,
           note="fuzz finding (30-minute run, kept as found: a 4 kB mutation of a sample slice, cut before its "
                "pixel data): deeply nested sequences with a broken element made pydicom's recursive walk "
                "re-format the nested traceback at every level (minutes per file, a batch-stopping hang); medcolor "
                "now converts only the attributes it reads, never walks the header, and fails the file at once "
                "for its missing pixel data")
    d = case_dir("fuzz_multivalued_samples")
    ds = small_ct()
    ds.SamplesPerPixel = [21316, 14, 11824]  # VM 3 where VM 1 is required
    save(ds, d / "spp_list.dcm")
    expect("fuzz_multivalued_samples", {"spp_list.dcm": ("failed", "SamplesPerPixel")}, outputs=0,
           note="fuzz finding (30-minute run): a multi-valued SamplesPerPixel raised TypeError in int(), "
                "caught only by the scan's last-resort handler ('unreadable (int() argument ...)')")


def make_colour() -> None:
    d = case_dir("already_colour")
    shutil.copy(PYD_FILES / "SC_rgb_small_odd.dcm", d / "rgb.dcm")
    base = small_ct()
    v = (np.frombuffer(base.PixelData, np.uint16).reshape(SIZE, SIZE) >> 4).astype(np.uint8)
    ds = small_ct()
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.PhotometricInterpretation = "YBR_FULL"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.stack([v, np.full_like(v, 128), np.full_like(v, 128)], axis=-1).tobytes()
    save(ds, d / "ybr.dcm")
    ds = small_ct()
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = v.tobytes()
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)
    for c, lut in (("Red", ramp), ("Green", ramp[::-1]), ("Blue", ramp)):
        setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [256, 0, 16])
        ds[f"{c}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ds, f"{c}PaletteColorLookupTableData", lut.tobytes())
    save(ds, d / "palette.dcm")
    expect("already_colour", {"rgb.dcm": ("skipped", "already colour (RGB)"),
                              "ybr.dcm": ("skipped", "already colour (YBR_FULL)"),
                              "palette.dcm": ("skipped", "already colour (PALETTE COLOR)")}, outputs=0,
           note="RGB (pydicom SC_rgb_small_odd), YBR_FULL and PALETTE COLOR inputs are skipped")


def make_multiframe() -> None:
    d = case_dir("multiframe_no_numberofframes")
    ds = small_ct()
    frames = [np.frombuffer(small_ct(k).PixelData, np.uint16) for k in range(3)]
    ds.PixelData = np.concatenate(frames).tobytes()
    save(ds, d / "mf.dcm")
    expect("multiframe_no_numberofframes", {"mf.dcm": ("failed", "NumberOfFrames")}, outputs=0,
           note="3 frames of pixel data without NumberOfFrames: refused, never silently cut to 1 frame")
    d = case_dir("multiframe_ok")
    ds = small_ct()
    ds.NumberOfFrames = 3
    ds.PixelData = np.concatenate(frames).tobytes()
    save(ds, d / "mf3.dcm")
    expect("multiframe_ok", {"mf3.dcm": ("done", "")}, outputs=3,
           note="the same with NumberOfFrames 3: three output instances")
    d = case_dir("numberofframes_garbage")
    ds = small_ct()
    ds.NumberOfFrames = 0
    save(ds, d / "nf0.dcm")
    ds = small_ct(1)
    ds.NumberOfFrames = 5
    save(ds, d / "nf5.dcm")
    expect("numberofframes_garbage", {"nf0.dcm": ("done", ""), "nf5.dcm": ("failed", "pixel data truncated")},
           outputs=1, note="NumberOfFrames 0 (read as 1) and 5 with one frame of data")


def make_series_shape() -> None:
    d = case_dir("duplicate_slices")
    for k in range(3):
        save(small_ct(k), d / f"ct{k}.dcm")
    save(small_ct(1), d / "ct1_copy.dcm")
    expect("duplicate_slices", {**{f"ct{k}.dcm": ("done", "") for k in range(3)},
                                "ct1_copy.dcm": ("skipped", "duplicate of ct1.dcm")}, outputs=3,
           note="a second copy of a slice (same SOPInstanceUID) under another name")
    d = case_dir("missing_slices")
    for k, z in enumerate((0.0, 5.0, 10.0, 30.0)):
        save(small_ct(k, z=z), d / f"ct{k}.dcm")
    expect("missing_slices", {f"ct{k}.dcm": ("done", "") for k in range(4)}, outputs=4,
           series_warning="slices may be missing", note="z = 0, 5, 10, 30 mm: a gap is reported")
    d = case_dir("localizer_in_series")
    for k in range(3):
        save(small_ct(k, z=5.0 * k), d / f"ct{k}.dcm")
    loc = small_ct(3)
    loc.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    loc.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    arr = np.frombuffer(loc.PixelData, np.uint16).reshape(SIZE, SIZE)[:48]
    loc.Rows = 48
    loc.PixelData = arr.tobytes()
    save(loc, d / "localizer.dcm")
    expect("localizer_in_series", {**{f"ct{k}.dcm": ("done", "") for k in range(3)},
                                   "localizer.dcm": ("done", "")}, outputs=4, series=2,
           series_warning="split", note="a coronal 48x64 localizer with the axial slices' SeriesInstanceUID: "
                                        "split into its own output series")
    d = case_dir("mixed_sizes")
    for k in range(3):
        save(small_ct(k, z=5.0 * k), d / f"ct{k}.dcm")
    odd = small_ct(3, z=15.0)
    arr = np.frombuffer(odd.PixelData, np.uint16).reshape(SIZE, SIZE)[::2, ::2].copy()
    odd.Rows, odd.Columns = arr.shape
    odd.PixelData = arr.tobytes()
    save(odd, d / "ct3_small.dcm")
    expect("mixed_sizes", {**{f"ct{k}.dcm": ("done", "") for k in range(3)}, "ct3_small.dcm": ("done", "")},
           outputs=4, series=2, series_warning="split", note="one 32x32 slice among 64x64 slices")


def make_nested() -> None:
    d = case_dir("deeply_nested")

    def nest(depth: int) -> Dataset:
        ds = small_ct()
        inner = Dataset()
        inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "1", "99X", "leaf"
        for _ in range(depth):
            outer = Dataset()
            outer.ContentSequence = Sequence([inner])
            outer.RelationshipType = "CONTAINS"
            inner = outer
        ds.ContentSequence = Sequence([inner])
        return ds

    save(nest(50), d / "nest50.dcm")
    expect("deeply_nested", {"nest50.dcm": ("done", "")}, outputs=1,
           note="an image with sequences nested 50 deep (not copied to the output)")
    d = case_dir("deeply_nested_extreme")
    data = ct_bytes()
    off = pixel_offset(data)
    depth = 3000  # too deep for pydicom to write: built byte by byte (explicit VR LE, undefined lengths)
    seq_open = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    seq_close = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    (d / "nest3000.dcm").write_bytes(data[:off] + seq_open * depth + seq_close * depth + data[off:])
    expect("deeply_nested_extreme", {"nest3000.dcm": ("failed", "")}, outputs=0,
           note="sequences nested 3000 deep: one clear line (recursion limit), no traceback")
    d = case_dir("private_nested")
    shutil.copy(PYD_FILES / "nested_priv_SQ.dcm", d / "nested_priv_SQ.dcm")
    expect("private_nested", {"nested_priv_SQ.dcm": ("failed", "Rows/Columns")}, outputs=0,
           note="pydicom's nested private sequence file (PixelData but no image attributes)")


def make_charsets() -> None:
    d = case_dir("non_ascii")
    ds = small_ct()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jörg=山田^太郎"
    ds.SeriesDescription = "Thorax ÄÖÜ Ελληνικά 日本語"
    save(ds, d / "utf8.dcm")
    jp = pydicom.dcmread(PYD / "charset_files" / "chrJapMulti.dcm")
    ds = small_ct(1)
    ds.SpecificCharacterSet = jp.SpecificCharacterSet
    ds.PatientName = jp.PatientName
    save(ds, d / "iso2022.dcm")
    ds = small_ct(2)
    ds.SpecificCharacterSet = "ISO_IR 999"  # unknown: pydicom falls back to its default
    ds.SeriesDescription = "unknown charset"
    save(ds, d / "unknown_charset.dcm")
    expect("non_ascii", {"utf8.dcm": ("done", ""), "iso2022.dcm": ("done", ""),
                         "unknown_charset.dcm": ("done", "")}, outputs=3,
           note="UTF-8 (ISO_IR 192), ISO 2022 Japanese and an unknown character set")


def make_script() -> None:
    d = case_dir("script_in_names")
    ds = small_ct()
    ds.PatientName = "<script>alert('pn')</script>"
    ds.PatientID = "<img src=x onerror=alert(1)>"
    ds.SeriesDescription = "<script>alert('sd')</script>"
    save(ds, d / "xss.dcm")
    expect("script_in_names", {"xss.dcm": ("done", "")}, outputs=1, no_raw_html="<script>",
           note="<script> in PatientName and SeriesDescription: never raw in report.html")


def make_uids() -> None:
    for case, value in (("uid_dotdot", ".."), ("uid_slashes", "a/b/../../x"),
                        ("uid_absolute", "/tmp/medcolor-escape"), ("uid_dotdot_deid", ".."),
                        ("uid_slashes_deid", "a/b/../../x")):
        d = case_dir(case)
        ds = small_ct()
        for kw in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
            ds[kw].VR = "UI"
            ds[kw]._value = value
        ds.file_meta.MediaStorageSOPInstanceUID = value
        save(ds, d / "uid.dcm")
        if case.endswith("_deid"):
            expect(case, {"uid.dcm": ("done", "")}, outputs=1, deidentify=True,
                   note=f"UIDs = {value!r} with --deidentify (UIDs replaced): written, names from counters")
        else:
            expect(case, {"uid.dcm": ("failed", "StudyInstanceUID")}, outputs=0,
                   note=f"SOP/Series/Study/FrameOfReference UIDs = {value!r}: the output cannot carry the "
                        "invalid Study UID, so the file fails with one line; nothing written anywhere")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for maker in (make_control, make_truncation, make_no_pixels, make_not_dicom, make_no_meta, make_dicomdir,
                  make_size_mismatch, make_enormous, make_bits, make_photometric, make_rescale, make_voi,
                  make_compressed, make_colour, make_multiframe, make_series_shape, make_nested,
                  make_charsets, make_script, make_uids, make_fuzz_regressions):
        maker()
    (OUT / "expected.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    (OUT / "README.md").write_text(
        "# Bad-input corpus (generated)\n\nGenerated by `python tests/make_bad_corpus.py` from "
        "sample_dicom/ct_chest (slices downsampled to 64x64), sample_dicom/refs/beef_marbled.jpg and "
        "pydicom's shipped test files (pydicom/data/test_files, charset_files; MIT-licensed, see pydicom's "
        "README). Do not edit by hand: change the script and regenerate. `expected.json` holds each "
        "case's expected result; tests/test_bad_inputs.py checks them.\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{len(CASES)} cases, {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
