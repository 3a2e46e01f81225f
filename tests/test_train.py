"""``medcolor train``: checkpoints with manifests, refusal of tampered files, repeatability, resume,
DDP with two processes (gloo on CPU), the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medcolor.errors import MedcolorError
from medcolor.nets.checkpoint import FORMAT, load_checkpoint, load_model_options, resolve_model
from medcolor.train.loop import train
from tests._cnn_fixtures import make_crops, tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_crops(tmp_path_factory.mktemp("train") / "photos")


@pytest.fixture(scope="module")
def tiny_ckpt(crops: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    train(tiny_config(crops, out, steps=4, prior="retrieval"))
    return out


def test_checkpoint_carries_a_verified_manifest(tiny_ckpt: Path, crops: Path) -> None:
    manifest, state, tstate = load_checkpoint(tiny_ckpt, with_training_state=True)
    assert manifest["format"] == FORMAT and manifest["architecture"] == "luma-prior-unet"
    assert manifest["arch_args"]["base"] == 8 and manifest["steps"] == 4 and manifest["model_size"] == 32
    assert len(manifest["weights_sha256"]) == 64 and manifest["medcolor_version"]
    data = manifest["training_data"]
    assert data["folder"].endswith(crops.name) and data["n_images"] == 4 and len(data["file_names_sha256"]) == 64
    assert {"psnr", "ssim"} <= set(manifest["validation"])
    assert "optimizer" in tstate
    # the luminance prior (training set's L -> ab lookup) is stored with the weights
    assert state["lut"].abs().sum() > 0
    # the retrieved prior: one lookup and one L histogram per training image
    assert manifest["arch_args"]["bank_size"] == 4 and tuple(state["bank_lut"].shape) == (4, 2, 101)
    assert torch.allclose(state["bank_hist"].sum(1), torch.ones(4), atol=1e-4)


def test_tampered_or_foreign_checkpoints_are_refused(tiny_ckpt: Path, tmp_path: Path) -> None:
    payload = torch.load(tiny_ckpt, weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("weight"))
    payload["state_dict"][key] = payload["state_dict"][key] + 1e-3
    bad = tmp_path / "tampered.pt"
    torch.save(payload, bad)
    with pytest.raises(MedcolorError) as err:
        load_checkpoint(bad)
    msg = str(err.value)
    assert "tampered.pt" in msg and "sha256" in msg and "\n" not in msg

    payload = torch.load(tiny_ckpt, weights_only=True)
    payload["manifest"]["architecture"] = "resnet-9000"
    other = tmp_path / "arch.pt"
    torch.save(payload, other)
    with pytest.raises(MedcolorError, match="unknown architecture.*arch.pt|arch.pt.*unknown architecture"):
        load_checkpoint(other)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MedcolorError, match="junk.pt"):
        load_checkpoint(junk)
    with pytest.raises(MedcolorError, match="--model"):
        resolve_model(str(tmp_path / "nope.pt"))


def test_same_seed_same_weights_and_resume_continues_exactly(crops: Path, tmp_path: Path) -> None:
    a = load_checkpoint(train(tiny_config(crops, tmp_path / "a.pt", steps=4))["output"])[0]
    b = load_checkpoint(train(tiny_config(crops, tmp_path / "b.pt", steps=4))["output"])[0]
    c = load_checkpoint(train(tiny_config(crops, tmp_path / "c.pt", steps=4, seed=1))["output"])[0]
    assert a["weights_sha256"] == b["weights_sha256"] != c["weights_sha256"]
    # a 4-step run interrupted after its step-2 checkpoint, then resumed: the same weights as 4 steps in one go
    def interrupt(event: str, **info) -> None:
        if event == "saved" and info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(crops, tmp_path / "r.pt", steps=4, checkpoint_every=2), interrupt)
    assert load_checkpoint(tmp_path / "r.pt")[0]["steps"] == 2
    r = train(tiny_config(crops, tmp_path / "r.pt", steps=4, resume=tmp_path / "r.pt"))
    assert r["steps"] == 4
    m = load_checkpoint(tmp_path / "r.pt")[0]
    assert m["steps"] == 4 and m["weights_sha256"] == a["weights_sha256"]


def test_max_minutes_budget_stops_and_saves(crops: Path, tmp_path: Path) -> None:
    r = train(tiny_config(crops, tmp_path / "t.pt", steps=None, max_minutes=0.12))
    assert 1 <= r["steps"] < 10 ** 6 and (tmp_path / "t.pt").is_file()
    assert r["seconds"] < 0.12 * 60 + 20


def test_ddp_two_processes_gloo(crops: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "medcolor.cli", "train", "--data", str(crops), "-o", str(out), "--steps", "3", "--size", "32",
           "--batch-size", "1", "--width", "8", "--val-every", "0", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = load_checkpoint(out)[0]
    assert manifest["steps"] == 3 and manifest["train_config"]["world_size"] == 2


def test_cli_train_and_bad_input(crops: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medcolor.cli.app import app

    out = tmp_path / "cli.pt"
    res = CliRunner().invoke(app, ["train", "--method", "cnn", "--data", str(crops), "-o", str(out), "--steps", "2",
                                   "--size", "32", "--batch-size", "2", "--width", "8", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out)[0]["train_config"]["seed"] == 3
    assert load_model_options(out)["manifest"]["steps"] == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["train", "--data", str(empty), "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "no colour images" in res.output


def test_chroma_gain_is_stored_and_scales_the_predicted_ab(crops: Path, tmp_path: Path) -> None:
    """``--chroma-gain G``: recorded in the manifest, the loss untouched (the same weights as G = 1), the
    backend's a,b (and the validation) those of G = 1 times G."""
    from medcolor.colorizers import get_colorizer

    one = train(tiny_config(crops, tmp_path / "one.pt", steps=3))
    half = train(tiny_config(crops, tmp_path / "half.pt", steps=3, chroma_gain=0.5))
    m1, m2 = load_checkpoint(tmp_path / "one.pt")[0], load_checkpoint(tmp_path / "half.pt")[0]
    assert m1["chroma_gain"] == {"a": 1.0, "b": 1.0, "l_slope": 0.0} and m2["chroma_gain"]["b"] == 0.5
    assert m1["weights_sha256"] == m2["weights_sha256"]
    assert one["validation"]["psnr"] != half["validation"]["psnr"]
    L = torch.linspace(5, 95, 40 * 36).reshape(1, 1, 40, 36)
    ab1 = get_colorizer("cnn", device="cpu", **load_model_options(tmp_path / "one.pt")).colorize(L)
    col = get_colorizer("cnn", device="cpu", **load_model_options(tmp_path / "half.pt"))
    assert ab1.abs().max() > 1 and torch.allclose(col.colorize(L), 0.5 * ab1, atol=1e-4)
    assert col.provenance()["parameters"]["chroma_gain"] == "0.5"
    # a gain per channel, varying with L: a x 0.8 (1 + 0.5 (L - 50) / 50), b x 0.6 (...)
    train(tiny_config(crops, tmp_path / "ab.pt", steps=3, chroma_gain="0.8,0.6", chroma_gain_slope=0.5))
    got = get_colorizer("cnn", device="cpu", **load_model_options(tmp_path / "ab.pt")).colorize(L)
    w = 1 + 0.5 * (L - 50) / 50
    assert torch.allclose(got, ab1 * torch.tensor([0.8, 0.6]).view(1, 2, 1, 1) * w, atol=1e-4)
    assert get_colorizer("cnn", device="cpu", **load_model_options(tmp_path / "ab.pt")).provenance()[
        "parameters"]["chroma_gain"] == "0.8,0.6 L slope 0.5"


