"""``medcolor evaluate``: known answers on small PNGs, baselines, JSON, the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcolor.errors import MedcolorError
from medcolor.evaluate import evaluate, rgb_metrics
from tests._cnn_fixtures import make_crops


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> Path:
    return make_crops(tmp_path_factory.mktemp("eval") / "truth", n=3, size=48)


def test_identical_images_score_perfectly(truth: Path, tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    for p in truth.glob("*.png"):
        Image.open(p).save(pred / f"{p.stem}_color.png")
    res = evaluate(pred, truth / "*.png", size=32)
    assert res["prediction"]["n"] == 2 and not res["missing"]
    for r in res["prediction"]["per_image"]:
        assert math.isinf(r["psnr"]) and r["ssim"] == pytest.approx(1.0) and r["nrmse"] == 0.0
        assert r["delta_e2000"] == pytest.approx(0.0, abs=1e-9)
    assert "bicubic" in res["protocol"] and "32x32" in res["protocol"]


def test_known_values_and_baselines(truth: Path, tmp_path: Path) -> None:
    a = np.zeros((32, 32, 3), np.uint8)
    b = a.copy()
    b[..., 0] = 10  # MSE = 100/3 -> PSNR = 10 log10(255^2 * 3 / 100)
    m = rgb_metrics(a, b)
    assert m["psnr"] == pytest.approx(10 * math.log10(255 ** 2 * 3 / 100), abs=1e-9)
    gray = np.full((32, 32, 3), 128, np.uint8)
    assert rgb_metrics(gray, gray)["colourfulness"] == 0.0

    res = evaluate(None, truth, size=32, baselines=["gray", "mean-ab", "l-lut"], train=truth)
    s = {k: v["summary"] for k, v in res["baselines"].items()}
    assert set(s) == {"gray", "mean-ab", "l-lut"}
    # colourful beef: gray is the worst answer; a lookup learned on the same images beats it
    assert s["l-lut"]["psnr"]["mean"] > s["gray"]["psnr"]["mean"]
    assert s["gray"]["colourfulness"]["mean"] < 1.0
    assert res["baselines"]["gray"]["per_image"][0]["truth"].startswith("crop")

    # a gray truth: the gray baseline reproduces it up to 8-bit rounding
    g = tmp_path / "g"
    g.mkdir()
    Image.fromarray(gray).save(g / "flat.png")
    r = evaluate(None, g, size=32, baselines=["gray"])
    assert r["baselines"]["gray"]["summary"]["psnr"]["mean"] > 45

    with pytest.raises(MedcolorError, match="--train"):
        evaluate(None, truth, baselines=["l-lut"])
    with pytest.raises(MedcolorError, match="--baseline"):
        evaluate(None, truth, baselines=["oracle"])


def test_cli_writes_json_and_flags_missing(truth: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medcolor.cli.app import app

    pred = tmp_path / "pred"
    pred.mkdir()
    first = sorted(truth.glob("*.png"))[0]
    Image.open(first).convert("L").convert("RGB").save(pred / f"{first.stem}_color.png")
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["evaluate", str(pred), str(truth), "--size", "32", "--baseline", "gray",
                                 "-o", str(out)])
    assert r.exit_code == 1, r.output            # two truth images have no prediction
    assert "colour accuracy" in r.output and "protocol" in r.output
    data = json.loads(out.read_text())
    assert data["prediction"]["n"] == 1 and len(data["missing"]) == 2
    assert data["prediction"]["per_image"][0]["psnr"] < 40
