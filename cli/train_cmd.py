"""``medcolor train`` (learn a ``cnn`` model from colour images) and ``medcolor evaluate`` (score
colourised images against colour truth, with trivial baselines). Parsing and display only."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medcolor.cli._common import EXIT_FAILED, EXIT_OK, err, guard, out, progress_bar
from medcolor.errors import MedcolorError


class _TrainProgress:
    """Rich progress bar with the loss, driven by medcolor.train.loop events (rank 0 only)."""

    def __init__(self, progress: Progress, console, rank: int) -> None:
        self.progress, self.console, self.rank = progress, console, rank
        self.task = None
        self.budget = None

    def __call__(self, event: str, **info: Any) -> None:
        if self.rank != 0:
            return
        if event == "start":
            self.budget = info.get("budget")
            total = info["steps"] if not self.budget else None
            self.task = self.progress.add_task("train", total=total, completed=info["start"], loss=float("nan"))
            extra = f", time budget {self.budget / 60:g} min" if self.budget else ""
            self.console.print(f"training on {info['n_images']} image(s), {info['world']} process(es){extra}",
                               highlight=False)
        elif event == "step" and self.task is not None:
            desc = f"step {info['step']}"
            self.progress.update(self.task, completed=info["step"], loss=info["loss"], description=desc)
        elif event == "val":
            m = info["metrics"]
            self.console.print(f"step {info['step']}: validation PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f} "
                               f"({m['n_images']} image(s) at model size)", highlight=False)


def _train(args: dict[str, Any]) -> int:
    import os

    from medcolor.train.loop import TrainConfig, train

    rank = int(os.environ.get("RANK", "0") or 0)
    cfg = TrainConfig(**args)
    with progress_bar(TextColumn("loss {task.fields[loss]:.5f}"), TimeElapsedColumn(), disable=rank != 0) as progress:
        result = train(cfg, _TrainProgress(progress, err, rank))
    if rank == 0:
        v = result.get("validation") or {}
        out.print(f"wrote {result['output']}: {result['steps']} steps in {result['seconds'] / 60:.1f} min; "
                  f"validation PSNR {v.get('psnr', float('nan')):.2f} dB, SSIM {v.get('ssim', float('nan')):.4f}",
                  highlight=False)
    return EXIT_OK


def _train_cyclegan(args: dict[str, Any]) -> int:
    """``medcolor train --method cyclegan``: a progress bar with every loss term (a line per 10 steps
    when stderr is not a terminal)."""
    from medcolor.train.cyclegan import CycleConfig, train_cyclegan

    if args.get("gray") is None or args.get("color") is None:
        raise MedcolorError("--method cyclegan needs --gray DIR and --color DIR", where="--gray/--color",
                            hint="gray images or a DICOM series on one side, colour photos on the other")
    cfg = CycleConfig(**args)
    with progress_bar(TimeElapsedColumn()) as progress:
        state: dict[str, Any] = {}

        def cb(event: str, **info: Any) -> None:
            if event == "start":
                state["task"] = progress.add_task("train", total=None if info.get("budget") else info["steps"],
                                                  completed=info["start"])
                extra = f", time budget {info['budget'] / 60:g} min" if info.get("budget") else ""
                err.print(f"cyclegan: {info['n_gray']} gray and {info['n_color']} colour image(s), unpaired{extra}",
                          highlight=False)
            elif event == "step":
                terms = " ".join(f"{k} {v:.3f}" for k, v in info["parts"].items())
                progress.update(state["task"], completed=info["step"], description=f"step {info['step']}: {terms}")
                if not err.is_terminal and (info["step"] % 10 == 0 or info["step"] == info["steps"]):
                    err.print(f"step {info['step']}: {terms} lr {info['lr']:.2e}", highlight=False)
            elif event == "val":
                m = info["metrics"]
                err.print(f"step {info['step']}: colour-side validation PSNR {m['psnr']:.2f} SSIM {m['ssim']:.4f}",
                          highlight=False)

        result = train_cyclegan(cfg, cb)
    terms = " ".join(f"{k} {v:.3f}" for k, v in result["losses"].items())
    out.print(f"wrote {result['output']}: {result['steps']} steps in {result['seconds'] / 60:.1f} min; final losses "
              f"{terms}", highlight=False)
    return EXIT_OK


def _fmt(s: dict[str, float], digits: int) -> str:
    if not s or s.get("mean") is None or (isinstance(s["mean"], float) and math.isnan(s["mean"])):
        return "-"
    if math.isinf(s["mean"]):
        return "inf"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _evaluate(pred: Path, truth: str, size: int, baselines: list[str], train_dir: Optional[Path],
              output: Optional[Path], per_image: bool) -> int:
    from medcolor.evaluate import METRICS, evaluate, write_json

    res = evaluate(pred, truth, size=size, baselines=baselines, train=train_dir)
    digits = {"psnr": 2, "ssim": 4, "nrmse": 4, "delta_e2000": 2, "colourfulness": 1}
    t = Table(title=f"colour accuracy at {size}x{size} ({res['n_truth']} truth image(s))")
    t.add_column("colouring")
    for m in METRICS:
        t.add_column({"psnr": "PSNR dB", "ssim": "SSIM", "nrmse": "NRMSE", "delta_e2000": "ΔE2000",
                      "colourfulness": "colourfulness"}[m], justify="right")
    if res["prediction"]["n"]:
        t.add_row(f"prediction ({res['prediction']['n']})", *(_fmt(res["prediction"]["summary"][m], digits[m])
                                                              for m in METRICS))
    for name, b in res["baselines"].items():
        t.add_row(f"baseline {name}", *(_fmt(b["summary"][m], digits[m]) for m in METRICS))
    out.print(t)
    if per_image and res["prediction"]["per_image"]:
        pt = Table(title="per image")
        for c in ("truth", "PSNR", "SSIM", "ΔE2000"):
            pt.add_column(c)
        for r in res["prediction"]["per_image"]:
            pt.add_row(r["truth"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['delta_e2000']:.2f}")
        out.print(pt)
    out.print(f"protocol: {res['protocol']}", highlight=False, soft_wrap=True)
    if res["missing"]:
        out.print(f"[yellow]missing predictions for {len(res['missing'])} truth image(s):[/] "
                  f"{', '.join(res['missing'][:10])}", highlight=False)
    if output is not None:
        out.print(f"wrote {write_json(res, output)}", highlight=False)
    return EXIT_FAILED if res["missing"] else EXIT_OK


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to the medcolor app."""

    @app.command()
    def train(
        data: Optional[Path] = typer.Option(None, "--data", help="Folder of colour training images (PNG/JPEG/TIFF or colour DICOM); --method cnn."),
        output: Path = typer.Option(..., "-o", "--output", help="Checkpoint to write (manifest + weights + training state)."),
        method: str = typer.Option("cnn", "--method", "-m", help="What to train: cnn | cyclegan."),
        val: Optional[Path] = typer.Option(None, "--val", help="Folder of colour validation images (default: report on the training images)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Optimiser steps (default 2000, or unlimited with --max-minutes)."),
        max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop (and save) within this wall-clock budget."),
        seed: int = typer.Option(0, "--seed", help="Seed: same seed, data and --steps give the same weights."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue from a checkpoint written by medcolor train."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per step (per process under torchrun); default cnn 8, cyclegan 1."),
        size: int = typer.Option(128, "--size", help="Model resolution (square, multiple of 16)."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (cnn: 2e-3, cosine-annealed; cyclegan: 2e-4, see --lr-schedule)."),
        val_every: int = typer.Option(100, "--val-every", help="Validate every N steps (cnn: 0 = only at the end; cyclegan: colour-side validation, the best step's G_color is kept, 0 = off)."),
        checkpoint_every: int = typer.Option(200, "--checkpoint-every", help="Write the checkpoint every N steps."),
        base: int = typer.Option(16, "--width", help="Channels of the first U-Net level."),
        arch: str = typer.Option("luma-prior-unet", "--arch", help="cnn network: luma-prior-unet | fusion (VGG16+ResNet50+Inception-ResNet-v2 features fused) | inception-resnet-unet | tutorial (docs/cnn.md)."),
        width_mult: Optional[float] = typer.Option(None, "--width-mult", help="fusion / inception-resnet-unet / tutorial: multiple of the paper's channels (default 0.25 / 0.25 / 0.5)."),
        backbone_weights: List[Path] = typer.Option([], "--backbone-weights", help="fusion / inception-resnet-unet: a local torchvision- or timm-layout state dict (VGG16, ResNet50, Inception-ResNet-v2; repeatable), checked key by key, loaded at the paper's width and frozen."),
        camera_aug: float = typer.Option(0.0, "--camera-aug", help="Strength (0..1) of random camera-like colour shifts of the training photos (white balance, exposure, tone, saturation); 0 = off. For models that must carry over to other cameras."),
        chroma_gain: str = typer.Option("1", "--chroma-gain", help="cnn: scale of the predicted a,b at inference, G or GA,GB (0 < G <= 2), stored in the checkpoint; below 1 for models that must carry over to paler cameras (pick it with benchmarks/retina_shift.py --gains; docs/cnn.md)."),
        chroma_gain_slope: float = typer.Option(0.0, "--chroma-gain-slope", help="cnn: the chroma gain times 1 + K (L - 50) / 50 (-1 <= K <= 1; 0: the same gain at every lightness)."),
        chroma_centre: str = typer.Option("zero", "--chroma-centre", help="cnn: the point --chroma-gain scales a,b towards: zero (gray) | mean (the training images' mean a,b, stored as numbers) | CA,CB."),
        prior: str = typer.Option("auto", "--prior", help="Luminance prior: retrieval (per-image lookups of the training images, by histogram similarity) | global (one lookup) | auto (retrieval from 8 images on)."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
        workers: int = typer.Option(0, "--workers", help="Data-loader worker processes."),
        name: Optional[str] = typer.Option(None, "--name", help="Model name recorded in the manifest."),
        gray: Optional[Path] = typer.Option(None, "--gray", help="cyclegan: folder of gray images or a DICOM series (windowed as `run` does; see --window)."),
        color: Optional[Path] = typer.Option(None, "--color", help="cyclegan: folder of colour photos (unpaired with --gray)."),
        window: Optional[str] = typer.Option(None, "--window", "-w", help="cyclegan: window for DICOM on the gray side (as `medcolor run --window`)."),
        ngf: int = typer.Option(32, "--ngf", help="cyclegan: generator width (the paper: 64)."),
        n_blocks: int = typer.Option(6, "--n-blocks", help="cyclegan: generator residual blocks (the paper: 9)."),
        ndf: int = typer.Option(64, "--ndf", help="cyclegan: PatchGAN discriminator width."),
        gan_mode: str = typer.Option("lsgan", "--gan-mode", help="cyclegan: lsgan | vanilla."),
        lambda_adv: float = typer.Option(0.1, "--lambda-adv", help="cyclegan: adversarial weight (both directions)."),
        lambda_cycle: float = typer.Option(10.0, "--lambda-cycle", help="cyclegan: cycle-consistency weight."),
        lambda_identity: float = typer.Option(1.0, "--lambda-identity", help="cyclegan: identity weight (times --lambda-cycle)."),
        lambda_perceptual: float = typer.Option(1.0, "--lambda-perceptual", help="cyclegan: perceptual (VGG16 features) weight; 0 = off."),
        lambda_tv: float = typer.Option(1e-2, "--lambda-tv", help="cyclegan: total-variation weight (beta = 1); 0 = off."),
        perceptual_weights: Optional[Path] = typer.Option(None, "--perceptual-weights", help="cyclegan: local torchvision VGG16 state dict (never downloaded); default: fixed random-init VGG16 layout."),
        pool_size: int = typer.Option(50, "--pool-size", help="cyclegan: image pool of past fakes."),
        lr_schedule: str = typer.Option("linear", "--lr-schedule", help="cyclegan: linear (constant, then linear decay to 0) | cosine (to 0)."),
        no_l_lock: bool = typer.Option(False, "--no-l-lock", help="cyclegan: G_color predicts RGB instead of ab joined to the input L."),
        no_luma_prior: bool = typer.Option(False, "--no-luma-prior", help="cyclegan: no L->ab table from the colour side under G_color's residual (the paper's plain generator)."),
        work_size: int = typer.Option(256, "--work-size", help="cyclegan: images are shrunk to this longer side (and inference runs at it)."),
    ) -> None:
        """Train a colouriser on colour images (gray input made on the fly); runs under torchrun too."""
        def go() -> int:
            m = method.strip().lower()
            if m == "cyclegan":
                return _train_cyclegan(dict(
                    gray=gray, color=color, output=output, steps=steps, max_minutes=max_minutes, seed=seed,
                    resume=resume, batch_size=batch_size or 1, size=size, lr=2e-4 if lr is None else lr,
                    lr_schedule=lr_schedule, ngf=ngf, n_blocks=n_blocks, ndf=ndf, gan_mode=gan_mode,
                    lambda_adv=lambda_adv, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity,
                    lambda_perceptual=lambda_perceptual, lambda_tv=lambda_tv, perceptual_weights=perceptual_weights,
                    pool_size=pool_size, l_lock=not no_l_lock, luma_prior=not no_luma_prior, window=window,
                    checkpoint_every=checkpoint_every, val_every=val_every, device=device, name=name,
                    work_size=work_size))
            if m != "cnn":
                raise MedcolorError(f"cannot train method {method!r}", where="--method", hint="use --method cnn or cyclegan")
            if data is None:
                raise MedcolorError("--data is required for --method cnn", where="--data",
                                    hint="give a folder of colour training images")
            return _train(dict(data=data, output=output, val=val, steps=steps, max_minutes=max_minutes, seed=seed,
                               resume=resume, batch_size=batch_size or 8, size=size, lr=2e-3 if lr is None else lr,
                               val_every=val_every, checkpoint_every=checkpoint_every, base=base, device=device,
                               workers=workers, name=name, prior=prior, arch=arch.strip().lower(),
                               width_mult=width_mult, backbone_weights=list(backbone_weights),
                               camera_aug=camera_aug, chroma_gain=chroma_gain,
                               chroma_gain_slope=chroma_gain_slope, chroma_centre=chroma_centre))

        guard(go)

    @app.command()
    def evaluate(
        pred: Path = typer.Argument(..., help="Folder (or file) of colourised outputs (PNG/JPEG/TIFF/DICOM)."),
        truth: str = typer.Argument(..., help="Colour truth: a folder, a file or a glob (quote it)."),
        size: int = typer.Option(256, "--size", help="Both images are resized to SIZE x SIZE (bicubic) before scoring."),
        baseline: List[str] = typer.Option([], "--baseline", help="Also score gray | mean-ab | l-lut (repeatable)."),
        train_dir: Optional[Path] = typer.Option(None, "--train", help="Training images (for the mean-ab and l-lut baselines)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the metrics as JSON."),
        per_image: bool = typer.Option(False, "--per-image", help="Also print a per-image table."),
    ) -> None:
        """PSNR, SSIM, NRMSE, ΔE2000 and colourfulness of PRED against TRUTH, with trivial baselines."""
        names: list[str] = []
        for b in baseline:
            names.extend(x.strip() for x in b.split(",") if x.strip())
        guard(lambda: _evaluate(pred, truth, size, names, train_dir, output, per_image))
