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
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
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


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def ct_bytes(k: int = 0) -> bytes:
    return to_bytes(small_ct(k))


def rle_bytes(k: int = 0) -> bytearray:
    """Slice ``k`` RLE-compressed (pydicom's encoder), as a file's bytes."""
    ds = small_ct(k)
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    return bytearray(to_bytes(ds))


def pixel_offset(data: bytes) -> int:
    """Offset of the (7FE0,0010) element tag in an explicit VR little endian file."""
    return data.rindex(b"\xe0\x7f\x10\x00")


def ct_with(k: int = 0, *, z: float | None = None, **attrs) -> Dataset:
    """``small_ct(k, z=z)`` with ``attrs`` set in the order given (a value of None deletes the attribute)."""
    ds = small_ct(k, z=z)
    for keyword, value in attrs.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def raw(keyword: str, vr: str, value: str) -> RawDataElement:
    """An element holding ``value`` as written, even where its VR forbids it (pydicom's public raw element)."""
    data = value.encode()
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return RawDataElement(Tag(keyword), vr, len(data), data, 0, False, True)


def case(name: str, files: dict[str, tuple], *, outputs: int, **kw) -> Path:
    """Write case ``name``: ``files`` maps a file name to ``(content, status, reason substring)``, the
    content a dataset (saved), a path (copied) or bytes; ``kw`` as :func:`expect`."""
    d = case_dir(name)
    for fname, (content, _, _) in files.items():
        if isinstance(content, Dataset):
            save(content, d / fname)
        elif isinstance(content, Path):
            shutil.copy(content, d / fname)
        else:
            (d / fname).write_bytes(bytes(content))
    expect(name, {f: (status, reason) for f, (_, status, reason) in files.items()}, outputs=outputs, **kw)
    return d


DONE = ("done", "")  # the status and reason of a file that is coloured


# ---------------------------------------------------------------- cases

def make_control() -> None:
    case("control_ct", {f"ct{k}.dcm": (small_ct(k), *DONE) for k in range(3)}, outputs=3,
         note="three good 64x64 CT slices: the baseline every other case is compared with")


def make_truncation() -> None:
    data = ct_bytes()
    case("truncated_header", {"cut.dcm": (data[:400], "failed", "")}, outputs=0,
         note="file cut in the middle of the header")
    case("truncated_pixeldata", {"cut.dcm": (data[:len(data) - 3000], "failed", "pixel data truncated")}, outputs=0,
         note="file cut inside PixelData")
    case("truncated_with_good", {"cut.dcm": (data[:len(data) - 3000], "failed", "pixel data truncated"),
                                 "ct1.dcm": (small_ct(1), *DONE), "ct2.dcm": (small_ct(2), *DONE)}, outputs=2,
         note="one truncated slice in an otherwise good series: the rest is processed")
    case("pixeldata_header_only", {"cut.dcm": (data[:pixel_offset(data) + 6], "failed", "")}, outputs=0,
         note="file ends inside the PixelData element header")


def make_no_pixels() -> None:
    case("no_pixeldata", {"nopix.dcm": (ct_with(PixelData=None), "failed", "without pixel data")}, outputs=0,
         note="CT Image Storage without PixelData (Orthanc Issue22-NoPixelData)")
    case("rtstruct", {"rtstruct.dcm": (PYD_FILES / "rtstruct.dcm", "skipped", "no pixel data")}, outputs=0,
         note="a non-image object (pydicom rtstruct.dcm)")


def make_not_dicom() -> None:
    from PIL import Image

    img = Image.open(BEEF).convert("RGB").resize((32, 32))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    not_dicom = ("skipped", "not DICOM")
    case("not_dicom", {"notes.dcm": (b"This is a text file, not an image.\n" * 10, *not_dicom),
                       "photo.dcm": (buf.getvalue(), *not_dicom), "empty.dcm": (b"", "skipped", "empty"),
                       "zeros.dcm": (bytes(4096), *not_dicom), "short.dcm": (b"\x08\x00", *not_dicom),
                       "ff.dcm": (b"\xff" * 600, *not_dicom)},
         outputs=0, note="text, a JPEG renamed .dcm, empty, zero-filled, 2-byte and 0xFF-filled files")
    case("preamble_only", {"dicm.dcm": (bytes(128) + b"DICM", "failed", "")}, outputs=0,
         note="a preamble and DICM magic and nothing else")


