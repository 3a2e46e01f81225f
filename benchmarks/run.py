"""medcolor's one benchmark: I/O floor, full `medcolor run` per backend, colour-transfer peers and network
inference, in one table, with the goals checked underneath.

    python benchmarks/run.py [--small 100] [--large 400] [--repeats 3] [--methods lut,exemplar,cnn,cyclegan]
                             [--skip-peers] [--skip-nets] [--net-size 512] [--markdown FILE] [--source DIR]

Input: a 512x512 CT series generated from real slices (``--source``, default ../shared/data's 30-slice
chest CT if present, else sample_dicom/ct_chest) with ``make_series`` of benchmarks/pipeline_vs_floor.py,
once with ``--small`` and once with ``--large`` slices. Everything runs on the CPU. The machine may be
shared, so every timed measurement is repeated ``--repeats`` times and the fastest is kept; the repeats
are rounds (each round times every floor and run at both sizes once), so a slow spell of the machine falls
on all of them rather than on one row; dirty pages are written back (``os.sync``) before each timed floor
or run, so no run pays for an earlier one's writes.

Rows
* I/O floor (marginal): ``floor`` of pipeline_vs_floor.py -- pydicom read + pixel_array of every slice
  ("read only"), and the same plus an 8-bit RGB Secondary Capture of the same size written with pydicom
  ("read + write", the floor every full run is compared with). Marginal cost per slice
  ``(t_large - t_small) / (large - small)``, so start-up does not count; the page cache is warmed first.
* medcolor run (marginal): ``python -m medcolor run DIR -o OUT --method M --window 1500,-600 --overwrite``
  as a subprocess (exemplar adds ``--ref sample_dicom/refs/beef_marbled.jpg``, cnn ``--model retina``: the
  one shipped cnn model, there is no cnn default since meat was withdrawn; cyclegan ``--model meat``), same
  marginal cost. "x floor" = floor ms / run ms (1.0 = as fast as
  reading and writing the DICOM files alone). "peak MiB": the peak RSS of the large run, from
  ``os.wait4`` (the largest of the run's process and its reaped reader worker, not their sum). A run that
  fails is a row ``failed: <its last error line>``.
* real series (when ../shared/data/ct_chest_lung_pet_ct_dx_A0002 exists): the floors and the same runs on
  that 30-slice series as it is; too few slices for a marginal cost, so these are whole-run figures
  *including start-up* (imports, scanning, model loading).
* peers (per slice, in process, compute only): 20 slices of the large series windowed to 8-bit gray
  (W 1500, L -600: ``clip((HU - (L - W/2)) / W, 0, 1)``, HU = pixel * slope + intercept) as a 3-channel
  image, coloured from the reference photo (BGR uint8 from cv2.imread):
  - color-transfer ``color_transfer(reference, gray)`` (Reinhard et al. 2001 in OpenCV's 8-bit Lab);
  - python-color-transfer ``ColorTransfer().lab_transfer`` (Reinhard in Lab), ``mean_std_transfer`` (the
    same statistics in BGR) and ``pdf_transfer(regrain=False)`` (iterative distribution transfer, Pitie
    et al. 2007; ~0.6 s per slice, so timed on 3 slices). A gray image has zero chroma spread: Reinhard
    divides by it (numpy warnings silenced); the outputs are flat tints -- only their cost matters here;
  - medcolor exemplar in process: the registry's ``exemplar`` backend, ``prepare`` once on the same slices,
    then per slice ``colorize(L)`` + ``upsample_ab`` + ``lab_to_rgb8`` (RGB8 out, like the peers;
    its input is the windowed L as float, theirs the 8-bit gray image), next to the full-pipeline
    exemplar figure from the run rows.
  Install the peers (not medcolor dependencies) WITHOUT their dependencies -- python-color-transfer
  declares opencv-python and numpy<2, which would put a non-headless OpenCV over opencv-python-headless:
      pip install --no-deps -r benchmarks/requirements-peers.txt
* nets (CPU, ``--net-size`` square input, default 512, random L): batch 1 and 8, fp32 and bf16
  (``torch.autocast("cpu", dtype=torch.bfloat16)``), ``torch.inference_mode()``; 1 warm-up call, then as
  many as fit in ~3 s (at least 2); a warm-up call over 20 s is the row's figure, timed once (CPUs
  without bf16 support run bf16 dilated convolutions through a slow reference GEMM):
  - Zhang et al. 2016 (ECCV) network, random weights: resize to half size (512 -> 256, inside the timing),
    313-bin classifier, annealed-mean decoding, ab upsampled to full size;
  - CycleGAN ResnetGenerator (ngf 64, 9 blocks; ``medcolor.nets.cyclegan``), random weights, at full size;
  - medcolor cnn: the shipped cnn model ``retina`` (meat was withdrawn) through ``predict_ab`` (as the
    backend runs it);
  - medcolor cyclegan: the shipped cyclegan model "meat" if one loads, else a random-weight
    ``ColorGenerator(ngf=32, n_blocks=6, l_lock=True, luma_prior=True)`` (the label says which): as the
    backend runs it (resize to ``infer_size`` 256, generator, ab upsampled) and the raw generator at
    full size.

* cyclegan training step: seconds per step of ``train_cyclegan`` (every loss, both generators and
  discriminators, batch 1, 128x128 crops) with medcolor's defaults and with the paper's ngf 64 / 9 blocks,
  gray = sample_dicom/ct_chest (lung window), colour = sample_dicom/refs; median of steps 3..12.

Goals (under the table, PASS/FAIL with the figures): exemplar and lut full runs >= 0.5x the read+write
floor (issue 16; 0.7x before it, with a hand-written header parser and SC encoder); cnn full run >= 10
slices/s; medcolor exemplar per slice (in process) faster than the fastest peer.
``--markdown FILE`` also writes the table, the command line and the machine facts as markdown.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_vs_floor import ROOT, SHARED_CT, floor, make_series  # noqa: E402

WINDOW_W, WINDOW_L = 1500.0, -600.0
PEER_SLICES, PDF_SLICES = 20, 3
NET_SECONDS = 3.0
NET_MAX_CALL = 20.0  # a network call slower than this is timed once (the warm-up call) and not repeated
FLOOR_GOAL = 0.5  # issue 16: lut and exemplar at >= 0.5x the floor, on pydicom's public API (0.7 before it)
PEER_HINT = "not installed (pip install --no-deps -r benchmarks/requirements-peers.txt)"


@dataclass
class Row:
    section: str
    name: str
    cost: float | None = None       # seconds per slice
    floor: float | None = None      # read+write floor (s/slice) this row is compared with
    rss_mib: float | None = None
    note: str = ""
    key: str = ""                   # for the goals


def _failed(err: BaseException) -> str:
    """``failed: <first sentence of the last non-empty line>`` of an error or a run's output."""
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    last = (lines[-1] if lines else type(err).__name__).removeprefix("error: ")
    return "failed: " + last.split(". ")[0].rstrip(".")


