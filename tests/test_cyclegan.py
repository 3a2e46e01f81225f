"""The ``cyclegan`` backend and ``medcolor train --method cyclegan``: network shapes at odd sizes, finite
losses, VGG16 weights verified, a 3-step unpaired run (beef crops; gray side: their L, or the sample CT
series), checkpoint round trip / refusal / resume, ``run`` on the sample CT (L kept, dciodvfy-clean SC)."""
from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
import torch
from PIL import Image

from medcolor.colorizers import get_colorizer, list_backends
from medcolor.errors import MedcolorError
from medcolor.nets.checkpoint import FORMAT, load_checkpoint, load_model_options
from medcolor.nets.cyclegan import ARCH, ColorGenerator, ResnetGenerator
from medcolor.train.cyclegan import CycleConfig, ImagePool, PatchDiscriminator, train_cyclegan
from medcolor.train.losses import GANLoss, load_vgg16_features, tv_loss
from tests._cnn_fixtures import make_crops
from tests.conftest import CT_DIR, dciodvfy_errors

TINY = dict(steps=3, size=32, batch_size=2, ngf=8, n_blocks=2, ndf=8, work_size=96, checkpoint_every=0)


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cyclegan")
    color = make_crops(d / "color")
    gray = d / "gray"
    gray.mkdir()
    for i, p in enumerate(sorted(color.iterdir())):   # unpaired in spirit: the gray side is never matched
        Image.open(p).convert("L").save(gray / f"g{i}.png")
    return gray, color


@pytest.fixture(scope="module")
def tiny(domains, tmp_path_factory) -> Path:
    gray, color = domains
    out = tmp_path_factory.mktemp("cg_ckpt") / "tiny.pt"
    train_cyclegan(CycleConfig(gray=gray, color=color, output=out, **TINY))
    return out


@pytest.mark.parametrize("hw", [(31, 45), (17, 23), (32, 32), (5, 7)])
def test_generator_output_size_equals_input_size(hw) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, *hw)
    assert ResnetGenerator(1, 2, ngf=8, n_blocks=2)(x).shape == (2, 2, *hw)
    assert ResnetGenerator(3, 1, ngf=8, n_blocks=1)(torch.rand(1, 3, *hw)).shape == (1, 1, *hw)
    g = ColorGenerator(ngf=8, n_blocks=1)
    ab = g(x * 100)
    assert ab.shape == (2, 2, *hw) and ab.abs().max() <= 110.0
    rgb = ColorGenerator(ngf=8, n_blocks=1, l_lock=False).rgb(x * 100)
    assert rgb.shape == (2, 3, *hw) and 0 <= rgb.min() and rgb.max() <= 1


