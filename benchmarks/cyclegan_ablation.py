"""CycleGAN ablation on CHASE_DB1 with the paper's unpaired protocol, 3 seeds per variant.

    python benchmarks/cyclegan_ablation.py [--data ../shared/data/chase_db1] [--steps 300] [--seeds 0,1,2]
                                           [--variants all] [--json docs/cyclegan_ablation.json]

Protocol: the gray side is the 8-bit sRGB gray (CIE L* of the colour, a = b = 0) of the 14 test images
08-14, the colour side the 14 training photos 01-07 -- unpaired, no image on both sides. Each variant is
trained for ``--steps`` steps (a step count, not minutes, so the figures do not depend on the machine's
load; the training time is reported) from the same defaults as ``medcolor train --method cyclegan``,
then the gray images are coloured with ``medcolor run --method cyclegan --format png`` (the library
call) and scored against their true colour by ``medcolor evaluate`` at 256x256 (PSNR, SSIM, NRMSE on
RGB). Mean +- std (population) over the seeds. The 1-D L -> ab lookup fitted on the colour side alone
(the ``l-lut`` baseline, itself unpaired) is printed for reference.

Variants (everything else at the defaults):
  cyclegan            adversarial + cycle + identity (no perceptual, no TV)
  +per                + perceptual (VGG16 layout; random-init features without --perceptual-weights)
  +per+tv             + perceptual + TV (the defaults)
  +per+tv-idt         the defaults without the identity loss
  +per+tv-prior       the defaults without the luminance prior (the paper's plain generator)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medcolor.evaluate import evaluate, write_gray  # noqa: E402
from medcolor.pipeline import RunOptions, run  # noqa: E402
from medcolor.train.cyclegan import CycleConfig, train_cyclegan  # noqa: E402

VARIANTS: dict[str, dict] = {
    "cyclegan": dict(lambda_perceptual=0.0, lambda_tv=0.0),
    "+per": dict(lambda_tv=0.0),
    "+per+tv": dict(),
    "+per+tv-idt": dict(lambda_identity=0.0),
    "+per+tv-prior": dict(luma_prior=False),
}


def one(gray: Path, color: Path, truth: str, variant: dict, seed: int, steps: int, work: Path) -> dict:
    model = work / "m.pt"
    t0 = time.perf_counter()
    res = train_cyclegan(CycleConfig(gray=gray, color=color, output=model, steps=steps, seed=seed,
                                     checkpoint_every=0, **variant))
    seconds = time.perf_counter() - t0
    pred = work / "pred"
    run([gray], RunOptions(output=pred, method="cyclegan", fmt="png", overwrite=True,
                           backend_options={"model": str(model)}))
    s = evaluate(pred, truth, size=256)["prediction"]["summary"]
    return {"seed": seed, "steps": res["steps"], "train_s": seconds,
            **{k: s[k]["mean"] for k in ("psnr", "ssim", "nrmse")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "chase_db1")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="all", help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    names = list(VARIANTS) if a.variants == "all" else [v.strip() for v in a.variants.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    color = a.data / "training" / "images"
    truth = str(a.data / "test" / "images" / "*.jpg")
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="medcolor-ablation-") as tmp:
        gray = write_gray(truth, Path(tmp) / "gray")
        base = evaluate(None, truth, size=256, baselines=("l-lut",), train=color)["baselines"]["l-lut"]["summary"]
        for name in names:
            for seed in seeds:
                work = Path(tmp) / f"{name}-{seed}"
                r = one(gray, color, truth, VARIANTS[name], seed, a.steps, work)
                rows.setdefault(name, []).append(r)
                print(f"{name:16s} seed {seed}: PSNR {r['psnr']:.2f} SSIM {r['ssim']:.4f} NRMSE {r['nrmse']:.4f} "
                      f"({r['steps']} steps, {r['train_s']:.0f} s)", flush=True)
    print(f"\nCHASE_DB1, gray 08-14 vs colour 01-07 unpaired, {a.steps} steps, seeds {a.seeds}, 256x256 RGB")
    print(f"{'variant':16s} {'PSNR dB':>14s} {'SSIM':>16s} {'NRMSE':>16s} {'train s':>8s}")
    summary = {}
    for name, rs in rows.items():
        m = {k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))
             for k in ("psnr", "ssim", "nrmse", "train_s")}
        summary[name] = m
        print(f"{name:16s} {m['psnr'][0]:7.2f} ± {m['psnr'][1]:4.2f} {m['ssim'][0]:8.4f} ± {m['ssim'][1]:.4f} "
              f"{m['nrmse'][0]:8.4f} ± {m['nrmse'][1]:.4f} {m['train_s'][0]:8.0f}")
    print(f"{'l-lut (colour side only)':24s} PSNR {base['psnr']['mean']:.2f} SSIM {base['ssim']['mean']:.4f} "
          f"NRMSE {base['nrmse']['mean']:.4f}")
    if a.json:
        a.json.write_text(json.dumps({"command": " ".join(sys.argv), "steps": a.steps, "seeds": seeds,
                                      "summary": summary, "runs": rows,
                                      "l_lut": {k: base[k]["mean"] for k in ("psnr", "ssim", "nrmse")}},
                                     indent=2) + "\n")


if __name__ == "__main__":
    main()
