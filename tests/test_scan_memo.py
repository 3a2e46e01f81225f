"""The scan converts each distinct header value once (medcolor.io._dicom._convert_all's memo): the same
data sets as converting every element of every file, and a bad value in one file of a series still fails
that file at scan time."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pydicom

from medcolor.io import _dicom, _header, scan
from tests.conftest import CT_DIR


def test_memo_gives_the_same_datasets(tmp_path: Path) -> None:
    files = sorted(CT_DIR.glob("*.dcm"))
    memo = _dicom.ScanMemo()
    with_memo = [_dicom.read_header(p, "part10", memo).dataset for p in files]
    assert memo.values  # the series' shared values were remembered
    plain = [_dicom.read_header(p, "part10").dataset for p in files]
    for a, b in zip(with_memo, plain):
        assert a == b  # pydicom compares converted values, element by element
        assert [e.value for e in a.iterall()] == [e.value for e in b.iterall()]


def test_a_bad_value_in_one_file_of_a_series_still_fails_that_file(tmp_path: Path) -> None:
    src = tmp_path / "ct"
    shutil.copytree(CT_DIR, src)
    first = sorted(src.glob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 99
    ds.save_as(tmp_path / "extra.dcm")
    data = (tmp_path / "extra.dcm").read_bytes()
    i = data.index(b"\x08\x00\x60\x00CS")  # Modality: its VR replaced by an unknown one
    (src / "zz_bad_vr.dcm").write_bytes(data[:i + 4] + b"IW" + data[i + 6:])
    found = scan([src])
    assert [len(s.slices) for s in found.series] == [len(list(CT_DIR.glob("*.dcm")))]
    bad = [o for o in found.outcomes if o.path.name == "zz_bad_vr.dcm"]
    assert len(bad) == 1 and bad[0].status == "failed" and "unreadable DICOM header" in bad[0].reason


def test_expand_inputs_lists_each_file_once_through_links_and_repeats(tmp_path: Path) -> None:
    from medcolor.io._scan import expand_inputs

    d = tmp_path / "ct"
    shutil.copytree(CT_DIR, d)
    first = sorted(d.glob("*.dcm"))[0]
    (tmp_path / "link.dcm").symlink_to(first)
    (tmp_path / "linkdir").symlink_to(d, target_is_directory=True)
    files, missing = expand_inputs([d, first, tmp_path / "link.dcm", tmp_path / "linkdir",
                                    tmp_path / "ct" / ".." / "ct" / first.name, tmp_path / "nothing"])
    assert sorted(p.name for p in files) == sorted(p.name for p in d.glob("*.dcm"))
    assert [m.status for m in missing] == ["failed"]


def test_scan_with_a_helper_process_finds_what_a_serial_scan_finds(tmp_path: Path, monkeypatch) -> None:
    """70 files (two series, a few bad files among them) scanned with the forked helper reading every
    other chunk, and serially: the same series, slices in the same order, the same outcomes."""
    from medcolor.io import _scan

    src = tmp_path / "in"
    src.mkdir()
    sources = [pydicom.dcmread(p) for p in sorted(CT_DIR.glob("*.dcm"))]
    series_uids = [pydicom.uid.generate_uid(), pydicom.uid.generate_uid()]
    for i in range(66):
        ds = sources[i % len(sources)]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = series_uids[i % 2]
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, -2.5 * i]
        ds.save_as(src / f"{i:03d}.dcm")
    (src / "010_notes.dcm").write_text("not dicom")
    (src / "020_empty.dcm").write_bytes(b"")
    data = (src / "030.dcm").read_bytes()
    (src / "031_cut.dcm").write_bytes(data[:400])
    (src / "040_zeros.dcm").write_bytes(b"\0" * 4096)

    def summary(result):
        return ([(s.series_instance_uid, [(r.path.name, r.frame) for r in s.slices]) for s in result.series],
                [(o.path.name, o.status, o.reason) for o in result.outcomes])

    calls = []
    real = _scan._helper_pool

    def spy():
        calls.append(real())
        return calls[-1]

    monkeypatch.setattr(_scan, "_helper_pool", spy)
    # threads other tests left behind would (rightly) keep the helper off: this test forks with none
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    helped = summary(scan([src]))
    monkeypatch.setattr(_scan, "PARALLEL_SCAN_MIN_FILES", 10 ** 9)
    serial = summary(scan([src]))
    assert len(calls) == 1 and calls[0] is not None and helped == serial
    assert [len(s) for _, s in helped[0]] == [33, 33] and len(helped[1]) == 4


def test_a_helper_result_whose_file_changed_is_classified_again(tmp_path: Path) -> None:
    """The helper hands back fast-path headers without their datasets; the scan reads them again, and
    classifies the file afresh when that is no longer possible (here: the file was cut short)."""
    from medcolor.io import _scan

    src = tmp_path / "a.dcm"
    shutil.copy(sorted(CT_DIR.glob("*.dcm"))[0], src)
    (result,) = _scan._classify_chunk([(0, src)])
    assert result[0] and all(c.ref.dataset is None for c in result[0])
    restored = _scan._restore(result, 0, src, _dicom.ScanMemo())
    assert restored[0][0].ref.dataset == pydicom.dcmread(src, stop_before_pixels=True)
    (result,) = _scan._classify_chunk([(0, src)])
    src.write_bytes(src.read_bytes()[:300])
    cands, series, outcome = _scan._restore(result, 0, src, _dicom.ScanMemo())
    assert not cands and outcome is not None and outcome.status == "failed"
    # rewritten with an invalid value but still readable on the fast path: not taken unchecked
    shutil.copy(sorted(CT_DIR.glob("*.dcm"))[0], src)
    (result,) = _scan._classify_chunk([(0, src)])
    data = src.read_bytes()
    i = data.index(b"\x18\x00\x50\x00DS")  # SliceThickness made a 3-byte UL: parses, fails conversion
    n = int.from_bytes(data[i + 6:i + 8], "little")
    src.write_bytes(data[:i + 4] + b"UL\x03\x00\x01\x02\x03" + data[i + 8 + n:])
    with open(src, "rb") as fp:
        assert _header.read_header_fast(fp) is not None
    os.utime(src, ns=(1, 1))
    cands, series, outcome = _scan._restore(result, 0, src, _dicom.ScanMemo())
    assert not cands and outcome is not None and outcome.status == "failed"
