"""Writing checkpoints of the learned backends (``medcolor train``): the manifest, the weights and,
for ``--resume``, the training state; :func:`export_inference` strips the training state for shipping.

The file layout and the verified loading are :mod:`medcolor.nets.checkpoint`'s (inference reads
checkpoints without importing training).
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from medcolor import __version__
from medcolor.nets.checkpoint import FORMAT, build_network, load_checkpoint, state_sha256

__all__ = ["save_checkpoint", "export_inference"]


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
    net = build_network(manifest["architecture"], manifest["arch_args"])
    net.load_state_dict(state)
    if half:
        net = net.half()
    keep = {k: v for k, v in manifest.items() if k not in ("format", "architecture", "arch_args",
                                                             "weights_sha256", "medcolor_version",
                                                             "created", "torch_version")}
    keep.update(extra or {})
    return save_checkpoint(dst, net, manifest["architecture"], manifest["arch_args"], keep)
