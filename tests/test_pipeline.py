"""The pipeline through its public API on real and generated files: L kept for every input kind,
MONOCHROME1, series split, PHI kept out of the report, interrupted series leave nothing behind."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from medcolor.errors import MedcolorError
from medcolor.pipeline import RunOptions, run
from tests.conftest import BEEF, CT_DIR


def _l_of(path: Path) -> np.ndarray:
    return rgb2lab(np.asarray(Image.open(path).convert("RGB")))[..., 0]


def test_gray_png_keeps_its_cie_l_exactly(tmp_path: Path) -> None:
    lab = rgb2lab(np.asarray(Image.open(BEEF).convert("RGB")))
    lab[..., 1:] = 0
    gray = (np.clip(lab2rgb(lab), 0, 1)[..., 0] * 255).round().astype(np.uint8)
    src = tmp_path / "in" / "beef_gray.png"
    src.parent.mkdir()
    Image.fromarray(gray, mode="L").save(src)
    result = run([src], RunOptions(output=tmp_path / "out", method="exemplar", fmt="png"))
    assert not result.failed
    outs = list((tmp_path / "out").rglob("*.png"))
    assert [p.name for p in outs] == ["beef_gray_color.png"]
    expected = _l_of(src)
    d = np.abs(_l_of(outs[0]) - expected)
    assert d.mean() <= 0.5 and np.quantile(d, 0.99) <= 1.5
    chroma = np.hypot(*rgb2lab(np.asarray(Image.open(outs[0]).convert("RGB")))[..., 1:].transpose(2, 0, 1))
    assert chroma.mean() > 3  # coloured, not gray


def test_monochrome1_is_inverted_after_windowing(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    ds = pydicom.dcmread(sorted(CT_DIR.glob("*.dcm"))[0])
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(src / "m1.dcm")
    result = run([src], RunOptions(output=tmp_path / "out", method="lut", window="400,40", fmt="png"))
    assert not result.failed
    out = next((tmp_path / "out").rglob("*.png"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = 100 - np.clip((hu - 39.5) / 399 + 0.5, 0, 1) * 100
    assert np.abs(_l_of(out) - expected).mean() < 0.5


def test_localizer_in_the_folder_becomes_its_own_series(tmp_path: Path, ct_copy: Path) -> None:
    ds = pydicom.dcmread(sorted(ct_copy.glob("*.dcm"))[0])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal scout
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(ct_copy / "scout.dcm")
    result = run([ct_copy], RunOptions(output=tmp_path / "out", method="lut"))
    assert not result.failed
    assert sorted(s.n_slices for s in result.series) == [1, 6]
    assert len({p.parent for p in (tmp_path / "out").rglob("*.dcm")}) == 2


def test_patient_id_in_an_input_path_is_redacted_from_the_report(tmp_path: Path) -> None:
    pid = str(pydicom.dcmread(next(CT_DIR.glob("*.dcm"))).PatientID)
    folder = tmp_path / f"archive_{pid}"
    shutil.copytree(CT_DIR, folder)
    (folder / "notes.txt").write_text("x")
    result = run([folder], RunOptions(output=tmp_path / "out", method="lut"))
    text = (tmp_path / "out" / "report.json").read_text()
    assert pid not in text and "[redacted]" in text
    assert result.counts() == {"done": 6, "skipped": 1, "failed": 0}
    shown = run([folder], RunOptions(output=tmp_path / "out2", method="lut", report_phi=True))
    assert pid in (tmp_path / "out2" / "report.json").read_text() and not shown.failed


def test_an_interrupted_series_leaves_no_output_file(tmp_path: Path) -> None:
    calls = {"n": 0}

    def interrupt(event: str, **info) -> None:
        if event == "advance":
            calls["n"] += 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run([CT_DIR], RunOptions(output=tmp_path / "out", method="lut", batch_size=2), progress=interrupt)
    assert calls["n"] == 1
    left = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert not [p for p in left if p.suffix in (".part", ".dcm")], left


def test_bad_options_raise_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(MedcolorError, match="format"):
        run([CT_DIR], RunOptions(output=tmp_path / "o", fmt="jpeg2000"))
    with pytest.raises(MedcolorError, match="only used by --method exemplar"):
        run([CT_DIR], RunOptions(output=tmp_path / "o", method="lut", reference=BEEF))
    with pytest.raises(MedcolorError) as err:
        run([CT_DIR], RunOptions(output=tmp_path / "o", reference=tmp_path / "missing.jpg"))
    assert "missing.jpg" in str(err.value) and "\n" not in str(err.value)


def test_report_records_every_slice_and_the_provenance(tmp_path: Path) -> None:
    run([CT_DIR], RunOptions(output=tmp_path / "out", method="exemplar", window="lung"))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    s = report["series"][0]
    assert [x["index"] for x in s["slices"]] == list(range(6))
    for x in s["slices"]:
        assert 0 <= x["delta_l_mean"] <= 0.5 and x["delta_l_p99"] <= 1.5
        assert x["ssim_l"] > 0.99 and x["psnr_l"] > 40 and x["colourfulness"] > 1
    assert s["window"].startswith("lung") and s["method"].startswith("exemplar")
    ds = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert s["reference_sha256"] in ds.DerivationDescription
    assert "lung" in ds.DerivationDescription


def test_two_concurrent_runs_into_one_folder_do_not_corrupt_each_other(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medcolor", "run", str(CT_DIR), "-o", str(out), "--method", "lut"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    # one run publishes the series; the other finds it there and refuses to overwrite (never a mix)
    assert codes[0] == 0, results
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 6
    series = {pydicom.dcmread(p).SeriesInstanceUID for p in files}
    assert len(series) == 1, "outputs of two runs were mixed in one series folder"
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    if codes[1] != 0:
        assert "output exists" in "".join(r[1] for r in results)


def test_the_backend_is_never_called_from_two_threads_at_once(tmp_path: Path, monkeypatch) -> None:
    """The Colorizer contract: one instance is called from one thread at a time, though the pipeline colours
    several slices at once (here every slice takes the general path: no value table)."""
    import threading
    import time

    from medcolor import pipeline
    from medcolor.colorizers.exemplar import ExemplarColorizer

    inside, calls, threads = [0], [], set()
    real = ExemplarColorizer.colorize

    def colorize(self, L):
        inside[0] += 1
        calls.append(inside[0])
        threads.add(threading.get_ident())
        time.sleep(0.02)            # a window for another thread to come in
        try:
            return real(self, L)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(ExemplarColorizer, "colorize", colorize)
    monkeypatch.setattr(pipeline, "_build_table", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "_pool_threads", lambda: 3)
    result = run([CT_DIR], RunOptions(output=tmp_path / "out", method="exemplar", window="lung"))
    assert not result.failed and result.series[0].fast_path == {"value_table": False}
    assert len(calls) == 6 and max(calls) == 1
    assert len(threads) > 1             # the slices did run on several threads


def test_the_kernel_warm_up_loads_what_the_slices_use_and_never_meets_a_fork(tmp_path: Path) -> None:
    """``_warm_kernels`` goes through the slices' own calls: in a fresh process, a lut and an exemplar run after
    it need no numba signature it did not load (else the first slices would still wait for numba). Its thread
    is gone when a run returns, and a network run (reader processes forked) starts none: a network run first
    in a process, while the thread was still importing numba, used to leave its reader waiting for ever."""
    import subprocess
    import sys

    script = f"""
import json, threading
from pathlib import Path
from medcolor import _kernels, pipeline
def signatures():
    return {{name: len(getattr(_kernels, name).signatures) for name in _kernels.__all__}}
out = Path({str(tmp_path)!r})
pipeline.run([{str(CT_DIR)!r}], pipeline.RunOptions(output=out / "cnn", method="cnn", batch_size=2, reader_workers=1,
                                                   backend_options={{"model": "retina"}}))
assert pipeline._warm_kernels.cache_info().misses == 0, "a network run started the side thread"
pipeline._warm_kernels()
warm = signatures()
for method in ("lut", "exemplar"):
    pipeline.run([{str(CT_DIR)!r}], pipeline.RunOptions(output=out / method, method=method, window="1500,-600"))
    assert not [t for t in threading.enumerate() if t.name == "medcolor-warm"]
print(json.dumps([warm, signatures()]))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    warm, after = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(n >= 1 for n in warm.values()), warm
    assert after == warm
