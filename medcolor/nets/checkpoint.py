"""Reading checkpoints of the learned backends (``cnn``, ``cyclegan``) and the shipped-model manifest.

A checkpoint is a ``torch.save`` of plain containers, so ``torch.load(weights_only=True)`` reads it and
no pickled code is ever executed::

    {"manifest": {...}, "state_dict": {name: tensor}, "training_state": {...}  # optional (resume)}

The manifest records ``format``, ``architecture`` and ``arch_args``, ``weights_sha256`` (sha256 over
the state dict's names, dtypes, shapes and bytes, in name order), ``training_data``, ``steps``,
``validation`` metrics, ``medcolor_version``, ``created`` (UTC) and, for shipped models, ``name``,
``licence`` and ``attribution``. :func:`load_checkpoint` refuses, with a one-line MedcolorError naming
the file, a file that is not such a checkpoint, an unknown architecture, or weights whose sha256 does
not match the manifest. Models are loaded only from local paths; shipped ones live in
``medcolor/models`` (listed in its ``manifest.json``). Writing checkpoints is training's business
(:mod:`medcolor.train.checkpoint`).

Shipped models can be withdrawn: their manifest entry keeps the name, method, the reason
(``"withdrawn"``), what to use ``"instead"`` and the measurements, but not the file, and
:func:`resolve_model` refuses the name with that reason. The manifest's ``"default"`` names the model each
method uses without ``--model`` (none for ``cnn`` since its ``meat`` model was withdrawn).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from medcolor.errors import MedcolorError
from medcolor.nets import cyclegan, fusion, inception_resnet_unet, tutorial, unet
from medcolor.nets.lookup import AB_LIMIT

__all__ = ["ARCHITECTURES", "CHROMA_GAIN_MAX", "FORMAT", "METHOD_ARCH", "MODELS_DIR", "build_model", "build_network",
           "apply_chroma_gain", "check_chroma_centre", "check_chroma_gain", "chroma_gain", "default_model", "load_checkpoint", "load_model_options", "network_from_options", "resolve_model", "shipped_models",
           "shipped_names", "state_sha256"]

FORMAT = "medcolor-cnn/1"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# every architecture a manifest may name, and the ones each backend runs (cnn: its own network first,
# then the seed papers' networks of issue 17)
ARCHITECTURES: dict[str, type[torch.nn.Module]] = {
    unet.ARCH: unet.LumaPriorUNet, fusion.ARCH: fusion.FusionColorNet,
    inception_resnet_unet.ARCH: inception_resnet_unet.InceptionResNetUNet, tutorial.ARCH: tutorial.TutorialCNN,
    cyclegan.ARCH: cyclegan.ColorGenerator}
METHOD_ARCH: dict[str, tuple[str, ...]] = {
    "cnn": (unet.ARCH, fusion.ARCH, inception_resnet_unet.ARCH, tutorial.ARCH), "cyclegan": (cyclegan.ARCH,)}


CHROMA_GAIN_MAX = 2.0
NO_GAIN = {"a": 1.0, "b": 1.0, "l_slope": 0.0}


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def check_chroma_centre(centre: Any = None, where: str | Path = "--chroma-centre") -> list[float] | None:
    """The point the chroma gain scales a,b towards: None (or ``"zero"``) for a = b = 0, else
    ``[CA, CB]`` from ``"CA,CB"`` or a pair of numbers; one-line MedcolorError unless both are within
    +-AB_LIMIT. (``medcolor train --chroma-centre mean`` resolves to numbers before it gets here.)"""
    if centre is None or (isinstance(centre, str) and centre.strip().lower() in ("zero", "0", "0,0")):
        return None
    parts = centre.split(",") if isinstance(centre, str) else centre if isinstance(centre, (list, tuple)) else [centre]
    c = [_number(v) for v in parts]
    if len(c) != 2 or not all(-AB_LIMIT <= v <= AB_LIMIT for v in c):  # refuses NaN
        raise MedcolorError(f"chroma centre must be zero, mean or CA,CB within +-{AB_LIMIT:g}, not {centre!r}",
                            where=where, hint="zero scales a,b towards gray; mean towards the training images' "
                                              "mean a,b (docs/cnn.md, Camera shift)")
    return None if c == [0.0, 0.0] else c


def check_chroma_gain(gain: Any = 1.0, l_slope: Any = 0.0, where: str | Path = "--chroma-gain",
                      centre: Any = None) -> dict[str, Any]:
    """The inference chroma gain ``{"a": GA, "b": GB, "l_slope": K}`` (plus ``"centre": [CA, CB]`` when
    not zero): predicted a becomes ``CA + (a - CA) GA (1 + K (L - 50) / 50)``, b likewise with GB, CB (the
    factor clamped at 0). ``gain`` is a number (both channels), ``"G"``, ``"GA,GB"`` or such a dict
    (which then carries its own slope, and its centre unless it has none); one-line MedcolorError unless 0 < GA, GB <=
    CHROMA_GAIN_MAX, -1 <= K <= 1 and the centre passes :func:`check_chroma_centre`."""
    if isinstance(gain, dict):
        gain, l_slope, centre = [gain.get("a"), gain.get("b")], gain.get("l_slope", 0.0), gain.get("centre", centre)
    parts = [p for p in gain.split(",")] if isinstance(gain, str) else gain if isinstance(gain, list) else [gain]
    ab = [_number(v) for v in parts] * (2 if len(parts) == 1 else 1)
    k = _number(l_slope)
    if len(ab) != 2 or not all(0.0 < g <= CHROMA_GAIN_MAX for g in ab) or not -1.0 <= k <= 1.0:  # refuses NaN
        raise MedcolorError(f"chroma gain must be G or GA,GB in (0, {CHROMA_GAIN_MAX:g}] with an L slope in "
                            f"[-1, 1], not {gain!r} (slope {l_slope!r})", where=where,
                            hint="1 keeps the predicted chroma; below 1 makes it paler (docs/cnn.md, Camera shift)")
    out: dict[str, Any] = {"a": ab[0], "b": ab[1], "l_slope": k}
    c = check_chroma_centre(centre, where=where)
    if c is not None:
        out["centre"] = c
    return out


def chroma_gain(manifest: dict[str, Any], where: str | Path = "--model") -> dict[str, Any]:
    """The inference chroma gain of a cnn checkpoint (``manifest["chroma_gain"]``, a number or
    :func:`check_chroma_gain`'s dict; none when absent)."""
    return check_chroma_gain(manifest.get("chroma_gain", 1.0), where=where)


def apply_chroma_gain(L: torch.Tensor, ab: torch.Tensor, gain: dict[str, Any]) -> torch.Tensor:
    """``ab`` ``[B,2,h,w]`` scaled by the chroma gain towards its centre (:func:`check_chroma_gain`);
    ``L`` ``[B,1,H,W]`` (0..100) is area-resized to ``(h, w)`` when the gain depends on L."""
    if gain == NO_GAIN:
        return ab
    g = torch.tensor([gain["a"], gain["b"]], dtype=ab.dtype, device=ab.device).view(1, 2, 1, 1)
    if gain["l_slope"]:
        if L.shape[-2:] != ab.shape[-2:]:
            L = torch.nn.functional.interpolate(L, size=tuple(ab.shape[-2:]), mode="area")
        g = g * (1.0 + gain["l_slope"] * (L.to(ab.dtype) - 50.0) / 50.0).clamp(min=0.0)
    c = gain.get("centre")
    if c is None:
        return ab * g
    c = torch.tensor(c, dtype=ab.dtype, device=ab.device).view(1, 2, 1, 1)
    return c + (ab - c) * g


def build_network(arch: str, args: dict[str, Any]) -> torch.nn.Module:
    """The (untrained) network ``arch`` built with ``args``; KeyError for unknown names."""
    return ARCHITECTURES[arch](**args)


def state_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_checkpoint(path: str | Path, with_training_state: bool = False
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(manifest, state_dict, training_state or None)`` from a local checkpoint, verified."""
    p = Path(path)
    if not p.is_file():
        raise MedcolorError("no such model file", where=p, hint="give a checkpoint written by `medcolor train` "
                            f"or a shipped model name ({', '.join(shipped_names()) or 'none installed'})")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt file, pickle with code, not torch at all
        raise MedcolorError(f"not a readable medcolor checkpoint ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:120]})", where=p,
                            hint="use a file written by `medcolor train`") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("manifest"), dict) \
            or not isinstance(payload.get("state_dict"), dict):
        raise MedcolorError("not a medcolor checkpoint (no manifest)", where=p,
                            hint="use a file written by `medcolor train`")
    manifest, state = payload["manifest"], payload["state_dict"]
    if manifest.get("format") != FORMAT:
        raise MedcolorError(f"unsupported checkpoint format {manifest.get('format')!r} (expected {FORMAT})",
                            where=p, hint="retrain with this medcolor version")
    arch = manifest.get("architecture")
    if arch not in ARCHITECTURES:
        raise MedcolorError(f"unknown architecture {arch!r} in the checkpoint manifest", where=p,
                            hint=f"known: {', '.join(ARCHITECTURES)}; retrain with this medcolor version")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MedcolorError("checkpoint weights are not all tensors", where=p, hint="the file is damaged")
    if state_sha256(state) != manifest.get("weights_sha256"):
        raise MedcolorError("weights sha256 does not match the manifest (file modified or damaged)", where=p,
                            hint="re-download or retrain the model; do not edit checkpoints by hand")
    chroma_gain(manifest, where=p)
    training = payload.get("training_state") if with_training_state else None
    return manifest, state, training


def build_model(manifest: dict[str, Any], state: dict[str, torch.Tensor], where: str | Path = "--model"):
    """The network of a verified checkpoint, weights loaded, in eval mode."""
    try:
        net = build_network(manifest["architecture"], dict(manifest.get("arch_args") or {}))
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - args or tensors not matching the architecture
        raise MedcolorError(f"checkpoint does not fit architecture {manifest.get('architecture')!r} "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})", where=where,
                            hint="the manifest and the weights disagree; retrain the model") from None
    return net.eval()


def _manifest() -> dict[str, Any]:
    """``medcolor/models/manifest.json`` (empty when absent or unreadable)."""
    try:
        data = json.loads((MODELS_DIR / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def shipped_models() -> dict[str, dict[str, Any]]:
    """``{key: entry}`` of every shipped model, withdrawn ones included (they have ``"withdrawn"`` and no
    file); cnn models are keyed by name, other methods' as ``<method>-<name>``."""
    return dict(_manifest().get("models", {}))


def shipped_names(method: str | None = None) -> list[str]:
    """Names of the shipped models that can be loaded (not withdrawn), of ``method`` or of every method."""
    return [str(m.get("name", k)) for k, m in shipped_models().items()
            if not m.get("withdrawn") and (method is None or str(m.get("method", "cnn")) == method)]


def default_model(method: str) -> str | None:
    """The shipped model ``method`` uses without ``--model`` (the manifest's ``"default"``), or None."""
    return (_manifest().get("default") or {}).get(method)


def _shipped_key(key: str, method: str) -> str | None:
    """The manifest key of shipped model ``key`` for ``method``: cnn models are listed by their name,
    other methods' as ``<method>-<name>`` (``cyclegan-meat``)."""
    models = shipped_models()
    for k in ((key,) if method == "cnn" else (f"{method}-{key}", key)):
        if k in models and str(models[k].get("method", "cnn")) == method:
            return k
    return None


def resolve_model(spec: str | Path | None, method: str = "cnn") -> Path:
    """A shipped model name of ``method`` (cnn: ``retina``; cyclegan: ``meat``), None for the method's
    default, or a local checkpoint path -> Path. One-line MedcolorError for a withdrawn shipped model, for
    no model where the method has no default, and for a name that is neither."""
    available = ", ".join(shipped_names(method)) or "none installed"
    train = f"`medcolor train --method {method}`"
    if spec is None or str(spec).strip() == "":
        spec = default_model(method)
        if spec is None:
            raise MedcolorError(f"--method {method} needs a model (there is no default {method} model)",
                                where="--model", hint=f"give --model NAME (shipped {method} models: {available}) "
                                                      f"or --model PATH, a checkpoint from {train}")
    models = shipped_models()
    key = _shipped_key(str(spec).strip().lower(), method)
    if key is not None and not Path(str(spec)).exists():
        entry = models[key]
        if entry.get("withdrawn"):
            raise MedcolorError(f"shipped {method} model {str(spec).strip()!r} was withdrawn: {entry['withdrawn']}",
                                where="--model", hint=f"{entry.get('instead') or 'train one with ' + train}; "
                                                      f"shipped {method} models: {available}")
        return MODELS_DIR / entry["file"]
    p = Path(str(spec)).expanduser()
    if p.is_file():
        return p
    raise MedcolorError(f"no model {str(spec)!r}: neither a shipped {method} model name nor a file", where="--model",
                        hint=f"shipped {method} models: {available}; or give the path of a checkpoint from {train}")


def load_model_options(spec: str | Path | None, method: str = "cnn") -> dict[str, Any]:
    """Backend options for the ``cnn``/``cyclegan`` colourisers: the checkpoint read here (not by the
    backend)."""
    path = resolve_model(spec, method)
    manifest, state, _ = load_checkpoint(path)
    return {"manifest": manifest, "state_dict": state, "model_label": manifest.get("name") or path.name}


def network_from_options(options: dict[str, Any], method: str, device: torch.device,
                         use_default: bool = True) -> tuple[dict[str, Any], torch.nn.Module, str]:
    """``(manifest, network on device in eval mode, model label)`` for backend ``method`` from its
    options: ``manifest`` + ``state_dict`` as :func:`load_model_options` gives them (verified again:
    an API caller may have built them), else ``model`` (a shipped name or a path, read here as an API
    convenience; the pipeline reads checkpoints itself), else the method's default shipped model when
    ``use_default`` (:func:`resolve_model`). MedcolorError for a model of another backend's architecture."""
    if options.get("manifest") is None or options.get("state_dict") is None:
        if options.get("model") is None and not use_default:
            raise MedcolorError(f"the {method} backend needs a model", where="--model",
                                hint=f"train one with `medcolor train --method {method}` and pass --model PATH")
        options = {**options, **load_model_options(options.get("model"), method)}
    manifest, state = options["manifest"], options["state_dict"]
    if manifest.get("architecture") not in METHOD_ARCH[method]:
        other = " or ".join(m for m in METHOD_ARCH if m != method)
        raise MedcolorError(f"not a {method} model (architecture {manifest.get('architecture')!r})", where="--model",
                            hint=f"give a checkpoint from `medcolor train --method {method}`, or use --method {other}")
    if state_sha256(state) != manifest.get("weights_sha256"):
        raise MedcolorError("model weights do not match their manifest sha256", where="--model",
                            hint="reload the checkpoint from disk")
    label = str(options.get("model_label") or manifest.get("name") or "custom")
    return dict(manifest), build_model(manifest, state).to(device), label
