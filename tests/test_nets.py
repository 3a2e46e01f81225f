"""The seeds' networks (``--arch fusion | inception-resnet-unet | tutorial``): the paper layouts' key names
and parameter counts, any input size in -> that size out, a few training steps on the CPU, checkpoints that
colour through ``--model`` (odd-sized PNG, DICOM SC checked by dciodvfy), pretrained backbone weights
checked key by key and shape by shape (a wrong file: one line, exit code 2, nothing written)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medcolor.cli.app import app
from medcolor.nets.checkpoint import ARCHITECTURES, load_checkpoint
from medcolor.errors import MedcolorError
from medcolor.nets.backbones import VGG16, InceptionResNetV2, ResNet50, load_backbone_weights
from medcolor.pipeline import RunOptions, run
from medcolor.train.loop import train
from tests._cnn_fixtures import make_crops, tiny_config
from tests.conftest import BEEF, CT_DIR, dciodvfy_errors

SEEDS = ("fusion", "inception-resnet-unet", "tutorial")
TINY_WIDTH = {"fusion": 0.0625, "inception-resnet-unet": 0.0625, "tutorial": 0.125}


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_crops(tmp_path_factory.mktemp("nets") / "photos")


@pytest.fixture(scope="module")
def checkpoints(crops: Path, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nets_ckpt")
    out = {}
    for arch in SEEDS:
        out[arch] = d / f"{arch}.pt"
        train(tiny_config(crops, out[arch], steps=2, arch=arch, width_mult=TINY_WIDTH[arch]))
    return out


def test_backbones_have_the_papers_parameter_counts_and_key_names() -> None:
    # torchvision vgg16 features 14,714,688; resnet50 without fc 23,508,032; timm inception_resnet_v2
    # without its classifier 54,306,464
    counts = {VGG16: 14_714_688, ResNet50: 23_508_032, InceptionResNetV2: 54_306_464}
    for cls, n in counts.items():
        assert sum(p.numel() for p in cls().parameters()) == n
    assert "features.28.weight" in VGG16(0.125).state_dict()
    keys = ResNet50(0.125).state_dict()
    assert {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer4.2.bn3.bias"} <= set(keys)
    keys = InceptionResNetV2(0.125).state_dict()
    assert {"conv2d_1a.conv.weight", "mixed_5b.branch3.1.bn.running_mean", "repeat.9.branch2.2.conv.weight",
            "repeat_1.19.conv2d.bias", "mixed_7a.branch2.2.conv.weight", "block8.conv2d.weight",
            "conv2d_7b.bn.weight"} <= set(keys)


@pytest.mark.parametrize("arch", SEEDS)
def test_any_input_size_gives_that_size(arch: str) -> None:
    net = ARCHITECTURES[arch](width=TINY_WIDTH[arch]).eval()
    with torch.no_grad():
        for h, w in ((37, 53), (16, 16), (65, 31)):
            L = torch.rand(2, 1, h, w) * 100
            ab = net(L)
            assert ab.shape == (2, 2, h, w) and torch.isfinite(ab).all() and ab.abs().max() <= 128
        # a small model-size copy, chroma given at the full size
        assert net(torch.rand(1, 1, 24, 40) * 100, torch.rand(1, 1, 61, 101)).shape == (1, 2, 61, 101)


@pytest.mark.parametrize("arch", SEEDS)
def test_checkpoint_of_each_arch_colours_an_odd_png_through_model(arch: str, checkpoints: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    manifest, state, _ = load_checkpoint(checkpoints[arch])
    assert manifest["architecture"] == arch and manifest["steps"] == 2 and manifest["loss"] == "ab_mse"
    assert manifest["arch_args"]["width"] == TINY_WIDTH[arch]
    if arch != "tutorial":  # trained from scratch, and the manifest says so
        assert manifest["backbones"]["pretrained"] == [] and manifest["backbones"]["from_scratch"]
    gray = np.asarray(Image.open(BEEF).convert("L"))[:61, :47]
    src = tmp_path / "in" / "odd.png"
    src.parent.mkdir()
    Image.fromarray(gray).save(src)
    res = run([src], RunOptions(output=tmp_path / "out", method="cnn", fmt="png", device="cpu",
                                backend_options={"model": str(checkpoints[arch])}))
    assert not res.failed
    out = next((tmp_path / "out").rglob("*.png"))
    assert Image.open(out).size == (47, 61)
    s = json.loads((tmp_path / "out" / "report.json").read_text())["series"][0]
    assert s["method"] == "cnn (custom)" or s["method"].startswith("cnn")
    assert s["slices"][0]["delta_l_max"] <= 1.0


def test_fusion_checkpoint_colours_the_sample_ct_into_valid_sc(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    res = run([CT_DIR], RunOptions(output=tmp_path / "out", method="cnn", window="lung", device="cpu",
                                   backend_options={"model": str(checkpoints["fusion"])}))
    assert not res.failed
    files = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(files) == 6 and dciodvfy_errors(files[0]) == []


def test_backbone_weights_are_checked_key_by_key(tmp_path: Path) -> None:
    vgg = VGG16()
    good = {k: torch.randn_like(v) for k, v in vgg.state_dict().items()}
    good["classifier.6.weight"] = torch.zeros(10, 4)  # a classifier head in the file is not used
    f = tmp_path / "vgg16.pth"
    torch.save({"state_dict": good}, f)
    target = {"vgg16": VGG16(), "resnet50": ResNet50(0.125)}
    rec = load_backbone_weights(target, [f])
    assert rec[0]["backbone"] == "vgg16" and rec[0]["tensors"] == 26 and len(rec[0]["sha256"]) == 64
    assert torch.equal(target["vgg16"].features[28].weight, good["features.28.weight"])
    cases = {"narrow": ({k: v for k, v in VGG16(0.5).state_dict().items()}, "features.0.weight: shape (32, 3, 3, 3)"),
             "missing": ({k: v for k, v in good.items() if k != "features.28.bias"}, "missing"),
             "foreign": ({**good, "features.31.weight": torch.zeros(1)}, "another network"),
             "nothing": ({"encoder.weight": torch.zeros(1)}, "none of its 1 keys")}
    for name, (sd, words) in cases.items():
        bad = tmp_path / f"{name}.pth"
        torch.save(sd, bad)
        with pytest.raises(MedcolorError) as err:
            load_backbone_weights(target, [bad])
        assert words in str(err.value) and bad.name in str(err.value) and "\n" not in str(err.value)


def test_wrong_backbone_weights_file_is_rc2_before_training(crops: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "resnet18.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}, wrong)
    out = tmp_path / "never.pt"
    for arch in ("fusion", "inception-resnet-unet", "tutorial"):
        res = CliRunner().invoke(app, ["train", "--data", str(crops), "-o", str(out), "--arch", arch,
                                       "--backbone-weights", str(wrong), "--steps", "1", "--size", "32"])
        assert res.exit_code == 2, res.output
        line = " ".join(res.output.split())
        assert "error:" in line and ("resnet18.pth" in line or "no pretrained backbone" in line)
        assert "Traceback" not in res.output and not out.exists()


def test_camera_shift_and_camera_augmented_samples() -> None:
    from medcolor.train.data import AugmentedColourDataset, camera_shift, lab_of

    x = torch.rand(3, 16, 16)
    assert torch.allclose(camera_shift(x), x, atol=1e-5)
    warm = camera_shift(x, gains=(1.2, 1.0, 0.6))
    assert (warm[2] <= x[2] + 1e-6).all() and (warm[0] >= x[0] - 1e-6).all()
    pale = camera_shift(x, chroma=0.5)
    assert lab_of(pale)[1:].abs().mean() < 0.6 * lab_of(x)[1:].abs().mean()
    img = torch.rand(3, 40, 40)
    plain = AugmentedColourDataset([img], 32, length=4, seed=0)[1]
    shifted = AugmentedColourDataset([img], 32, length=4, seed=0, camera=1.0)[1]
    # another camera's colours, and L, ab and rgb of the sample all describe that shifted image
    assert not torch.allclose(plain["rgb"], shifted["rgb"])
    assert torch.allclose(shifted["ab"], lab_of(shifted["rgb"])[1:], atol=1e-3)
    assert (shifted["L"] - lab_of(shifted["rgb"])[:1]).abs().max() < 0.6
