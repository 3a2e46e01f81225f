"""The training loop of ``medcolor train --method cnn``.

``train(cfg, progress)`` trains :class:`medcolor.nets.unet.LumaPriorUNet` on a folder of colour
images and writes a checkpoint (manifest + weights + training state for ``--resume``) to
``cfg.output``. Repeatable: with the same seed, data and ``--steps`` the weights are identical (sample
``i`` of the run is drawn from its own generator, see :mod:`medcolor.train.data`; torch's generator is
seeded; the learning-rate schedule depends on the step only). ``--max-minutes`` stops at a time
budget instead (the learning rate is annealed against whichever of the step and time budgets comes
first, so the step count reached depends on the machine). Runs under ``torchrun`` with
DistributedDataParallel when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA): every rank draws its own
samples, gradients are averaged, rank 0 validates and writes checkpoints.

``--arch`` picks the network: ``luma-prior-unet`` (default; luminance prior, per-image curve and U-Net
residual, trained on the sRGB loss) or one of the seeds' networks of :mod:`medcolor.nets` (``fusion``,
``inception-resnet-unet``, ``tutorial``: ``128 tanh`` ab, trained with the papers' MSE on ab / 128). For
the two with pretrained backbones, ``backbone_weights`` (local state-dict files) are checked key by key and
loaded before any image is read, the backbones built at the paper's width and frozen; without them the
manifest says the backbones were trained from scratch. ``budget_clock="cpu"`` measures ``max_minutes`` in
CPU time of this process (fair comparisons on a shared machine) instead of wall-clock time.

``progress(event, **info)`` is called with ``"start"``, ``"step"`` (step, steps, loss, lr, elapsed),
``"val"`` (step, metrics) and ``"saved"`` (path) -- the CLI turns them into a Rich progress bar.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medcolor.color import lab_to_rgb8
from medcolor.colorizers.base import resolve_device
from medcolor.errors import MedcolorError
from medcolor.nets.backbones import load_backbone_weights
from medcolor.nets.checkpoint import (ARCHITECTURES, METHOD_ARCH, NO_GAIN, apply_chroma_gain, build_network,
                                     check_chroma_centre, check_chroma_gain, load_checkpoint)
from medcolor.nets.lookup import soft_histogram
from medcolor.nets.unet import ARCH
from medcolor.train.checkpoint import save_checkpoint
from medcolor.train.data import AugmentedColourDataset, describe_data, find_images, load_images, whole_images
from medcolor.train.losses import ab_mse_loss, colour_loss
from medcolor.train.lut import chroma_centre, fit_l_lut

__all__ = ["TrainConfig", "train", "validate"]

SEED_WIDTH = {"fusion": 0.25, "inception-resnet-unet": 0.25, "tutorial": 0.5}  # default width multipliers
BANK_MAX = 512
BANK_MIN = 8      # "auto": fewer images give too few neighbours for a retrieved prior
ProgressFn = Callable[..., None]


@dataclass
class TrainConfig:
    data: Path
    output: Path
    val: Path | None = None
    steps: int | None = None          # default: 2000, or unlimited (time budget) with max_minutes
    max_minutes: float | None = None
    seed: int = 0
    resume: Path | None = None
    batch_size: int = 8
    size: int = 128                   # model resolution (square)
    lr: float = 2e-3
    val_every: int = 100
    checkpoint_every: int = 200
    work_size: int = 512              # images are shrunk to this longer side once, at load
    base: int = 16
    levels: int = 4
    prior: str = "auto"               # "retrieval" (per-image lookups of the training images), "global"
                                      # (one lookup), "auto": retrieval from BANK_MIN training images on
    arch: str = ARCH                  # luma-prior-unet | fusion | inception-resnet-unet | tutorial
    width_mult: float | None = None   # seed architectures: multiplier of the paper's channels (default SEED_WIDTH)
    backbone_weights: list[Path] = field(default_factory=list)  # fusion / inception-resnet-unet: local state dicts
    budget_clock: str = "wall"        # "wall" | "cpu" (process CPU time) for max_minutes
    camera_aug: float = 0.0           # strength of random camera-like colour shifts (data.random_camera); 0 = off
    chroma_gain: Any = 1.0            # inference-time scale of the predicted a,b: G or "GA,GB" (manifest
    chroma_gain_slope: float = 0.0    # "chroma_gain", nets.checkpoint.check_chroma_gain), times 1 + slope (L-50)/50,
    chroma_centre: Any = "zero"       # towards "zero" (a = b = 0), "mean" (the training images' mean ab) or "CA,CB";
                                      # not in the loss, applied in validation as at inference
    device: str = "cpu"
    workers: int = 0
    name: str | None = None           # model name recorded in the manifest
    extra_manifest: dict[str, Any] = field(default_factory=dict)


def _noop(*_: Any, **__: Any) -> None:
    return None


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return world, rank, local


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """``(world, rank, device)`` under torchrun (``WORLD_SIZE`` > 1): the process group is started (gloo on
    the CPU, nccl on CUDA, one GPU per local rank) and the CPU threads are shared out; else ``(1, 0, device)``."""
    import torch.distributed as dist

    world, rank, local = _dist_info()
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return world, rank, device


def budget_check(step: int, steps_total: int, elapsed: float, budget: float | None, step_time: float,
                 world: int) -> tuple[float, bool]:
    """``(fraction of training done, stop?)`` before a step: the larger of the step and time fractions;
    stop when the next step (and a final validation + save) would not fit the time budget. Under
    torchrun rank 0's clock decides, so every rank stops at the same step."""
    frac, stop = step / steps_total, 0.0
    if budget is not None:
        frac = max(frac, elapsed / budget)
        if elapsed + 1.5 * step_time + 5.0 >= budget:
            stop = 1.0
    if world > 1:
        import torch.distributed as dist

        t = torch.tensor([frac, stop], dtype=torch.float64)
        dist.broadcast(t, 0)
        frac, stop = float(t[0]), float(t[1])
    return frac, bool(stop)