# ------------------------------------------------------------------------------ floor and full runs
def cli_run(folder: Path, out: Path, method: str, ref: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one ``medcolor run``; RuntimeError with its output on failure."""
    cmd = [sys.executable, "-m", "medcolor", "run", str(folder), "-o", str(out), "--method", method,
           "--window", f"{WINDOW_W:g},{WINDOW_L:g}", "--overwrite"]
    cmd += {"exemplar": ["--ref", str(ref)], "cnn": ["--model", "retina"],
            "cyclegan": ["--model", "meat"]}.get(method, [])
    with tempfile.TemporaryFile("w+") as log:
        os.sync()  # no earlier run's dirty pages written back while this one is timed
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        shutil.rmtree(out, ignore_errors=True)
        if proc.returncode:
            log.seek(0)
            raise RuntimeError(log.read() or f"exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024


def io_and_runs(section: str, tag: str, folders: list[Path], methods: list[str], work: Path,
                a: argparse.Namespace) -> list[Row]:
    """Floor and full-run rows for one folder (whole run) or two (marginal between them)."""
    counts = [len(list(f.glob("*.dcm"))) for f in folders]

    def per_slice(times: list[float]) -> float:
        if len(times) == 2:
            return (times[1] - times[0]) / (counts[1] - counts[0])
        return times[0] / counts[0]

    for f in folders:  # warm the page cache once so every contender reads from memory
        floor(f, None)
    seconds: dict[str, list[list[float]]] = {k: [[] for _ in folders] for k in ("read", "rw", *methods)}
    peak: dict[str, float] = {}
    failed: dict[str, str] = {}
    for _ in range(a.repeats):     # a round: every contender at every size once
        for i, f in enumerate(folders):
            seconds["read"][i].append(floor(f, None))
            seconds["rw"][i].append(floor(f, work / f"floor{i}"))
            for m in (m for m in methods if m not in failed):
                try:
                    t, mib = cli_run(f, work / f"{m}{i}", m, a.ref)
                except Exception as err:  # noqa: BLE001 - one failing backend must not stop the benchmark
                    failed[m] = _failed(err)
                    continue
                seconds[m][i].append(t)
                if i == len(folders) - 1:
                    peak[m] = max(peak.get(m, 0.0), mib)

    def fastest(key: str) -> float:
        return per_slice([min(ts) for ts in seconds[key]])

    rw = fastest("rw")
    rows = [Row(section, "I/O floor: read only (pydicom)", fastest("read"), rw),
            Row(section, "I/O floor: read + write RGB SC (pydicom)", rw, rw, key=f"{tag}:floor")]
    for m in methods:
        name = f"medcolor run --method {m}"
        if m in failed:
            rows.append(Row(section, name, note=failed[m], key=f"{tag}:{m}"))
        else:
            rows.append(Row(section, name, fastest(m), rw, peak[m], key=f"{tag}:{m}"))
    return rows


# ------------------------------------------------------------------------------------------- peers
def windowed_slices(folder: Path, k: int) -> list[np.ndarray]:
    """The first ``k`` slices as float32 0..1 (W 1500, L -600 on HU)."""
    out = []
    for p in sorted(folder.glob("*.dcm"))[:k]:
        ds = pydicom.dcmread(p)
        hu = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        out.append(np.clip((hu - (WINDOW_L - WINDOW_W / 2)) / WINDOW_W, 0, 1).astype(np.float32))
    return out


def time_per_slice(fn: Callable, inputs: list, repeats: int) -> float:
    fn(inputs[0])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x in inputs:
            fn(x)
        best = min(best, (time.perf_counter() - t0) / len(inputs))
    return best


def peer_rows(folder: Path, ref: Path, repeats: int, exemplar_run: Row | None) -> list[Row]:
    import cv2

    from medcolor.color import lab_to_rgb8, to_hwc_numpy, upsample_ab
    from medcolor.colorizers import get_colorizer
    from medcolor.io import read_image_rgb
    from medcolor.types import SeriesContext, Window

    sec = f"peers: {PEER_SLICES} slices, per slice, in process"
    windowed = windowed_slices(folder, PEER_SLICES)
    gray = [np.repeat((w * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2) for w in windowed]
    ref_bgr = cv2.imread(str(ref))
    peers: list[tuple[str, Callable, int]] = []
    rows: list[Row] = []
    try:
        from color_transfer import color_transfer

        peers.append(("color-transfer: color_transfer (Reinhard, OpenCV Lab)",
                      lambda g: color_transfer(ref_bgr, g), PEER_SLICES))
    except ImportError:
        rows.append(Row(sec, "color-transfer", note=PEER_HINT))
    try:
        from python_color_transfer.color_transfer import ColorTransfer

        ct = ColorTransfer()
        peers += [("python-color-transfer: lab_transfer (Reinhard, Lab)",
                   lambda g: ct.lab_transfer(img_arr_in=g, img_arr_ref=ref_bgr), PEER_SLICES),
                  ("python-color-transfer: mean_std_transfer (BGR)",
                   lambda g: ct.mean_std_transfer(img_arr_in=g, img_arr_ref=ref_bgr), PEER_SLICES),
                  (f"python-color-transfer: pdf_transfer (IDT; {PDF_SLICES} slices)",
                   lambda g: ct.pdf_transfer(img_arr_in=g, img_arr_ref=ref_bgr, regrain=False), PDF_SLICES)]
    except ImportError:
        rows.append(Row(sec, "python-color-transfer", note=PEER_HINT))
    with np.errstate(all="ignore"):  # Reinhard divides by the gray input's zero chroma spread
        rows += [Row(sec, name, time_per_slice(fn, gray[:k], repeats), key="peer") for name, fn, k in peers]

    rgb, sha = read_image_rgb(ref)
    col = get_colorizer("exemplar", "cpu", reference_rgb=rgb, reference_sha256=sha)
    Ls = [torch.from_numpy(w * 100)[None, None] for w in windowed]
    H, W = windowed[0].shape
    col.prepare(SeriesContext("CT", Window(WINDOW_L, WINDOW_W), True, len(Ls), H, W), torch.cat(Ls))

    def exemplar(L: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            ab = upsample_ab(col.colorize(L), (H, W))
            return to_hwc_numpy(lab_to_rgb8(L, ab))[0]

    rows.append(Row(sec, "medcolor exemplar: colorize + Lab->RGB8", time_per_slice(exemplar, Ls, repeats),
                    key="medcolor:exemplar"))
    if exemplar_run is not None:
        rows.append(Row(sec, "medcolor run --method exemplar (full pipeline)", exemplar_run.cost,
                        note=exemplar_run.note or "the marginal run figure above"))
    return rows


# -------------------------------------------------------------------------------------------- nets
class Zhang2016(nn.Module):
    """Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016 (arXiv:1603.08511): the published
    network layout, random weights (timing only). conv1..conv7 blocks of 3x3 convs + ReLU, BatchNorm at
    the end of each block, widths 64, 128, 256, 512, 512 (dilation 2), 512 (dilation 2), 512, strides 2
    at the end of conv1..conv3; conv8: 4x4 transposed conv (stride 2) to 256 + two 3x3 convs; a 1x1
    classifier over 313 ab bins; annealed-mean decoding (softmax(z / T), T = 0.38) against the bin centres
    (random here). The net runs at half the input size (512 -> 256, as published) and its ab (1/4 of
    that) is upsampled to the input size."""

    def __init__(self, n_bins: int = 313, temperature: float = 0.38) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for cout, n, stride, dil in ((64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1),
                                     (512, 3, 1, 2), (512, 3, 1, 2), (512, 3, 1, 1)):
            for i in range(n):
                layers += [nn.Conv2d(cin, cout, 3, stride if i == n - 1 else 1, dil, dil), nn.ReLU(True)]
                cin = cout
            layers.append(nn.BatchNorm2d(cout))
        layers += [nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.ReLU(True), nn.Conv2d(256, 256, 3, 1, 1),
                   nn.ReLU(True), nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(True), nn.Conv2d(256, n_bins, 1)]
        self.net = nn.Sequential(*layers)
        self.temperature = temperature
        self.register_buffer("bins", torch.randn(n_bins, 2) * 40.0)

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        size = L.shape[-2:]
        x = F.interpolate(L, size=(size[0] // 2, size[1] // 2), mode="area")
        q = torch.softmax(self.net((x - 50.0) / 100.0) / self.temperature, dim=1)
        ab = torch.einsum("bqhw,qc->bchw", q, self.bins.to(q.dtype))
        return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)


def cyclegan_backend():
    """The cyclegan backend with the shipped model "meat", else with a random-weight generator."""
    from medcolor.colorizers import get_colorizer
    from medcolor.nets.checkpoint import load_model_options, state_sha256
    from medcolor.nets.cyclegan import ARCH, ColorGenerator

    try:
        return get_colorizer("cyclegan", "cpu", **load_model_options("meat", method="cyclegan")), "shipped meat"
    except Exception as err:  # noqa: BLE001 - no shipped cyclegan model (yet), or an older load_model_options
        args = {"ngf": 32, "n_blocks": 6, "l_lock": True, "luma_prior": True}
        state = ColorGenerator(**args).state_dict()
        manifest = {"architecture": ARCH, "arch_args": args, "weights_sha256": state_sha256(state)}
        return (get_colorizer("cyclegan", "cpu", manifest=manifest, state_dict=state),
                f"random weights, ngf 32, 6 blocks (no loadable shipped cyclegan meat: {type(err).__name__})")


def net_contenders(size: int) -> list[tuple[str, Callable[[], tuple[Callable, str]]]]:
    """(label, builder) pairs; a builder returns the function timed on an L batch [B,1,size,size] and a
    note for its rows."""
    from medcolor.color import upsample_ab
    from medcolor.colorizers.cnn import predict_ab
    from medcolor.nets.checkpoint import build_model, load_model_options
    from medcolor.nets.cyclegan import ResnetGenerator

    def resnet():
        net = ResnetGenerator(1, 2, 64, 9).eval()
        return (lambda L: net(L / 50.0 - 1.0)), ""

    def cnn():
        opts = load_model_options("retina")
        net, m = build_model(opts["manifest"], opts["state_dict"]), int(opts["manifest"].get("model_size", 128))
        return (lambda L: predict_ab(net, L, m)), f"model_size {m}"

    cyc: dict = {}

    def cyclegan_as_backend():
        cyc["col"], cyc["note"] = cyclegan_backend()
        return (lambda L: upsample_ab(cyc["col"].colorize(L), (size, size))), cyc["note"]

    def cyclegan_raw():
        return cyc["col"].net, cyc["note"]

    return [(f"Zhang et al. 2016 net, random weights (at {size // 2}, +resize)", lambda: (Zhang2016().eval(), "")),
            (f"CycleGAN ResnetGenerator ngf 64, 9 blocks, random weights (at {size})", resnet),
            ("medcolor cnn retina: predict_ab", cnn),
            ("medcolor cyclegan as the backend runs it (at 256, ab upsampled)", cyclegan_as_backend),
            (f"medcolor cyclegan generator raw (at {size})", cyclegan_raw)]


def net_rows(size: int) -> list[Row]:
    sec = f"nets: {size}x{size}, CPU, per slice"
    gen = torch.Generator().manual_seed(0)
    rows: list[Row] = []
    for label, build in net_contenders(size):
        try:
            fn, note = build()
        except Exception as err:  # noqa: BLE001
            rows.append(Row(sec, label, note=_failed(err)))
            continue
        for batch in (1, 8):
            L = torch.rand(batch, 1, size, size, generator=gen) * 100.0
            for bf16 in (False, True):
                name = f"{label}, b{batch} {'bf16' if bf16 else 'fp32'}"
                try:
                    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        t_warm = time.perf_counter()
                        fn(L)
                        t_warm = time.perf_counter() - t_warm
                        if t_warm > NET_MAX_CALL:  # e.g. bf16 dilated convolutions without CPU bf16 support
                            rows.append(Row(sec, name, t_warm / batch, note=f"one call only: it took {t_warm:.0f} s"))
                            continue
                        n, t0 = 0, time.perf_counter()
                        while n < 2 or time.perf_counter() - t0 < NET_SECONDS:
                            fn(L)
                            n += 1
                        cost = (time.perf_counter() - t0) / (n * batch)
                    rows.append(Row(sec, name, cost, note=note))
                except Exception as err:  # noqa: BLE001
                    rows.append(Row(sec, name, note=_failed(err)))
    return rows


def training_step_rows(steps: int = 12) -> list[Row]:
    """Seconds per CycleGAN training step (the defaults, and the paper's ngf 64 / 9 blocks): every loss
    term, both generators and discriminators, batch 1 of 128x128 crops; gray = the sample CT series
    (lung window), colour = the sample beef photo. Median of steps 3..N (the first ones warm up)."""
    from medcolor.train.cyclegan import CycleConfig, train_cyclegan

    sec = "cyclegan training step, CPU"
    rows = []
    for label, kw in (("medcolor defaults (ngf 32, 6 blocks)", {}), ("the paper's ngf 64, 9 blocks", dict(ngf=64, n_blocks=9))):
        stamps: list[float] = []
        try:
            with tempfile.TemporaryDirectory() as tmp:
                train_cyclegan(CycleConfig(gray=ROOT / "sample_dicom" / "ct_chest", color=ROOT / "sample_dicom" / "refs",
                                           output=Path(tmp) / "m.pt", steps=steps, window="lung", val_every=0,
                                           checkpoint_every=0, **kw),
                               lambda e, **k: stamps.append(time.perf_counter()) if e == "step" else None)
            rows.append(Row(sec, f"{label}, batch 1, 128x128", float(np.median(np.diff(stamps)[2:])),
                            note="seconds per step shown as ms/slice"))
        except Exception as err:  # noqa: BLE001
            rows.append(Row(sec, label, note=_failed(err)))
    return rows


# -------------------------------------------------------------------------------------- the report
COLUMNS = ("section", "contender", "ms/slice", "slices/s", "x floor", "peak MiB", "note")


def render(rows: list[Row], markdown: bool) -> list[str]:
    table, last = [], None
    for r in rows:
        ok = r.cost is not None and r.cost > 0
        table.append([r.section if r.section != last else "", r.name,
                      f"{r.cost * 1e3:.2f}" if r.cost is not None else "",
                      f"{1 / r.cost:.1f}" if ok else "",
                      f"{r.floor / r.cost:.2f}" if ok and r.floor else "",
                      f"{r.rss_mib:.0f}" if r.rss_mib else "", r.note])
        last = r.section
    if markdown:
        return ["| " + " | ".join(c) + " |" for c in [list(COLUMNS), ["---"] * len(COLUMNS), *table]]
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *table)]
    return ["  ".join(c.rjust(w) if 2 <= i <= 5 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
            for line in [list(COLUMNS), *table]]


def _why(r: Row | None) -> str:
    if r is None:
        return "not measured"
    return r.note or "marginal cost not positive (timing noise: use larger --small/--large)"


def goals(rows: list[Row]) -> list[str]:
    by = {r.key: r for r in rows if r.key}
    fl = by.get("gen:floor")
    out = []

    def line(text: str, ok: bool | None, figures: str) -> None:
        out.append(f"{'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}  {text}: {figures}")

    for m in ("exemplar", "lut"):
        r = by.get(f"gen:{m}")
        text = f"{m} full run >= {FLOOR_GOAL}x read+write floor"
        if r is None or not r.cost or r.cost <= 0 or fl is None:
            line(text, None, _why(r))
        else:
            x = fl.cost / r.cost
            line(text, x >= FLOOR_GOAL,
                 f"{x:.2f}x ({r.cost * 1e3:.2f} ms/slice vs floor {fl.cost * 1e3:.2f})")
    r = by.get("gen:cnn")
    if r is None or not r.cost or r.cost <= 0:
        line("cnn full run >= 10 slices/s at 512x512", None, _why(r))
    else:
        line("cnn full run >= 10 slices/s at 512x512", 1 / r.cost >= 10, f"{1 / r.cost:.1f} slices/s")
    mine, peers = by.get("medcolor:exemplar"), [r for r in rows if r.key == "peer"]
    if mine is None or not peers:
        line("medcolor exemplar per slice faster than the fastest peer", None, "peers not measured")
    else:
        best = min(peers, key=lambda r: r.cost)
        line("medcolor exemplar per slice faster than the fastest peer", mine.cost < best.cost,
             f"{mine.cost * 1e3:.2f} ms vs {best.cost * 1e3:.2f} ms ({best.name})")
    return out


def machine() -> list[str]:
    cpu = next((s.split(":", 1)[1].strip() for s in Path("/proc/cpuinfo").read_text().splitlines()
                if s.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    from medcolor import __version__

    return [f"date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"CPUs: {os.cpu_count()} ({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} usable), {cpu}",
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
            f"medcolor {__version__}, Python {platform.python_version()}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED_CT if SHARED_CT.is_dir() else ROOT / "sample_dicom" / "ct_chest")
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3, help="timings per measurement; the fastest is kept")
    ap.add_argument("--methods", default="lut,exemplar,cnn,cyclegan")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--skip-nets", action="store_true")
    ap.add_argument("--net-size", type=int, default=512, help="network input size (512; smaller only to test)")
    ap.add_argument("--ref", type=Path, default=ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg")
    ap.add_argument("--markdown", type=Path, help="also write the table, command line and machine as markdown")
    a = ap.parse_args()
    if not 0 < a.small < a.large:
        ap.error("need 0 < --small < --large")
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    if unknown := sorted(set(methods) - {"lut", "exemplar", "cnn", "cyclegan"}):
        ap.error(f"--methods: unknown {', '.join(unknown)} (lut, exemplar, cnn, cyclegan)")
    if importlib.util.find_spec("medcolor") is None:  # every run below starts `python -m medcolor`
        ap.error("medcolor is not installed in this Python: run `pip install -e .` in the checkout first")
    work = Path(tempfile.mkdtemp(prefix="medcolor-bench-"))
    notes = [f"generated 512x512 CT series from {a.source.name}: marginal cost per slice between {a.small} and "
             f"{a.large} slices; fastest of {a.repeats}; x floor = read+write floor ms / row ms"]
    try:
        small = make_series(a.source, a.small, work / "in_small")
        large = make_series(a.source, a.large, work / "in_large")
        rows = io_and_runs(f"generated CT, marginal {a.small}->{a.large}", "gen", [small, large], methods,
                           work, a)
        if SHARED_CT.is_dir():
            n = len(list(SHARED_CT.glob("*.dcm")))
            rows += io_and_runs(f"real CT, {n} slices, whole run", "real", [SHARED_CT], methods, work, a)
            notes.append(f"real CT = {SHARED_CT.name} as it is: whole-run time per slice, start-up included")
        else:
            notes.append(f"real series skipped: {SHARED_CT} not found")
        if not a.skip_peers:
            rows += peer_rows(large, a.ref, a.repeats, next((r for r in rows if r.key == "gen:exemplar"), None))
        if not a.skip_nets:
            rows += net_rows(a.net_size)
            rows += training_step_rows()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = shlex.join(["python", *sys.argv])
    print("\n".join([*notes, "", *render(rows, False), "", "Goals:", *goals(rows), "", *machine()]))
    if a.markdown:
        md = ["# medcolor benchmark", "", f"Command: `{command}`", "", *[f"- {s}" for s in machine()], "",
              *[f"- {s}" for s in notes], "", *render(rows, True), "", "Goals:", "", *[f"- {g}" for g in goals(rows)], ""]
        a.markdown.write_text("\n".join(md))
        print(f"\nmarkdown written to {a.markdown}")


if __name__ == "__main__":
    main()
