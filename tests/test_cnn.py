"""The ``cnn`` backend: registry, batched inference, output size = input size, L kept on the sample CT
(dciodvfy-clean SC), the gray PNG a user gives ``run`` carries the L the network was trained on."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medcolor.cli.app import app
from medcolor.colorizers import get_colorizer, list_backends
from medcolor.errors import MedcolorError
from medcolor.pipeline import RunOptions, run
from medcolor.nets.checkpoint import MODELS_DIR, load_model_options, resolve_model, shipped_models
from medcolor.train.loop import train
from medcolor.types import SeriesContext, Window
from tests._cnn_fixtures import make_crops, tiny_config
from tests.conftest import BEEF, CT_DIR, dciodvfy_errors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cnn")
    out = d / "tiny.pt"
    train(tiny_config(make_crops(d / "photos"), out, steps=3))
    return out


def _ctx() -> SeriesContext:
    return SeriesContext(modality="CT", window=Window(40, 400), is_hu=True, n_slices=1, rows=1, columns=1)


def test_cnn_is_registered_and_available() -> None:
    info = {b.name: b for b in list_backends("cpu")}["cnn"]
    assert info.available, info.reason


def test_batched_inference_any_size(tiny: Path) -> None:
    col = get_colorizer("cnn", device="cpu", **load_model_options(tiny))
    assert col.batched
    L = torch.rand(3, 1, 37, 53) * 100
    col.prepare(_ctx(), L)
    ab = col.colorize(L)
    assert ab.shape == (3, 2, 37, 53) and ab.dtype == torch.float32 and torch.isfinite(ab).all()
    one = torch.cat([col.colorize(L[i:i + 1]) for i in range(3)])
    assert torch.allclose(ab, one, atol=1e-4)
    prov = col.provenance()
    assert prov["method"].startswith("cnn") and len(prov["model_sha256"]) == 64


def test_huge_slice_is_coloured_from_a_downscaled_copy(tiny: Path) -> None:
    col = get_colorizer("cnn", device="cpu", **load_model_options(tiny))
    L = torch.rand(1, 1, 4096, 4096) * 100
    ab = col.colorize(L)
    assert ab.shape[:2] == (1, 2) and ab.shape[-2] * ab.shape[-1] <= 2048 * 2048
    assert abs(ab.shape[-2] / ab.shape[-1] - 1.0) < 0.01


def test_run_on_sample_ct_keeps_l_and_writes_valid_sc(tiny: Path, tmp_path: Path) -> None:
    res = run([CT_DIR], RunOptions(output=tmp_path / "out", method="cnn", window="lung", batch_size=4,
                                   backend_options={"model": str(tiny)}))
    assert not res.failed
    s = json.loads((tmp_path / "out" / "report.json").read_text())["series"][0]
    assert len(s["slices"]) == 6 and s["method"].startswith("cnn")
    for x in s["slices"]:
        assert 0 <= x["delta_l_mean"] <= 0.5 and x["delta_l_p99"] <= 1.5
    files = sorted((tmp_path / "out").rglob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    src = pydicom.dcmread(sorted(CT_DIR.glob("*.dcm"))[0])
    assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns) and ds.PhotometricInterpretation == "RGB"
    assert "model sha256" in ds.DerivationDescription
    assert dciodvfy_errors(files[0]) == []


def test_odd_sized_gray_png_keeps_its_size_and_l(tiny: Path, tmp_path: Path) -> None:
    from medcolor.io import read_slice, scan
    from medcolor.train.data import gray_l, lab_of
    from medcolor.windowing import resolve_window, window_to_l

    rgb = np.asarray(Image.open(BEEF).convert("RGB"))[:61, :47]
    t = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float()[None] / 255
    L_train = gray_l(lab_of(t)[:, :1])[0, 0].numpy()
    # the gray PNG a user gives `run` (as eval protocol's make_gray.py: sRGB gray of L*, 8 bits)
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(rgb)
    lab[..., 1:] = 0
    gray = (np.clip(lab2rgb(lab), 0, 1)[..., 0] * 255).round().astype(np.uint8)
    src = tmp_path / "in" / "odd.png"
    src.parent.mkdir()
    Image.fromarray(gray, mode="L").save(src)
    series = scan([src]).series[0]
    w = resolve_window(None, series, None)
    L_run = window_to_l(read_slice(series.slices[0], series), w)
    d = np.abs(L_run - L_train)  # same L as training, up to one 8-bit level where rounding ties differ
    assert (d < 0.01).mean() > 0.98 and d.max() < 0.6

    res = run([src], RunOptions(output=tmp_path / "out", method="cnn", fmt="png",
                                backend_options={"model": str(tiny)}))
    assert not res.failed
    out = next((tmp_path / "out").rglob("*.png"))
    assert Image.open(out).size == (47, 61)


def test_bad_model_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MedcolorError) as err:
        run([CT_DIR], RunOptions(output=tmp_path / "o", method="cnn", backend_options={"model": "no-such-model"}))
    assert "--model" in str(err.value) and "\n" not in str(err.value)


def test_shipped_models_load_and_verify() -> None:
    name = "retina"                                # the one shipped cnn model (meat was withdrawn)
    models = shipped_models()
    if name not in models:
        pytest.skip(f"shipped model {name} not built (benchmarks/train_shipped.py)")
    opts = load_model_options(name)
    m = opts["manifest"]
    assert m["name"] == name and "CC BY 4.0" in m["licence"] and m["attribution"]
    assert models[name]["weights_sha256"] == m["weights_sha256"]
    col = get_colorizer("cnn", device="cpu", **opts)
    ab = col.colorize(torch.linspace(0, 100, 64 * 64).reshape(1, 1, 64, 64))
    assert ab.shape == (1, 2, 64, 64) and torch.isfinite(ab).all()


@pytest.mark.parametrize("key", ["meat", "cyclegan-retina"])
def test_a_withdrawn_shipped_model_is_refused_with_its_reason(key: str, tmp_path: Path) -> None:
    """The manifest keeps a withdrawn model's name, method, reason, what to use instead and the
    measurements; its file is gone from the repo and ``--model NAME`` is one line, exit code 2."""
    entry = shipped_models()[key]
    method, name = entry["method"], entry["name"]
    assert entry["withdrawn"] and entry["instead"] and entry["withdrawal"]["measurements"]
    assert "file" not in entry and not (MODELS_DIR / f"{key}.pt").exists()
    with pytest.raises(MedcolorError) as err:
        resolve_model(name, method)
    text = str(err.value)
    assert text.startswith(f"--model: shipped {method} model '{name}' was withdrawn: {entry['withdrawn']}")
    assert entry["instead"] in text and "\n" not in text
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(CT_DIR), "-o", str(out), "--method", method, "--model", name])
    line = " ".join(res.output.split())
    assert res.exit_code == 2 and "was withdrawn" in line and "Traceback" not in res.output
    assert not out.exists()


def test_cnn_without_a_model_names_the_shipped_ones_and_train(tmp_path: Path) -> None:
    """No cnn default since meat was withdrawn: one line listing the shipped cnn models and
    `medcolor train`, exit code 2, nothing written; the cyclegan default is still meat."""
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(CT_DIR), "-o", str(out), "--method", "cnn"])
    line = " ".join(res.output.split())
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "--method cnn needs a model" in line and "shipped cnn models: retina" in line
    assert "medcolor train --method cnn" in line and not out.exists()
    with pytest.raises(MedcolorError, match="needs a model"):
        get_colorizer("cnn")
    assert resolve_model(None, "cyclegan") == MODELS_DIR / shipped_models()["cyclegan-meat"]["file"]


def test_doctor_lists_the_shipped_models_with_the_withdrawn_marked() -> None:
    from medcolor.doctor import models

    rows = {(m, n): s for m, n, s, _ in models()}
    assert rows[("cnn", "retina")] == "available" and rows[("cyclegan", "meat")] == "default"
    assert rows[("cnn", "meat")].startswith("withdrawn: ") and rows[("cyclegan", "retina")].startswith("withdrawn: ")
    res = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "shipped models" in res.output
    assert "withdrawn: its colour does not follow tissue on CT" in res.output
