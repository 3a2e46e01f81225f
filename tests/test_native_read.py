"""The fast path for uncompressed (native little-endian) frames in medcolor.io._dicom.decode_frame:
wherever it returns a frame, that frame is exactly what ``pydicom.pixels.pixel_array(path, index=...,
transfer_syntax_uid=...)`` returns (dtype and values), and decode_frame with it gives the same arrays and
the same one-line errors as decode_frame without it.

Files: sample_dicom/, the bad-input corpus tests/data/bad/, pydicom's shipped test files (and the
pydicom-data files when installed), plus generated files for the cases those lack (bit depths,
signedness with garbage in the unused high bits, odd sizes, several frames, what precedes the pixel data).
Compressed files are never handed to pydicom here (some decoder plug-ins abort the process on the fuzzed ones).
"""
from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from medcolor.errors import MedcolorError, SkipInput
from medcolor.io import _dicom, read_slice, scan

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


def _header(path: Path) -> tuple[Dataset, bool] | None:
    """The header decode_frame gets (medcolor's read_header), or for files medcolor refuses a plain
    stop-before-pixels parse (the fast path must be right for any header of the file); None if neither."""
    with open(path, "rb") as f:
        kind = _dicom.sniff_dicom(f.read(132))
    try:
        return _dicom.read_header(path, kind or "part10").dataset, True
    except (SkipInput, MedcolorError):
        pass
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, force=True), False
    except Exception:  # noqa: BLE001 - unreadable: nothing to compare
        return None


