"""Tests for medcolor.io: sniffing, grouping/sorting, skips and failures, decoding of every transfer
syntax, modality LUT, enhanced multi-frame, NIfTI, plain images, MONAI glue.

Real files: sample_dicom/ and pydicom's own test files; pydicom-data files when installed (those
tests skip cleanly otherwise). Everything else is generated into tmp_path. Never calls
pydicom.data.get_testdata_files (it goes to the network).
"""
from __future__ import annotations

import hashlib
import importlib.util
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import FileMetaDataset

from medcolor.errors import MedcolorError
from medcolor.io import read_image_rgb, read_slice, scan
from medcolor.types import Series, SliceRef

from tests.conftest import BEEF, CT_DIR, XRAY  # noqa: E402
from tests.conftest import MR as MR_J2K  # noqa: E402
from tests.conftest import PYDICOM_FILES as PYD  # noqa: E402


def _data_store() -> Path | None:
    spec = importlib.util.find_spec("data_store")
    if spec is None or spec.origin is None:
        return None
    d = Path(spec.origin).parent / "data"
    return d if (d / "emri_small.dcm").exists() else None


STORE = _data_store()
needs_store = pytest.mark.skipif(STORE is None, reason="pydicom-data is not installed")


def _raw(path: Path, frame: int | None = None) -> np.ndarray:
    arr = pydicom.dcmread(path).pixel_array
    return arr if frame is None else arr[frame]


def _only_series(paths) -> Series:  # noqa: ANN001
    res = scan(paths if isinstance(paths, list) else [paths])
    assert len(res.series) == 1, [(s.source_label, len(s.slices)) for s in res.series] + res.outcomes
    return res.series[0]


def _reason(res, name: str) -> str:  # noqa: ANN001
    hits = [o for o in res.outcomes if Path(o.path).name == name]
    assert hits, f"{name} not accounted for: {res.outcomes}"
    return f"{hits[0].status}: {hits[0].reason}"


@pytest.fixture
def ct_copy(tmp_path: Path) -> Path:
    """The 6 sample CT slices copied under shuffled, meaningless names."""
    out = tmp_path / "ct"
    out.mkdir()
    names = [f"x{i:02d}" for i in range(6)]
    random.Random(7).shuffle(names)
    for src, name in zip(sorted(CT_DIR.glob("*.dcm")), names):
        shutil.copy(src, out / name)
    return out


# ---------------------------------------------------------------- grouping and sorting

def test_ct_series_fields_and_position_order(ct_copy: Path) -> None:
    s = _only_series(ct_copy)
    assert (s.kind, s.modality, s.rows, s.columns, len(s.slices)) == ("dicom", "CT", 512, 512, 6)
    assert s.is_hu and s.photometric == "MONOCHROME2" and s.bits == 12
    assert s.file_windows == [(40.0, 350.0), (-600.0, 1200.0)]
    assert s.pixel_spacing is not None and s.pixel_spacing[0] == pytest.approx(0.6465, abs=1e-3)
    assert s.series_instance_uid and s.study_instance_uid
    assert s.source_label == str(ct_copy)
    z = [ref.position[2] for ref in s.slices]
    assert z == sorted(z) and len(set(z)) == 6      # ascending along the normal (0, 0, 1)
    assert all(ref.dataset is not None and "PixelData" not in ref.dataset for ref in s.slices)
    assert s.warnings == []


