"""Uncompressed little-endian frames are read straight from the file at ``SliceRef.pixel_offset``, which the
scan found once: wherever the scan sets that offset, it is where pydicom puts the Pixel Data value, and every
frame read there is exactly what ``pydicom.pixels.pixel_array`` returns (dtype and values); everything else
(big endian, deflated, compressed, odd layouts) has no offset and goes through pydicom.

Files: sample_dicom/, the bad-input corpus tests/data/bad/, pydicom's shipped test files (and the pydicom-data
files when installed), plus generated files for the cases those lack (bit depths, signedness with garbage in
the unused high bits, odd sizes, several frames, what precedes and what follows the pixel data).
"""
from __future__ import annotations

import importlib.util
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from medcolor.errors import MedcolorError
from medcolor.io import _decode, _dicom, read_slice, reads_by_file_io, scan
from medcolor.types import SliceRef

from tests.conftest import CT_DIR, PYDICOM_FILES, SAMPLE, XRAY

BAD = Path(__file__).resolve().parent / "data" / "bad"


def _data_store() -> Path | None:
    spec = importlib.util.find_spec("data_store")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "data"
    return d if d.is_dir() else None


def _dicom_files() -> list[Path]:
    roots = [SAMPLE, BAD, PYDICOM_FILES] + ([_data_store()] if _data_store() else [])
    out = []
    for root in roots:
        for p in sorted(root.rglob("*")):
            if not p.is_file() or p.stat().st_size > 64 << 20:
                continue
            with open(p, "rb") as f:
                if _dicom.sniff_dicom(f.read(132)):
                    out.append(p)
    return out


FILES = _dicom_files()
ROOT = SAMPLE.parent


def _file_id(p: Path) -> str:
    for base, name in ((ROOT, ""), (PYDICOM_FILES, "pydicom/"), (_data_store() or ROOT, "pydicom-data/")):
        if p.is_relative_to(base):
            return name + str(p.relative_to(base))
    return p.name


def _refs(path: Path) -> list[SliceRef]:
    found = scan([path])
    return [ref for s in found.series if s.kind == "dicom" for ref in s.slices]


