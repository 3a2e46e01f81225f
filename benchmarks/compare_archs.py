"""Every ``cnn`` architecture and the trivial baselines on one CHASE_DB1 protocol, side by side.

usage: python benchmarks/compare_archs.py [--data /work/shared/data/chase_db1] [--runs /work/nets-runs]
                                          [--minutes 10] [--archs A,B,...] [--jobs 2] [--threads 1]
                                          [--table-only]

Protocol (the shared tools' one): train on CHASE_DB1 ``training/images`` (01-07, 14 photos) with
``medcolor train --method cnn --arch A --seed 0`` (the library call, defaults of each architecture,
``max_minutes`` measured in **CPU time** of the training process, ``torch.set_num_threads(--threads)``,
so runs that share the machine get the same budget; no validation set: nothing of 08-14 is seen), then
``medcolor run`` the 8-bit gray of ``test/images`` (08-14; ``medcolor.evaluate.write_gray``, the same PNGs
as ``make_gray.py``) with ``--model`` the checkpoint, ``--format png``, and score with
``medcolor.evaluate`` at 256x256 (the protocol of ``eval_color.py``): PSNR, SSIM, CIEDE2000,
colourfulness. Baselines on the same images: ``gray`` (a = b = 0), ``mean-ab`` and ``l-lut`` (the
training set's mean ab and its 1-D L -> ab lookup, the luminance prior). Speed: CPU milliseconds of the
backend's ``colorize`` on one 512x512 slice (median of 7 after 2 warm-ups, ``--threads`` threads).

Checkpoints and per-run JSON go to ``--runs`` (outside the repo); ``--table-only`` reprints the table
from those JSON files. Each architecture trains in its own process (``--jobs`` at a time).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHS = ("luma-prior-unet", "fusion", "inception-resnet-unet", "tutorial")
BASELINES = ("gray", "mean-ab", "l-lut")


def _ms_per_slice(model: Path, threads: int) -> float:
    import torch

    from medcolor.colorizers import get_colorizer
    from medcolor.nets.checkpoint import load_model_options

    torch.set_num_threads(threads)
    col = get_colorizer("cnn", device="cpu", **load_model_options(str(model)))
    L = torch.linspace(0, 100, 512 * 512).reshape(1, 1, 512, 512)
    times = []
    for i in range(9):
        t = time.process_time()
        col.colorize(L)
        if i >= 2:
            times.append((time.process_time() - t) * 1000.0)
    return statistics.median(times)


def one(arch: str, data: Path, runs: Path, minutes: float, threads: int) -> dict:
    """Train ``arch`` for ``minutes`` CPU minutes, colour and score the test images; write the JSON."""
    import torch

    torch.set_num_threads(threads)
    from medcolor.evaluate import evaluate, write_gray
    from medcolor.pipeline import RunOptions, run
    from medcolor.train.loop import TrainConfig, train

    tag = f"{arch}-{minutes:g}min"
    ckpt = runs / f"{tag}.pt"
    log = []

    def progress(event: str, **k) -> None:
        if event == "step" and k["step"] % 25 == 0:
            log.append((k["step"], round(k["loss"], 5)))
            print(f"[{tag}] step {k['step']} loss {k['loss']:.5f}", flush=True)

    res = train(TrainConfig(data=data / "training" / "images", output=ckpt, arch=arch, max_minutes=minutes,
                            budget_clock="cpu", seed=0, val_every=0, checkpoint_every=0, device="cpu"), progress)
    truth = str(data / "test" / "images" / "*.jpg")
    with tempfile.TemporaryDirectory() as tmp:
        gray = write_gray(truth, Path(tmp) / "gray")
        run([gray], RunOptions(output=Path(tmp) / "pred", method="cnn", fmt="png", device="cpu",
                               backend_options={"model": str(ckpt)}))
        scores = evaluate(Path(tmp) / "pred", truth, size=256)["prediction"]["summary"]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    params = sum(t.numel() for k, t in state["state_dict"].items() if t.is_floating_point()
                 and not k.startswith(("lut", "bank_")))
    out = {"arch": arch, "minutes_cpu": minutes, "steps": res["steps"], "wall_minutes": res["seconds"] / 60,
           "threads": threads, "params": params, "ms_512": _ms_per_slice(ckpt, threads),
           "metrics": {k: scores[k] for k in ("psnr", "ssim", "delta_e2000", "colourfulness")},
           "arch_args": state["manifest"]["arch_args"], "loss_log": log}
    (runs / f"{tag}.json").write_text(json.dumps(out, indent=1))
    print(f"[{tag}] done: {out['steps']} steps, PSNR {scores['psnr']['mean']:.2f}", flush=True)
    return out


def baselines(data: Path, runs: Path) -> dict:
    from medcolor.evaluate import evaluate, write_gray

    f = runs / "baselines.json"
    if f.is_file():
        return json.loads(f.read_text())
    truth = str(data / "test" / "images" / "*.jpg")
    with tempfile.TemporaryDirectory() as tmp:
        gray = write_gray(truth, Path(tmp) / "gray")
        res = evaluate(gray, truth, size=256, baselines=BASELINES, train=data / "training" / "images")
    out = {name: {k: b["summary"][k] for k in ("psnr", "ssim", "delta_e2000", "colourfulness")}
           for name, b in res["baselines"].items()}
    f.write_text(json.dumps(out, indent=1))
    return out


def _cell(s: dict, digits: int) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def table(runs: Path, minutes: list[float], base: dict) -> str:
    rows = ["| colouring (CHASE_DB1 08–14, 256×256) | CPU budget | steps | PSNR dB | SSIM | ΔE2000 | "
            "colourfulness | CPU ms / 512² slice | parameters |", "|---|---|---|---|---|---|---|---|---|"]
    for m in minutes:
        for arch in ARCHS:
            f = runs / f"{arch}-{m:g}min.json"
            if not f.is_file():
                continue
            r = json.loads(f.read_text())
            x = r["metrics"]
            rows.append(f"| `{arch}` | {m:g} min | {r['steps']} | {_cell(x['psnr'], 2)} | {_cell(x['ssim'], 4)} | "
                        f"{_cell(x['delta_e2000'], 2)} | {_cell(x['colourfulness'], 1)} | {r['ms_512']:.0f} | "
                        f"{r['params'] / 1e6:.2f} M |")
    names = {"gray": "baseline gray (a = b = 0)", "mean-ab": "baseline mean ab (training set)",
             "l-lut": "baseline L → ab lookup (training set; the luminance prior)"}
    for name, x in base.items():
        rows.append(f"| {names[name]} | – | – | {_cell(x['psnr'], 2)} | {_cell(x['ssim'], 4)} | "
                    f"{_cell(x['delta_e2000'], 2)} | {_cell(x['colourfulness'], 1)} | – | – |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/chase_db1"))
    ap.add_argument("--runs", type=Path, default=Path("/work/nets-runs"))
    ap.add_argument("--minutes", default="10", help="CPU-minute budgets, comma-separated (e.g. 10,40)")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.runs.mkdir(parents=True, exist_ok=True)
    minutes = [float(x) for x in a.minutes.split(",")]
    if a.one:
        one(a.one, a.data, a.runs, minutes[0], a.threads)
        return
    if not a.table_only:
        todo = [(arch, m) for m in minutes for arch in a.archs.split(",")
                if not (a.runs / f"{arch}-{m:g}min.json").is_file()]
        running: list[subprocess.Popen] = []
        for arch, m in todo:
            while len(running) >= a.jobs:
                running = [p for p in running if p.poll() is None] or []
                time.sleep(5)
            running.append(subprocess.Popen([sys.executable, __file__, "--one", arch, "--minutes", f"{m:g}",
                                             "--data", str(a.data), "--runs", str(a.runs),
                                             "--threads", str(a.threads)]))
        for p in running:
            p.wait()
    print(f"threads per training/inference process: {a.threads}; budgets in CPU minutes: {a.minutes}")
    print(table(a.runs, minutes, baselines(a.data, a.runs)))


if __name__ == "__main__":
    main()
