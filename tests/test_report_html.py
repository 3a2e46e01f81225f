"""report.html: self-contained, every DICOM string escaped, no patient data unless --report-phi, renders."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

from medcolor.cli.app import app
from tests.conftest import CT_DIR

runner = CliRunner()
EVIL_NAME = "<script>alert(1)</script>"
EVIL_DESC = "<script>alert(2)</script><img src=x onerror=alert(3)>"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def evil_ct(tmp_path: Path) -> Path:
    src = tmp_path / "evil"
    src.mkdir()
    for p in sorted(CT_DIR.glob("*.dcm"))[:3]:
        ds = pydicom.dcmread(p)
        ds.PatientName = EVIL_NAME
        ds.SeriesDescription = EVIL_DESC
        ds.save_as(src / p.name)
    return src


@pytest.mark.parametrize("phi", [False, True])
def test_report_html_escapes_dicom_strings(evil_ct: Path, tmp_path: Path, phi: bool) -> None:
    out = tmp_path / "out"
    args = ["run", evil_ct, "-o", out, "--method", "lut"] + (["--report-phi"] if phi else [])
    assert invoke(*args).exit_code == 0
    html = (out / "report.html").read_text()
    assert "<script" not in html.lower()
    assert "onerror=alert(3)>" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert ("alert(1)" in html) == phi                     # patient name only with --report-phi
    assert "http://" not in html and "https://" not in html and "<link" not in html  # self-contained
    imgs = re.findall(r'<img alt="([a-z ]+)" src="data:image/png;base64,', html)
    assert imgs.count("before") == 3 and imgs.count("after") == 3 and imgs.count("colour bar") == 1


def test_batch_writes_report_html(evil_ct: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("batch", evil_ct.parent, out, "--method", "lut").exit_code == 0
    html = (out / "report.html").read_text()
    assert "<script" not in html.lower() and "S001_CT" in html and "alert(1)" not in html


def test_report_html_renders_in_chromium(tmp_path: Path) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium (Debian package chromium) is not installed")
    out = tmp_path / "out"
    assert invoke("run", CT_DIR, "-o", out, "--method", "exemplar", "--window", "lung").exit_code == 0
    shot = tmp_path / "shot.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,800",
                    (out / "report.html").as_uri()], capture_output=True, timeout=90)
    assert shot.is_file()
    img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert img.shape[:2] == (800, 1000)
    assert img.std() > 20                                  # not blank
    chroma = np.abs(img[..., 0] - img[..., 2])
    assert (chroma > 20).mean() > 0.01                     # the coloured thumbnails are drawn
