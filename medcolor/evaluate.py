"""Colour accuracy against colour ground truth (``medcolor evaluate PRED TRUTH``).

Protocol (the same as the independent ``eval_color.py`` check): each truth image is matched to the
prediction whose file name contains the truth's stem (PNG preferred, then the shortest name); both
are read as 8-bit sRGB (colour DICOM converted to RGB), resized to ``size``x``size`` with PIL bicubic,
and compared on RGB uint8: PSNR and SSIM (``skimage.metrics``, ``data_range=255``, SSIM over the
three channels with ``channel_axis=-1``, skimage's default 7x7 uniform window), NRMSE (skimage,
euclidean), mean CIEDE2000 (Lab of the resized images, D65) and the prediction's colourfulness
(Hasler & Suesstrunk). Per image, then mean +- std (population).

Baselines are computed on the same truth images as if they were coloured from their gray: L is the
CIE L* of the 8-bit sRGB gray of the truth (what ``medcolor run`` reads from a gray PNG), joined to

* ``gray``: a = b = 0;
* ``mean-ab``: the mean (a, b) of the training images (``--train DIR``);
* ``l-lut``: a 1-D lookup L -> mean ab learned on the training images (101 nodes, linear);

then gamut-mapped and encoded to 8 bits exactly as ``medcolor run`` writes its outputs, resized and
scored as above.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medcolor.errors import MedcolorError
from medcolor.metrics import colourfulness, summarize

__all__ = ["BASELINES", "PROTOCOL", "rgb_metrics", "evaluate", "load_rgb", "match_predictions", "truth_files",
           "write_gray"]

BASELINES = ("gray", "mean-ab", "l-lut")
METRICS = ("psnr", "ssim", "nrmse", "delta_e2000", "colourfulness")
PROTOCOL = ("truth matched to the prediction whose file name contains the truth's stem; both resized to "
            "{size}x{size} (PIL bicubic); PSNR and SSIM on RGB uint8 (skimage, data_range 255, SSIM with "
            "channel_axis=-1, 7x7 uniform window), NRMSE (skimage, euclidean), mean CIEDE2000 on Lab (D65) "
            "of the resized images, colourfulness (Hasler-Suesstrunk) of the prediction; mean +- std over "
            "images. Baselines: L = CIE L* of the 8-bit sRGB gray of the truth, joined to the baseline ab, "
            "gamut-mapped and 8-bit encoded as medcolor run does.")
_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")


def rgb_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Metrics of two uint8 ``[H,W,3]`` sRGB images of the same size (see the module docstring)."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

    if truth.shape != pred.shape or truth.ndim != 3 or truth.shape[-1] != 3:
        raise ValueError(f"images must be [H,W,3] of the same shape, got {truth.shape} and {pred.shape}")
    if np.array_equal(truth, pred):
        p = float("inf")
    else:
        p = float(peak_signal_noise_ratio(truth, pred, data_range=255))
    return {"psnr": p,
            "ssim": float(structural_similarity(truth, pred, channel_axis=-1, data_range=255)),
            "nrmse": float(normalized_root_mse(truth, pred)),
            "delta_e2000": float(deltaE_ciede2000(rgb2lab(truth), rgb2lab(pred)).mean()),
            "colourfulness": float(colourfulness(np.ascontiguousarray(pred)))}


def load_rgb(path: Path) -> np.ndarray:
    """uint8 sRGB ``[H,W,3]`` of a colour image file (PNG/JPEG/TIFF, or DICOM through medcolor.io)."""
    from medcolor.io import read_image_rgb

    if path.suffix.lower() == ".dcm":
        return read_image_rgb(path)[0]
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001
        raise MedcolorError(f"cannot read image ({type(exc).__name__})", where=path) from None


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC))


def truth_files(truth: str | Path) -> list[Path]:
    """A folder (its images, recursive), one file, or a glob -> sorted truth image paths."""
    p = Path(truth)
    if p.is_dir():
        files = [q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in _SUFFIXES]
    elif p.is_file():
        files = [p]
    else:
        files = [Path(q) for q in glob.glob(str(truth), recursive=True) if Path(q).is_file()]
    files = sorted(f for f in files if f.suffix.lower() in _SUFFIXES)
    if not files:
        raise MedcolorError("no truth images found", where=truth, hint="give a folder, file or glob of colour images")
    return files


def match_predictions(pred: str | Path, truths: Sequence[Path]) -> dict[Path, Path | None]:
    """Each truth -> the prediction whose name contains the truth's stem (PNG first, then shortest)."""
    root = Path(pred)
    if root.is_file():
        preds = [root]
    elif root.is_dir():
        preds = [q for q in root.rglob("*") if q.is_file() and q.suffix.lower() in _SUFFIXES]
    else:
        raise MedcolorError("no such prediction folder or file", where=pred)
    out: dict[Path, Path | None] = {}
    for t in truths:
        cand = [q for q in preds if t.stem in q.name]
        cand.sort(key=lambda q: (q.suffix.lower() != ".png", len(str(q))))
        out[t] = cand[0] if cand else None
    return out