def test_chroma_centre_mean_is_the_training_mean_and_the_gain_scales_towards_it(crops: Path, tmp_path: Path) -> None:
    """``--chroma-centre mean``: the training images' mean a,b is stored (as numbers) beside the gain, and
    the backend's a,b are ``centre + G (ab - centre)`` of the same weights' G = 1 prediction."""
    from medcolor.colorizers import get_colorizer
    from medcolor.train.data import find_images, load_images
    from medcolor.train.lut import mean_ab

    train(tiny_config(crops, tmp_path / "one.pt", steps=3))
    train(tiny_config(crops, tmp_path / "mean.pt", steps=3, chroma_gain=0.5, chroma_centre="mean"))
    m1, m2 = load_checkpoint(tmp_path / "one.pt")[0], load_checkpoint(tmp_path / "mean.pt")[0]
    want = mean_ab(load_images(find_images(crops), tiny_config(crops, tmp_path / "x.pt").work_size))
    c = torch.tensor(m2["chroma_gain"]["centre"])
    assert "centre" not in m1["chroma_gain"] and m1["weights_sha256"] == m2["weights_sha256"]
    assert c.abs().max() > 5 and torch.allclose(c, want, atol=0.006)
    L = torch.linspace(5, 95, 40 * 36).reshape(1, 1, 40, 36)
    ab1 = get_colorizer("cnn", device="cpu", **load_model_options(tmp_path / "one.pt")).colorize(L)
    col = get_colorizer("cnn", device="cpu", **load_model_options(tmp_path / "mean.pt"))
    assert torch.allclose(col.colorize(L), c.view(1, 2, 1, 1) + 0.5 * (ab1 - c.view(1, 2, 1, 1)), atol=1e-4)
    assert col.provenance()["parameters"]["chroma_gain"] == "0.5 towards {:g},{:g}".format(*c.tolist())
    # numbers work too, and zero is no centre at all
    train(tiny_config(crops, tmp_path / "num.pt", steps=1, chroma_gain=0.9, chroma_centre="10,-20"))
    assert load_checkpoint(tmp_path / "num.pt")[0]["chroma_gain"]["centre"] == [10.0, -20.0]