class _StepBatches(torch.utils.data.Sampler):
    """Batches of dataset indices for steps ``start..stop-1``: step s, rank r of w takes indices
    ``(s * w + r) * B + j``; the same indices whatever the worker count or resume point."""

    def __init__(self, start: int, stop: int, batch: int, rank: int, world: int) -> None:
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __iter__(self):
        for s in range(self.start, self.stop):
            first = (s * self.world + self.rank) * self.batch
            yield list(range(first, first + self.batch))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _lr_factor(progress: float, step: int, warmup: int = 30) -> float:
    warm = min(1.0, (step + 1) / warmup)
    return warm * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def validate(net: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device,
             chroma_gain: dict[str, float] = NO_GAIN) -> dict[str, float]:
    """PSNR/SSIM (RGB, 8-bit, data_range 255, skimage) of the whole validation images at the model
    resolution, prediction (times the ``chroma_gain``) joined to the input L and gamut-mapped as ``medcolor run``
    does."""
    from medcolor.evaluate import rgb_metrics

    was = net.training
    net.eval()
    L = batch["L"].to(device)
    ab = apply_chroma_gain(L, torch.cat([net(L[i:i + 1]) for i in range(L.shape[0])]), chroma_gain)
    pred = lab_to_rgb8(L, ab.float()).permute(0, 2, 3, 1).cpu().numpy()
    truth = (batch["rgb"].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    rows = [rgb_metrics(t, p) for t, p in zip(truth, pred)]
    net.train(was)
    return {"psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows])),
            "n_images": len(rows)}


def _bank_ids(cfg: TrainConfig, n_images: int) -> list[int]:
    """Training images whose lookups form the retrieval bank (luma-prior-unet; needs 2+ images)."""
    if cfg.prior not in ("auto", "global", "retrieval"):
        raise MedcolorError(f"unknown prior {cfg.prior!r}", where="--prior", hint="use auto, global or retrieval")
    if (cfg.prior == "retrieval" and n_images >= 2) or (cfg.prior == "auto" and n_images >= BANK_MIN):
        return sorted(np.random.default_rng([cfg.seed, 7]).permutation(n_images)[:BANK_MAX].tolist())
    return []


def _seed_network(cfg: TrainConfig) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any] | None]:
    """``(net, arch_args, backbones)`` of a seed architecture, pretrained backbones loaded (every key and
    shape checked, before any image is read) and frozen; ``backbones`` is the manifest's record."""
    if cfg.arch not in METHOD_ARCH["cnn"]:
        raise MedcolorError(f"unknown architecture {cfg.arch!r}", where="--arch",
                            hint=f"use one of {', '.join(METHOD_ARCH['cnn'])}")
    names = getattr(ARCHITECTURES[cfg.arch], "BACKBONES", ())
    if cfg.backbone_weights and not names:
        raise MedcolorError(f"architecture {cfg.arch!r} has no pretrained backbone", where="--backbone-weights",
                            hint="use it with --arch fusion or inception-resnet-unet")
    args: dict[str, Any] = {"width": float(cfg.width_mult or SEED_WIDTH[cfg.arch])}
    if cfg.backbone_weights:
        args["backbone_width"] = 1.0
    net = build_network(cfg.arch, args)
    if not names:
        return net, dict(net.args), None
    records = load_backbone_weights(net.backbones(), cfg.backbone_weights)
    net.freeze([r["backbone"] for r in records])
    done = {r["backbone"] for r in records}
    return net, dict(net.args), {"pretrained": records, "from_scratch": [n for n in names if n not in done]}


