"""Train the shipped ``cnn`` and ``cyclegan`` models and write them (weights + manifest) to medcolor/models/.

usage: python benchmarks/train_shipped.py [--data /work/shared/data] [--only retina|cyclegan-meat]
                                          [--retina-minutes 10 | --retina-steps 900 | --keep-weights]
                                          [--chroma-gain G|GA,GB] [--chroma-gain-slope K] [--chroma-centre zero|mean]
                                          [--cyclegan-minutes 15]

* ``retina``: CHASE_DB1 training images 01-07 (14 fundus photos) and, with ``--retina-extra`` (default
  ``skimage``), fundus photos from other cameras -- ``skimage``: scikit-image's ``skimage.data.retina()``
  (one adult eye, CC0; docs/cnn.md "Camera shift": it lifts the score on other cameras' photos) -- validated
  on 08-14, with the inference
  chroma gain ``--chroma-gain``/``--chroma-gain-slope``/``--chroma-centre`` (as ``medcolor train``'s; chosen
  by ``benchmarks/retina_shift.py --gains ... --bars ...`` on the other fold: paler cameras, docs/cnn.md
  "Camera shift"); ``--retina-steps`` trains a fixed step count (repeatable) instead
  of the time budget. ``--keep-weights`` does not train: the shipped retina.pt's weights are re-exported
  with the new chroma gain, and its validation re-measured at that gain (the gain is an inference-time
  scale, so the weights the gain was chosen for stay the shipped ones).
* ``cyclegan-meat`` (``--method cyclegan --model meat``, the cyclegan default): gray side = the shared
  30-slice chest CT windowed 1500,-600 (lung), colour side = the three pure-meat crops of the Meat Cut
  (BEEF) collage (beef_lean_bright, beef_lean_dark, beef_marbled; the collage itself has a text banner and
  is not used); no colour truth exists for CT (not scored), and the colour-side validation (3 photos)
  cannot judge the CT side, so the last step is shipped (``val_every=0``).

Withdrawn, not trained here: the cnn ``meat`` model (docs/cnn.md: its colour does not follow tissue on CT)
and ``cyclegan-retina`` (docs/cyclegan.md: trained on the gray of the very photos it was scored on, below
the training set's mean colour on another camera). Their manifest entries (name, method, reason, what to
use instead, the measurements) are kept as they are; their files are gone and the loader refuses the names.

Each cnn run is ``medcolor train --method cnn --max-minutes M --seed 0`` (the library call), each
cyclegan run ``medcolor train --method cyclegan --max-minutes M --seed 0`` with the defaults; then the
training state is dropped (inference-only file, a few MB) and medcolor/models/manifest.json updated
with the file's sha256, the data description, validation metrics, licence and attribution.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medcolor.nets.checkpoint import MODELS_DIR, build_model, check_chroma_gain, chroma_gain, load_checkpoint  # noqa: E402,E501
from medcolor.train.checkpoint import export_inference  # noqa: E402
from medcolor.train.cyclegan import CycleConfig, train_cyclegan  # noqa: E402
from medcolor.train.data import find_images, load_images  # noqa: E402
from medcolor.train.loop import TrainConfig, train  # noqa: E402
from medcolor.train.lut import chroma_centre  # noqa: E402

CHASE_ATTR = ("CHASE_DB1 (Kingston University London / St George's, University of London; Fraz et al., "
              "IEEE TBME 59(9):2538-2548, 2012), CC BY 4.0; images 01-07 used for training")
SKIMAGE_ATTR = ("scikit-image's skimage.data.retina(): M. Haggstrom, 'Fundus photograph of normal left eye', "
                "Wikimedia Commons, CC0 1.0")
MEAT_ATTR = ("Meat Cut Image Dataset (BEEF), Big Data and Analytics Research Centre / VistaMilk-DATAS, Ireland, "
             "2021, Zenodo record 4704391, CC BY 4.0; three crops of the dataset-ninja/meat-cut preview collage")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _progress(name: str):
    def f(event: str, **k) -> None:
        if event == "step" and k["step"] % 50 == 0:
            print(f"[{name}] step {k['step']} loss {k['loss']:.5f} ({k['elapsed']:.0f} s)", flush=True)
        elif event == "val":
            m = k["metrics"]
            print(f"[{name}] step {k['step']} val PSNR {m['psnr']:.2f} SSIM {m['ssim']:.4f}", flush=True)
    return f


def ship(name: str, data: Path, val: Path | None, minutes: float | None, extra: dict, size: int = 128,
         steps: int | None = None, gain: dict | None = None, data_label: str | None = None) -> dict:
    """Train cnn model ``name`` on ``data`` and write it (inference-only) to the models folder; returns its
    manifest entry. ``data_label`` names the training data in the manifest instead of ``data``'s folder."""
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / f"{name}-train.pt"
        t0 = time.time()
        res = train(TrainConfig(data=data, val=val, output=full, max_minutes=None if steps else minutes, steps=steps,
                                seed=0, size=size, val_every=100, checkpoint_every=0, name=name,
                                chroma_gain=gain or 1.0), _progress(name))
        dst = MODELS_DIR / f"{name}.pt"
        updates = dict(extra, name=name, train_minutes=round((time.time() - t0) / 60, 2))
        if data_label:
            updates["training_data"] = dict(load_checkpoint(full)[0]["training_data"], folder=data_label)
        manifest = export_inference(full, dst, updates)
    print(f"[{name}] {res['steps']} steps, {res['seconds'] / 60:.1f} min, val {res['validation']}", flush=True)
    return {"file": dst.name, "sha256": _sha(dst), "weights_sha256": manifest["weights_sha256"],
            "size_bytes": dst.stat().st_size, "architecture": manifest["architecture"],
            "model_size": manifest["model_size"], "chroma_gain": manifest["chroma_gain"], "steps": manifest["steps"],
            "training_data": manifest["training_data"],
            "validation": manifest["validation"], "licence": extra["licence"], "attribution": extra["attribution"],
            "description": extra["description"], "train_minutes": manifest["train_minutes"]}


