"""PHI audit: patient identity never reaches output names, log lines, CLI output, report.json or
report.html (unless --report-phi), and private tags are never copied into outputs."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from medcolor.pipeline import RunOptions, run
from tests.conftest import CT_DIR

NAME = "Zyxwvut^Qwerty"
PID = "PID-987654321"
OTHER = "OPID-24681357"
BIRTH = "19010203"
PRIVATE_TEXT = "PRIVSECRET-ABC123"
# every string that must not leak (name parts too: logs could split the PN)
TERMS = ["Zyxwvut", "Qwerty", PID, OTHER, PRIVATE_TEXT]


def make_phi_series(root: Path, n: int = 3) -> Path:
    """Copies of the first ``n`` sample CT slices with distinctive patient data and private tags, in a
    folder named after the patient (as archives often are)."""
    folder = root / f"{NAME}_{PID}_{BIRTH}" / f"{OTHER}"
    folder.mkdir(parents=True)
    for k, src in enumerate(sorted(CT_DIR.glob("*.dcm"))[:n]):
        ds = pydicom.dcmread(src)
        ds.PatientName = NAME
        ds.PatientID = PID
        ds.OtherPatientIDs = [OTHER, "OPID-2"]
        ds.PatientBirthDate = BIRTH
        block = ds.private_block(0x0011, "MEDCOLOR PHI TEST", create=True)
        block.add_new(0x01, "LO", PRIVATE_TEXT)
        block.add_new(0x02, "LO", PID)
        ds.add_new(0x00191010, "LO", PRIVATE_TEXT)  # a private element without a creator
        ds.save_as(folder / f"{NAME}_{k}.dcm")
    # a bad file in the same folder: its error message carries the path
    (folder / f"{PID}_broken.dcm").write_bytes((folder / f"{NAME}_0.dcm").read_bytes()[:2000])
    return folder.parent


def leaks(text: str) -> list[str]:
    return [t for t in TERMS if t.lower() in text.lower()]


def audit_outputs(out: Path, *, contents: bool) -> None:
    for p in out.rglob("*"):
        assert not leaks(str(p.relative_to(out))), p
    for name in ("report.json", "report.html"):
        f = out / name
        if f.is_file():
            assert not leaks(f.read_text(encoding="utf-8")), (name, leaks(f.read_text(encoding="utf-8")))
    assert (out / "report.json").is_file()
    dcm = sorted(out.rglob("*.dcm"))
    assert dcm
    for p in dcm:
        ds = pydicom.dcmread(p)
        private = [str(e.tag) for e in ds.iterall() if e.tag.is_private]
        assert not private, (p.name, private)
        assert PRIVATE_TEXT.encode() not in p.read_bytes()
        if contents:  # --deidentify: not even inside the DICOM
            data = p.read_bytes().decode("latin-1").lower()
            assert not [t for t in TERMS + [BIRTH] if t.lower() in data], p.name


@pytest.mark.parametrize("deidentify", [False, True])
def test_pipeline_leaks_no_phi(tmp_path: Path, caplog: pytest.LogCaptureFixture, deidentify: bool) -> None:
    src = make_phi_series(tmp_path / "in")
    out = tmp_path / "out"
    events: list[str] = []
    with caplog.at_level(logging.DEBUG):
        result = run([src], RunOptions(output=out, method="lut", deidentify=deidentify, reader_workers=0),
                     progress=lambda *a, **k: events.append(repr(a) + repr(k)))
    assert result.counts() == {"done": 3, "skipped": 0, "failed": 1}
    audit_outputs(out, contents=deidentify)
    lines = [r.getMessage() for r in caplog.records]
    assert not [ln for ln in lines if leaks(ln)]
    for o in result.outcomes:  # what a caller (the CLI, batch) shows
        assert not leaks(o.reason), o.reason
    for s in result.series:
        assert not leaks(json.dumps(s.__dict__, default=str))
    progress_text = "\n".join(events)
    assert not [t for t in ("Zyxwvut", "Qwerty", OTHER) if t in progress_text], "progress events carry PHI"


def _cli_run(tmp_path: Path, *extra: str):
    from medcolor.cli.app import app

    src = make_phi_series(tmp_path / "in")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [*extra, "run", str(src), "-o", str(out), "--method", "lut"])
    assert res.exit_code == 1, res.output  # the broken file
    assert "broken" in res.output
    return res, out


def test_cli_outputs_leak_no_phi(tmp_path: Path) -> None:
    _res, out = _cli_run(tmp_path, "--debug")
    audit_outputs(out, contents=False)


def test_cli_console_leaks_no_phi(tmp_path: Path) -> None:
    res, _out = _cli_run(tmp_path)
    assert not leaks(res.output), leaks(res.output)


def test_report_phi_allows_identity_in_report(tmp_path: Path) -> None:
    src = make_phi_series(tmp_path / "in")
    out = tmp_path / "out"
    run([src], RunOptions(output=out, method="lut", report_phi=True, reader_workers=0))
    report = (out / "report.json").read_text(encoding="utf-8")
    assert PID in report and "Zyxwvut" in report
    for p in out.rglob("*"):  # names stay counters even then
        assert not leaks(str(p.relative_to(out)))
    for p in out.rglob("*.dcm"):
        assert not [e for e in pydicom.dcmread(p).iterall() if e.tag.is_private]


def test_birth_date_in_path_is_redacted(tmp_path: Path) -> None:
    src = make_phi_series(tmp_path / "in")
    out = tmp_path / "out"
    run([src], RunOptions(output=out, method="lut", reader_workers=0))
    assert BIRTH not in (out / "report.json").read_text(encoding="utf-8")


def test_sources_untouched(tmp_path: Path) -> None:
    src = make_phi_series(tmp_path / "in")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    run([src], RunOptions(output=tmp_path / "out", method="lut", reader_workers=0))
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    shutil.rmtree(tmp_path / "out")