def test_patchgan_is_70x70_and_losses_are_finite() -> None:
    d = PatchDiscriminator(3, ndf=8)
    assert d(torch.rand(1, 3, 70, 70)).shape == (1, 1, 6, 6)
    assert d(torch.rand(2, 3, 128, 128)).shape == (2, 1, 14, 14)
    # receptive field 70x70 (the convolutions alone; instance norm is global): 4x4 kernels, strides 2,2,2,1,1
    rf = 1
    for k, stride in reversed([(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]):
        rf = (rf - 1) * stride + k
    assert rf == 70
    p = torch.randn(2, 1, 6, 6)
    for mode in ("lsgan", "vanilla"):
        gl = GANLoss(mode)
        assert torch.isfinite(gl(p, True)) and torch.isfinite(gl(p, False))
    with pytest.raises(MedcolorError):
        GANLoss("wgan")
    img = torch.rand(2, 3, 16, 16)
    assert torch.isfinite(tv_loss(img)) and tv_loss(torch.ones(1, 3, 8, 8)) < 1e-2
    vgg = load_vgg16_features(None)
    dist = vgg.distance(img, img.flip(-1))
    assert torch.isfinite(dist) and dist > 0 and vgg.distance(img, img) == 0


def test_vgg16_weights_file_is_verified(tmp_path: Path) -> None:
    from medcolor.nets.backbones import VGG

    sd = {k: v.clone() + 0.01 for k, v in VGG("vgg16").state_dict().items()}
    assert len(sd) == 26                       # 13 convolutions of torchvision's vgg16().features
    full = dict(sd)
    full["classifier.0.weight"] = torch.zeros(4, 4)   # the classifier is ignored
    good = tmp_path / "vgg16.pth"
    torch.save(full, good)
    vgg = load_vgg16_features(good)
    assert vgg.source == "file vgg16.pth"
    assert torch.equal(vgg.features[0].weight, sd["features.0.weight"])
    bad = dict(full)
    bad["features.2.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    shape_text = r"features.2.weight: shape \(64, 3, 3, 3\) in the weights, \(64, 64, 3, 3\)"
    with pytest.raises(MedcolorError, match=shape_text):
        load_vgg16_features(tmp_path / "bad.pth")
    torch.save({"classifier.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MedcolorError, match="--perceptual-weights .*other.pth: 26 vgg16 key.s. missing"):
        load_vgg16_features(tmp_path / "other.pth")
    torch.save({**full, "features.30.weight": torch.zeros(1)}, tmp_path / "vgg19ish.pth")
    with pytest.raises(MedcolorError, match="1 key.s. that a vgg16 does not have .first: features.30.weight"):
        load_vgg16_features(tmp_path / "vgg19ish.pth")
    with pytest.raises(MedcolorError, match="--perceptual-weights .*absent.pth: no such weights file"):
        load_vgg16_features(tmp_path / "absent.pth")


def test_image_pool_keeps_fifty_and_swaps() -> None:
    pool = ImagePool(50, seed=0)
    for i in range(60):
        out = pool.query(torch.full((1, 1, 2, 2), float(i)))
        assert out.shape == (1, 1, 2, 2)
    assert len(pool.images) == 50
    assert ImagePool(0).query(torch.ones(3, 1, 2, 2)).shape == (3, 1, 2, 2)


def test_checkpoint_manifest_round_trip_and_refusal(tiny: Path, tmp_path: Path) -> None:
    manifest, state, tstate = load_checkpoint(tiny, with_training_state=True)
    assert manifest["format"] == FORMAT and manifest["architecture"] == ARCH
    assert manifest["arch_args"] == {"ngf": 8, "n_blocks": 2, "l_lock": True, "luma_prior": True} and manifest["steps"] == 3
    assert len(manifest["weights_sha256"]) == 64 and manifest["training_data"]["n_images"] == 8
    tc = manifest["train_config"]
    assert tc["gan_mode"] == "lsgan" and tc["lambda_cycle"] == 10.0 and tc["perceptual"].startswith("random-init")
    assert all(k in manifest["final_losses"] for k in ("adv", "cyc", "idt", "per", "tv", "D"))
    assert {"g_gray", "d_color", "d_gray", "opt_g", "opt_d"} <= set(tstate)
    payload = torch.load(tiny, weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("weight"))
    payload["state_dict"][key] = payload["state_dict"][key] + 1e-3
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(MedcolorError, match="sha256"):
        load_checkpoint(tmp_path / "tampered.pt")


def test_same_seed_same_weights_and_resume(domains, tmp_path: Path) -> None:
    gray, color = domains
    kw = dict(TINY, steps=2)
    a = train_cyclegan(CycleConfig(gray=gray, color=color, output=tmp_path / "a.pt", **kw))["manifest"]
    b = train_cyclegan(CycleConfig(gray=gray, color=color, output=tmp_path / "b.pt", **kw))["manifest"]
    assert a["weights_sha256"] == b["weights_sha256"]
    c = train_cyclegan(CycleConfig(gray=gray, color=color, output=tmp_path / "c.pt", **dict(kw, seed=1)))["manifest"]
    assert c["weights_sha256"] != a["weights_sha256"]

    def interrupt(event: str, **info) -> None:     # a 2-step run stopped after its step-1 checkpoint
        if event == "saved" and info["step"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cyclegan(CycleConfig(gray=gray, color=color, output=tmp_path / "r.pt", **dict(kw, checkpoint_every=1)),
                       interrupt)
    r = train_cyclegan(CycleConfig(gray=gray, color=color, output=tmp_path / "r.pt", resume=tmp_path / "r.pt", **kw))
    assert r["steps"] == 2 and r["manifest"]["weights_sha256"] == a["weights_sha256"]


def test_gray_side_may_be_a_dicom_series(domains, tmp_path: Path) -> None:
    _, color = domains
    r = train_cyclegan(CycleConfig(gray=CT_DIR, color=color, output=tmp_path / "ct.pt", window="lung",
                                   **dict(TINY, steps=1, batch_size=1)))
    m = r["manifest"]
    assert m["training_data"]["gray"]["n_images"] == 6 and m["train_config"]["window"] == "lung"


def test_backend_is_available_and_any_size(tiny: Path) -> None:
    info = {b.name: b for b in list_backends("cpu")}["cyclegan"]
    assert info.available, info.reason
    col = get_colorizer("cyclegan", device="cpu", **load_model_options(tiny))
    L = torch.rand(3, 1, 37, 53) * 100
    ab = col.colorize(L)
    assert ab.shape == (3, 2, 37, 53) and torch.isfinite(ab).all()
    assert col.provenance()["method"].startswith("cyclegan") and len(col.provenance()["model_sha256"]) == 64
    with pytest.raises(MedcolorError, match="--model"):
        get_colorizer("cyclegan", device="cpu")


def test_cnn_model_is_refused_by_cyclegan(tmp_path: Path) -> None:
    from medcolor.train.loop import train
    from tests._cnn_fixtures import tiny_config

    out = tmp_path / "cnn.pt"
    train(tiny_config(make_crops(tmp_path / "p", n=2), out, steps=1))
    with pytest.raises(MedcolorError, match="not a cyclegan model"):
        get_colorizer("cyclegan", device="cpu", **load_model_options(out))


def test_cli_train_and_run_on_sample_ct(domains, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medcolor.cli.app import app

    gray, color = domains
    model = tmp_path / "cli.pt"
    res = CliRunner().invoke(app, ["train", "--method", "cyclegan", "--gray", str(gray), "--color", str(color),
                                   "-o", str(model), "--steps", "3", "--size", "32", "--ngf", "8", "--n-blocks", "2",
                                   "--ndf", "8", "--batch-size", "1", "--seed", "2", "--lr-schedule", "cosine",
                                   "--gan-mode", "vanilla", "--lambda-tv", "1"])
    assert res.exit_code == 0, res.output
    assert "cyc" in res.output and "tv" in res.output
    tc = load_checkpoint(model)[0]["train_config"]
    assert tc["seed"] == 2 and tc["gan_mode"] == "vanilla" and tc["lr_schedule"] == "cosine"
    res = CliRunner().invoke(app, ["train", "--method", "cyclegan", "--gray", str(gray), "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "--color" in res.output

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(CT_DIR), "-o", str(out), "--method", "cyclegan", "--model", str(model),
                                   "--window", "lung"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "report.json").read_text())["series"][0]
    assert len(s["slices"]) == 6 and s["method"].startswith("cyclegan")
    for x in s["slices"]:
        assert 0 <= x["delta_l_mean"] <= 0.5 and x["delta_l_p99"] <= 1.5
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 6
    ds = pydicom.dcmread(files[0])
    src = pydicom.dcmread(sorted(CT_DIR.glob("*.dcm"))[0])
    assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns) and ds.PhotometricInterpretation == "RGB"
    assert "model sha256" in ds.DerivationDescription
    assert dciodvfy_errors(files[0]) == []


def test_luma_prior_starts_at_the_colour_side_lookup(domains, tmp_path: Path) -> None:
    """With the luminance prior (default) and 0 steps, G_color is exactly the 1-D L -> ab table fitted
    on the colour folder alone; without it, the generator does not know that table."""
    from medcolor.train.data import find_images, load_images
    from medcolor.nets.lookup import apply_l_lut
    from medcolor.train.lut import fit_l_lut

    gray, color = domains
    out = tmp_path / "p0.pt"
    train_cyclegan(CycleConfig(gray=gray, color=color, output=out, **dict(TINY, steps=0)))
    opts = load_model_options(out, "cyclegan")
    assert opts["manifest"]["arch_args"]["luma_prior"] is True
    lut = fit_l_lut(load_images(find_images(color), TINY["work_size"]))
    L = torch.linspace(0, 100, 40 * 30).reshape(1, 1, 40, 30)
    ab = get_colorizer("cyclegan", device="cpu", **opts).colorize(L)
    assert torch.allclose(ab, apply_l_lut(lut, L), atol=1e-4)
    assert lut.abs().max() > 3  # the beef crops are red: a real table, not zeros
    plain = tmp_path / "plain.pt"
    train_cyclegan(CycleConfig(gray=gray, color=color, output=plain, luma_prior=False, **dict(TINY, steps=0)))
    assert "prior_lut" not in load_checkpoint(plain)[1]


def test_no_l_lock_run_writes_raw_colour_and_reports_its_delta_l(tiny: Path, tmp_path: Path) -> None:
    from medcolor.pipeline import RunOptions, run

    locked, raw = tmp_path / "locked", tmp_path / "raw"
    for out, opts in ((locked, {}), (raw, {"l_lock": False})):
        run([CT_DIR], RunOptions(output=out, method="cyclegan", window="lung", fmt="png",
                                 backend_options={"model": str(tiny), **opts}))
    s_locked = json.loads((locked / "report.json").read_text())["series"][0]
    s_raw = json.loads((raw / "report.json").read_text())["series"][0]
    assert s_raw["parameters"]["l_lock"] is False and s_locked["parameters"]["l_lock"] is True
    assert s_locked["summary"]["delta_l_mean"] < 0.5
    # a 3-step generator's own L is far from the CT's: the report shows it
    assert s_raw["summary"]["delta_l_mean"] > 5 * s_locked["summary"]["delta_l_mean"]
    with pytest.raises(MedcolorError, match="l_lock"):
        run([CT_DIR], RunOptions(output=tmp_path / "x", method="lut", backend_options={"l_lock": False}))


def test_shipped_names_resolve_per_method() -> None:
    from medcolor.nets.checkpoint import resolve_model, shipped_models

    models = shipped_models()
    for key, entry in models.items():
        method = entry.get("method", "cnn")
        if entry.get("withdrawn"):                  # cnn meat, cyclegan retina: refused with the reason
            with pytest.raises(MedcolorError, match="was withdrawn"):
                resolve_model(entry.get("name", key), method)
        else:
            assert resolve_model(entry.get("name", key), method).name == entry["file"]
    if "cyclegan-meat" not in models:
        pytest.skip("shipped cyclegan models not built (benchmarks/train_shipped.py --only cyclegan-meat)")
    assert resolve_model("meat", "cyclegan").name == "cyclegan-meat.pt"   # the same name, another method
    with pytest.raises(MedcolorError, match="shipped cnn model 'meat' was withdrawn"):
        resolve_model("meat", "cnn")


def test_ddp_two_processes_gloo(domains, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes: gradients averaged, rank 0 writes one checkpoint."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    gray, color = domains
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "medcolor.cli", "train", "--method", "cyclegan", "--gray", str(gray), "--color", str(color),
           "-o", str(out), "--steps", "2", "--size", "32", "--ngf", "8", "--n-blocks", "1", "--ndf", "8",
           "--work-size", "64", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = load_checkpoint(out)[0]
    assert manifest["steps"] == 2 and manifest["train_config"]["world_size"] == 2


def test_colour_side_validation_keeps_the_best_step(domains, tmp_path: Path) -> None:
    """Validated every step on the colour side; the shipped G_color is the best step's, the training
    state keeps the last one for --resume."""
    from medcolor.nets.checkpoint import state_sha256

    gray, color = domains
    events = []
    out = tmp_path / "v.pt"
    r = train_cyclegan(CycleConfig(gray=gray, color=color, output=out, **dict(TINY, val_every=1)),
                       lambda e, **k: events.append((e, k)))
    vals = [k for e, k in events if e == "val"]
    assert [v["step"] for v in vals] == [0, 1, 2, 3]
    best = max(vals, key=lambda v: v["metrics"]["psnr"])
    manifest, state, tstate = load_checkpoint(out, with_training_state=True)
    assert manifest["validation"]["step"] == best["step"] == tstate["best"]["step"]
    assert manifest["validation"]["psnr"] == pytest.approx(best["metrics"]["psnr"])
    assert state_sha256(tstate["best"]["state"]) == manifest["weights_sha256"] == r["manifest"]["weights_sha256"]
    assert set(tstate["g_color_last"]) == set(state)


def test_shipped_cyclegan_model_on_the_sample_ct(tmp_path: Path) -> None:
    """`medcolor run <CT> --method cyclegan --model meat`: valid SC, L kept, provenance names it (the
    shipped cyclegan retina was withdrawn: tests/test_cnn.py)."""
    from medcolor.pipeline import RunOptions, run
    from medcolor.nets.checkpoint import shipped_models

    name = "meat"
    entry = shipped_models().get(f"cyclegan-{name}")
    if entry is None:
        pytest.skip(f"shipped cyclegan {name} not built (benchmarks/train_shipped.py --only cyclegan-{name})")
    assert entry["method"] == "cyclegan" and "CC BY 4.0" in entry["licence"] and entry["attribution"]
    out = tmp_path / "out"
    run([CT_DIR], RunOptions(output=out, method="cyclegan", window="1500,-600", backend_options={"model": name}))
    s = json.loads((out / "report.json").read_text())["series"][0]
    assert s["status"] == "done" and len(s["slices"]) == 6
    assert s["summary"]["delta_l_mean"] <= 0.6 and s["summary"]["delta_l_p99_max"] <= 1.6
    assert s["model_sha256"] == entry["weights_sha256"] and s["parameters"]["model"] == name
    assert s["summary"]["colourfulness_mean"] > 5   # coloured, not gray
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 6 and dciodvfy_errors(files[0]) == []
