"""benchmarks/retina_shift.py's choice tools: the ``--gains`` spellings (``@mean`` / ``@CA:CB`` centres)
and the ``--bars`` rule, on small images (no shared data)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from medcolor.errors import MedcolorError
from tests._cnn_fixtures import make_crops

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import retina_shift  # noqa: E402


def test_gain_spellings_give_the_manifest_gain_with_its_centre(tmp_path: Path) -> None:
    from medcolor.train.data import find_images, load_images
    from medcolor.train.loop import TrainConfig
    from medcolor.train.lut import mean_ab

    crops = make_crops(tmp_path / "photos")
    assert retina_shift.parse_gain("0.9:0.95:0.1") == {"a": 0.9, "b": 0.95, "l_slope": 0.1}
    assert retina_shift.parse_gain("0.8@5:-3") == {"a": 0.8, "b": 0.8, "l_slope": 0.0, "centre": [5.0, -3.0]}
    assert "centre" not in retina_shift.parse_gain("0.8@zero")
    g = retina_shift.parse_gain("0.85@mean", crops)
    want = mean_ab(load_images(find_images(crops), TrainConfig.work_size))
    assert g["a"] == 0.85 and torch.allclose(torch.tensor(g["centre"]), want, atol=0.006) and want.abs().max() > 5
    for bad in ("0.8@warm", "0.8@500:0", "3@mean"):
        with pytest.raises(MedcolorError, match="--gains"):
            retina_shift.parse_gain(bad)


def test_bars_pick_the_gain_with_the_largest_smallest_margin() -> None:
    col = "m x{}".format
    results = {"none": {col("1"): {"psnr": 31.0}, col("0.9"): {"psnr": 29.5}, col("0.8"): {"psnr": 28.9}},
               "desaturated": {col("1"): {"psnr": 21.0}, col("0.9"): {"psnr": 22.3}, col("0.8"): {"psnr": 23.5}}}
    bars = retina_shift.parse_bars("none=29,desaturated=22")
    assert bars == {"none": 29.0, "desaturated": 22.0}
    gain, margin = retina_shift.pick_by_bars(results, "m", ["1", "0.9", "0.8"], bars)
    assert gain == "0.9" and margin == pytest.approx(0.3)   # 1: -1.0 (desaturated), 0.8: -0.1 (in-domain)
    for bad in ("nowhere=3", "none", "none=abc"):
        with pytest.raises(ValueError):
            retina_shift.parse_bars(bad)


def test_unseen_photos_are_the_other_cameras_only_shrunk_and_never_chase(tmp_path: Path) -> None:
    from PIL import Image

    photos = make_crops(tmp_path / "photos", n=3, size=80)
    for name in ("Image_08L.png", "CHASEDB1_12R.png"):           # the training camera: skipped
        Image.new("RGB", (40, 40), (200, 90, 20)).save(photos / name)
    truth = retina_shift.unseen_truth([str(photos), "skimage"], tmp_path / "truth", max_side=64)
    names = sorted(f.name for f in truth.iterdir())
    assert names == ["crop0.png", "crop1.png", "crop2.png", "skimage_retina.png"]
    assert max(Image.open(truth / "skimage_retina.png").size) == 64          # 1411 x 1411, shrunk
    with Image.open(photos / "crop0.png") as a, Image.open(truth / "crop0.png") as b:
        assert b.size == (64, 64) and a.size == (80, 80)
    only_chase = tmp_path / "chase"
    only_chase.mkdir()
    Image.new("RGB", (40, 40)).save(only_chase / "Image_01R.png")
    with pytest.raises(ValueError, match="no photo from another camera"):
        retina_shift.unseen_truth([str(only_chase)], tmp_path / "truth2")
    assert retina_shift.parse_bars("none=29,unseen=22") == {"none": 29.0, "unseen": 22.0}


def test_the_real_photos_never_choose_the_gain_by_the_max_drop_rule() -> None:
    col = "m x{}".format
    results = {"none": {"m": {"psnr": 30.0}, col("1"): {"psnr": 30.0}, col("0.9"): {"psnr": 29.5}},
               "desaturated": {col("1"): {"psnr": 21.0}, col("0.9"): {"psnr": 22.0}},
               retina_shift.UNSEEN: {col("1"): {"psnr": 26.0}, col("0.9"): {"psnr": 20.0}}}
    assert retina_shift.pick_gain(results, "m", ["1", "0.9"], 1.0) == ("0.9", 29.5, 22.0)


def test_the_shipped_retina_says_it_was_trained_on_the_skimage_photo() -> None:
    assert "skimage" in retina_shift.trained_on("retina")
