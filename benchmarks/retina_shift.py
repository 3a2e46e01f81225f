"""How a fundus ``cnn`` model carries over to another camera: CHASE_DB1 test photos with camera-like
colour shifts, scored as the shared tools score them.

usage: python benchmarks/retina_shift.py [--model retina] [--model other.pt ...]
                                         [--data /work/shared/data/chase_db1] [--train-split 01-07]
                                         [--shifts all|none|NAME,NAME] [--threads 2] [-o result.json]
                                         [--gains 0.9,0.94,0.85:0.94:0.1,0.85@mean [--max-drop 1.0 | --bars
                                          none=29,desaturated=22,camera-a=22]]

For each shift, every test photo (``test/images``, children 08-14; with ``--train-split 08-14`` the
other fold, ``training/images`` 01-07, so no child is on both sides either way) is re-rendered as another
camera would have taken it -- ``medcolor.train.data.camera_shift``: in linear light white balance
(per-channel gains) and exposure (a gain), then a tone curve (gamma on sRGB) and a saturation change
(CIE-Lab chroma scaled) -- and saved
as PNG (shrunk to ``--max-side`` 512 pixels first: the scoring is at 256x256 anyway, and it is 4x
cheaper than the 999x960 originals). That colour image is the truth; its 8-bit gray (``medcolor.evaluate.write_gray``, as
``make_gray.py``) is coloured by ``medcolor run --method cnn --model M --format png`` and scored with
``medcolor.evaluate`` at 256x256 (the ``eval_color.py`` protocol): PSNR, SSIM, CIEDE2000. The baselines
``mean-ab`` and ``l-lut`` are fitted on the *unshifted* training photos of the other fold, as a model is.

The shifts (``SHIFTS``) span what fundus cameras differ by: a warmer and a cooler white balance, brighter
and darker exposure, a flatter tone curve, lower and higher saturation, and two combinations
(``camera-a``: brighter, bluer, less saturated; ``camera-b``: darker, warmer, flatter).

``--gains G,G,...`` scores each model once per inference chroma gain (a copy of the checkpoint with
that ``chroma_gain`` in its manifest, as ``medcolor train`` writes it; columns ``MODEL xG``). Each G is a
gain for both a and b, or ``GA:GB`` (``--chroma-gain GA,GB``) or ``GA:GB:K`` (with ``--chroma-gain-slope
K``); a suffix ``@mean`` scales towards the training photos' mean a,b instead of towards gray
(``--chroma-centre mean``: the training fold's, as the ``mean-ab`` baseline's photos), ``@CA:CB`` towards
that a,b.
With ``--max-drop D`` (needs ``none`` among the shifts) it then picks, per model, the gain with the best
worst-shift PSNR among those whose in-domain (``none``) PSNR is within D dB of the model's own (its
checkpoint's gain) -- the gain to train the shipped model with (``benchmarks/train_shipped.py
--chroma-gain``). With ``--bars none=29,desaturated=22,...`` it picks instead, per model, the gain whose
smallest margin over those PSNR bars (PSNR minus the bar, over the shifts named) is the largest.
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


def shift_rgb(rgb8: np.ndarray, shift: str, max_side: int = 0) -> np.ndarray:
    """uint8 sRGB ``[H,W,3]`` as re-rendered by the camera ``SHIFTS[shift]`` (``medcolor.train.data.
    camera_shift``, the same function as ``medcolor train --camera-aug``), first shrunk (area) to at most
    ``max_side`` pixels when ``max_side`` > 0."""
    import torch
    import torch.nn.functional as F

    from medcolor.train.data import camera_shift

    gains, exposure, gamma, chroma = SHIFTS[shift]
    t = torch.from_numpy(np.ascontiguousarray(rgb8)).permute(2, 0, 1).double() / 255.0
    if max_side and max(t.shape[-2:]) > max_side:
        k = max_side / max(t.shape[-2:])
        t = F.interpolate(t[None], size=(round(t.shape[-2] * k), round(t.shape[-1] * k)), mode="area")[0]
    out = camera_shift(t, gains, exposure, gamma, chroma)
    return (out * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def _split(data: Path, train_split: str) -> tuple[Path, Path]:
    """(training folder, test folder): the usual 01-07 / 08-14 or the reverse fold."""
    a, b = data / "training" / "images", data / "test" / "images"
    return (a, b) if train_split == "01-07" else (b, a)


def evaluate_shift(models: dict[str, str], train_dir: Path, test_dir: Path, shift: str, tmp: Path,
                   max_side: int = 0) -> dict:
    from PIL import Image

    from medcolor.evaluate import evaluate, write_gray
    from medcolor.pipeline import RunOptions, run

    truth = tmp / shift / "truth"
    truth.mkdir(parents=True)
    for f in sorted(test_dir.glob("*.jpg")):
        Image.fromarray(shift_rgb(np.asarray(Image.open(f).convert("RGB")), shift, max_side)).save(truth / f"{f.stem}.png")
    gray = write_gray(truth, tmp / shift / "gray")
    keys = ("psnr", "ssim", "delta_e2000")
    res = evaluate(gray, truth, size=256, baselines=("mean-ab", "l-lut"), train=train_dir)
    out = {f"baseline {k}": {m: v["summary"][m]["mean"] for m in keys} for k, v in res["baselines"].items()}
    for i, (label, model) in enumerate(models.items()):
        pred = tmp / shift / f"pred{i}"
        run([gray], RunOptions(output=pred, method="cnn", fmt="png", device="cpu",
                               backend_options={"model": model}))
        s = evaluate(pred, truth, size=256)["prediction"]["summary"]
        out[label] = {m: s[m]["mean"] for m in keys}
    return out


def parse_gain(spec: str, train_dir: Path | None = None) -> dict[str, float]:
    """``G``, ``GA:GB`` or ``GA:GB:K``, then optionally ``@mean`` (towards the mean a,b of the photos in
    ``train_dir``, as ``medcolor train --chroma-centre mean`` stores it) or ``@CA:CB`` -> the manifest's
    chroma gain (``check_chroma_gain``). Without ``train_dir`` a ``@mean`` is only checked for syntax."""
    from medcolor.nets.checkpoint import check_chroma_gain

    spec, _, centre = spec.strip().partition("@")
    parts, centre = spec.split(":"), centre.strip().replace(":", ",") or None
    if centre is not None and centre.lower() == "mean":
        from medcolor.train.data import find_images, load_images
        from medcolor.train.loop import TrainConfig
        from medcolor.train.lut import chroma_centre

        centre = chroma_centre("mean", load_images(find_images(train_dir), TrainConfig.work_size)) if train_dir else None
    return check_chroma_gain(",".join(parts[:2]), parts[2] if len(parts) > 2 else 0.0, where="--gains", centre=centre)


def gain_variants(models: list[str], gains: list[str], tmp: Path, train_dir: Path) -> dict[str, str]:
    """``{column label: checkpoint path}``: each model as it is, and for each gain a copy of it with that
    inference chroma gain in its manifest (the weights untouched)."""
    from medcolor.nets.checkpoint import resolve_model
    from medcolor.train.checkpoint import export_inference

    out = {}
    for model in models:
        out[model] = model
        for i, g in enumerate(gains):
            dst = tmp / "gains" / f"{Path(model).stem}-x{i}.pt"
            export_inference(resolve_model(model), dst, {"chroma_gain": parse_gain(g, train_dir)})
            out[f"{model} x{g}"] = str(dst)
    return out


def pick_gain(results: dict, model: str, gains: list[str], max_drop: float) -> tuple[str, float, float] | None:
    """``(gain, in-domain PSNR, worst-shift PSNR)``: the gain of ``model`` with the best worst-shift PSNR
    among those whose ``none`` PSNR is within ``max_drop`` dB of the model as it is (None if no gain is)."""
    shifted = [s for s in results if s != "none"]
    ref = results["none"][model]["psnr"]
    best = None
    for g in gains:
        col = f"{model} x{g}"
        inside, worst = results["none"][col]["psnr"], min(results[s][col]["psnr"] for s in shifted)
        if ref - inside <= max_drop and (best is None or worst > best[2]):
            best = (g, inside, worst)
    return best


def parse_bars(spec: str) -> dict[str, float]:
    """``"none=29,desaturated=22"`` -> ``{"none": 29.0, "desaturated": 22.0}`` (shift names checked)."""
    bars = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in SHIFTS or not value:
            raise ValueError(f"--bars: {item!r} is not SHIFT=dB with SHIFT one of {', '.join(SHIFTS)}")
        bars[name] = float(value)
    return bars


def pick_by_bars(results: dict, model: str, gains: list[str], bars: dict[str, float]) -> tuple[str, float]:
    """``(gain, margin)``: the gain of ``model`` whose smallest margin over the bars (PSNR minus the bar, of
    each shift named in ``bars``) is the largest -- the choice that clears every bar by the most."""
    margin = {g: min(results[s][f"{model} x{g}"]["psnr"] - b for s, b in bars.items()) for g in gains}
    best = max(gains, key=lambda g: margin[g])
    return best, margin[best]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/chase_db1"))
    ap.add_argument("--train-split", choices=("01-07", "08-14"), default="01-07")
    ap.add_argument("--shifts", default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-side", type=int, default=512, help="test photos shrunk to this longer side first (0: "
                    "full size); scoring is at 256x256 either way")
    ap.add_argument("--gains", default="", help="comma-separated inference chroma gains to score each model at")
    ap.add_argument("--max-drop", type=float, help="pick the gain (see the module docstring) allowing this "
                    "in-domain PSNR drop in dB")
    ap.add_argument("--bars", default="", help="pick the gain (see the module docstring) that clears these "
                    "PSNR bars by the largest smallest margin, e.g. none=29,desaturated=22,camera-a=22")
    ap.add_argument("-o", "--output", type=Path)
    a = ap.parse_args()
    from medcolor.errors import MedcolorError

    gains = [g.strip() for g in a.gains.split(",") if g.strip()]
    try:
        [parse_gain(g) for g in gains]
    except MedcolorError as exc:
        ap.error(exc.one_line())
    import torch

    torch.set_num_threads(a.threads)
    models = a.model or ["retina"]
    names = list(SHIFTS) if a.shifts == "all" else ["none"] if a.shifts == "none" else a.shifts.split(",")
    train_dir, test_dir = _split(a.data, a.train_split)
    results = {}
    if a.max_drop is not None and ("none" not in names or not gains or len(names) < 2):
        ap.error("--max-drop needs --gains and the shift 'none' beside at least one other")
    try:
        bars = parse_bars(a.bars)
    except ValueError as exc:
        ap.error(str(exc))
    if bars and (not gains or not set(bars) <= set(names)):
        ap.error("--bars needs --gains and every shift it names among --shifts")
    with tempfile.TemporaryDirectory() as tmp:
        columns = gain_variants(models, gains, Path(tmp), train_dir)
        for shift in names:
            results[shift] = evaluate_shift(columns, train_dir, test_dir, shift, Path(tmp), a.max_side)
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
    if a.max_drop is not None:
        for model in models:
            best = pick_gain(results, model, gains, a.max_drop)
            print(f"{model}: " + (f"no gain keeps the in-domain drop within {a.max_drop:g} dB" if best is None else
                                  f"gain {best[0]} (in-domain {best[1]:.2f} dB, worst shift {best[2]:.2f} dB; "
                                  f"in-domain drop within {a.max_drop:g} dB)"))
    for model in models if bars else []:
        g, m = pick_by_bars(results, model, gains, bars)
        print(f"{model}: gain {g} clears the bars {a.bars} by at least {m:.2f} dB "
              f"(" + ", ".join(f"{s} {results[s][f'{model} x{g}']['psnr']:.2f}" for s in bars) + ")")
    if a.output:
        a.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
