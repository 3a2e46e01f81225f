"""The scan converts each distinct header value once (medcolor.io._dicom._convert_all's memo): the same
data sets as converting every element of every file, and a bad value in one file of a series still fails
that file at scan time."""
from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from medcolor.io import _dicom, scan
from tests.conftest import CT_DIR


def test_memo_gives_the_same_datasets(tmp_path: Path) -> None:
    files = sorted(CT_DIR.glob("*.dcm"))
    memo: set = set()
    with_memo = [_dicom.read_header(p, "part10", memo).dataset for p in files]
    assert memo  # the series' shared values were remembered
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
