"""medcolor.io is tolerant when reading and strict about what it uses (paired lenient/strict cases): an
invalid value in an element medcolor never reads does not stop a file; the same corruption in an attribute
it reads in every file fails that file at scan time, naming the attribute; one in an attribute read only
from the series' reference header and copied into the output is dropped with a warning, never copied."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medcolor.io import read_slice, scan

from tests.conftest import CT_DIR
from tests.test_io import _reason


def _with_replaced_element(src: Path, dst: Path, tag_vr: bytes, new: bytes) -> None:
    """A copy of explicit VR little endian ``src`` whose element starting ``tag_vr`` (tag + VR, 6 bytes, with
    a 2-byte length) is replaced by the raw bytes ``new`` (tag, VR, length and value)."""
    data = src.read_bytes()
    i = data.index(tag_vr)
    n = int.from_bytes(data[i + 6:i + 8], "little")
    dst.write_bytes(data[:i] + new + data[i + 8 + n:])


UNUSED_AND_USED = [  # (what is broken; the element, unused by medcolor; the same corruption in one it reads)
    ("unknown VR", (b"\x18\x00\x50\x00DS", b"\x18\x00\x50\x00IW\x02\x001 "),          # SliceThickness
     (b"\x20\x00\x13\x00IS", b"\x20\x00\x13\x00IW\x02\x001 "), "InstanceNumber"),
    ("binary value of a wrong length", (b"\x18\x00\x50\x00DS", b"\x18\x00\x50\x00UL\x03\x00\x01\x02\x03"),
     (b"\x08\x00\x60\x00CS", b"\x08\x00\x60\x00UL\x03\x00\x01\x02\x03"), "Modality"),
]


@pytest.mark.parametrize("what,unused,used,keyword", UNUSED_AND_USED, ids=[c[0] for c in UNUSED_AND_USED])
def test_invalid_value_tolerated_where_unused_refused_where_used(tmp_path: Path, what: str, unused: tuple,
                                                                  used: tuple, keyword: str) -> None:
    """Lenient: an invalid value in an element medcolor never reads does not stop the file (and is never
    copied to the output). Strict: the same corruption in an attribute it reads fails the file at scan
    time with one line naming the attribute; the other files of the series go on."""
    src = tmp_path / "ct"
    shutil.copytree(CT_DIR, src)
    first, second = sorted(src.glob("*.dcm"))[:2]
    _with_replaced_element(first, first, *unused)
    _with_replaced_element(second, second, *used)
    found = scan([src])
    assert [len(s.slices) for s in found.series] == [len(list(CT_DIR.glob("*.dcm"))) - 1]
    assert first in [r.path for r in found.series[0].slices]
    reason = _reason(found, second.name)
    assert reason.startswith("failed: unreadable DICOM header") and keyword in reason and "\n" not in reason
    series = found.series[0]
    ref = next(r for r in series.slices if r.path == first)
    want = pydicom.dcmread(CT_DIR / first.name).pixel_array.astype(np.float32) - 1024
    np.testing.assert_array_equal(read_slice(ref, series), want)


def test_invalid_copied_value_in_the_reference_is_dropped_cleanly(tmp_path: Path) -> None:
    """An attribute read only from a series' reference header (its first slice), to be copied into the
    output, with a value that does not convert: removed from the in-memory header with a series warning,
    never copied; the file and the series go on, and the output is valid DICOM."""
    from medcolor.pipeline import RunOptions, run

    from tests.conftest import dciodvfy_errors

    src = tmp_path / "ct"
    shutil.copytree(CT_DIR, src)
    first = scan([src]).series[0].slices[0].path
    data = first.read_bytes()
    study = data.index(b"\x08\x00\x30\x10LO")            # StudyDescription
    code = data.index(b"\x08\x00\x04\x01LO")             # CodeMeaning of the first de-identification code
    data = data[:study + 4] + b"IW" + data[study + 6:code + 4] + b"IW" + data[code + 6:]
    first.write_bytes(data)
    series = scan([src]).series[0]
    ds = series.slices[0].dataset
    assert series.slices[0].path == first and "StudyDescription" not in ds
    assert "CodeMeaning" not in ds.DeidentificationMethodCodeSequence[0]
    assert any("invalid StudyDescription, CodeMeaning" in w and first.name in w for w in series.warnings)
    result = run([src], RunOptions(output=tmp_path / "out", method="lut", reader_workers=0))
    assert not result.failed and {o.status for o in result.outcomes} == {"done"}
    out = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(out) == len(series.slices)
    written = pydicom.dcmread(out[0])
    assert "StudyDescription" not in written and written.PatientID == ds.PatientID
    assert dciodvfy_errors(out[0]) == []
    assert src.joinpath(first.name).read_bytes() == data  # the input is never modified


def test_invalid_value_in_a_functional_group_macro_is_refused(tmp_path: Path) -> None:
    """Strict in nested data too: an unknown VR on the PixelSpacing of an enhanced object's per-frame Pixel
    Measures fails the file, naming the attribute; the same in a macro medcolor never reads is tolerated."""
    ds = pydicom.dcmread(CT_DIR / "1-12.dcm")
    ds.NumberOfFrames = 1
    measures = pydicom.Dataset()
    measures.PixelSpacing = [0.7, 0.7]
    content = pydicom.Dataset()
    content.FrameAcquisitionDateTime = "20200101120000"
    group = pydicom.Dataset()
    group.PixelMeasuresSequence = pydicom.Sequence([measures])
    group.FrameContentSequence = pydicom.Sequence([content])
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([group])
    ds.save_as(tmp_path / "src.dcm", enforce_file_format=True)
    data = (tmp_path / "src.dcm").read_bytes()
    unused = data.index(b"\x18\x00\x74\x90DT")   # FrameAcquisitionDateTime, inside the sequence
    used = data.rindex(b"\x28\x00\x30\x00DS")    # PixelSpacing inside the sequence (after the top level's)
    (tmp_path / "ok.dcm").write_bytes(data[:unused + 4] + b"IW" + data[unused + 6:])
    (tmp_path / "bad.dcm").write_bytes(data[:used + 4] + b"IW" + data[used + 6:])
    found = scan([tmp_path / "ok.dcm", tmp_path / "bad.dcm"])
    assert [r.path.name for s in found.series for r in s.slices] == ["ok.dcm"]
    reason = _reason(found, "bad.dcm")
    assert reason.startswith("failed: unreadable DICOM header") and "PixelSpacing" in reason
