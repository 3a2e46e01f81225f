"""medcolor batch: every file accounted for, resumable, SIGTERM-safe, parallel (processes, Dask)."""
from __future__ import annotations

import csv
import re
import json
import os
import shutil
import signal
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from medcolor.cli.app import app
from tests.conftest import CT_DIR, MR, PYDICOM_FILES, SAMPLE, XRAY, dciodvfy_errors, pydicom_file

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _statuses(out: Path) -> dict[str, tuple[str, str]]:
    data = json.loads((out / "batch.json").read_text())
    return {f["path"]: (f["status"], f["reason"]) for f in data["files"]}


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """The issue's folder: CT series, MR, X-ray, DICOMDIR, empty file, text file, truncated DICOM, RTSTRUCT."""
    src = tmp_path / "in"
    shutil.copytree(CT_DIR, src / "ct")
    (src / "mr").mkdir()
    shutil.copy(MR, src / "mr" / "shoulder.dcm")  # the sample's name holds its PatientName: redacted in reports
    shutil.copytree(SAMPLE / "xray_chest", src / "xr")
    (src / "media").mkdir()
    shutil.copy(pydicom_file("dicomdirtests/DICOMDIR"), src / "media" / "DICOMDIR")
    (src / "empty.dcm").write_bytes(b"")
    (src / "notes.txt").write_text("not an image\n")
    shutil.copy(pydicom_file("MR_truncated.dcm"), src / "truncated.dcm")
    shutil.copy(pydicom_file("rtstruct.dcm"), src / "rtstruct.dcm")
    return src


def test_batch_accounts_for_every_file_and_resumes(mixed_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = invoke("batch", mixed_folder, out, "--method", "lut")
    assert res.exit_code == 1, res.output       # only the truncated file fails
    inputs = sorted(p.relative_to(mixed_folder).as_posix() for p in mixed_folder.rglob("*") if p.is_file())
    st = _statuses(out)
    assert sorted(st) == inputs                 # every file, once
    failed = {k for k, v in st.items() if v[0] == "failed"}
    assert failed == {"truncated.dcm"}
    assert "truncated" in st["truncated.dcm"][1]
    assert st["empty.dcm"] == ("skipped", "not DICOM (empty file)")
    assert st["notes.txt"][0] == "skipped"
    assert st["media/DICOMDIR"][0] == "skipped" and "DICOMDIR" in st["media/DICOMDIR"][1]
    assert st["rtstruct.dcm"][0] == "skipped" and "RTSTRUCT" in st["rtstruct.dcm"][1]
    assert all(v[0] == "done" for k, v in st.items() if k.startswith(("ct/", "mr/", "xr/")))
    # valid SC for every image series (CT 6 slices, MR 1, X-ray 1)
    outs = sorted(out.glob("S*/*.dcm"))
    assert len(outs) == 8
    for p in outs:
        assert dciodvfy_errors(p) == [], p
    # csv mirrors json; no absolute input path, no patient name anywhere
    rows = list(csv.DictReader((out / "batch.csv").open()))
    assert {r["path"]: r["status"] for r in rows} == {k: v[0] for k, v in st.items()}
    names = set()
    for p in list(mixed_folder.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:
            continue
        for part in str(ds.get("PatientName", "")).replace("^", " ").split():
            if len(part) >= 3:
                names.add(part.lower())
    for f in ("batch.json", "batch.csv", "report.json", "report.html"):
        text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", (out / f).read_text()).lower()  # images aside
        assert str(mixed_folder).lower() not in text
        assert not [n for n in names if n in text], f
    markers = list((out / ".medcolor" / "done").glob("*.json"))
    assert len(markers) == 3

    # second run: no work, same accounting
    mtimes = {p: p.stat().st_mtime_ns for p in outs}
    res = invoke("batch", mixed_folder, out, "--method", "lut")
    assert res.exit_code == 1, res.output
    data = json.loads((out / "batch.json").read_text())
    assert data["series_coloured"] == 0 and data["series_resumed"] == 3
    st2 = _statuses(out)
    assert sorted(st2) == inputs
    assert {k for k, v in st2.items() if v[0] == "failed"} == {"truncated.dcm"}
    assert all(v == ("skipped", v[1]) and "already done" in v[1] for k, v in st2.items() if k.startswith("ct/"))
    assert {p: p.stat().st_mtime_ns for p in outs} == mtimes

    # other parameters: a new output series, the old one kept
    res = invoke("batch", mixed_folder / "xr", out, "--method", "lut", "--window", "percentile:2,98")
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("S*_DX"))) == 2

    # --overwrite redoes the same series in place
    res = invoke("batch", mixed_folder / "ct", out, "--method", "lut", "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "batch.json").read_text())["series_coloured"] == 1
    assert len(list(out.glob("S*/*.dcm"))) == 9


def test_batch_deidentify_refuses_burned_in(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(CT_DIR, src / "ct")
    (src / "xr").mkdir()
    ds = pydicom.dcmread(XRAY)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(src / "xr" / "burned.dcm")
    out = tmp_path / "out"
    res = invoke("batch", src, out, "--method", "lut", "--deidentify", "--workers", "2")
    assert res.exit_code == 1, res.output
    st = _statuses(out)
    assert st["xr/burned.dcm"][0] == "failed" and "BurnedInAnnotation" in st["xr/burned.dcm"][1]
    outs = [pydicom.dcmread(p) for p in sorted(out.glob("S*/*.dcm"))]
    assert len(outs) == 6
    src_study = pydicom.dcmread(next(CT_DIR.glob("*.dcm"))).StudyInstanceUID
    assert {o.StudyInstanceUID for o in outs} != {src_study}
    assert len({o.StudyInstanceUID for o in outs}) == 1      # one UID map per batch, across workers
    assert all(o.PatientIdentityRemoved == "YES" for o in outs)


def test_batch_sigterm_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    from medcolor.writers import dicom_sc

    real_write = dicom_sc.SecondaryCaptureWriter.write
    calls = {"n": 0}

    def write(self, index, ref, rgb):
        calls["n"] += 1
        out = real_write(self, index, ref, rgb)
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(dicom_sc.SecondaryCaptureWriter, "write", write)
    out = tmp_path / "out"
    res = invoke("batch", CT_DIR, out, "--method", "lut", "--batch-size", "1")
    assert res.exit_code == 130, res.output
    left = [p for p in out.rglob("*") if p.is_file() and ".medcolor" not in p.parts]
    assert left == []
    assert not list((out / ".medcolor" / "done").glob("*.json"))
    monkeypatch.setattr(dicom_sc.SecondaryCaptureWriter, "write", real_write)
    res = invoke("batch", CT_DIR, out, "--method", "lut")           # the rerun finishes the job
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("S*/*.dcm"))) == 6


def test_batch_on_dask_local_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "in"
    shutil.copytree(CT_DIR, src / "ct")
    shutil.copy(XRAY, src / "xr.dcm")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp://",
                                  dashboard_address=None) as cluster:
        res = invoke("batch", src, out, "--method", "lut", "--scheduler", cluster.scheduler_address)
    assert res.exit_code == 0, res.output
    st = _statuses(out)
    assert len(st) == 7 and all(v[0] == "done" for v in st.values())
    assert len(list(out.glob("S*/*.dcm"))) == 7