def make_no_meta() -> None:
    d = case_dir("no_preamble_no_meta")
    ds = small_ct()
    del ds.file_meta
    ds.save_as(d / "implicit.dcm", implicit_vr=True, little_endian=True, enforce_file_format=False)
    # drop preamble and DICM but keep the group 0002 meta elements
    (d / "meta_no_preamble.dcm").write_bytes(ct_bytes(1)[132:])
    expect("no_preamble_no_meta", {"implicit.dcm": DONE, "meta_no_preamble.dcm": DONE},
           outputs=2, note="raw implicit-VR data set without preamble or meta; meta group without preamble")
    case("pydicom_no_meta", {"bigend_nometa.dcm": (PYD_FILES / "ExplVR_BigEndNoMeta.dcm", "skipped",
                                                   "no pixel data (RTPLAN)"),
                             "missing_tsyntax.dcm": (PYD_FILES / "meta_missing_tsyntax.dcm", "failed", "Rows/Columns")},
         outputs=0, note="pydicom's big-endian RT Plan without meta, and a meta group without Transfer "
                         "Syntax UID over a data set with PixelData but no image attributes")


def make_dicomdir() -> None:
    case("dicomdir", {"DICOMDIR": (PYD_FILES / "dicomdirtests" / "DICOMDIR", "skipped", "DICOMDIR")}, outputs=0,
         note="pydicom's DICOMDIR")


def make_size_mismatch() -> None:
    case("rows_too_large", {"rows128.dcm": (ct_with(Rows=128), "failed", "pixel data truncated")}, outputs=0,
         note="Rows says 128 but the buffer holds 64 rows (Orthanc DummyCTInvalidRows)")
    case("rows_too_small", {"rows32.dcm": (ct_with(Rows=32), "failed", "NumberOfFrames missing or Rows wrong")},
         outputs=0, note="Rows says 32 but the buffer holds exactly 2x that: refused, not silently cropped")
    case("bits_mismatch", {"bits32.dcm": (ct_with(BitsAllocated=32, BitsStored=32, HighBit=31), "failed",
                                          "pixel data truncated")}, outputs=0,
         note="BitsAllocated 32 with a 16-bit buffer")
    case("pixel_excess", {"excess.dcm": (ct_with(PixelData=small_ct().PixelData + bytes(1000)), *DONE)}, outputs=1,
         note="1000 trailing bytes after a whole frame: the frame is read, the rest ignored")


def make_enormous() -> None:
    case("enormous", {"huge_frame.dcm": (ct_with(Rows=65535, Columns=65535), "failed", "too large"),
                      "huge_frames.dcm": (ct_with(1, Rows=16000, Columns=16000, NumberOfFrames=100000), "failed",
                                          "pixel data truncated"),
                      "zero_rows.dcm": (ct_with(2, Rows=0, Columns=64), "failed", "Rows/Columns")}, outputs=0,
         note="headers claiming 65535x65535, 100000 frames of 16000x16000, and Rows 0: refused "
              "before any allocation")


def make_bits() -> None:
    case("bits_odd", {"highbit3.dcm": (ct_with(HighBit=3), *DONE),  # BitsStored 12: HighBit should be 11
                      "bits13.dcm": (ct_with(1, BitsStored=13, HighBit=12), *DONE),
                      "bits17.dcm": (ct_with(2, BitsStored=17, HighBit=16), "failed", "BitsStored 17")}, outputs=2,
         note="HighBit inconsistent (ignored, as pydicom does), BitsStored 13 (valid), BitsStored 17 > "
              "BitsAllocated 16 (refused)")
    case("signed_unsigned", {"signed.dcm": (ct_with(PixelRepresentation=1), *DONE),
                             "j2k_pixelrep_mismatch.dcm": (PYD_FILES / "J2K_pixelrep_mismatch.dcm", *DONE)},
         outputs=2, series=2, note="PixelRepresentation 1 on unsigned 12-bit data (header trusted); "
                                   "pydicom's J2K pixel-representation mismatch file")