def _pydicom_value_offset(path: Path) -> int:
    """Where pydicom's own reader puts the Pixel Data value (a full read with the value deferred)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, defer_size=0, force=True)
    elem = ds.get_item(0x7FE00010)
    return elem.value_tell if isinstance(elem, RawDataElement) else elem.file_tell


def _check_against_pydicom(ref: SliceRef) -> None:
    """The frame read at the offset == pydicom's pixel_array of that frame (dtype, shape, values)."""
    ds = ref.dataset
    index = ref.frame if _dicom.n_frames(ds) > 1 else None
    got = _decode.decode_frame(ref.path, ds, ref.frame, ref.pixel_offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = pydicom.pixels.pixel_array(str(ref.path), index=index,
                                          transfer_syntax_uid=uid.UID(_dicom.resolved_syntax(ds)))
    assert got.dtype == want.dtype, (ref.frame, got.dtype, want.dtype)
    assert got.shape == want.shape, (ref.frame, got.shape, want.shape)
    np.testing.assert_array_equal(got, want, err_msg=f"frame {ref.frame}")
    assert got.flags.writeable and got.flags.c_contiguous


def _tested(refs: list[SliceRef]) -> list[SliceRef]:
    """A multi-frame file's first, second, middle and last frames (all frames of small files)."""
    n = len(refs)
    return [refs[i] for i in sorted({0, 1, n // 2, n - 1} & set(range(n)))]


@pytest.mark.parametrize("path", FILES, ids=[_file_id(p) for p in FILES])
def test_every_file_reads_as_pydicom_does(path: Path) -> None:
    """Every test file the scan accepts: uncompressed little endian ones have the offset pydicom's reader
    finds, and their frames read there equal pydicom's; the others (compressed, big endian, deflated) have
    none. (A file the scan refuses has no slices; the bad-input tests check why.)"""
    refs = _refs(path)
    with_offset = [r for r in refs if r.pixel_offset is not None]
    for ref in refs:
        native = uid.UID(_dicom.resolved_syntax(ref.dataset)) in (uid.ImplicitVRLittleEndian,
                                                                 uid.ExplicitVRLittleEndian)
        assert native == (ref.pixel_offset is not None), (ref.frame, ref.pixel_offset)
    if with_offset:
        assert {r.pixel_offset for r in with_offset} == {_pydicom_value_offset(path)}
    for ref in _tested(with_offset):
        _check_against_pydicom(ref)


def test_compressed_and_big_endian_files_have_no_offset() -> None:
    for name in ("MR_small_bigendian.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm"):
        refs = _refs(PYDICOM_FILES / name)
        assert refs and all(r.pixel_offset is None for r in refs), name


def test_big_endian_falls_back_to_pydicom() -> None:
    path = PYDICOM_FILES / "MR_small_bigendian.dcm"
    (series,) = scan([path]).series
    assert not reads_by_file_io(series)
    ds = pydicom.dcmread(path)
    want = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    np.testing.assert_array_equal(read_slice(series.slices[0], series), want)
    little = scan([PYDICOM_FILES / "MR_small.dcm"]).series[0]  # the same image, little endian, by offset
    assert little.slices[0].pixel_offset is not None
    np.testing.assert_array_equal(read_slice(little.slices[0], little), want)


# files where the offset must be found (it is not merely always left to pydicom)
MUST_TAKE = [CT_DIR / "1-12.dcm", XRAY, BAD / "bits_odd" / "bits13.dcm", BAD / "bits_odd" / "highbit3.dcm",
             BAD / "signed_unsigned" / "signed.dcm", BAD / "multiframe_ok" / "mf3.dcm",
             BAD / "no_preamble_no_meta" / "implicit.dcm", BAD / "no_preamble_no_meta" / "meta_no_preamble.dcm",
             BAD / "pixel_excess" / "excess.dcm", BAD / "deeply_nested" / "nest50.dcm",
             PYDICOM_FILES / "CT_small.dcm", PYDICOM_FILES / "MR_small_implicit.dcm",
             PYDICOM_FILES / "MR_small_padded.dcm", PYDICOM_FILES / "rtdose.dcm"]


@pytest.mark.parametrize("path", MUST_TAKE, ids=[_file_id(p) for p in MUST_TAKE])
def test_offset_is_found(path: Path) -> None:
    if not path.is_file():
        pytest.skip("file not shipped")
    refs = _refs(path)
    assert refs and all(r.pixel_offset == _pydicom_value_offset(path) for r in refs)
    for ref in refs:
        _check_against_pydicom(ref)


def test_sample_ct_does_not_call_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    series = scan([CT_DIR]).series[0]
    assert reads_by_file_io(series)
    want = [read_slice(ref, series) for ref in series.slices]

    def boom(*a, **k):
        raise AssertionError("pydicom.pixels.pixel_array called for a native file")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", boom)
    for ref, w in zip(series.slices, want):
        np.testing.assert_array_equal(read_slice(ref, series), w)


# ---------------------------------------------------------------- generated files

def _write(path: Path, *, implicit: bool, bits: int, stored: int, signed: int, rows: int, cols: int,
           frames: int | None, tail: str = "", after: str = "", seed: int = 0) -> int:
    """A MONOCHROME2 file with random pixel bytes (so the unused high bits hold garbage); ``tail`` picks
    what precedes the pixel data, ``after`` what follows it. Returns pydicom's offset of the pixel values."""
    ds = Dataset()
    ds.SOPClassUID = uid.SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID = uid.generate_uid()
    ds.SeriesInstanceUID = uid.generate_uid()
    ds.Modality = "OT"
    ds.PatientName = "Test^Native"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, stored, stored - 1, signed
    if frames is not None:
        ds.NumberOfFrames = frames
    n = rows * cols * (bits // 8) * (frames or 1)
    pixels = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    if tail == "icon_sq_undefined":  # an undefined-length sequence with an undefined-length item right before
        item = Dataset()
        item.Rows, item.Columns = 2, 2
        item.is_undefined_length_sequence_item = True
        ds.IconImageSequence = Sequence([item])
        ds["IconImageSequence"].is_undefined_length = True
    elif tail == "icon_sq_defined":
        item = Dataset()
        item.Rows, item.Columns = 2, 2
        ds.IconImageSequence = Sequence([item, Dataset()])
    elif tail == "empty_sq_undefined":
        ds.IconImageSequence = Sequence([])
        ds["IconImageSequence"].is_undefined_length = True
    elif tail == "private_blob":  # a large private OB element, the last before the pixel data
        block = ds.private_block(0x7FDF, "MEDCOLOR TEST", create=True)
        block.add_new(0x01, "OB", bytes(range(256)) * 300)
    elif tail == "odd_short":  # an odd-length short-VR element (padded to even by the writer)
        block = ds.private_block(0x7FDF, "MEDCOLOR TEST", create=True)
        block.add_new(0x02, "LO", "abc")
    ds.PixelData = pixels
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    if after == "trailing_padding":  # Data Set Trailing Padding after the pixel data
        ds.add_new(0xFFFCFFFC, "OB", b"\0" * 256)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ImplicitVRLittleEndian if implicit else uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    offset = _pydicom_value_offset(path)
    if after == "garbage":  # bytes after the last element (pydicom's full read fails on them)
        with open(path, "ab") as f:
            f.write(b"\xff" * 1000)
    return offset


def _check_generated(path: Path, frames: int, offset: int) -> None:
    refs = _refs(path)
    assert len(refs) == frames
    assert all(r.pixel_offset == offset for r in refs)
    for ref in refs:
        _check_against_pydicom(ref)


CASES = [  # (bits, stored, signed)
    (8, 8, 0), (8, 8, 1), (8, 7, 0), (8, 5, 1), (8, 1, 1),
    (16, 16, 0), (16, 16, 1), (16, 12, 0), (16, 12, 1), (16, 10, 1), (16, 15, 0), (16, 1, 0),
    (32, 32, 0), (32, 32, 1), (32, 24, 1), (32, 20, 0),
]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("bits,stored,signed", CASES, ids=[f"{b}-{s}-{'s' if r else 'u'}" for b, s, r in CASES])
@pytest.mark.parametrize("shape", [(7, 5, None), (6, 4, 3), (3, 3, 5)], ids=["odd", "3frames", "odd5frames"])
def test_generated_bit_depths(tmp_path: Path, implicit: bool, bits: int, stored: int, signed: int,
                              shape: tuple) -> None:
    rows, cols, frames = shape
    p = tmp_path / "gen.dcm"
    offset = _write(p, implicit=implicit, bits=bits, stored=stored, signed=signed, rows=rows, cols=cols,
                    frames=frames, seed=bits * 1000 + stored * 10 + signed)
    _check_generated(p, frames or 1, offset)


TAILS = ["icon_sq_undefined", "icon_sq_defined", "empty_sq_undefined", "private_blob", "odd_short"]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("tail", TAILS)
def test_generated_element_before_pixels(tmp_path: Path, implicit: bool, tail: str) -> None:
    p = tmp_path / "gen.dcm"
    offset = _write(p, implicit=implicit, bits=16, stored=12, signed=1, rows=8, cols=6, frames=2, tail=tail)
    _check_generated(p, 2, offset)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("after", ["trailing_padding", "garbage"])
def test_generated_data_after_pixels(tmp_path: Path, implicit: bool, after: str) -> None:
    p = tmp_path / "gen.dcm"
    offset = _write(p, implicit=implicit, bits=16, stored=16, signed=0, rows=5, cols=3, frames=3, after=after)
    _check_generated(p, 3, offset)


def _patch_pixel_header(path: Path, length: int | None = None, tag: bytes | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")
    if length is not None:
        data[i + 8:i + 12] = struct.pack("<L", length)
    if tag is not None:
        data[i:i + 4] = tag
    path.write_bytes(bytes(data))


def test_no_offset_where_pydicom_must_decide(tmp_path: Path) -> None:
    """Float Pixel Data and an undefined-length native Pixel Data are left to pydicom (no offset)."""
    p = tmp_path / "float.dcm"
    _write(p, implicit=False, bits=32, stored=32, signed=0, rows=4, cols=4, frames=None)
    _patch_pixel_header(p, tag=b"\xe0\x7f\x08\x00")
    assert all(r.pixel_offset is None for r in _refs(p))
    p = tmp_path / "undefined.dcm"
    _write(p, implicit=False, bits=16, stored=16, signed=0, rows=4, cols=4, frames=2)
    _patch_pixel_header(p, length=0xFFFFFFFF)
    found = scan([p])
    assert all(r.pixel_offset is None for s in found.series for r in s.slices)


@pytest.mark.parametrize("case,reason", [("short_element", "pixel data truncated"),
                                         ("cut_in_frame_1", "pixel data truncated"),
                                         ("cut_in_pixel_header", "without pixel data")])
def test_short_pixel_data_fails_at_scan(tmp_path: Path, case: str, reason: str) -> None:
    """A Pixel Data element or file too short for the frames the header describes fails the file at
    scan time: the offset is never used to read past the element."""
    p = tmp_path / "gen.dcm"
    _write(p, implicit=False, bits=16, stored=16, signed=0, rows=4, cols=4, frames=2)
    if case == "short_element":
        _patch_pixel_header(p, length=32)  # one frame's worth, the header says two frames
    elif case == "cut_in_frame_1":
        p.write_bytes(p.read_bytes()[:-20])
    else:
        data = p.read_bytes()
        p.write_bytes(data[:data.rindex(b"\xe0\x7f\x10\x00") + 6])
    found = scan([p])
    assert not found.series
    (outcome,) = found.outcomes
    assert outcome.status == "failed" and reason in outcome.reason, outcome


def test_file_changed_after_the_scan(tmp_path: Path) -> None:
    """A file cut short or deleted between scan and read: one-line MedcolorError, no wrong pixels."""
    p = tmp_path / "gen.dcm"
    _write(p, implicit=False, bits=16, stored=12, signed=0, rows=4, cols=4, frames=3)
    series = scan([p]).series[0]
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(MedcolorError, match="truncated") as err:
        read_slice(series.slices[2], series)
    assert "\n" not in str(err.value)
    os.remove(p)
    with pytest.raises(MedcolorError, match="file not found|cannot read file"):
        read_slice(series.slices[0], series)


def test_a_slice_ref_without_header_is_read_by_its_own_scan(tmp_path: Path) -> None:
    series = scan([CT_DIR]).series[0]
    ref = series.slices[0]
    bare = SliceRef(path=ref.path, frame=ref.frame)
    np.testing.assert_array_equal(read_slice(bare, series), read_slice(ref, series))
