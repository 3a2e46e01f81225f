"""Every case of the bad-input corpus (tests/data/bad, made by tests/make_bad_corpus.py) through the real
pipeline: the expected status and reason for every file, the number of outputs, no traceback, no
partial file, nothing written outside the output folder."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from skimage.color import rgb2lab
from typer.testing import CliRunner

from medcolor.pipeline import RunOptions, run

BAD = Path(__file__).resolve().parent / "data" / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text()) if (BAD / "expected.json").is_file() else {}


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def run_case(case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    spec = EXPECTED[case]
    src = tmp_path / "in" / case
    shutil.copytree(BAD / case, src)
    before = _snapshot(src)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):  # what a user sees without --debug
        result = run([src], RunOptions(output=out, method="lut", window=spec.get("window"), reader_workers=0,
                                        deidentify=bool(spec.get("deidentify"))))
    assert _snapshot(src) == before, "an input was modified or something was written next to the inputs"
    return spec, result, out


def check_common(spec: dict, result, out: Path, tmp_path: Path, caplog) -> dict:
    status = {Path(o.path).name: o for o in result.outcomes}
    assert set(status) == set(spec["files"]), (sorted(status), sorted(spec["files"]))
    for name, want in spec["files"].items():
        got = status[name]
        assert got.status == want["status"], f"{name}: {got.status} ({got.reason}), expected {want}"
        assert want["reason"].lower() in got.reason.lower(), f"{name}: reason {got.reason!r}, expected {want}"
        if got.status != "done":
            assert got.reason and "\n" not in got.reason and "Traceback" not in got.reason, got.reason
    dcm = sorted(out.rglob("*.dcm"))
    assert len(dcm) == spec["outputs"], [str(p) for p in dcm]
    if spec.get("series") is not None:
        assert len([s for s in result.series if s.outputs]) == spec["series"]
    # never a partial file, never a file outside the output folder
    assert not list(out.rglob("*.part")) and not [p for p in out.rglob(".*") if p.is_file()]
    root = out.resolve()
    for p in out.rglob("*"):
        assert p.resolve().is_relative_to(root), p
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    outside = {p for p in written if not p.resolve().is_relative_to(root)
               and not p.resolve().is_relative_to((tmp_path / "in").resolve())}
    assert not outside, outside
    for p in dcm:  # every output is readable DICOM with no private tags
        ds = pydicom.dcmread(p)
        assert not any(e.tag.is_private for e in ds.iterall())
        assert p.relative_to(out).parts[0].startswith("S0")
    assert "Traceback" not in caplog.text
    report = json.loads((out / "report.json").read_text())
    for f in report["files"]:
        assert "\n" not in f["reason"]
    return report


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_input_case(case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec, result, out = run_case(case, tmp_path, caplog)
    report = check_common(spec, result, out, tmp_path, caplog)
    expect_failed = any(f["status"] == "failed" for f in spec["files"].values())
    assert result.failed == expect_failed
    if "series_warning" in spec:
        text = " ".join(w for s in report["series"] for w in s["warnings"])
        assert spec["series_warning"] in text, text
    if "window_text" in spec:
        assert spec["window_text"] in report["series"][0]["window"], report["series"][0]["window"]
    if "no_raw_html" in spec:
        html = out / "report.html"
        texts = [(out / "report.json").read_text()] + ([html.read_text()] if html.is_file() else [])
        if html.is_file():
            assert spec["no_raw_html"] not in html.read_text()
        assert texts
    if "inverted_vs" in spec or "same_as" in spec:
        ref_name = spec.get("inverted_vs") or spec["same_as"]
        ref_case, ref_file = ref_name.split("/")
        ref_out = tmp_path / "ref_out"
        src = tmp_path / "ref_in"
        src.mkdir()
        shutil.copy(BAD / ref_case / ref_file, src / ref_file)
        run([src], RunOptions(output=ref_out, method="lut", window=spec.get("window"), reader_workers=0))
        l_ref = rgb2lab(pydicom.dcmread(next(ref_out.rglob("*.dcm"))).pixel_array)[..., 0]
        l_got = rgb2lab(pydicom.dcmread(next(out.rglob("*.dcm"))).pixel_array)[..., 0]
        target = 100.0 - l_ref if "inverted_vs" in spec else l_ref
        assert np.abs(l_got - target).mean() < 1.0, np.abs(l_got - target).mean()


def test_corpus_is_complete_and_small() -> None:
    assert len(EXPECTED) >= 30
    assert all((BAD / c).is_dir() and any((BAD / c).iterdir()) for c in EXPECTED)
    total = sum(p.stat().st_size for p in BAD.rglob("*") if p.is_file())
    assert total < 3_000_000, total


CLI_CASES = ["truncated_with_good", "not_dicom", "enormous", "uid_slashes", "script_in_names"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_one_line_per_bad_file(case: str, tmp_path: Path) -> None:
    from medcolor.cli.app import app

    spec = EXPECTED[case]
    src = tmp_path / "in"
    shutil.copytree(BAD / case, src)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(src), "-o", str(out), "--method", "lut"])
    failed = [n for n, f in spec["files"].items() if f["status"] == "failed"]
    # exit 1 when a file failed; every input skipped for a reason is exit 0, as the README says (issue 15)
    assert res.exit_code == (1 if failed else 0), res.output
    assert "Traceback" not in res.output
    for name in failed:
        assert name in res.output
    assert not list(out.rglob("*.part"))
    assert len(list(out.rglob("*.dcm"))) == spec["outputs"]
    for p in out.rglob("*"):
        assert p.resolve().is_relative_to(out.resolve())


if __name__ == "__main__":  # quick look at what every case does now: python tests/test_bad_inputs.py
    import tempfile

    for case in sorted(EXPECTED):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in" / case
            shutil.copytree(BAD / case, src)
            r = run([src], RunOptions(output=Path(tmp) / "out", method="lut", window=EXPECTED[case].get("window"),
                                      reader_workers=0, deidentify=bool(EXPECTED[case].get("deidentify"))))
            n = len(list((Path(tmp) / "out").rglob("*.dcm")))
            print(f"== {case}: outputs {n} (want {EXPECTED[case]['outputs']})",
                  [s.window for s in r.series], [w for s in r.series for w in s.warnings][:2])
            for o in r.outcomes:
                want = EXPECTED[case]["files"].get(o.path.name, {})
                mark = "" if want.get("status") == o.status and want.get("reason", "").lower() in o.reason.lower() else "  <-- MISMATCH " + str(want)
                print(f"   {o.path.name}: {o.status} {o.reason[:150]}{mark}")
