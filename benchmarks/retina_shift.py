"""How a fundus ``cnn`` model carries over to another camera: CHASE_DB1 test photos with camera-like
colour shifts, scored as the shared tools score them.

usage: python benchmarks/retina_shift.py [--model retina] [--model other.pt ...]
                                         [--data /work/shared/data/chase_db1] [--train-split 01-07]
                                         [--shifts all|none|NAME,NAME] [--unseen skimage,DIR,...]
                                         [--threads 2] [-o result.json]
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

``--unseen skimage,DIR`` adds a row ``unseen``: real fundus photos from cameras CHASE_DB1 did not use,
scored as they are (no re-rendering; shrunk to ``--max-side`` like the test photos; a per-photo table
follows). ``skimage`` is scikit-image's fundus photo (``skimage.data.retina()``, CC0, on every install);
a folder may hold PNG/JPEG/TIFF or DICOM photos, and CHASE_DB1's own photos in it are skipped.
docs/cnn.md ("Camera shift") names the public photos used there and how to get them.

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
import re
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
UNSEEN = "unseen"   # the row of real photos from other cameras (--unseen), beside the re-rendered shifts


def shift_rgb(rgb8: np.ndarray, shift: str, max_side: int = 0) -> np.ndarray:
    """uint8 sRGB ``[H,W,3]`` as re-rendered by the camera ``SHIFTS[shift]`` (``medcolor.train.data.
    camera_shift``, the same function as ``medcolor train --camera-aug``), first shrunk (area) to at most
    ``max_side`` pixels when ``max_side`` > 0."""
    import torch
    import torch.nn.functional as F

    from medcolor.train.data import camera_shift

    gains, exposure, gamma, chroma = SHIFTS[shift]
    t = torch.from_numpy(np.array(rgb8, copy=True)).permute(2, 0, 1).double() / 255.0
    if max_side and max(t.shape[-2:]) > max_side:
        k = max_side / max(t.shape[-2:])
        t = F.interpolate(t[None], size=(round(t.shape[-2] * k), round(t.shape[-1] * k)), mode="area")[0]
    out = camera_shift(t, gains, exposure, gamma, chroma)
    return (out * 255.0).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def _split(data: Path, train_split: str) -> tuple[Path, Path]:
    """(training folder, test folder): the usual 01-07 / 08-14 or the reverse fold."""
    a, b = data / "training" / "images", data / "test" / "images"
    return (a, b) if train_split == "01-07" else (b, a)


def shifted_truth(test_dir: Path, shift: str, out: Path, max_side: int = 0) -> Path:
    """The test photos of ``test_dir`` re-rendered by the camera ``shift``, as PNG truth in ``out``."""
    from PIL import Image

    out.mkdir(parents=True)
    for f in sorted(test_dir.glob("*.jpg")):
        Image.fromarray(shift_rgb(np.asarray(Image.open(f).convert("RGB")), shift, max_side)).save(out / f"{f.stem}.png")
    return out


def _in_domain(name: str) -> bool:
    """A CHASE_DB1 photo (``Image_08L.jpg``, ``CHASEDB1_08L.png``): the training camera, not an unseen one."""
    return bool(re.match(r"(image_\d\d[lr]|chasedb1)", name.lower()))


def unseen_truth(sources: list[str], out: Path, max_side: int = 0) -> Path:
    """The ``--unseen`` photos as PNG truth in ``out`` (shrunk, as ``shift_rgb``, to ``max_side``): each
    source is a folder or file of colour photos (PNG/JPEG/TIFF/DICOM; CHASE_DB1's own photos are skipped,
    they are the training camera's) or ``skimage`` (scikit-image's fundus photo ``skimage.data.retina()``,
    CC0, from a camera CHASE_DB1 did not use). ValueError when no photo is left."""
    from PIL import Image

    from medcolor.evaluate import load_rgb, truth_files

    out.mkdir(parents=True)
    for src in sources:
        if src == "skimage":
            import skimage.data

            photos = [("skimage_retina", np.asarray(skimage.data.retina()))]
        else:
            photos = ((f.stem, load_rgb(f)) for f in truth_files(src) if not _in_domain(f.name))
        for stem, rgb in photos:
            if (out / f"{stem}.png").exists():
                raise ValueError(f"--unseen: two photos named {stem}")
            Image.fromarray(shift_rgb(rgb, "none", max_side)).save(out / f"{stem}.png")
    if not any(out.iterdir()):
        raise ValueError(f"--unseen {','.join(sources)}: no photo from another camera")
    return out


def trained_on(model: str) -> str:
    """The training-data folder a checkpoint's manifest names (``retina``'s: ``chase_db1/training/images +
    skimage``)."""
    from medcolor.nets.checkpoint import load_checkpoint, resolve_model

    return str(load_checkpoint(resolve_model(model))[0].get("training_data", {}).get("folder", ""))


def evaluate_truth(models: dict[str, str], train_dir: Path, truth: Path, work: Path) -> dict:
    """Each model's colouring of ``truth``'s 8-bit gray, and the baselines fitted on ``train_dir``, scored at
    256x256: ``{column: {psnr, ssim, delta_e2000, per_image: {photo: psnr}}}``."""
    from medcolor.evaluate import evaluate, write_gray
    from medcolor.pipeline import RunOptions, run

    gray = write_gray(truth, work / "gray")
    keys = ("psnr", "ssim", "delta_e2000")

    def column(res: dict) -> dict:
        return {**{m: res["summary"][m]["mean"] for m in keys},
                "per_image": {Path(r["truth"]).stem: r["psnr"] for r in res["per_image"]}}

    res = evaluate(gray, truth, size=256, baselines=("mean-ab", "l-lut"), train=train_dir)
    out = {f"baseline {k}": column(v) for k, v in res["baselines"].items()}
    for i, (label, model) in enumerate(models.items()):
        pred = work / f"pred{i}"
        run([gray], RunOptions(output=pred, method="cnn", fmt="png", device="cpu",
                               backend_options={"model": model}))
        out[label] = column(evaluate(pred, truth, size=256)["prediction"])
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
    among those whose ``none`` PSNR is within ``max_drop`` dB of the model as it is (None if no gain is).
    The shifts are the re-renderings: the real photos of ``--unseen`` do not choose the gain."""
    shifted = [s for s in results if s not in ("none", UNSEEN)]
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
        if name not in (*SHIFTS, UNSEEN) or not value:
            raise ValueError(f"--bars: {item!r} is not SHIFT=dB with SHIFT one of {', '.join(SHIFTS)} or {UNSEEN}")
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
    ap.add_argument("--unseen", default="", help="also score real photos from other cameras (row 'unseen'): "
                    "comma-separated folders or files, and/or 'skimage' (scikit-image's CC0 fundus photo)")
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
    unseen = [u.strip() for u in a.unseen.split(",") if u.strip()]
    if [n for n in names if n not in SHIFTS] or [u for u in unseen if u != "skimage" and not Path(u).exists()]:
        ap.error(f"--shifts takes {', '.join(SHIFTS)}; --unseen takes existing folders or files, or skimage")
    names += [UNSEEN] if unseen else []
    train_dir, test_dir = _split(a.data, a.train_split)
    results = {}
    if a.max_drop is not None and ("none" not in names or not gains or set(names) <= {"none", UNSEEN}):
        ap.error("--max-drop needs --gains and the shift 'none' beside at least one other re-rendering")
    try:
        bars = parse_bars(a.bars)
    except ValueError as exc:
        ap.error(str(exc))
    if bars and (not gains or not set(bars) <= set(names)):
        ap.error("--bars needs --gains and every shift it names among --shifts")
    with tempfile.TemporaryDirectory() as tmp:
        try:   # the real photos first: a bad --unseen fails before any scoring
            unseen_dir = unseen_truth(unseen, Path(tmp) / UNSEEN / "truth", a.max_side) if unseen else None
        except (ValueError, MedcolorError) as exc:
            ap.error(str(exc))
        columns = gain_variants(models, gains, Path(tmp), train_dir)
        for model in models if "skimage" in unseen else []:
            if "skimage" in trained_on(model):
                print(f"note: {model} was trained on scikit-image's photo: its skimage_retina row is not an "
                      "unseen camera", flush=True)
        for shift in names:
            work = Path(tmp) / shift
            truth = unseen_dir if shift == UNSEEN else shifted_truth(test_dir, shift, work / "truth", a.max_side)
            results[shift] = evaluate_truth(columns, train_dir, truth, work)
            print(shift, json.dumps({k: round(v["psnr"], 2) for k, v in results[shift].items()}), flush=True)
    cols = list(next(iter(results.values())))
    print(f"\nPSNR dB / SSIM, train {a.train_split}, test the other fold, each shift applied to the test photos")
    print("| shift | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for shift, r in results.items():
        print(f"| {shift} | " + " | ".join(f"{r[c]['psnr']:.2f} / {r[c]['ssim']:.3f}" for c in cols) + " |")
    shifted = [s for s in results if s not in ("none", UNSEEN)]   # the re-renderings (unseen: its own row)
    if shifted:
        print("| mean over shifts | " + " | ".join(
            f"{np.mean([results[s][c]['psnr'] for s in shifted]):.2f} / "
            f"{np.mean([results[s][c]['ssim'] for s in shifted]):.3f}" for c in cols) + " |")
        print("| worst shift | " + " | ".join(
            f"{min(results[s][c]['psnr'] for s in shifted):.2f}" for c in cols) + " |")
    if UNSEEN in results:
        photos = list(next(iter(results[UNSEEN].values()))["per_image"])
        print(f"\nPSNR dB per photo of --unseen {a.unseen}")
        print("| photo | " + " | ".join(cols) + " |")
        print("|---|" + "---|" * len(cols))
        for ph in photos:
            print(f"| {ph} | " + " | ".join(f"{results[UNSEEN][c]['per_image'][ph]:.2f}" for c in cols) + " |")
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