def _indices(ds: Dataset) -> list[int | None]:
    n = _dicom.n_frames(ds)
    return [None] if n == 1 else sorted({0, 1, 2, n // 2, n - 1} & set(range(n)))


def _check_against_pydicom(path: Path, ds: Dataset) -> int:
    """For every tested frame the fast path returns, pydicom returns the same; the number returned."""
    tsu = uid.UID(_dicom._resolved_syntax(ds))
    taken = 0
    for index in _indices(ds):
        fast = _dicom._read_native_frame(path, ds, tsu, index)
        if tsu not in (uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian):
            assert fast is None, f"fast path taken for {tsu.name}"
            continue
        if fast is None:
            continue  # declined: decode_frame asks pydicom, as before
        try:
            ref = pydicom.pixels.pixel_array(str(path), index=index, transfer_syntax_uid=tsu)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"frame {index}: fast path returned a frame, pydicom raises {exc!r}")
        assert fast.dtype == ref.dtype, (index, fast.dtype, ref.dtype)
        assert fast.shape == ref.shape, (index, fast.shape, ref.shape)
        np.testing.assert_array_equal(fast, ref, err_msg=f"frame {index}")
        assert fast.flags.writeable and fast.flags.c_contiguous
        taken += 1
    return taken


def _decode(path: Path, ds: Dataset, frame: int | None):
    try:
        return _dicom.decode_frame(path, ds, frame)
    except MedcolorError as exc:
        return f"MedcolorError: {exc}"


def _check_decode_frame(path: Path, ds: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """decode_frame with the fast path == decode_frame without it (array and dtype, or the same error)."""
    frames = [None] if _dicom.n_frames(ds) == 1 else _indices(ds)
    with_fast = [_decode(path, ds, f) for f in frames]
    with monkeypatch.context() as m:
        m.setattr(_dicom, "_read_native_frame", lambda *a: None)
        without = [_decode(path, ds, f) for f in frames]
    for f, a, b in zip(frames, with_fast, without):
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, (f, a, b)
            assert "\n" not in a
        else:
            assert a.dtype == b.dtype, (f, a.dtype, b.dtype)
            np.testing.assert_array_equal(a, b, err_msg=f"frame {f}")


@pytest.mark.parametrize("path", FILES, ids=[_file_id(p) for p in FILES])
def test_file_fast_path_equals_pydicom(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _header(path)
    if got is None:
        pytest.skip("no header to read")
    ds, accepted = got
    tsu = uid.UID(_dicom._resolved_syntax(ds))
    _check_against_pydicom(path, ds)
    if accepted and tsu in (uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian):
        _check_decode_frame(path, ds, monkeypatch)


# files where the fast path must be taken (it is not merely always declining)
MUST_TAKE = [CT_DIR / "1-12.dcm", XRAY, BAD / "bits_odd" / "bits13.dcm", BAD / "bits_odd" / "highbit3.dcm",
             BAD / "signed_unsigned" / "signed.dcm", BAD / "multiframe_ok" / "mf3.dcm",
             BAD / "no_preamble_no_meta" / "implicit.dcm", BAD / "no_preamble_no_meta" / "meta_no_preamble.dcm",
             BAD / "pixel_excess" / "excess.dcm", BAD / "deeply_nested" / "nest50.dcm",
             PYDICOM_FILES / "CT_small.dcm", PYDICOM_FILES / "MR_small_implicit.dcm",
             PYDICOM_FILES / "MR_small_padded.dcm", PYDICOM_FILES / "rtdose.dcm"]


@pytest.mark.parametrize("path", MUST_TAKE, ids=[_file_id(p) for p in MUST_TAKE])
def test_fast_path_is_taken(path: Path) -> None:
    if not path.is_file():
        pytest.skip("file not shipped")
    ds = _dicom.read_header(path, "part10" if path.read_bytes()[128:132] == b"DICM" else "raw").dataset
    assert _check_against_pydicom(path, ds) == len(_indices(ds))


def test_sample_ct_does_not_call_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    series = scan([CT_DIR]).series[0]
    want = [read_slice(ref, series) for ref in series.slices]
    raw = [_dicom.decode_frame(Path(r.path), r.dataset, r.frame) for r in series.slices]

    def boom(*a, **k):
        raise AssertionError("pydicom.pixels.pixel_array called for a native file")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", boom)
    for ref, w, r in zip(series.slices, want, raw):
        got = _dicom.decode_frame(Path(ref.path), ref.dataset, ref.frame)
        assert got.dtype == r.dtype
        np.testing.assert_array_equal(got, r)
        np.testing.assert_array_equal(read_slice(ref, series), w)


# ---------------------------------------------------------------- generated files

def _write(path: Path, *, implicit: bool, bits: int, stored: int, signed: int, rows: int, cols: int,
           frames: int | None, tail: str = "", pixels: bytes | None = None, seed: int = 0) -> bytes:
    """A MONOCHROME2 file with random pixel bytes (so the unused high bits hold garbage); ``tail`` picks
    what precedes the pixel data. Returns the pixel bytes written."""
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
    if pixels is None:
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
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ImplicitVRLittleEndian if implicit else uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return pixels


CASES = [  # (bits, stored, signed)
    (8, 8, 0), (8, 8, 1), (8, 7, 0), (8, 5, 1), (8, 1, 1),
    (16, 16, 0), (16, 16, 1), (16, 12, 0), (16, 12, 1), (16, 10, 1), (16, 15, 0), (16, 1, 0),
    (32, 32, 0), (32, 32, 1), (32, 24, 1), (32, 20, 0),
]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("bits,stored,signed", CASES, ids=[f"{b}-{s}-{'s' if r else 'u'}" for b, s, r in CASES])
@pytest.mark.parametrize("shape", [(7, 5, None), (6, 4, 3), (3, 3, 5)], ids=["odd", "3frames", "odd5frames"])
def test_generated_bit_depths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implicit: bool, bits: int,
                              stored: int, signed: int, shape: tuple) -> None:
    rows, cols, frames = shape
    p = tmp_path / "gen.dcm"
    _write(p, implicit=implicit, bits=bits, stored=stored, signed=signed, rows=rows, cols=cols, frames=frames,
           seed=bits * 1000 + stored * 10 + signed)
    ds = _dicom.read_header(p, "part10").dataset
    assert _check_against_pydicom(p, ds) == len(_indices(ds))
    _check_decode_frame(p, ds, monkeypatch)


TAILS = ["icon_sq_undefined", "icon_sq_defined", "empty_sq_undefined", "private_blob", "odd_short"]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("tail", TAILS)
def test_generated_element_before_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implicit: bool,
                                         tail: str) -> None:
    p = tmp_path / "gen.dcm"
    _write(p, implicit=implicit, bits=16, stored=12, signed=1, rows=8, cols=6, frames=2, tail=tail)
    ds = _dicom.read_header(p, "part10").dataset
    assert _check_against_pydicom(p, ds) == 2
    _check_decode_frame(p, ds, monkeypatch)


def test_header_changed_in_memory(tmp_path: Path) -> None:
    """Elements set or replaced in memory have no file offset: the fast path still finds the pixel data."""
    p = tmp_path / "gen.dcm"
    _write(p, implicit=False, bits=16, stored=16, signed=0, rows=4, cols=4, frames=None, tail="private_blob")
    ds = _dicom.read_header(p, "part10").dataset
    ref = pydicom.pixels.pixel_array(str(p))
    ds[0x7FDF1001] = pydicom.DataElement(0x7FDF1001, "OB", b"\0\0")  # the last element, replaced
    ds.ImageComments = "added later"
    got = _dicom._read_native_frame(p, ds, uid.UID(uid.ExplicitVRLittleEndian), None)
    assert got is not None and got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


def _patch_pixel_header(path: Path, length: int | None = None, tag: bytes | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")
    if length is not None:
        data[i + 8:i + 12] = struct.pack("<L", length)
    if tag is not None:
        data[i:i + 4] = tag
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["undefined_length", "short_element", "float_pixel_data", "truncated",
                                  "rgb", "bits64", "frames_zero"])
def test_generated_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """Cases the fast path leaves to pydicom; decode_frame behaves exactly as without the fast path."""
    p = tmp_path / "gen.dcm"
    _write(p, implicit=False, bits=16, stored=16, signed=0, rows=4, cols=4, frames=2)
    if case == "undefined_length":
        _patch_pixel_header(p, length=0xFFFFFFFF)
    elif case == "short_element":
        _patch_pixel_header(p, length=32)  # one frame's worth, the header says two frames
    elif case == "float_pixel_data":
        _patch_pixel_header(p, tag=b"\xe0\x7f\x08\x00")
    elif case == "truncated":
        p.write_bytes(p.read_bytes()[:-20])
    ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
    if case == "rgb":
        ds.SamplesPerPixel = 3
    elif case == "bits64":
        ds.BitsAllocated = 64
    elif case == "frames_zero":
        ds.NumberOfFrames = 0
    tsu = uid.UID(_dicom._resolved_syntax(ds))
    # a pixel data element one frame long, or a file cut inside frame 1, still holds frame 0 (pydicom
    # reads it the same)
    partial = case in ("short_element", "truncated")
    for index in (1,) if partial else (0, 1):
        assert _dicom._read_native_frame(p, ds, tsu, index) is None
    if partial:
        assert _check_against_pydicom(p, ds) == 1
    if case in ("undefined_length", "short_element", "truncated"):
        _check_decode_frame(p, ds, monkeypatch)


def test_missing_file_same_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "gen.dcm"
    _write(p, implicit=False, bits=16, stored=12, signed=0, rows=4, cols=4, frames=None)
    ds = _dicom.read_header(p, "part10").dataset
    os.remove(p)
    with pytest.raises(MedcolorError, match="file not found|cannot read file"):
        _dicom.decode_frame(p, ds, None)
