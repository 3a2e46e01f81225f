"""End to end through the `medcolor` command on real files: outputs, validity, ΔL, accounting, errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from skimage.color import rgb2lab
from typer.testing import CliRunner

from medcolor.cli.app import app
from tests.conftest import BEEF, CT_DIR, MR, XRAY, dciodvfy_errors, pydicom_file

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def windowed_l(ds: pydicom.Dataset, width: float, center: float) -> np.ndarray:
    """Independent DICOM LINEAR window (PS3.3 C.11.2.1.2.1) of a source CT slice, as L 0..100."""
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return np.clip((hu - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * 100


def read_outputs(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def mean_hue(ab: np.ndarray) -> float:
    c = np.hypot(ab[..., 0], ab[..., 1])
    m = c > 5
    return float(np.degrees(np.arctan2(ab[..., 1][m].mean(), ab[..., 0][m].mean())))


@pytest.mark.parametrize("method", ["exemplar", "lut"])
def test_run_ct_series_end_to_end(tmp_path: Path, method: str) -> None:
    out = tmp_path / "out"
    args = ["run", CT_DIR, "-o", out, "--method", method, "--window", "1500,-600"]
    if method == "exemplar":
        args += ["--ref", BEEF]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    sources = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in CT_DIR.glob("*.dcm"))}
    outs = read_outputs(out)
    assert len(outs) == len(sources) == 6
    dls, quart = [], []
    for ds in outs:
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        src = sources[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID
        assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert method in ds.DerivationDescription
        lab = rgb2lab(ds.pixel_array)
        expected = windowed_l(src, 1500, -600)
        body = (expected > 2) & (expected < 98)
        dls.append(np.abs(lab[..., 0] - expected)[body])
        lb = lab[..., 0][body]
        qs = np.quantile(lb, [0.25, 0.5, 0.75])
        idx = np.searchsorted(qs, lb)
        quart.append([lab[..., 1:][body][idx == q].mean(0) for q in range(4)])
    d = np.concatenate(dls)
    assert d.mean() <= 0.5 and np.quantile(d, 0.99) <= 1.5, (d.mean(), np.quantile(d, 0.99))
    q = np.mean(quart, axis=0)
    spread = max(np.hypot(*(x - y)) for x in q for y in q)
    assert spread >= 3, f"flat tint: quartile ab spread {spread:.2f}"
    assert all(dciodvfy_errors(p) == [] for p in sorted(out.rglob("*.dcm")))
    report = json.loads((out / "report.json").read_text())
    assert report["counts"] == {"done": 6, "skipped": 0, "failed": 0}
    s = report["series"][0]
    assert s["delta_l_within_bounds"] and len(s["slices"]) == 6
    assert s["summary"]["delta_l_mean"] <= 0.5
    if method == "exemplar":
        assert s["reference_sha256"] and len(s["reference_sha256"]) == 64
        ref_lab = rgb2lab(np.asarray(Image.open(BEEF).convert("RGB")))
        hues = [mean_hue(rgb2lab(ds.pixel_array)[..., 1:]) for ds in outs]
        dh = abs((np.median(hues) - mean_hue(ref_lab[..., 1:]) + 180) % 360 - 180)
        assert dh <= 35, f"output hue is {dh:.0f} degrees from the reference's"


def test_no_patient_data_in_names_or_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("run", CT_DIR, "-o", out, "--method", "lut").exit_code == 0
    pid = str(pydicom.dcmread(next(CT_DIR.glob("*.dcm"))).PatientID)
    assert all(pid not in str(p.relative_to(out)) for p in out.rglob("*"))
    assert pid not in (out / "report.json").read_text()


def test_multiframe_output_is_valid(tmp_path: Path) -> None:
    out = tmp_path / "mf"
    res = invoke("run", CT_DIR, "-o", out, "--method", "exemplar", "--multiframe", "--window", "lung")
    assert res.exit_code == 0, res.output
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 1
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4" and int(ds.NumberOfFrames) == 6
    assert dciodvfy_errors(files[0]) == []


def test_bad_inputs_get_one_line_each_and_the_rest_is_processed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(CT_DIR, folder / "ct")
    shutil.copy(pydicom_file("MR_truncated.dcm"), folder / "mr_truncated.dcm")
    shutil.copy(pydicom_file("rtstruct.dcm"), folder / "rtstruct.dcm")
    shutil.copy(pydicom_file("SC_rgb_small_odd.dcm"), folder / "rgb.dcm")
    shutil.copy(pydicom_file("no_meta.dcm"), folder / "no_meta.dcm")
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image\n")
    out = tmp_path / "out"
    res = invoke("run", folder, "-o", out, "--method", "lut")
    assert res.exit_code == 1  # the truncated file failed
    assert "Traceback" not in res.output
    report = json.loads((out / "report.json").read_text())
    status = {Path(f["path"]).name: (f["status"], f["reason"]) for f in report["files"]}
    assert {n for n, (s, _) in status.items() if s == "done"} == {p.name for p in CT_DIR.glob("*.dcm")}
    assert status["mr_truncated.dcm"][0] == "failed" and status["mr_truncated.dcm"][1]
    for name in ("rtstruct.dcm", "rgb.dcm", "empty.dcm", "notes.txt", "no_meta.dcm"):
        assert status[name][0] == "skipped" and status[name][1], name
    assert len(list(out.rglob("*.dcm"))) == 6
    assert not list(out.rglob("*.part"))
    assert "mr_truncated.dcm" in res.output


def test_existing_outputs_are_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("run", CT_DIR, "-o", out, "--method", "lut").exit_code == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")}
    res = invoke("run", CT_DIR, "-o", out, "--method", "lut")
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")} == before
    assert invoke("run", CT_DIR, "-o", out, "--method", "lut", "--overwrite").exit_code == 0


def test_hu_preset_on_mr_is_refused_with_a_clear_line(tmp_path: Path) -> None:
    res = invoke("run", MR, "-o", tmp_path / "o", "--window", "lung")
    assert res.exit_code == 1
    assert "Hounsfield" in res.output and "Traceback" not in res.output


def test_mr_and_xray_use_a_percentile_or_file_window(tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = invoke("run", MR, XRAY, "-o", out, "--method", "exemplar", "--format", "both")
    assert res.exit_code == 0, res.output
    assert len(list(out.rglob("*.dcm"))) == 2 and len(list(out.rglob("*.png"))) == 2
    for p in out.rglob("*.dcm"):
        assert dciodvfy_errors(p) == []


def test_device_cuda_without_cuda_fails_loudly(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = invoke("run", CT_DIR, "-o", tmp_path / "o", "--device", "cuda")
    assert res.exit_code == 2 and "CUDA" in res.output
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.dcm"))


def test_mistyped_method_suggests_the_right_one(tmp_path: Path) -> None:
    res = invoke("run", CT_DIR, "-o", tmp_path / "o", "--method", "exemplr")
    assert res.exit_code == 2 and "exemplar" in res.output and "Traceback" not in res.output


def test_doctor_and_presets_list_what_they_promise() -> None:
    res = invoke("doctor")
    assert res.exit_code == 0
    for text in ("JPEG 2000", "JPEG-LS", "RLE", "exemplar", "lut", "pydicom"):
        assert text in res.output
    res = invoke("presets")
    assert res.exit_code == 0
    for name in ("lung", "mediastinum", "bone", "brain", "abdomen", "liver"):
        assert name in res.output


def test_console_script_demo_runs(tmp_path: Path) -> None:
    exe = shutil.which("medcolor")
    cmd = [exe] if exe else [sys.executable, "-m", "medcolor"]
    r = subprocess.run(cmd + ["demo", "-o", str(tmp_path / "demo")], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((tmp_path / "demo").rglob("*.dcm"))) == 6
    assert len(list((tmp_path / "demo").rglob("*.png"))) == 6
    assert "Demo results" in r.stdout
