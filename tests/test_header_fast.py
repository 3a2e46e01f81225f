"""medcolor.io._header reads a header as ``pydicom.dcmread(fp, stop_before_pixels=True)`` does, or declines
(None) and leaves the file to dcmread: checked on every DICOM file of the test data, the fuzz regressions
and the bad-input corpus, pydicom's own test files, and with sequences shared between the files of a
series."""
from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from medcolor.io import _header
from medcolor.io._dicom import ScanMemo, read_header
from tests.conftest import CT_DIR, SAMPLE

ROOT = Path(__file__).resolve().parent


def _files() -> list[Path]:
    roots = [SAMPLE, ROOT / "data", Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import pydicom_data  # noqa: F401 - the test extra's larger pydicom test files

        roots.append(Path(pydicom_data.__file__).parent)
    except ImportError:
        pass
    out = []
    for root in roots:
        out += [p for p in sorted(root.rglob("*")) if p.is_file() and p.stat().st_size < 8_000_000
                and (p.suffix.lower() in (".dcm", "") or p.read_bytes()[128:132] == b"DICM")]
    return out


FILES = _files()


def _read_both(path: Path, cache=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as fp:
            try:
                fast = _header.read_header_fast(fp, cache)
            except Exception:  # noqa: BLE001 - read_header falls back to dcmread on any exception
                fast = None
            fast_end = fp.tell()
        try:
            with open(path, "rb") as fp:
                ref = pydicom.dcmread(fp, stop_before_pixels=True)
                ref_end = fp.tell()
        except Exception as exc:  # noqa: BLE001
            ref, ref_end = exc, None
    return fast, fast_end, ref, ref_end


def _same(a, b, *, positions: bool = True) -> None:
    """Element by element: raw elements as pydicom's reader made them, sequences item by item."""
    assert list(a.keys()) == list(b.keys())
    assert a.original_encoding == b.original_encoding
    assert a._character_set == b._character_set
    for tag in a.keys():
        ea, eb = a.get_item(tag), b.get_item(tag)
        assert type(ea) is type(eb), tag
        if isinstance(ea, RawDataElement):
            if positions:
                assert ea == eb, tag
            else:
                assert ea._replace(value_tell=0) == eb._replace(value_tell=0), tag
            continue
        assert (ea.VR, ea.is_undefined_length) == (eb.VR, eb.is_undefined_length), tag
        if positions:
            assert ea.file_tell == eb.file_tell, tag
        if ea.VR == "SQ":
            assert len(ea.value) == len(eb.value)
            assert ea.value.is_undefined_length == eb.value.is_undefined_length
            for ia, ib in zip(ea.value, eb.value):
                _same(ia, ib, positions=positions)
        else:
            assert ea.value == eb.value, tag


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fast_header_is_dcmreads_or_declines(path: Path) -> None:
    fast, fast_end, ref, ref_end = _read_both(path)
    if fast is None:
        return  # dcmread reads it (the caller's fallback)
    assert not isinstance(ref, Exception), f"read a file dcmread refuses: {ref}"
    assert fast_end == ref_end
    assert fast.preamble == ref.preamble and fast.filename == ref.filename
    assert (fast.is_implicit_VR, fast.is_little_endian) == (ref.is_implicit_VR, ref.is_little_endian)
    _same(fast.file_meta, ref.file_meta)
    _same(fast, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [e.value for e in fast.iterall()] == [e.value for e in ref.iterall()]


def test_the_fast_path_reads_the_common_files() -> None:
    """Not a fallback in disguise: the sample CT, and most test files, take the fast path."""
    assert all(_read_both(p)[0] is not None for p in sorted(CT_DIR.glob("*.dcm")))
    taken = sum(_read_both(p)[0] is not None for p in FILES)
    assert taken > len(FILES) // 2


def test_sequences_shared_between_the_files_of_a_series(tmp_path: Path) -> None:
    """A series whose files repeat an undefined-length sequence byte for byte, at other offsets (UIDs of
    other lengths before it): read once, then handed back; the headers equal dcmread's."""
    src = pydicom.dcmread(sorted(CT_DIR.glob("*.dcm"))[0])
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113100", "DCM", "Basic Profile"
    files = []
    for k in range(4):
        src.SOPInstanceUID = "1.2.3." + "4" * (k + 1)   # other lengths: the sequence moves
        src.DeidentificationMethodCodeSequence = pydicom.Sequence([item])
        src["DeidentificationMethodCodeSequence"].is_undefined_length = True
        src.DeidentificationMethodCodeSequence.is_undefined_length = True
        src.DeidentificationMethodCodeSequence[0].is_undefined_length_sequence_item = True
        path = tmp_path / f"{k}.dcm"
        src.save_as(path, enforce_file_format=True)
        files.append(path)
    cache = _header.SequenceCache()
    read = [_read_both(p, cache) for p in files]
    seqs = [fast["DeidentificationMethodCodeSequence"].value for fast, *_ in read]
    assert all(s is seqs[0] for s in seqs)  # read once
    for fast, fast_end, ref, ref_end in read:
        assert fast_end == ref_end
        _same(fast, ref, positions=False)
    # read_header: the same headers with a scan's memo as without one
    memo = ScanMemo()
    for p in files:
        assert read_header(p, "part10", memo).dataset == read_header(p, "part10").dataset