def _resume(cfg: TrainConfig, n_bank: int) -> tuple[torch.nn.Module, dict[str, Any], Any, int, Any]:
    """``(net, arch_args, backbones, start_step, optimizer state)`` from ``cfg.resume``."""
    manifest, state, tstate = load_checkpoint(cfg.resume, with_training_state=True)
    if manifest["architecture"] != cfg.arch:
        raise MedcolorError(f"cannot resume: the checkpoint is a {manifest['architecture']}, not --arch {cfg.arch}",
                            where=cfg.resume, hint=f"use --arch {manifest['architecture']}")
    arch_args = dict(manifest["arch_args"])
    if cfg.arch == ARCH and int(arch_args.get("bank_size", 0)) != n_bank:
        raise MedcolorError("cannot resume: the training images differ from the checkpoint's", where=cfg.resume)
    net = build_network(cfg.arch, arch_args)
    net.load_state_dict(state)
    backbones = manifest.get("backbones")
    if backbones:
        net.freeze([r["backbone"] for r in backbones.get("pretrained", [])])
    if tstate is None:
        raise MedcolorError("checkpoint has no training state (a shipped/exported model)", where=cfg.resume,
                            hint="resume from the -o file of `medcolor train`")
    prev = tstate.get("config") or {}
    if int(prev.get("size", cfg.size)) != cfg.size:
        raise MedcolorError(f"cannot resume at --size {cfg.size}: the checkpoint was trained at "
                            f"{prev.get('size')}", where=cfg.resume, hint=f"use --size {prev.get('size')}")
    return net, arch_args, backbones, int(manifest.get("steps", 0)), tstate.get("optimizer")