def make_photometric() -> None:
    inverted = {"outputs": 1, "inverted_vs": "control_ct/ct0.dcm"}
    case("monochrome1", {"mono1.dcm": (ct_with(PhotometricInterpretation="MONOCHROME1"), *DONE)}, **inverted,
         note="MONOCHROME1: output L must be 100 - L of the MONOCHROME2 original")
    case("presentation_lut_inverse", {"inverse.dcm": (ct_with(PresentationLUTShape="INVERSE"), *DONE)}, **inverted,
         note="MONOCHROME2 with Presentation LUT Shape INVERSE is displayed inverted, like MONOCHROME1")
    case("monochrome1_inverse",
         {"mono1_inverse.dcm": (ct_with(PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE"),
                                *DONE)}, **inverted,
         note="MONOCHROME1 + INVERSE (as the DX module requires): inverted once, like MONOCHROME1")


def make_rescale() -> None:
    case("rescale_slope_missing", {"noslope.dcm": (ct_with(RescaleSlope=None), *DONE)}, outputs=1,
         same_as="control_ct/ct0.dcm",
         note="RescaleIntercept without RescaleSlope: slope 1 is assumed (same output as the control)")
    case("rescale_slope_zero", {"zero.dcm": (ct_with(RescaleSlope=0), "failed", "RescaleSlope")}, outputs=0,
         note="RescaleSlope 0 would map every pixel to one value: refused")
    case("rescale_slope_negative", {"negative.dcm": (ct_with(RescaleSlope=-1, RescaleIntercept=1024), *DONE)},
         outputs=1, window="1500,-600", note="RescaleSlope -1 is applied as stated")
    ds = small_ct()
    ds["RescaleSlope"] = raw("RescaleSlope", "DS", "abc")  # not a number
    case("rescale_garbage", {"garbage.dcm": (ds, "failed", "RescaleSlope")}, outputs=0,
         note="RescaleSlope 'abc' (not a number): refused")
    ds = ct_with(RescaleSlope=None, RescaleIntercept=None)
    if "RescaleType" in ds:
        del ds.RescaleType
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item["LUTDescriptor"].VR = "US"
    item.ModalityLUTType = "HU"
    item.LUTData = [int(v) for v in np.arange(4096, dtype=np.uint16)]  # identity LUT
    item["LUTData"].VR = "US"
    ds.ModalityLUTSequence = Sequence([item])
    case("modality_lut_sequence", {"mlut.dcm": (ds, *DONE)}, outputs=1, window="percentile",
         note="a Modality LUT Sequence instead of rescale attributes")
    case("rescale_type_not_hu", {"us.dcm": (ct_with(RescaleType="US"), "failed", "Hounsfield")}, outputs=0,
         window="lung", note="CT whose RescaleType is not HU, with an HU preset asked: one clear line")


def make_voi() -> None:
    voi = ct_with(WindowCenter=[40, -600, 300], WindowWidth=[400, 1500, 0],
                  WindowCenterWidthExplanation=["MEDIASTINUM", "LUNG", "BROKEN"])
    case("multiple_voi", {"voi.dcm": (voi, *DONE)}, outputs=1, window_text="W=400 L=40",
         note="three VOI windows (the last with width 0): the first valid one is used by default")
    case("voi_invalid", {"voi0.dcm": (ct_with(WindowCenter=40, WindowWidth=0), *DONE)}, outputs=1,
         window_text="soft_tissue", note="the only VOI window has width 0: ignored, the CT default preset is used")


def make_compressed() -> None:
    data = rle_bytes()
    # the RLE header of the only fragment: claim 15 segments with absurd offsets
    off = data.rindex(b"\xfe\xff\x00\xe0") + 8  # first fragment value (after the empty offset table)
    data[off:off + 8] = (15).to_bytes(4, "little") + (0xFFFFFF00).to_bytes(4, "little")
    rle_cut = rle_bytes(1)
    j2k = (PYD_FILES / "JPEG2000.dcm").read_bytes()
    case("broken_compressed", {"rle_bad_header.dcm": (data, "failed", "decode"),
                               "rle_cut.dcm": (rle_cut[:len(rle_cut) - 2000], "failed", "decode"),
                               "j2k_cut.dcm": (j2k[:len(j2k) - 1500], "failed", "")}, outputs=0,
         note="RLE frame with a corrupt segment table, RLE and JPEG 2000 files cut short")
    case("compressed_ok", {"mr_rle.dcm": (PYD_FILES / "MR_small_RLE.dcm", *DONE),
                           "deflated.dcm": (PYD_FILES / "image_dfl.dcm", *DONE)}, outputs=2,
         series=2, note="valid RLE and deflated files (pydicom test files)")


def make_fuzz_regressions() -> None:
    """Inputs found by benchmarks/fuzz_reader.py, rebuilt deterministically (minimised by hand)."""
    data = rle_bytes()
    frag = data.rindex(b"\xfe\xff\x00\xe0") + 8  # the frame's fragment (after the empty offset table)
    seg2 = int.from_bytes(data[frag + 8:frag + 12], "little")
    data[frag + seg2] = 0x7F  # segment 2 starts with a 128-byte literal run that overruns the frame
    case("fuzz_rle_segment_overrun", {"rle_overrun.dcm": (data, "failed", "decode")}, outputs=0,
         note="fuzz finding: pylibjpeg-rle panics (pyo3 PanicException, a BaseException) on an RLE literal "
              "run past the end of the frame; it escaped every `except Exception` and crashed the run")
    jls = pydicom.dcmread(PYD_FILES / "MR_small_jpeg_ls_lossless.dcm")
    jls.Columns = 23644  # the JPEG-LS codestream is 64x64
    j2k = pydicom.dcmread(PYD_FILES / "JPEG2000.dcm")
    j2k.Rows = int(j2k.Rows) * 2
    case("fuzz_gdcm_abort", {"jls_columns.dcm": (jls, "failed", "compressed frame is 64x64"),
                             "j2k_rows.dcm": (j2k, "failed", "")}, outputs=0,
         note="fuzz finding: a JPEG-LS frame whose Columns disagree with the codestream made GDCM throw a C++ "
              "exception that aborted the whole process (SIGABRT, every other series lost); now the "
              "codestream size is checked before GDCM sees a frame, and GDCM is tried last")
    data = ct_bytes()
    i = data.index(b"\x20\x00\x13\x00IS")  # InstanceNumber
    data1 = ct_bytes(1)
    j = data1.index(b"\x28\x00\x04\x00CS")  # PhotometricInterpretation
    case("fuzz_invalid_vr", {"bad_vr.dcm": (data[:i + 4] + b"IW" + data[i + 6:], "failed", "unreadable DICOM header"),
                             "bad_vr_pi.dcm": (data1[:j + 4] + b"\x55\xd3" + data1[j + 6:], "failed",
                                               "unreadable DICOM header")}, outputs=0,
         note="fuzz finding: an unknown VR ('IW', 0x55D3) raised lazily after the header was read, caught "
              "only by the scan's last-resort handler ('unreadable (...)')")
    case("fuzz_nested_sq_hang", {"nested_sq.dcm": (Path(__file__).parent / "data" / "fuzz_regressions" /
                                                   "hang_nested_sq.dcm", "failed", "without pixel data")},
         outputs=0,
         note="fuzz finding (30-minute run, kept as found: a 4 kB mutation of a sample slice, cut before its "
              "pixel data): deeply nested sequences with a broken element made pydicom's recursive walk "
              "re-format the nested traceback at every level (minutes per file, a batch-stopping hang); medcolor "
              "now converts only the attributes it reads, never walks the header, and fails the file at once "
              "for its missing pixel data")
    case("fuzz_multivalued_samples",
         {"spp_list.dcm": (ct_with(SamplesPerPixel=[21316, 14, 11824]), "failed", "SamplesPerPixel")},  # VM 3, not 1
         outputs=0, note="fuzz finding (30-minute run): a multi-valued SamplesPerPixel raised TypeError in int(), "
                         "caught only by the scan's last-resort handler ('unreadable (int() argument ...)')")


def make_colour() -> None:
    v = (np.frombuffer(small_ct().PixelData, np.uint16).reshape(SIZE, SIZE) >> 4).astype(np.uint8)
    ybr = ct_with(SamplesPerPixel=3, PlanarConfiguration=0, PhotometricInterpretation="YBR_FULL", BitsAllocated=8,
                  BitsStored=8, HighBit=7,
                  PixelData=np.stack([v, np.full_like(v, 128), np.full_like(v, 128)], axis=-1).tobytes())
    palette = ct_with(PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8, HighBit=7,
                      PixelData=v.tobytes())
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)
    for c, lut in (("Red", ramp), ("Green", ramp[::-1]), ("Blue", ramp)):
        setattr(palette, f"{c}PaletteColorLookupTableDescriptor", [256, 0, 16])
        palette[f"{c}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(palette, f"{c}PaletteColorLookupTableData", lut.tobytes())
    case("already_colour", {"rgb.dcm": (PYD_FILES / "SC_rgb_small_odd.dcm", "skipped", "already colour (RGB)"),
                            "ybr.dcm": (ybr, "skipped", "already colour (YBR_FULL)"),
                            "palette.dcm": (palette, "skipped", "already colour (PALETTE COLOR)")}, outputs=0,
         note="RGB (pydicom SC_rgb_small_odd), YBR_FULL and PALETTE COLOR inputs are skipped")


def make_multiframe() -> None:
    frames = np.concatenate([np.frombuffer(small_ct(k).PixelData, np.uint16) for k in range(3)]).tobytes()
    case("multiframe_no_numberofframes", {"mf.dcm": (ct_with(PixelData=frames), "failed", "NumberOfFrames")},
         outputs=0, note="3 frames of pixel data without NumberOfFrames: refused, never silently cut to 1 frame")
    case("multiframe_ok", {"mf3.dcm": (ct_with(NumberOfFrames=3, PixelData=frames), *DONE)}, outputs=3,
         note="the same with NumberOfFrames 3: three output instances")
    case("numberofframes_garbage", {"nf0.dcm": (ct_with(NumberOfFrames=0), *DONE),
                                    "nf5.dcm": (ct_with(1, NumberOfFrames=5), "failed", "pixel data truncated")},
         outputs=1, note="NumberOfFrames 0 (read as 1) and 5 with one frame of data")


def _cropped(ds: Dataset, rows: slice, step: int = 1) -> Dataset:
    """``ds`` with its 64x64 pixels cut to ``[rows, ::step]`` (Rows/Columns set to match)."""
    arr = np.frombuffer(ds.PixelData, np.uint16).reshape(SIZE, SIZE)[rows, ::step].copy()
    ds.Rows, ds.Columns = arr.shape
    ds.PixelData = arr.tobytes()
    return ds


def make_series_shape() -> None:
    axial = {f"ct{k}.dcm": (small_ct(k, z=5.0 * k), *DONE) for k in range(3)}
    case("duplicate_slices", {**{f"ct{k}.dcm": (small_ct(k), *DONE) for k in range(3)},
                              "ct1_copy.dcm": (small_ct(1), "skipped", "duplicate of ct1.dcm")}, outputs=3,
         note="a second copy of a slice (same SOPInstanceUID) under another name")
    case("missing_slices", {f"ct{k}.dcm": (small_ct(k, z=z), *DONE) for k, z in enumerate((0.0, 5.0, 10.0, 30.0))},
         outputs=4, series_warning="slices may be missing", note="z = 0, 5, 10, 30 mm: a gap is reported")
    loc = _cropped(ct_with(3, ImageOrientationPatient=[1, 0, 0, 0, 0, -1],
                           ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]), slice(0, 48))
    case("localizer_in_series", {**axial, "localizer.dcm": (loc, *DONE)}, outputs=4, series=2,
         series_warning="split", note="a coronal 48x64 localizer with the axial slices' SeriesInstanceUID: "
                                      "split into its own output series")
    case("mixed_sizes", {**axial, "ct3_small.dcm": (_cropped(small_ct(3, z=15.0), slice(None, None, 2), 2), *DONE)},
         outputs=4, series=2, series_warning="split", note="one 32x32 slice among 64x64 slices")


