"""How a fundus ``cnn`` model carries over to another camera: CHASE_DB1 test photos with camera-like
colour shifts, scored as the shared tools score them.

usage: python benchmarks/retina_shift.py [--model retina] [--model other.pt ...]
                                         [--data /work/shared/data/chase_db1] [--train-split 01-07]
                                         [--shifts all|none|NAME,NAME] [--threads 2] [-o result.json]

For each shift, every test photo (``test/images``, children 08-14; with ``--train-split 08-14`` the
other fold, ``training/images`` 01-07, so no child is on both sides either way) is re-rendered as another
camera would have taken it -- in linear light: white balance (per-channel gains), exposure (a gain),
then a tone curve (gamma on sRGB) and a saturation change (CIE-Lab chroma scaled, L kept) -- and saved
as PNG. That colour image is the truth; its 8-bit gray (``medcolor.evaluate.write_gray``, as
``make_gray.py``) is coloured by ``medcolor run --method cnn --model M --format png`` and scored with
``medcolor.evaluate`` at 256x256 (the ``eval_color.py`` protocol): PSNR, SSIM, CIEDE2000. The baselines
``mean-ab`` and ``l-lut`` are fitted on the *unshifted* training photos of the other fold, as a model is.

The shifts (``SHIFTS``) span what fundus cameras differ by: a warmer and a cooler white balance, brighter
and darker exposure, a flatter tone curve, lower and higher saturation, and two combinations
(``camera-a``: brighter, bluer, less saturated; ``camera-b``: darker, warmer, flatter).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (RGB gains in linear light, exposure gain, gamma on sRGB (out = in ** gamma), chroma scale)
SHIFTS: dict[str, tuple[tuple[float, float, float], float, float, float]] = {
    "none": ((1.0, 1.0, 1.0), 1.0, 1.0, 1.0),
    "warm": ((1.08, 1.0, 0.7), 1.0, 1.0, 1.0),
    "cool": ((0.85, 1.0, 1.45), 1.0, 1.0, 1.0),
    "bright": ((1.0, 1.0, 1.0), 1.6, 1.0, 1.0),
    "dark": ((1.0, 1.0, 1.0), 0.6, 1.0, 1.0),
    "flat-tone": ((1.0, 1.0, 1.0), 1.0, 0.75, 1.0),
    "desaturated": ((1.0, 1.0, 1.0), 1.0, 1.0, 0.6),
    "saturated": ((1.0, 1.0, 1.0), 1.0, 1.0, 1.25),
    "camera-a": ((0.9, 1.05, 1.6), 1.35, 0.9, 0.7),
    "camera-b": ((1.1, 0.95, 0.8), 0.75, 0.85, 0.85),
}


def shift_rgb(rgb8: np.ndarray, shift: str) -> np.ndarray:
    """uint8 sRGB ``[H,W,3]`` as re-rendered by the camera ``SHIFTS[shift]`` (uint8)."""
    import torch

    from medcolor.color import lab_to_srgb, srgb_to_lab

    gains, exposure, gamma, chroma = SHIFTS[shift]
    x = rgb8.astype(np.float64) / 255.0
    lin = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    lin = np.clip(lin * np.asarray(gains) * exposure, 0.0, 1.0)
    x = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.power(lin, 1 / 2.4) - 0.055) ** gamma
    if chroma != 1.0:
        t = torch.from_numpy(x).permute(2, 0, 1).float()
        lab = srgb_to_lab(t)
        lab[1:] *= chroma
        x = lab_to_srgb(lab).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _split(data: Path, train_split: str) -> tuple[Path, Path]:
    """(training folder, test folder): the usual 01-07 / 08-14 or the reverse fold."""
    a, b = data / "training" / "images", data / "test" / "images"
    return (a, b) if train_split == "01-07" else (b, a)


def evaluate_shift(models: list[str], train_dir: Path, test_dir: Path, shift: str, tmp: Path) -> dict:
    from PIL import Image

    from medcolor.evaluate import evaluate, write_gray
    from medcolor.pipeline import RunOptions, run

    truth = tmp / shift / "truth"
    truth.mkdir(parents=True)
    for f in sorted(test_dir.glob("*.jpg")):
        Image.fromarray(shift_rgb(np.asarray(Image.open(f).convert("RGB")), shift)).save(truth / f"{f.stem}.png")
    gray = write_gray(truth, tmp / shift / "gray")
    keys = ("psnr", "ssim", "delta_e2000")
    res = evaluate(gray, truth, size=256, baselines=("mean-ab", "l-lut"), train=train_dir)
    out = {f"baseline {k}": {m: v["summary"][m]["mean"] for m in keys} for k, v in res["baselines"].items()}
    for i, model in enumerate(models):
        pred = tmp / shift / f"pred{i}"
        run([gray], RunOptions(output=pred, method="cnn", fmt="png", device="cpu",
                               backend_options={"model": model}))
        s = evaluate(pred, truth, size=256)["prediction"]["summary"]
        out[model] = {m: s[m]["mean"] for m in keys}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/chase_db1"))
    ap.add_argument("--train-split", choices=("01-07", "08-14"), default="01-07")
    ap.add_argument("--shifts", default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    models = a.model or ["retina"]
    names = list(SHIFTS) if a.shifts == "all" else ["none"] if a.shifts == "none" else a.shifts.split(",")
    train_dir, test_dir = _split(a.data, a.train_split)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for shift in names:
            results[shift] = evaluate_shift(models, train_dir, test_dir, shift, Path(tmp))
            print(shift, json.dumps({k: round(v["psnr"], 2) for k, v in results[shift].items()}), flush=True)
    cols = list(next(iter(results.values())))
    print(f"\nPSNR dB / SSIM, train {a.train_split}, test the other fold, each shift applied to the test photos")
    print("| shift | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for shift, r in results.items():
        print(f"| {shift} | " + " | ".join(f"{r[c]['psnr']:.2f} / {r[c]['ssim']:.3f}" for c in cols) + " |")
    shifted = [s for s in results if s != "none"]
    if shifted:
        print("| mean over shifts | " + " | ".join(
            f"{np.mean([results[s][c]['psnr'] for s in shifted]):.2f} / "
            f"{np.mean([results[s][c]['ssim'] for s in shifted]):.3f}" for c in cols) + " |")
        print("| worst shift | " + " | ".join(
            f"{min(results[s][c]['psnr'] for s in shifted):.2f}" for c in cols) + " |")
    if a.output:
        a.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