def train(cfg: TrainConfig, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train; returns ``{"output", "steps", "validation", "seconds", "manifest"}`` (on every rank)."""
    import torch.distributed as dist

    progress = progress or _noop
    t0 = time.perf_counter()
    clock = time.process_time if cfg.budget_clock == "cpu" else time.perf_counter
    c0 = clock()
    if cfg.batch_size < 1 or cfg.size < 16 or cfg.size % 16:
        raise MedcolorError("batch size must be >= 1 and size a multiple of 16 (>= 16)", where="--size/--batch-size")
    mean_centre = isinstance(cfg.chroma_centre, str) and cfg.chroma_centre.strip().lower() == "mean"
    check_chroma_gain(cfg.chroma_gain, cfg.chroma_gain_slope)   # both refused before any work; "mean" is
    check_chroma_centre(None if mean_centre else cfg.chroma_centre)  # resolved once the images are loaded
    world, rank, device = init_distributed(resolve_device(cfg.device))
    steps_total = cfg.steps if cfg.steps is not None else (10 ** 7 if cfg.max_minutes else 2000)
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes else None

    files = find_images(cfg.data)
    torch.manual_seed(cfg.seed)
    luma = cfg.arch == ARCH
    bank_ids = _bank_ids(cfg, len(files)) if luma else []
    backbones: dict[str, Any] | None = None
    start_step, opt_state = 0, None
    if cfg.resume:
        net, arch_args, backbones, start_step, opt_state = _resume(cfg, len(bank_ids))
    elif luma:
        if cfg.backbone_weights:
            raise MedcolorError(f"architecture {ARCH!r} has no pretrained backbone", where="--backbone-weights",
                                hint="use it with --arch fusion or inception-resnet-unet")
        arch_args = {"base": cfg.base, "levels": cfg.levels, "bank_size": len(bank_ids)}
        net = build_network(ARCH, arch_args)
    else:
        net, arch_args, backbones = _seed_network(cfg)
    images = load_images(files, cfg.work_size)
    gain = check_chroma_gain(cfg.chroma_gain, cfg.chroma_gain_slope, centre=chroma_centre(cfg.chroma_centre, images))
    val_files = find_images(cfg.val) if cfg.val else files
    val_images = load_images(val_files, cfg.work_size) if cfg.val else images
    val_batch = whole_images(val_images[:32], cfg.size)
    data_desc = describe_data(cfg.data, files)
    to_bank = torch.full((len(images),), -1, dtype=torch.long)
    for j, i in enumerate(bank_ids):
        to_bank[i] = j
    if luma and not cfg.resume:
        net.set_lut(fit_l_lut(images))
        if bank_ids:
            whole = whole_images([images[i] for i in bank_ids], cfg.size)["L"]
            net.set_bank(torch.stack([fit_l_lut([images[i]]) for i in bank_ids]),
                         soft_histogram(whole, net.hist_bins))
    net = net.to(device)
    model: torch.nn.Module = net
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    ab_loss = getattr(net, "loss", "colour") == "ab_mse"

    from monai.data import DataLoader

    dataset = AugmentedColourDataset(images, cfg.size, length=(steps_total + 1) * cfg.batch_size * world,
                                     seed=cfg.seed, camera=cfg.camera_aug)
    loader = DataLoader(dataset, batch_sampler=_StepBatches(start_step, steps_total, cfg.batch_size, rank, world),
                        num_workers=cfg.workers)
    progress("start", steps=steps_total, start=start_step, n_images=len(files), world=world, rank=rank,
             budget=budget)
    val_metrics: dict[str, float] = {}
    step = start_step
    last_loss = float("nan")
    step_time = 0.0

    def save(final: bool) -> None:
        if rank != 0:
            return
        extra = {"steps": step, "model_size": cfg.size, "training_data": data_desc,
                 "validation": dict(val_metrics, images=("validation folder " + Path(cfg.val).name) if cfg.val
                                    else "training images (no --val given)"),
                 "train_config": {"batch_size": cfg.batch_size, "size": cfg.size, "lr": cfg.lr, "seed": cfg.seed,
                                  "world_size": world, "max_minutes": cfg.max_minutes,
                                  "camera_aug": cfg.camera_aug},
                 "chroma_gain": gain,
                 "final_loss": last_loss, "loss": "ab_mse" if ab_loss else "colour"}
        if backbones is not None:
            extra["backbones"] = backbones
        if cfg.name:
            extra["name"] = cfg.name
        extra.update(cfg.extra_manifest)
        tstate = {"optimizer": opt.state_dict(), "config": {"size": cfg.size, "batch_size": cfg.batch_size,
                                                              "seed": cfg.seed}}
        save_checkpoint(cfg.output, net, cfg.arch, arch_args, extra, tstate)
        progress("saved", path=str(cfg.output), step=step, final=final)

    model.train()
    it = iter(loader)
    while step < steps_total:
        ts = clock()
        frac, stop = budget_check(step, steps_total, ts - c0, budget, step_time, world)
        if stop:
            break
        try:
            batch = next(it)
        except StopIteration:
            break
        for g in opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(frac, step)
        L, ab, rgb = (batch[k].to(device, non_blocking=True) for k in ("L", "ab", "rgb"))
        if luma:
            pred = model(L, None, to_bank[batch["image"].long()].to(device) if bank_ids else None)
        else:
            pred = model(L)
        loss, parts = ab_mse_loss(pred, ab) if ab_loss else colour_loss(L, pred, ab, rgb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        last_loss = float(loss.detach())
        if not math.isfinite(last_loss):
            raise MedcolorError(f"training diverged at step {step} (loss {last_loss})", where="--lr",
                                hint="lower the learning rate")
        dt = clock() - ts
        step_time = dt if step_time == 0.0 else 0.9 * step_time + 0.1 * dt
        progress("step", step=step, steps=steps_total, loss=last_loss, lr=opt.param_groups[0]["lr"],
                 elapsed=time.perf_counter() - t0, **parts)
        if rank == 0 and cfg.val_every and step % cfg.val_every == 0 and step < steps_total:
            val_metrics = validate(net, val_batch, device, gain)
            progress("val", step=step, metrics=val_metrics)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps_total:
            save(False)
    if rank == 0:
        val_metrics = validate(net, val_batch, device, gain)
        progress("val", step=step, metrics=val_metrics)
    save(True)
    if world > 1:
        dist.barrier()
    result = {"output": str(cfg.output), "steps": step, "validation": val_metrics,
              "seconds": time.perf_counter() - t0, "rank": rank, "world_size": world}
    return result


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
