"""Checkpoints of the ``cnn`` backend: a torch file holding a manifest and the weights.

File layout (``torch.save`` of plain containers, so ``torch.load(weights_only=True)`` reads it and no
pickled code is ever executed)::

    {"manifest": {...}, "state_dict": {name: tensor}, "training_state": {...}  # optional (resume)}

The manifest records ``format``, ``architecture`` and ``arch_args``, ``weights_sha256`` (sha256 over
the state dict's names, dtypes, shapes and bytes, in name order), ``training_data`` (folder name,
number of images, sha256 of the sorted file-name list), ``steps``, ``validation`` metrics,
``medcolor_version``, ``created`` (UTC) and, for shipped models, ``name``, ``licence`` and
``attribution``. :func:`load_checkpoint` refuses, with a one-line MedcolorError naming the file, a
file that is not such a checkpoint, an unknown architecture, or weights whose sha256 does not match
the manifest. Models are loaded only from local paths; shipped ones live in ``medcolor/models``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from medcolor import __version__
from medcolor.errors import MedcolorError

__all__ = ["FORMAT", "MODELS_DIR", "state_sha256", "save_checkpoint", "load_checkpoint", "build_model",
           "resolve_model", "shipped_models", "load_model_options", "export_inference"]

FORMAT = "medcolor-cnn/1"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = "meat"


def _architectures() -> dict[str, Any]:
    """Every architecture a manifest may name: the cnn networks and the cyclegan generator."""
    from medcolor.colorizers._nets import ARCHITECTURES
    from medcolor.train.cyclegan import ARCHITECTURES as CYCLE

    return {**ARCHITECTURES, **CYCLE}


def _build_network(arch: str, args: dict[str, Any]) -> torch.nn.Module:
    return _architectures()[arch](**args)


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


def _plain(obj: Any) -> Any:
    """JSON-like copy (dict/list/str/int/float/bool/None) so weights_only loading accepts it."""
    return json.loads(json.dumps(obj, default=str))


def save_checkpoint(path: str | Path, model: torch.nn.Module, arch: str, arch_args: dict[str, Any],
                    manifest_extra: dict[str, Any], training_state: dict[str, Any] | None = None) -> dict:
    """Write the checkpoint atomically (temp file, then rename); returns the manifest."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    manifest = {"format": FORMAT, "architecture": arch, "arch_args": dict(arch_args),
                "weights_sha256": state_sha256(state), "medcolor_version": __version__,
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "torch_version": torch.__version__.split("+")[0]}
    manifest.update(manifest_extra)
    payload: dict[str, Any] = {"manifest": _plain(manifest), "state_dict": state}
    if training_state is not None:
        payload["training_state"] = training_state
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is not secret
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return payload["manifest"]


def export_inference(src: str | Path, dst: str | Path, extra: dict[str, Any] | None = None,
                     half: bool = False) -> dict:
    """Copy a checkpoint without its training state (optimizer), adding ``extra`` to the manifest.
    ``half``: store the floating-point weights as float16 (half the file; loading casts them back to the
    network's float32 -- the manifest's sha256 is over the stored tensors)."""
    manifest, state, _ = load_checkpoint(src)
    net = _build_network(manifest["architecture"], manifest["arch_args"])
    net.load_state_dict(state)
    if half:
        net = net.half()
    keep = {k: v for k, v in manifest.items() if k not in ("format", "architecture", "arch_args",
                                                             "weights_sha256", "medcolor_version",
                                                             "created", "torch_version")}
    keep.update(extra or {})
    return save_checkpoint(dst, net, manifest["architecture"], manifest["arch_args"], keep)


def load_checkpoint(path: str | Path, with_training_state: bool = False
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any] | None]:
    """``(manifest, state_dict, training_state or None)`` from a local checkpoint, verified."""
    ARCHITECTURES = _architectures()
    p = Path(path)
    if not p.is_file():
        raise MedcolorError("no such model file", where=p, hint="give a checkpoint written by `medcolor train` "
                            f"or a shipped model name ({', '.join(shipped_models()) or 'none installed'})")
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
    digest = state_sha256(state)
    if digest != manifest.get("weights_sha256"):
        raise MedcolorError("weights sha256 does not match the manifest (file modified or damaged)", where=p,
                            hint="re-download or retrain the model; do not edit checkpoints by hand")
    training = payload.get("training_state") if with_training_state else None
    return manifest, state, training


def build_model(manifest: dict[str, Any], state: dict[str, torch.Tensor], where: str | Path = "--model"):
    """The network of a verified checkpoint, weights loaded, in eval mode."""
    try:
        net = _build_network(manifest["architecture"], dict(manifest.get("arch_args") or {}))
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - args or tensors not matching the architecture
        raise MedcolorError(f"checkpoint does not fit architecture {manifest.get('architecture')!r} "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})", where=where,
                            hint="the manifest and the weights disagree; retrain the model") from None
    return net.eval()


def shipped_models() -> dict[str, dict[str, Any]]:
    """``{name: entry}`` from ``medcolor/models/manifest.json`` (empty when absent)."""
    f = MODELS_DIR / "manifest.json"
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return {}
    return dict(data.get("models", {}))


def _shipped_key(key: str, method: str) -> str | None:
    """The manifest key of shipped model ``key`` for ``method``: cnn models are listed by their name,
    other methods' as ``<method>-<name>`` (``cyclegan-meat``)."""
    models = shipped_models()
    for k in ((key,) if method == "cnn" else (f"{method}-{key}", key)):
        if k in models and str(models[k].get("method", "cnn")) == method:
            return k
    return None


def resolve_model(spec: str | Path | None, method: str = "cnn") -> Path:
    """A shipped model name of ``method`` (cnn: ``retina``, ``meat``; cyclegan: ``meat``) or
    a local checkpoint path -> Path."""
    spec = DEFAULT_MODEL if spec is None or str(spec).strip() == "" else spec
    models = shipped_models()
    key = _shipped_key(str(spec).strip().lower(), method)
    if key is not None and not Path(str(spec)).exists():
        return MODELS_DIR / models[key]["file"]
    p = Path(str(spec)).expanduser()
    if p.is_file():
        return p
    names = ", ".join(str(m.get("name", k)) for k, m in models.items() if str(m.get("method", "cnn")) == method)
    raise MedcolorError(f"no model {str(spec)!r}: neither a shipped {method} model name nor a file", where="--model",
                        hint=f"shipped {method} models: {names or 'none installed'}; or give the path of a "
                             f"checkpoint from `medcolor train`")


def load_model_options(spec: str | Path | None, method: str = "cnn") -> dict[str, Any]:
    """Backend options for the ``cnn``/``cyclegan`` colourisers: the checkpoint read here (not by the
    backend)."""
    path = resolve_model(spec, method)
    manifest, state, _ = load_checkpoint(path)
    return {"manifest": manifest, "state_dict": state, "model_label": manifest.get("name") or path.name}