def _baseline_rgb(truth_rgb: np.ndarray, ab_fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    from medcolor.color import lab_to_rgb8
    from medcolor.train.data import gray_l, lab_of

    rgb = torch.from_numpy(np.array(truth_rgb, copy=True)).permute(2, 0, 1).float().div(255.0)[None]
    L = gray_l(lab_of(rgb)[:, :1]).clamp(0.0, 100.0)
    ab = ab_fn(L).expand(1, 2, *L.shape[-2:]).contiguous()
    return lab_to_rgb8(L, ab)[0].permute(1, 2, 0).numpy()


def write_gray(truth: str | Path, out: str | Path) -> Path:
    """The protocol's gray inputs: for each truth image, the 8-bit sRGB gray of its CIE L* (a = b = 0,
    what the ``gray`` baseline scores) as ``out/<stem>.png``. Returns ``out``."""
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for t in truth_files(truth):
        gray = _baseline_rgb(load_rgb(t), lambda L: torch.zeros(1, 2, 1, 1))[..., 0]
        Image.fromarray(np.ascontiguousarray(gray), "L").save(out / f"{t.stem}.png")
    return out


def _summ(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {m: summarize([r[m] for r in rows if np.isfinite(r[m])] if m == "psnr" and
                         any(np.isfinite(r[m]) for r in rows) else [r[m] for r in rows]) for m in METRICS}


def evaluate(pred: str | Path, truth: str | Path, size: int = 256, baselines: Sequence[str] = (),
             train: str | Path | None = None, progress: Callable[..., None] | None = None) -> dict[str, Any]:
    """Score predictions (and baselines) against colour truth; returns the JSON-ready result."""
    progress = progress or (lambda *a, **k: None)
    if size < 8:
        raise MedcolorError("size must be at least 8", where="--size")
    bad = [b for b in baselines if b not in BASELINES]
    if bad:
        raise MedcolorError(f"unknown baseline(s) {', '.join(bad)}", where="--baseline",
                            hint=f"use {', '.join(BASELINES)}")
    truths = truth_files(truth)
    matches = match_predictions(pred, truths) if pred is not None else {t: None for t in truths}
    baseline_fns: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    train_desc = None
    if "gray" in baselines:
        baseline_fns["gray"] = lambda L: torch.zeros(1, 2, 1, 1)
    need_train = [b for b in baselines if b in ("mean-ab", "l-lut")]
    if need_train:
        if train is None:
            raise MedcolorError(f"baseline(s) {', '.join(need_train)} need the training images", where="--train",
                                hint="give --train DIR (the colour images the model was trained on)")
        from medcolor.train.data import describe_data, find_images, load_images
        from medcolor.nets.lookup import apply_l_lut
        from medcolor.train.lut import fit_l_lut, mean_ab

        files = find_images(train)
        imgs = load_images(files, 1024)
        train_desc = describe_data(train, files)
        if "mean-ab" in baselines:
            m = mean_ab(imgs)
            baseline_fns["mean-ab"] = lambda L, m=m: m.view(1, 2, 1, 1)
        if "l-lut" in baselines:
            lut = fit_l_lut(imgs)
            baseline_fns["l-lut"] = lambda L, lut=lut: apply_l_lut(lut, L)
    rows: list[dict[str, Any]] = []
    base_rows: dict[str, list[dict[str, Any]]] = {b: [] for b in baseline_fns}
    missing: list[str] = []
    for t in truths:
        truth_rgb = load_rgb(t)
        tr = _resize(truth_rgb, size)
        p = matches.get(t)
        if pred is not None:
            if p is None:
                missing.append(t.name)
            else:
                pr = _resize(load_rgb(p), size)
                rows.append({"truth": t.name, "prediction": str(p), **rgb_metrics(tr, pr)})
        for name, fn in baseline_fns.items():
            br = _resize(_baseline_rgb(truth_rgb, fn), size)
            base_rows[name].append({"truth": t.name, **rgb_metrics(tr, br)})
        progress("image", name=t.name)
    result: dict[str, Any] = {"protocol": PROTOCOL.format(size=size), "size": size, "n_truth": len(truths),
                              "missing": missing, "prediction": {"source": str(pred), "n": len(rows),
                                                                 "summary": _summ(rows) if rows else {},
                                                                 "per_image": rows},
                              "baselines": {b: {"summary": _summ(r), "per_image": r} for b, r in base_rows.items()}}
    if train_desc is not None:
        result["train"] = train_desc
    return result


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write the result atomically (``inf`` written as the string "inf")."""
    import json
    import tempfile

    def fix(o: Any) -> Any:
        if isinstance(o, float) and not np.isfinite(o):
            return "inf" if o > 0 else ("-inf" if o < 0 else "nan")
        if isinstance(o, dict):
            return {k: fix(v) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v) for v in o]
        return o

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(fix(result), f, indent=2)
    os.replace(tmp, path)
    return path
