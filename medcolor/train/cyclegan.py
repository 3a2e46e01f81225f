"""CycleGAN for unpaired colourisation (``medcolor train --method cyclegan``): discriminators, losses,
image pool and the training loop; the generators are :mod:`medcolor.nets.cyclegan`. Pure torch (no
torchvision, never downloads).

Domains and what the networks see:

* gray domain X: CIE L* of a gray slice (windowed DICOM as ``medcolor run`` windows it, or a gray
  image), 1 channel, fed to the networks as ``L / 50 - 1`` (-1..1);
* colour domain Y: sRGB photos, 3 channels, fed as ``2 * rgb - 1``.

``G_color`` (X -> Y) is a ResNet-block generator. With the L-lock (default) it predicts ``ab`` only
(``110 * tanh``) and its colour image is ``lab_to_srgb(L_input, ab)`` -- differentiable, so the
discriminator judges the colour image whose lightness is exactly the input's, which is what
``medcolor run`` writes. With ``l_lock=False`` it predicts sRGB directly (3 channels, tanh), as in the
paper. ``G_gray`` (Y -> X) predicts L (1 channel, tanh). Discriminators are 70x70 PatchGANs.

Losses (generator side, weights are flags):

* adversarial: LSGAN (MSE to 1/0, default) or vanilla (BCE with logits), both directions;
* cycle: ``|G_gray(G_color(x)) - x|_1 + |G_color(G_gray(y)) - y|_1`` (times ``lambda_cycle``);
* identity (times ``lambda_cycle * lambda_identity``): the channel counts differ, so identity is
  "a generator fed an image already in its target domain returns it": ``G_color`` fed the L of a colour
  photo returns that photo, ``G_gray`` fed a gray image (as sRGB gray) returns its L;
* perceptual (``lambda_perceptual``): L1 between VGG16 features (relu1_2, relu2_2, relu3_3; ImageNet
  normalisation) of each real image and its cycle reconstruction, both domains (gray as 3 equal
  channels). Weights: a local torchvision-layout VGG16 state dict (``features.*`` keys, shapes checked).
  Fallback without a file: the same three-stage VGG16 layout with a *fixed, seeded random*
  initialisation (Kaiming-normal, seed 0), frozen -- random conv features still compare local
  structure at several scales (documented in docs/cyclegan.md);
* total variation (``lambda_tv``, beta = 1): mean of ``sqrt(dx^2 + dy^2 + eps)`` over ``G_color``'s
  colour output.

Discriminators see past fakes through an image pool (50 by default, the usual half-swap rule).
Learning rate: constant for the first half then linear decay to zero (``linear``) or cosine annealing
to zero (``cosine``), against whichever of ``--steps`` and ``--max-minutes`` ends first. Under
``torchrun`` (``WORLD_SIZE`` > 1, gloo on the CPU, nccl on CUDA) every rank draws its own samples, the
four networks' gradients are averaged every step (data parallel), rank 0's clock decides when a time
budget ends and rank 0 writes the checkpoints. Seeded and
repeatable: sample ``s`` of a run is drawn from ``default_rng([seed, s, ...])``, torch is seeded,
the pool uses its own generator and is saved with the checkpoint, so ``--resume`` continues exactly.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from medcolor.color import lab_to_rgb8, srgb_to_lab
from medcolor.colorizers.base import resolve_device
from medcolor.errors import MedcolorError
from medcolor.nets.checkpoint import load_checkpoint
from medcolor.nets.cyclegan import ARCH, ColorGenerator, ResnetGenerator
from medcolor.train.checkpoint import save_checkpoint
from medcolor.train.data import _sample, describe_data, find_images, gray_l, lab_of, load_images
from medcolor.train.loop import budget_check, init_distributed
from medcolor.train.losses import GANLoss, load_vgg16_features, tv_loss
from medcolor.train.lut import fit_l_lut

__all__ = ["CycleConfig", "PatchDiscriminator", "ImagePool", "train_cyclegan", "gray_domain_images"]

ProgressFn = Callable[..., None]


# ------------------------------------------------------------------------------- discriminator
class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (``n_layers`` = 3): C64-C128-C256-C512 (4x4, LeakyReLU 0.2, instance norm from
    the second layer), then a 1-channel 4x4 conv: one logit per overlapping 70x70 patch."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1), nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1), nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)



# ------------------------------------------------------------------------------------- image pool
class ImagePool:
    """Buffer of up to ``size`` past fakes (Shrivastava et al.): each query image is, with
    probability 1/2 once the pool is full, swapped for a stored one. Own seeded generator."""

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = int(size)
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return images
        out = []
        for img in images.detach():
            img = img[None]
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() < 0.5:
                j = self.rng.randrange(self.size)
                out.append(self.images[j].clone())
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, dim=0)

    def state(self) -> dict[str, Any]:
        return {"images": [t.cpu() for t in self.images], "rng": repr(self.rng.getstate())}

    def load(self, st: dict[str, Any]) -> None:
        import ast

        self.images = list(st.get("images") or [])
        if st.get("rng"):
            self.rng.setstate(ast.literal_eval(st["rng"]))


# -------------------------------------------------------------------------------------------- data
def gray_domain_images(folder: str | Path, window: str | None, work_size: int) -> tuple[list[torch.Tensor], list[Path]]:
    """The gray domain: every slice of every series under ``folder`` (DICOM series windowed as
    ``medcolor run`` windows them -- ``window`` is ``--window``; gray or colour images give the L* of
    their sRGB gray), as L ``[1,H,W]`` /100 (0..1), longer side shrunk to ``work_size``."""
    from medcolor.io import read_slice, scan
    from medcolor.windowing import resolve_window, window_to_l

    root = Path(folder)
    if not root.is_dir():
        raise MedcolorError("not a folder", where=root, hint="give a folder of gray images or a DICOM series")
    res = scan([root])
    out: list[torch.Tensor] = []
    files: list[Path] = []
    for series in res.series:
        w = resolve_window(window, series, None)
        invert = str(getattr(series, "photometric", "")).upper() == "MONOCHROME1"
        for ref in series.slices:
            L = np.asarray(window_to_l(read_slice(ref, series), w, invert=invert), dtype=np.float32)
            t = torch.from_numpy(np.ascontiguousarray(L))[None] / 100.0
            H, W = t.shape[-2:]
            k = work_size / max(H, W)
            if k < 1.0:
                t = F.interpolate(t[None], size=(max(8, round(H * k)), max(8, round(W * k))), mode="area")[0]
            out.append(t.clamp(0.0, 1.0))
            files.append(Path(str(getattr(ref, "path", "")) or str(len(files))))
    if not out:
        raise MedcolorError("no gray images or DICOM slices found", where=root,
                            hint="put gray images (PNG/JPEG/TIFF) or a DICOM series in that folder")
    return out, files


def _batch(images: list[torch.Tensor], size: int, n: int, seed: int, step: int, tag: int, first: int = 0) -> torch.Tensor:
    """Samples ``first .. first+n-1`` of step ``step`` (rank r of a torchrun job takes ``first = r * n``)."""
    out = []
    for j in range(first, first + n):
        rng = np.random.default_rng([seed, tag, step, j])
        img = images[int(rng.integers(len(images)))]
        out.append(_sample(img, size, rng, augment=True))
    return torch.stack(out)


def colour_side_validation(g_color: ColorGenerator, images: list[torch.Tensor], device: torch.device) -> dict[str, float]:
    """The unpaired setting has no colour truth for the gray side; what can be checked is the colour
    side: G_color fed the L* of each colour photo's 8-bit gray (as ``medcolor run`` reads a gray image)
    must give back the photo. Mean PSNR and SSIM (8-bit RGB, as ``medcolor evaluate``) over ``images``."""
    from medcolor.evaluate import rgb_metrics

    was = g_color.training
    g_color.eval()
    rows = []
    with torch.no_grad():
        for img in images:
            rgb = img[None].to(device)
            L = gray_l(lab_of(rgb)[:, :1]).clamp(0.0, 100.0)
            pred = lab_to_rgb8(L, g_color(L).float())[0].permute(1, 2, 0).cpu().numpy()
            truth = (img.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
            rows.append(rgb_metrics(truth, pred))
    g_color.train(was)
    return {"psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows])),
            "n_images": len(rows)}


# ------------------------------------------------------------------------------------------ training
@dataclass
class CycleConfig:
    gray: Path
    color: Path
    output: Path
    steps: int | None = None            # default 2000, or unlimited with max_minutes
    max_minutes: float | None = None
    seed: int = 0
    resume: Path | None = None
    batch_size: int = 1
    size: int = 128
    work_size: int = 256
    lr: float = 2e-4
    lr_schedule: str = "linear"         # linear | cosine
    ngf: int = 32                       # the paper's 64 / 9 blocks: 3x slower per step here (benchmarks/run.py)
    n_blocks: int = 6
    ndf: int = 64
    gan_mode: str = "lsgan"
    lambda_adv: float = 0.1               # 1.0 drifted away from the data within 15 CPU minutes (docs/cyclegan.md)
    lambda_cycle: float = 10.0
    lambda_identity: float = 1.0
    lambda_perceptual: float = 1.0
    lambda_tv: float = 1e-2
    perceptual_weights: Path | None = None
    pool_size: int = 50
    l_lock: bool = True
    luma_prior: bool = True
    window: str | None = None
    checkpoint_every: int = 200
    val_every: int = 100                # colour-side validation (0: off); the best step's G_color is kept
    device: str = "cpu"
    name: str | None = None
    extra_manifest: dict[str, Any] = field(default_factory=dict)


def _lr_factor(schedule: str, frac: float) -> float:
    frac = min(1.0, max(0.0, frac))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    return 1.0 if frac < 0.5 else max(0.0, 2.0 * (1.0 - frac))   # linear: constant, then decay to 0


def _noop(*_: Any, **__: Any) -> None:
    return None


def train_cyclegan(cfg: CycleConfig, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train; returns ``{"output", "steps", "seconds", "losses", "manifest"}``. ``progress`` gets
    ``"start"``, ``"step"`` (step, steps, loss, and every loss term) and ``"saved"``."""

    progress = progress or _noop
    t0 = time.perf_counter()
    if cfg.size < 16 or cfg.batch_size < 1:
        raise MedcolorError("size must be >= 16 and batch size >= 1", where="--size/--batch-size")
    if cfg.lr_schedule not in ("linear", "cosine"):
        raise MedcolorError(f"unknown schedule {cfg.lr_schedule!r}", where="--lr-schedule", hint="linear or cosine")
    import torch.distributed as dist

    world, rank, device = init_distributed(resolve_device(cfg.device))
    steps_total = cfg.steps if cfg.steps is not None else (10 ** 7 if cfg.max_minutes else 2000)
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes else None

    gray_imgs, gray_files = gray_domain_images(cfg.gray, cfg.window, cfg.work_size)
    color_files = find_images(cfg.color)
    color_imgs = load_images(color_files, cfg.work_size)

    torch.manual_seed(cfg.seed)
    arch_args = {"ngf": cfg.ngf, "n_blocks": cfg.n_blocks, "l_lock": cfg.l_lock,
                 "luma_prior": bool(cfg.luma_prior and cfg.l_lock)}
    g_color = ColorGenerator(**arch_args)
    g_gray = ResnetGenerator(3, 1, cfg.ngf, cfg.n_blocks)
    d_color = PatchDiscriminator(3, cfg.ndf)
    d_gray = PatchDiscriminator(1, cfg.ndf)
    for m in (g_color, g_gray, d_color, d_gray):
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(mod.weight, 0.0, 0.02)
                nn.init.zeros_(mod.bias)
    if g_color.luma_prior:
        g_color.set_prior(fit_l_lut(color_imgs))
    pool_color = ImagePool(cfg.pool_size, cfg.seed * 2 + 1 + 1000 * rank)
    pool_gray = ImagePool(cfg.pool_size, cfg.seed * 2 + 2 + 1000 * rank)
    opt_g = torch.optim.Adam(list(g_color.parameters()) + list(g_gray.parameters()), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(d_color.parameters()) + list(d_gray.parameters()), lr=cfg.lr, betas=(0.5, 0.999))
    start = 0
    if cfg.resume:
        manifest, state, tstate = load_checkpoint(cfg.resume, with_training_state=True)
        if manifest.get("architecture") != ARCH:
            raise MedcolorError("cannot resume: not a cyclegan checkpoint", where=cfg.resume)
        if tstate is None or "g_gray" not in tstate:
            raise MedcolorError("checkpoint has no training state", where=cfg.resume,
                                hint="resume from the -o file of `medcolor train --method cyclegan`")
        if dict(manifest["arch_args"]) != arch_args or int(tstate["config"]["size"]) != cfg.size:
            raise MedcolorError(f"cannot resume with different --ngf/--n-blocks/--size/--no-l-lock "
                                f"(checkpoint: {manifest['arch_args']}, size {tstate['config']['size']})",
                                where=cfg.resume)
        g_color.load_state_dict(state)
        g_gray.load_state_dict(tstate["g_gray"])
        d_color.load_state_dict(tstate["d_color"])
        d_gray.load_state_dict(tstate["d_gray"])
        opt_g.load_state_dict(tstate["opt_g"])
        opt_d.load_state_dict(tstate["opt_d"])
        pool_color.load(tstate["pool_color"])
        pool_gray.load(tstate["pool_gray"])
        start = int(manifest.get("steps", 0))
        if tstate.get("torch_rng") is not None:
            torch.set_rng_state(tstate["torch_rng"])
    nets = (g_color, g_gray, d_color, d_gray)
    for m in nets:
        m.to(device).train()
    if world > 1:  # data parallel: the same weights everywhere, gradients averaged every step
        for m in nets:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, 0)

    def average_grads(*models: nn.Module) -> None:
        if world > 1:
            for m in models:
                for p in m.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= world
    vgg = load_vgg16_features(cfg.perceptual_weights).to(device) if cfg.lambda_perceptual > 0 else None
    gan = GANLoss(cfg.gan_mode)

    progress("start", steps=steps_total, start=start, n_images=len(gray_imgs) + len(color_imgs),
             n_gray=len(gray_imgs), n_color=len(color_imgs), world=world, rank=rank, budget=budget)
    step = start
    parts: dict[str, float] = {}
    step_time = 0.0
    val_images = color_imgs[:32]
    best: dict[str, Any] = {}
    if cfg.resume and tstate.get("best"):
        best = dict(tstate["best"])
        g_color.load_state_dict(tstate["g_color_last"])

    def validate() -> None:
        """Colour-side validation; keeps the best G_color (by PSNR) seen so far."""
        if rank != 0 or not cfg.val_every:
            return
        m = colour_side_validation(g_color, val_images, device)
        progress("val", step=step, metrics=m)
        if not best or m["psnr"] > best["metrics"]["psnr"]:
            best.update(step=step, metrics=m, state={k: v.detach().cpu().clone() for k, v in g_color.state_dict().items()})

    def save(final: bool) -> dict:
        extra = {"steps": step, "model_size": cfg.size, "work_size": cfg.work_size,
                 "training_data": {"gray": describe_data(cfg.gray, gray_files), "color": describe_data(cfg.color, color_files),
                                   "folder": f"{Path(cfg.gray).name} (gray) + {Path(cfg.color).name} (colour)",
                                   "n_images": len(gray_imgs) + len(color_imgs)},
                 "train_config": {"batch_size": cfg.batch_size, "size": cfg.size, "work_size": cfg.work_size,
                                  "lr": cfg.lr, "lr_schedule": cfg.lr_schedule, "seed": cfg.seed, "world_size": world,
                                  "max_minutes": cfg.max_minutes, "gan_mode": cfg.gan_mode, "lambda_adv": cfg.lambda_adv,
                                  "lambda_cycle": cfg.lambda_cycle, "lambda_identity": cfg.lambda_identity,
                                  "lambda_perceptual": cfg.lambda_perceptual, "lambda_tv": cfg.lambda_tv,
                                  "perceptual": vgg.source if vgg is not None else "off",
                                  "pool_size": cfg.pool_size, "ndf": cfg.ndf, "window": cfg.window},
                 "final_losses": parts}
        if rank != 0:
            return {}
        if cfg.name:
            extra["name"] = cfg.name
        extra.update(cfg.extra_manifest)
        if best:
            extra["validation"] = {**best["metrics"], "step": best["step"], "images": "colour side (G_color of "
                                   "each photo's gray L* against the photo)", "selected": "best PSNR"}
        tstate = {"g_color_last": g_color.state_dict(), "best": best or None,
                  "g_gray": g_gray.state_dict(), "d_color": d_color.state_dict(), "d_gray": d_gray.state_dict(),
                  "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "pool_color": pool_color.state(),
                  "pool_gray": pool_gray.state(), "torch_rng": torch.get_rng_state(),
                  "config": {"size": cfg.size, "batch_size": cfg.batch_size, "seed": cfg.seed}}
        shipped = g_color
        if best and best["step"] != step:  # the inference weights are the best validated step's
            shipped = ColorGenerator(**arch_args)
            shipped.load_state_dict(best["state"])
        man = save_checkpoint(cfg.output, shipped, ARCH, arch_args, extra, tstate)
        progress("saved", path=str(cfg.output), step=step, final=final)
        return man

    def set_grad(nets, flag: bool) -> None:
        for n in nets:
            for p in n.parameters():
                p.requires_grad_(flag)

    if not best:
        validate()   # step 0 (with the luminance prior: the colour-side lookup itself)
    while step < steps_total:
        ts = time.perf_counter()
        frac, stop = budget_check(step, steps_total, ts - t0, budget, step_time, world)
        if stop:
            break
        lr = cfg.lr * _lr_factor(cfg.lr_schedule, frac)
        for opt in (opt_g, opt_d):
            for g in opt.param_groups:
                g["lr"] = lr
        first = rank * cfg.batch_size
        L = (_batch(gray_imgs, cfg.size, cfg.batch_size, cfg.seed, step, 1, first) * 100.0).to(device)  # [B,1,S,S]
        y = _batch(color_imgs, cfg.size, cfg.batch_size, cfg.seed, step, 2, first).to(device)           # [B,3,S,S]
        y_L = srgb_to_lab(y)[:, :1].clamp(0.0, 100.0)
        x_n = L / 50.0 - 1.0

        # generators
        set_grad((d_color, d_gray), False)
        fake_y = g_color.rgb(L)                                   # 0..1
        fake_x = g_gray(y * 2.0 - 1.0)                            # -1..1 (L/50 - 1)
        fake_L = (fake_x + 1.0) * 50.0
        rec_x = g_gray(fake_y * 2.0 - 1.0)
        rec_y = g_color.rgb(fake_L)
        loss_gan = gan(d_color(fake_y * 2.0 - 1.0), True) + gan(d_gray(fake_x), True)
        loss_cyc = F.l1_loss(rec_x, x_n) + F.l1_loss(rec_y * 2.0 - 1.0, y * 2.0 - 1.0)
        loss_idt = torch.zeros((), device=device)
        if cfg.lambda_identity > 0:
            gray_rgb = (L / 100.0).expand(-1, 3, -1, -1) * 2.0 - 1.0   # a gray image already in X
            loss_idt = F.l1_loss(g_color.rgb(y_L) * 2.0 - 1.0, y * 2.0 - 1.0) + F.l1_loss(g_gray(gray_rgb), x_n)
        loss_per = torch.zeros((), device=device)
        if vgg is not None:
            loss_per = vgg.distance(rec_y, y) + vgg.distance(((rec_x + 1) / 2).expand(-1, 3, -1, -1),
                                                             (L / 100.0).expand(-1, 3, -1, -1))
        loss_tv = tv_loss(fake_y) if cfg.lambda_tv > 0 else torch.zeros((), device=device)
        loss_g = (cfg.lambda_adv * loss_gan + cfg.lambda_cycle * loss_cyc + cfg.lambda_cycle * cfg.lambda_identity * loss_idt
                  + cfg.lambda_perceptual * loss_per + cfg.lambda_tv * loss_tv)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_grads(g_color, g_gray)
        opt_g.step()

        # discriminators (on pooled past fakes)
        set_grad((d_color, d_gray), True)
        py = pool_color.query(fake_y.detach() * 2.0 - 1.0)
        px = pool_gray.query(fake_x.detach())
        loss_d = 0.5 * (gan(d_color(y * 2.0 - 1.0), True) + gan(d_color(py), False)) \
            + 0.5 * (gan(d_gray(x_n), True) + gan(d_gray(px), False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        average_grads(d_color, d_gray)
        opt_d.step()

        step += 1
        parts = {"G": float(loss_g.detach()), "adv": float(loss_gan.detach()), "cyc": float(loss_cyc.detach()),
                 "idt": float(loss_idt.detach()), "per": float(loss_per.detach()), "tv": float(loss_tv.detach()),
                 "D": float(loss_d.detach())}
        if not all(math.isfinite(v) for v in parts.values()):
            raise MedcolorError(f"training diverged at step {step} ({parts})", where="--lr", hint="lower the learning rate")
        dt = time.perf_counter() - ts
        step_time = dt if step_time == 0.0 else 0.9 * step_time + 0.1 * dt
        progress("step", step=step, steps=steps_total, loss=parts["G"], lr=lr, elapsed=time.perf_counter() - t0,
                 parts=dict(parts))
        if cfg.val_every and step % cfg.val_every == 0:
            validate()
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps_total:
            save(False)
    if cfg.val_every and step % cfg.val_every:
        validate()
    manifest = save(True)
    if world > 1:
        dist.barrier()
    return {"output": str(cfg.output), "steps": step, "seconds": time.perf_counter() - t0, "losses": parts,
            "manifest": manifest, "validation": {}}