@pytest.mark.parametrize("bad", [["median"], ["10"], ["10,20,30"], ["200,0"], ["nan,0"], [""]])
def test_cli_bad_chroma_centre_is_rc2_before_any_work(crops: Path, tmp_path: Path, bad: list[str]) -> None:
    from typer.testing import CliRunner

    from medcolor.cli.app import app

    out = tmp_path / "c.pt"
    res = CliRunner().invoke(app, ["train", "--data", str(crops), "-o", str(out), "--steps", "2", "--size", "32",
                                   "--chroma-gain", "0.9", "--chroma-centre", *bad])
    assert res.exit_code == 2 and "--chroma-centre" in res.output and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) <= 2 and not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [["0"], ["-0.5"], ["2.5"], ["nan"], ["abc"], ["0.9,0.9,0.9"], ["0.9,"],
                                 ["0.9", "--chroma-gain-slope", "1.5"]])
def test_cli_bad_chroma_gain_is_rc2_before_any_work(crops: Path, tmp_path: Path, bad: list[str]) -> None:
    from typer.testing import CliRunner

    from medcolor.cli.app import app

    out = tmp_path / "g.pt"
    res = CliRunner().invoke(app, ["train", "--data", str(crops), "-o", str(out), "--steps", "2", "--size", "32",
                                   "--chroma-gain", *bad])
    assert res.exit_code == 2 and "--chroma-gain" in res.output and "Traceback" not in res.output, res.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_checkpoint_with_a_bad_chroma_gain_is_refused(crops: Path, tmp_path: Path) -> None:
    from medcolor.colorizers import get_colorizer
    from medcolor.train.checkpoint import export_inference

    train(tiny_config(crops, tmp_path / "t.pt", steps=2))
    export_inference(tmp_path / "t.pt", tmp_path / "neg.pt", {"chroma_gain": -1})
    with pytest.raises(MedcolorError, match="neg.pt.*chroma gain|chroma gain.*neg.pt"):
        load_model_options(tmp_path / "neg.pt")
    options = load_model_options(tmp_path / "t.pt")   # an API caller's manifest: checked by the backend
    options["manifest"]["chroma_gain"] = 0
    with pytest.raises(MedcolorError, match="chroma gain"):
        get_colorizer("cnn", device="cpu", **options)
    export_inference(tmp_path / "t.pt", tmp_path / "far.pt", {"chroma_gain": {"a": 0.9, "b": 0.9, "l_slope": 0,
                                                                              "centre": [500, 0]}})
    with pytest.raises(MedcolorError, match="far.pt.*chroma centre|chroma centre.*far.pt"):
        load_model_options(tmp_path / "far.pt")
