"""Shared fixtures: the shipped sample data, pydicom's test files, dciodvfy."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_dicom"
CT_DIR = SAMPLE / "ct_chest"
XRAY = SAMPLE / "xray_chest" / "chest_xray.dcm"
MR = SAMPLE / "mr_shoulder" / "mr2_j2kr.dcm"
BEEF = SAMPLE / "refs" / "beef_marbled.jpg"
PYDICOM_FILES = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


def pydicom_file(name: str) -> Path:
    """One of pydicom's shipped test files, by name (never get_testdata_files: it may hit the network)."""
    p = PYDICOM_FILES / name
    if not p.is_file():
        pytest.skip(f"pydicom test file {name} not shipped with this pydicom")
    return p


def dciodvfy_errors(path: Path) -> list[str]:
    """Lines starting with 'Error' that dciodvfy prints for one file."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    r = subprocess.run([exe, str(path)], capture_output=True, text=True)
    return [line for line in (r.stdout + r.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture
def ct_copy(tmp_path: Path) -> Path:
    """A private copy of the sample CT series (tests may add files next to it)."""
    dst = tmp_path / "ct"
    shutil.copytree(CT_DIR, dst)
    return dst