def test_scan_pauses_the_cyclic_gc_and_restores_it(ct_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan runs without cyclic collections (they would walk every header read so far) and leaves the
    collector as it found it, also when a header fails; gc_frozen lets go of what it froze."""
    import gc

    from medcolor.io import _dicom, gc_frozen

    states: list[bool] = []
    real = _dicom.read_header
    monkeypatch.setattr(_dicom, "read_header", lambda *a: states.append(gc.isenabled()) or real(*a))
    assert gc.isenabled()
    assert len(_only_series(ct_copy).slices) == 6
    assert states == [False] * 6 and gc.isenabled() and gc.get_freeze_count() == 0   # nothing left frozen
    gc.disable()
    try:
        scan([ct_copy])
        assert not gc.isenabled()   # a caller's choice is kept
    finally:
        gc.enable()
    (ct_copy / "x00").write_bytes((ct_copy / "x00").read_bytes()[:400])   # a header that fails
    assert any(o.status == "failed" for o in scan([ct_copy]).outcomes) and gc.isenabled()
    with gc_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_sort_by_position_beats_instance_number_and_file_name(tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    for i, src in enumerate(sorted(CT_DIR.glob("*.dcm"))):
        ds = pydicom.dcmread(src)
        ds.InstanceNumber = (i * 5) % 6 + 1           # scrambled instance numbers
        ds.save_as(out / f"{chr(ord('z') - i)}.dcm")   # names in reverse order
    s = _only_series(out)
    z = [ref.position[2] for ref in s.slices]
    assert z == sorted(z)


def test_without_positions_sorted_by_instance_number_with_warning(tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    order = [3, 1, 6, 2, 5, 4]
    for n, src in zip(order, sorted(CT_DIR.glob("*.dcm"))):
        ds = pydicom.dcmread(src)
        del ds.ImagePositionPatient
        ds.InstanceNumber = n
        ds.save_as(out / f"f{n}.dcm")
    s = _only_series(out)
    assert [r.instance_number for r in s.slices] == [1, 2, 3, 4, 5, 6]
    assert any("InstanceNumber" in w for w in s.warnings)


def test_localizer_and_other_size_become_their_own_series(ct_copy: Path) -> None:
    src = sorted(ct_copy.iterdir())[0]
    loc = pydicom.dcmread(src)
    loc.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]        # coronal scout, same SeriesInstanceUID
    loc.SOPInstanceUID = uid.generate_uid()
    loc.save_as(ct_copy / "scout")
    small = pydicom.dcmread(src)
    arr = small.pixel_array[::2, ::2].copy()
    small.Rows, small.Columns = arr.shape
    small.PixelData = arr.tobytes()
    small.SOPInstanceUID = uid.generate_uid()
    small.save_as(ct_copy / "small")
    res = scan([ct_copy])
    sizes = sorted((len(s.slices), s.rows, s.columns) for s in res.series)
    assert sizes == [(1, 256, 256), (1, 512, 512), (6, 512, 512)]
    assert len(res.series[0].slices) == 6                     # the larger part first
    assert all(any("split" in w for w in s.warnings) for s in res.series)
    assert {s.series_instance_uid for s in res.series} == {loc.SeriesInstanceUID}
    assert res.outcomes == []


def test_duplicate_dropped_with_warning_and_outcome(ct_copy: Path) -> None:
    first = sorted(ct_copy.iterdir())[0]
    shutil.copy(first, ct_copy / "zz_copy.dcm")
    res = scan([ct_copy])
    s = res.series[0]
    assert len(res.series) == 1 and len(s.slices) == 6
    assert len({r.sop_instance_uid for r in s.slices}) == 6
    assert any("duplicate" in w for w in s.warnings)
    assert "skipped: duplicate" in _reason(res, "zz_copy.dcm")
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    for text in s.warnings:                                   # no patient data in messages
        for value in (str(ds.PatientName), str(ds.PatientID)):
            assert not value or value not in text


def test_inputs_files_globs_and_missing(tmp_path: Path) -> None:
    res = scan([str(CT_DIR / "1-1[23].dcm"), CT_DIR / "1-14.dcm", tmp_path / "nope", str(tmp_path / "*.xyz")])
    assert len(res.series) == 1 and len(res.series[0].slices) == 3
    assert sorted(o.reason for o in res.outcomes) == ["no file matches this pattern", "no such file or folder"]
    assert all(o.status == "failed" for o in res.outcomes)


# ---------------------------------------------------------------- skipped and failed inputs

def test_not_dicom_files_are_never_empty_datasets(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "zeros.dcm").write_bytes(bytes(4096))
    (tmp_path / "zeros_short").write_bytes(bytes(64))
    (tmp_path / "notes.txt").write_text("hello\nthis is not DICOM\n" * 20)
    (tmp_path / "photo_noext").write_bytes(BEEF.read_bytes())
    res = scan([tmp_path])
    assert res.series == []
    for name in ("empty.dcm", "zeros.dcm", "zeros_short", "notes.txt", "photo_noext"):
        assert _reason(res, name).startswith("skipped: not DICOM")


def test_skips_dicomdir_no_pixels_and_colour() -> None:
    files = [PYD / "dicomdirtests" / "DICOMDIR", PYD / "rtstruct.dcm", PYD / "test-SR.dcm",
             PYD / "SC_rgb_rle.dcm", PYD / "examples_palette.dcm", PYD / "SC_ybr_full_422_uncompressed.dcm",
             PYD / "ExplVR_LitEndNoMeta.dcm"]
    res = scan(files)
    assert res.series == []
    assert "DICOMDIR" in _reason(res, "DICOMDIR")
    assert _reason(res, "rtstruct.dcm") == "skipped: no pixel data (RTSTRUCT)"
    assert _reason(res, "test-SR.dcm").startswith("skipped: no pixel data")
    assert _reason(res, "SC_rgb_rle.dcm") == "skipped: already colour (RGB)"
    assert _reason(res, "examples_palette.dcm") == "skipped: already colour (PALETTE COLOR)"
    assert _reason(res, "SC_ybr_full_422_uncompressed.dcm").startswith("skipped: already colour (YBR")
    # no preamble, no meta, parsed leniently: an RT Plan, so no pixel data
    assert _reason(res, "ExplVR_LitEndNoMeta.dcm") == "skipped: no pixel data (RTPLAN)"


def test_lenient_no_meta_image_is_read(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYD / "CT_small.dcm")
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    target = tmp_path / "raw_dataset"
    pydicom.dcmwrite(target, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    assert target.read_bytes()[128:132] != b"DICM" and target.read_bytes()[:2] == b"\x08\x00"
    s = _only_series(target)
    assert s.modality == "CT" and s.is_hu
    expected = pydicom.dcmread(PYD / "CT_small.dcm").pixel_array.astype(np.float32) - 1024
    np.testing.assert_array_equal(read_slice(s.slices[0], s), expected)
    # pydicom's no_meta.dcm (as shipped with pydicom 3.0) does not parse to a plausible data set:
    # it is accounted for and never becomes an empty series
    res = scan([PYD / "no_meta.dcm"])
    assert res.series == [] or all(len(x.slices) > 0 for x in res.series)
    assert len(res.outcomes) + len(res.series) == 1


def _assert_one_line_naming(err: MedcolorError, path: Path) -> None:
    text = str(err)
    assert str(path) in text and "\n" not in text and "Traceback" not in text


def test_mr_truncated_fails_at_scan_and_read_slice_raises() -> None:
    path = PYD / "MR_truncated.dcm"
    res = scan([path])
    assert res.series == []
    assert _reason(res, "MR_truncated.dcm").startswith("failed: pixel data truncated")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    series = Series(kind="dicom", modality="MR", rows=64, columns=64, slices=[])
    with pytest.raises(MedcolorError) as info:
        read_slice(SliceRef(path=path, dataset=ds), series)
    _assert_one_line_naming(info.value, path)


def test_truncated_copies(tmp_path: Path) -> None:
    data = (CT_DIR / "1-12.dcm").read_bytes()
    (tmp_path / "cut_pixels.dcm").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "cut_header.dcm").write_bytes(data[:400])
    res = scan([tmp_path])
    assert res.series == []
    assert _reason(res, "cut_pixels.dcm").startswith("failed: pixel data truncated")
    assert _reason(res, "cut_header.dcm").startswith("failed:")
    # a file truncated after the scan: read_slice raises a one-line error naming it
    good = tmp_path / "later.dcm"
    good.write_bytes(data)
    s = _only_series(good)
    good.write_bytes(data[:-1000])
    with pytest.raises(MedcolorError) as info:
        read_slice(s.slices[0], s)
    _assert_one_line_naming(info.value, good)


def test_absurd_size_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_DIR / "1-12.dcm")
    ds.Rows, ds.Columns = 60000, 60000
    ds.save_as(tmp_path / "huge.dcm")
    ds.Rows, ds.Columns = 4000, 4000
    ds.save_as(tmp_path / "big.dcm")
    res = scan([tmp_path])
    assert res.series == []
    assert "too large" in _reason(res, "huge.dcm")
    assert "truncated" in _reason(res, "big.dcm")


def test_expand_inputs_lists_each_file_once_through_links_and_repeats(tmp_path: Path) -> None:
    from medcolor.io import expand_inputs

    d = tmp_path / "ct"
    shutil.copytree(CT_DIR, d)
    first = sorted(d.glob("*.dcm"))[0]
    (tmp_path / "link.dcm").symlink_to(first)
    (tmp_path / "linkdir").symlink_to(d, target_is_directory=True)
    files, missing = expand_inputs([d, first, tmp_path / "link.dcm", tmp_path / "linkdir",
                                    tmp_path / "ct" / ".." / "ct" / first.name, tmp_path / "nothing"])
    assert sorted(p.name for p in files) == sorted(p.name for p in d.glob("*.dcm"))
    assert [m.status for m in missing] == ["failed"]


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm",
                                  "MR_small_padded.dcm"])
def test_pydicom_pairs_decode_identically(name: str) -> None:
    ref = _only_series(PYD / "MR_small.dcm")
    other = _only_series(PYD / name)
    expected = read_slice(ref.slices[0], ref)
    np.testing.assert_array_equal(read_slice(other.slices[0], other), expected)
    np.testing.assert_array_equal(expected, _raw(PYD / "MR_small.dcm").astype(np.float32))


def _compressed_copy(tmp_path: Path, syntax: str) -> Path:
    ds = pydicom.dcmread(CT_DIR / "1-12.dcm")
    out = tmp_path / f"ct_{syntax}.dcm"
    if syntax == uid.DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(out)
    else:
        ds.compress(syntax)
        ds.save_as(out)
    return out


@pytest.mark.parametrize("syntax", [uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless,
                                    uid.DeflatedExplicitVRLittleEndian])
def test_generated_lossless_syntaxes_match_uncompressed(tmp_path: Path, syntax: str) -> None:
    path = _compressed_copy(tmp_path, syntax)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    s = _only_series(path)
    orig = _only_series(CT_DIR / "1-12.dcm")
    np.testing.assert_array_equal(read_slice(s.slices[0], s), read_slice(orig.slices[0], orig))


@pytest.mark.skipif(shutil.which("dcmcjpeg") is None, reason="DCMTK dcmcjpeg not installed")
@pytest.mark.parametrize("option,source,lossless", [("+e1", CT_DIR / "1-12.dcm", True),
                                                    ("+eb", XRAY, False)])
def test_jpeg_process_14_and_baseline(tmp_path: Path, option: str, source: Path, lossless: bool) -> None:
    import subprocess

    out = tmp_path / "jpeg.dcm"
    subprocess.run(["dcmcjpeg", option, str(source), str(out)], check=True, capture_output=True)
    s = _only_series(out)
    orig = _only_series(source)
    got, want = read_slice(s.slices[0], s), read_slice(orig.slices[0], orig)
    if lossless:
        np.testing.assert_array_equal(got, want)
    else:
        assert np.abs(got - want).mean() < 3.0


def test_deflate_and_jpeg_extended_12bit_from_pydicom() -> None:
    s = _only_series(PYD / "image_dfl.dcm")
    a = read_slice(s.slices[0], s)
    assert a.shape == (512, 512) and a.max() > a.min()
    if shutil.which("dcmdjpeg"):  # 12-bit JPEG Extended: no permissive Python plug-in, DCMTK fallback
        s = _only_series(PYD / "JPGExtended.dcm")
        a = read_slice(s.slices[0], s)
        assert a.shape == (s.rows, s.columns) and 200 < a.max() < 300


def test_mr_jpeg2000_sample_rescale_not_hu() -> None:
    s = _only_series(MR_J2K)
    assert s.modality == "MR" and not s.is_hu and s.file_windows == [(1000.0, 2000.0)]
    ds = pydicom.dcmread(MR_J2K)
    expected = ds.pixel_array.astype(np.float32) * np.float32(float(ds.RescaleSlope)) + np.float32(
        float(ds.RescaleIntercept))
    np.testing.assert_allclose(read_slice(s.slices[0], s), expected, rtol=1e-6, atol=1e-3)


@needs_store
@pytest.mark.parametrize("name", ["emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm",
                                  "emri_small_jpeg_ls_lossless.dcm", "emri_small_big_endian.dcm"])
def test_multiframe_pairs_every_frame(name: str) -> None:
    ref = _only_series(STORE / "emri_small.dcm")
    other = _only_series(STORE / name)
    assert [r.frame for r in other.slices] == list(range(10))
    for a, b in zip(ref.slices, other.slices):
        np.testing.assert_array_equal(read_slice(b, other), read_slice(a, ref))
    np.testing.assert_array_equal(read_slice(ref.slices[3], ref), _raw(STORE / "emri_small.dcm", 3))


@needs_store
def test_jpeg2000_lossless_pair_and_monochrome1() -> None:
    a = _only_series(STORE / "MR2_UNCR.dcm")
    b = _only_series(STORE / "MR2_J2KR.dcm")
    np.testing.assert_array_equal(read_slice(a.slices[0], a), read_slice(b.slices[0], b))
    cr = _only_series(STORE / "RG1_UNCR.dcm")
    assert cr.photometric == "MONOCHROME1" and cr.modality == "CR"
    assert (cr.rows, cr.columns) == (1955, 1841)
    np.testing.assert_array_equal(read_slice(cr.slices[0], cr), _raw(STORE / "RG1_UNCR.dcm"))  # not inverted


def test_monochrome1_copy_kept_in_series_not_inverted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(XRAY)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    s = _only_series(tmp_path / "m1.dcm")
    assert s.photometric == "MONOCHROME1" and s.bits == 8 and s.modality == "DX"
    np.testing.assert_array_equal(read_slice(s.slices[0], s), _raw(XRAY).astype(np.float32))


def test_classic_multiframe_one_ref_per_frame() -> None:
    s = _only_series(PYD / "rtdose.dcm")
    raw = _raw(PYD / "rtdose.dcm")
    assert [r.frame for r in s.slices] == list(range(raw.shape[0]))
    assert "RescaleSlope" not in pydicom.dcmread(PYD / "rtdose.dcm", stop_before_pixels=True)
    for f in (0, 4, raw.shape[0] - 1):                       # identity modality LUT, only frame f
        np.testing.assert_array_equal(read_slice(s.slices[f], s), raw[f].astype(np.float32))


# ---------------------------------------------------------------- modality LUT and enhanced objects

def test_ct_values_are_hounsfield() -> None:
    s = _only_series(CT_DIR)
    a = read_slice(s.slices[0], s)
    assert a.dtype == np.float32 and a.shape == (512, 512)
    np.testing.assert_array_equal(a, _raw(s.slices[0].path).astype(np.float32) - 1024)  # intercept -1024
    assert a[:20, :20].mean() < -900                         # air outside the patient is about -1000 HU


@needs_store
def test_modality_lut_sequence_applied() -> None:
    path = STORE / "mlut_18.dcm"
    ds = pydicom.dcmread(path)
    assert "ModalityLUTSequence" in ds
    s = _only_series(path)
    expected = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    got = read_slice(s.slices[0], s)
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, ds.pixel_array.astype(np.float32))


@needs_store
def test_enhanced_ct_geometry_windows_and_per_frame_rescale(tmp_path: Path) -> None:
    src = STORE / "eCT_Supplemental.dcm"
    s = _only_series(src)
    assert len(s.slices) == 2 and not s.is_hu                # RescaleType "US" (rCBF map), not HU
    assert s.file_windows == [(49.0, 102.0)]
    assert s.pixel_spacing == pytest.approx((0.388672, 0.388672))
    normal = np.array([0.0, 0.0, -1.0])                       # cross of IOP (-1,0,0) x (0,1,0)
    proj = [float(np.dot(normal, r.position)) for r in s.slices]
    assert proj == sorted(proj) and s.slices[0].position != s.slices[1].position
    raw = _raw(src)
    for ref in s.slices:                                       # shared rescale: intercept -1024
        np.testing.assert_array_equal(read_slice(ref, s), raw[ref.frame].astype(np.float32) - 1024)

    ds = pydicom.dcmread(src)
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pv = pydicom.Dataset()
        pv.RescaleSlope, pv.RescaleIntercept, pv.RescaleType = (1 + i), (-1000 - 10 * i), "HU"
        item.PixelValueTransformationSequence = [pv]
    ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0].RescaleType = "HU"
    ds.save_as(tmp_path / "ect_hu.dcm")
    s2 = _only_series(tmp_path / "ect_hu.dcm")
    assert s2.is_hu
    for ref in s2.slices:
        f = ref.frame
        np.testing.assert_array_equal(read_slice(ref, s2), raw[f].astype(np.float32) * (1 + f) - (1000 + 10 * f))


# ---------------------------------------------------------------- NIfTI and plain images

@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_volume_slices_oriented(tmp_path: Path, suffix: str) -> None:
    nib = pytest.importorskip("nibabel")
    vol = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)
    ras = tmp_path / f"ras{suffix}"
    nib.save(nib.Nifti1Image(vol, np.diag([0.5, 0.8, 2.0, 1.0])), ras)      # i -> R, j -> A
    lps = tmp_path / f"lps{suffix}"
    nib.save(nib.Nifti1Image(vol, np.diag([-0.5, -0.8, 2.0, 1.0])), lps)    # i -> L, j -> P
    res = scan([ras, lps])
    assert len(res.series) == 2 and res.outcomes == []
    s_ras, s_lps = res.series
    for s in (s_ras, s_lps):
        assert (s.kind, s.modality, s.rows, s.columns, len(s.slices)) == ("nifti", "OT", 3, 4, 5)
        assert [r.frame for r in s.slices] == [0, 1, 2, 3, 4]
        assert s.pixel_spacing == pytest.approx((0.8, 0.5))
    np.testing.assert_array_equal(read_slice(s_lps.slices[2], s_lps), vol[:, :, 2].T.astype(np.float32))
    np.testing.assert_array_equal(read_slice(s_ras.slices[2], s_ras), vol[::-1, ::-1, 2].T.astype(np.float32))


def test_nifti_4d_uses_first_volume(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    vol = np.random.default_rng(0).random((6, 5, 4, 3)).astype(np.float32)
    p = tmp_path / "dyn.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([-1.0, -1.0, 1.0, 1.0])), p)
    s = _only_series(p)
    assert len(s.slices) == 4 and any("first 3-D volume" in w for w in s.warnings)
    np.testing.assert_allclose(read_slice(s.slices[1], s), vol[:, :, 1, 0].T)


def test_png_gray_8_and_16_bit(tmp_path: Path) -> None:
    from PIL import Image

    g8 = (np.arange(40 * 30) % 256).astype(np.uint8).reshape(30, 40)
    Image.fromarray(g8).save(tmp_path / "g8.png")
    g16 = (np.arange(40 * 30) * 50 % 65536).astype(np.uint16).reshape(30, 40)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    res = scan([tmp_path / "g8.png", tmp_path / "g16.png"])
    s8, s16 = res.series
    assert (s8.kind, s8.modality, s8.bits, s8.rows, s8.columns) == ("image", "OT", 8, 30, 40)
    assert s16.bits == 16
    np.testing.assert_array_equal(read_slice(s8.slices[0], s8), g8.astype(np.float32))
    np.testing.assert_array_equal(read_slice(s16.slices[0], s16), g16.astype(np.float32))


def test_colour_photo_becomes_gray_with_same_lstar() -> None:
    torch = pytest.importorskip("torch")
    from PIL import Image

    from medcolor.color import srgb_to_lab

    s = _only_series(BEEF)
    assert (s.kind, s.rows, s.columns, s.bits) == ("image", 200, 230, 8)
    gray = read_slice(s.slices[0], s)
    rgb = np.asarray(Image.open(BEEF).convert("RGB"))
    lab = srgb_to_lab(torch.from_numpy(rgb.astype(np.float64) / 255).permute(2, 0, 1))
    g = torch.from_numpy(gray.astype(np.float64) / 255)[None].repeat(3, 1, 1)
    lab_g = srgb_to_lab(g)
    np.testing.assert_allclose(lab_g[0].numpy(), lab[0].numpy(), atol=1e-3)   # same L*
    # a* = b* = 0 up to medcolor.color's D65 white (rounded) vs its matrix row sums: ~0.005
    assert float(lab_g[1:].abs().max()) < 0.01


def test_read_image_rgb(tmp_path: Path) -> None:
    rgb, digest = read_image_rgb(BEEF)
    assert rgb.dtype == np.uint8 and rgb.shape == (200, 230, 3)
    assert digest == hashlib.sha256(BEEF.read_bytes()).hexdigest()
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    with pytest.raises(MedcolorError) as info:
        read_image_rgb(bad)
    _assert_one_line_naming(info.value, bad)
    with pytest.raises(MedcolorError):
        read_image_rgb(tmp_path / "missing.jpg")
    dcm_rgb, _ = read_image_rgb(PYD / "SC_rgb_rle.dcm")
    assert dcm_rgb.dtype == np.uint8 and dcm_rgb.shape == (100, 100, 3)
    assert tuple(dcm_rgb[5, 50]) == (255, 0, 0)


# ---------------------------------------------------------------- MONAI glue

def test_monai_loadimage_splits_series_and_keeps_layout(ct_copy: Path) -> None:
    from monai.transforms import LoadImage

    from medcolor.io import MedcolorReader

    loc = pydicom.dcmread(sorted(ct_copy.iterdir())[0])
    loc.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    loc.SOPInstanceUID = uid.generate_uid()
    loc.PhotometricInterpretation = "MONOCHROME1"
    loc.save_as(ct_copy / "scout")
    img = LoadImage(reader=MedcolorReader(), image_only=True)(str(ct_copy))
    assert tuple(img.shape) == (6, 512, 512) and img.meta["axis_order"] == "slices,rows,cols"
    assert img.meta["series_count"] == 2 and "largest" in img.meta["series_note"]
    s = [x for x in scan([ct_copy]).series if len(x.slices) == 6][0]
    np.testing.assert_array_equal(img[0].numpy(), read_slice(s.slices[0], s))   # no transpose
    assert img.meta["photometric"] == "MONOCHROME2" and img.meta["is_hu"]
    step = img.affine[:3, 0].numpy()
    assert step[2] == pytest.approx(8.0)                                          # slice axis along +z

    one = LoadImage(reader=MedcolorReader(), image_only=True, ensure_channel_first=True)(str(ct_copy / "scout"))
    assert tuple(one.shape) == (1, 512, 512) and one.meta["photometric"] == "MONOCHROME1"


@pytest.mark.parametrize("workers", [0, 2])
def test_slice_dataset_batches_and_reports_bad_slice(ct_copy: Path, workers: int) -> None:
    from monai.data import DataLoader

    from medcolor.io import SliceDataset

    s = _only_series(ct_copy)
    broken = s.slices[2].path
    broken.write_bytes(broken.read_bytes()[:5000])            # damaged after the scan
    batches = list(DataLoader(SliceDataset(s), batch_size=4, num_workers=workers))
    assert [tuple(b["image"].shape) for b in batches] == [(4, 1, 512, 512), (2, 1, 512, 512)]
    errors = [e for b in batches for e in b["error"]]
    assert [bool(e) for e in errors] == [False, False, True, False, False, False]
    assert str(broken) in errors[2]
    assert float(batches[0]["image"][2].abs().max()) == 0.0
    assert batches[0]["index"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(batches[1]["image"][1, 0].numpy(), read_slice(s.slices[5], s))