def make_nested() -> None:
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

    case("deeply_nested", {"nest50.dcm": (nest(50), *DONE)}, outputs=1,
         note="an image with sequences nested 50 deep (not copied to the output)")
    data = ct_bytes()
    off = pixel_offset(data)
    depth = 3000  # too deep for pydicom to write: built byte by byte (explicit VR LE, undefined lengths)
    seq_open = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    seq_close = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    case("deeply_nested_extreme", {"nest3000.dcm": (data[:off] + seq_open * depth + seq_close * depth + data[off:],
                                                    "failed", "")}, outputs=0,
         note="sequences nested 3000 deep: one clear line (recursion limit), no traceback")
    case("private_nested", {"nested_priv_SQ.dcm": (PYD_FILES / "nested_priv_SQ.dcm", "failed", "Rows/Columns")},
         outputs=0, note="pydicom's nested private sequence file (PixelData but no image attributes)")


def make_charsets() -> None:
    jp = pydicom.dcmread(PYD / "charset_files" / "chrJapMulti.dcm")
    utf8 = ct_with(SpecificCharacterSet="ISO_IR 192", PatientName="Müller^Jörg=山田^太郎",
                   SeriesDescription="Thorax ÄÖÜ Ελληνικά 日本語")
    iso2022 = ct_with(1, SpecificCharacterSet=jp.SpecificCharacterSet, PatientName=jp.PatientName)
    unknown = ct_with(2, SpecificCharacterSet="ISO_IR 999",  # unknown: pydicom falls back to its default
                      SeriesDescription="unknown charset")
    case("non_ascii", {"utf8.dcm": (utf8, *DONE), "iso2022.dcm": (iso2022, *DONE),
                       "unknown_charset.dcm": (unknown, *DONE)}, outputs=3,
         note="UTF-8 (ISO_IR 192), ISO 2022 Japanese and an unknown character set")


def make_script() -> None:
    xss = ct_with(PatientName="<script>alert('pn')</script>", PatientID="<img src=x onerror=alert(1)>",
                  SeriesDescription="<script>alert('sd')</script>")
    case("script_in_names", {"xss.dcm": (xss, *DONE)}, outputs=1, no_raw_html="<script>",
         note="<script> in PatientName and SeriesDescription: never raw in report.html")


def make_uids() -> None:
    for name, value in (("uid_dotdot", ".."), ("uid_slashes", "a/b/../../x"),
                        ("uid_absolute", "/tmp/medcolor-escape"), ("uid_dotdot_deid", ".."),
                        ("uid_slashes_deid", "a/b/../../x")):
        ds = small_ct()
        for kw in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
            ds[kw] = raw(kw, "UI", value)
        ds.file_meta.MediaStorageSOPInstanceUID = value
        if name.endswith("_deid"):
            case(name, {"uid.dcm": (ds, *DONE)}, outputs=1, deidentify=True,
                 note=f"UIDs = {value!r} with --deidentify (UIDs replaced): written, names from counters")
        else:
            case(name, {"uid.dcm": (ds, "failed", "StudyInstanceUID")}, outputs=0,
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