def regain(name: str, val: Path, gain: dict, entry: dict) -> dict:
    """The shipped cnn model ``name``'s weights as they are, exported with the inference chroma gain
    ``gain``; its validation (the same images, at the model size, as in training) re-measured at that gain.
    Returns its manifest entry ``entry`` updated."""
    import torch

    from medcolor.train.data import find_images, load_images, whole_images
    from medcolor.train.loop import TrainConfig, validate

    dst = MODELS_DIR / f"{name}.pt"
    manifest, state, _ = load_checkpoint(dst)
    net = build_model(manifest, state)
    batch = whole_images(load_images(find_images(val), TrainConfig.work_size)[:32], int(manifest["model_size"]))
    before = validate(net, batch, torch.device("cpu"), chroma_gain(manifest))
    after = dict(validate(net, batch, torch.device("cpu"), gain), images=manifest["validation"]["images"])
    print(f"[{name}] validation re-measured: PSNR {before['psnr']:.2f} at the old gain (manifest "
          f"{manifest['validation']['psnr']:.2f}), {after['psnr']:.2f} at gain {gain}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / dst.name
        shutil.copy(dst, src)
        manifest = export_inference(src, dst, {"chroma_gain": gain, "validation": after})
    return dict(entry, sha256=_sha(dst), size_bytes=dst.stat().st_size, chroma_gain=manifest["chroma_gain"],
                validation=manifest["validation"])


def ship_cyclegan(name: str, gray: Path, color: Path, minutes: float, extra: dict, window: str | None = None,
                  truth: str | None = None, val_every: int = 100) -> dict:
    key = f"cyclegan-{name}"
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / f"{key}-train.pt"
        t0 = time.time()
        res = train_cyclegan(CycleConfig(gray=gray, color=color, output=full, max_minutes=minutes, seed=0,
                                         window=window, checkpoint_every=0, val_every=val_every, name=name),
                             _progress(key))
        evaluation = {}
        if truth is not None:  # colour the gray side and score it against its true colour
            from medcolor.evaluate import evaluate
            from medcolor.pipeline import RunOptions, run

            run([gray], RunOptions(output=Path(tmp) / "pred", method="cyclegan", fmt="png",
                                   backend_options={"model": str(full)}))
            s = evaluate(Path(tmp) / "pred", truth, size=256)["prediction"]["summary"]
            evaluation = {k: s[k]["mean"] for k in ("psnr", "ssim", "nrmse")}
            evaluation.update(n_images=len(list(Path(gray).iterdir())), images=f"{Path(gray).name} vs {truth}",
                              size=256)
        dst = MODELS_DIR / f"{key}.pt"
        manifest = export_inference(full, dst, dict(extra, name=name, evaluation=evaluation, weights_dtype="float16",
                                                    train_minutes=round((time.time() - t0) / 60, 2)), half=True)
    print(f"[{key}] {res['steps']} steps, {res['seconds'] / 60:.1f} min, colour-side validation "
          f"{manifest.get('validation')}, evaluation {evaluation}", flush=True)
    return {"name": name, "method": "cyclegan", "file": dst.name, "sha256": _sha(dst),
            "weights_sha256": manifest["weights_sha256"], "size_bytes": dst.stat().st_size,
            "architecture": manifest["architecture"], "arch_args": manifest["arch_args"],
            "work_size": manifest["work_size"], "steps": manifest["steps"],
            "training_data": manifest["training_data"], "validation": manifest.get("validation") or {},
            "evaluation": evaluation, "licence": extra["licence"],
            "attribution": extra["attribution"], "description": extra["description"],
            "train_minutes": manifest["train_minutes"]}


def retina_photos(chase_train: Path, extra: list[str], dst: Path) -> Path:
    """The retina training folder ``dst``: CHASE_DB1's training photos (linked) and each of ``extra``:
    ``skimage`` (scikit-image's fundus photo, saved as ``skimage_retina.png``) or a folder of photos."""
    from PIL import Image

    dst.mkdir(parents=True)
    sources = [chase_train] + [Path(e) for e in extra if e != "skimage"]
    for f in (f for src in sources for f in find_images(src)):
        if (dst / f.name).exists():
            raise SystemExit(f"--retina-extra: two training photos named {f.name}")
        (dst / f.name).symlink_to(f.resolve())
    if "skimage" in extra:
        import skimage.data

        Image.fromarray(skimage.data.retina()).save(dst / "skimage_retina.png")
    return dst


def _beef_crops(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in ("beef_lean_bright.jpg", "beef_lean_dark.jpg", "beef_marbled.jpg"):
        shutil.copy(src / f, dst / f)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--only", choices=("retina", "cyclegan-meat"))
    ap.add_argument("--cyclegan-minutes", type=float, default=15.0)
    ap.add_argument("--retina-minutes", type=float, default=10.0)
    ap.add_argument("--retina-steps", type=int, help="train retina for this many steps (no time budget)")
    ap.add_argument("--chroma-gain", default="1", help="retina's inference chroma gain, G or GA,GB")
    ap.add_argument("--chroma-gain-slope", type=float, default=0.0, help="retina's chroma gain slope over L")
    ap.add_argument("--chroma-centre", default="zero", help="retina's chroma centre: zero | mean (of its training "
                    "photos) | CA,CB")
    ap.add_argument("--retina-extra", default="skimage", help="retina: photos from other fundus cameras trained "
                    "on beside CHASE_DB1 01-07, comma-separated: skimage (scikit-image's CC0 fundus photo) and/or "
                    "folders; none for CHASE_DB1 alone")
    ap.add_argument("--keep-weights", action="store_true", help="retina: no training, re-export the shipped "
                    "weights with --chroma-gain")
    a = ap.parse_args()
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    mf = MODELS_DIR / "manifest.json"
    doc = json.loads(mf.read_text()) if mf.is_file() else {"models": {}}
    chase = a.data / "chase_db1"
    centre = a.chroma_centre   # "mean": of the photos retina is trained on, as medcolor train --chroma-centre mean
    if centre.strip().lower() == "mean":
        centre = chroma_centre(centre, load_images(find_images(chase / "training" / "images"), TrainConfig.work_size))
    gain = check_chroma_gain(a.chroma_gain, a.chroma_gain_slope, centre=centre)
    if a.keep_weights:
        doc["models"]["retina"] = regain("retina", chase / "test" / "images", gain, doc["models"]["retina"])
    elif a.only in (None, "retina"):
        extra = [e.strip() for e in a.retina_extra.split(",") if e.strip() and e.strip() != "none"]
        with tempfile.TemporaryDirectory() as tmp:
            photos = retina_photos(chase / "training" / "images", extra, Path(tmp) / "retina_photos")
            entry = ship("retina", photos, chase / "test" / "images", a.retina_minutes,
                         {"licence": "CC BY 4.0 (CHASE_DB1)" + (", CC0 (skimage)" if "skimage" in extra else "")
                          + "".join(f", the licence of {e}" for e in extra if e != "skimage") + " (training data)",
                          "attribution": CHASE_ATTR + (f"; {SKIMAGE_ATTR}" if "skimage" in extra else ""),
                          "description": "colour fundus photographs (CHASE_DB1 01-07"
                                         + "".join(f" + {e}" for e in extra) + ")",
                          "validation_data": "CHASE_DB1 test images 08-14"},
                         steps=a.retina_steps, gain=gain,
                         data_label="chase_db1/training/images" + "".join(f" + {e}" for e in extra))
        doc["models"]["retina"] = entry
    if a.only in (None, "cyclegan-meat") and not a.keep_weights:
        with tempfile.TemporaryDirectory() as tmp:
            crops = _beef_crops(a.data / "meat_exemplar_beef_meatcut", Path(tmp) / "beef_crops")
            ct = a.data / "ct_chest_lung_pet_ct_dx_A0002"
            doc["models"]["cyclegan-meat"] = ship_cyclegan(
                "meat", ct, crops, a.cyclegan_minutes,
                {"licence": "CC BY 4.0 (colour training data); CT: TCIA Lung-PET-CT-Dx, CC BY 4.0",
                 "attribution": MEAT_ATTR + "; gray side: TCIA Lung-PET-CT-Dx A0002 chest CT (30 slices), "
                                            "windowed W=1500 L=-600",
                 "description": "CycleGAN, windowed chest CT (gray) / raw beef photos (colour), unpaired"},
                window="1500,-600", val_every=0)
    doc["default"] = {"cnn": None, "cyclegan": "meat"}   # no cnn default since meat was withdrawn
    mf.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {mf}")


if __name__ == "__main__":
    main()
