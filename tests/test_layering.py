"""Layering (issue 16): no import cycles in medcolor/ and cli/, inference never imports training,
shipped checkpoints load through medcolor.nets with the outputs they had, every declared dependency
is used."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"medcolor": ROOT / "medcolor", "medcolor.cli": ROOT / "cli"}


def _modules() -> dict[str, Path]:
    mods = {}
    for prefix, folder in PACKAGES.items():
        for f in folder.rglob("*.py"):
            parts = f.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            mods[".".join((prefix, *parts))] = f
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for sub in node.body for n in ast.walk(sub))
    return skip


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The medcolor modules ``name`` imports, at top level or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_medcolor_and_cli() -> None:
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert graph["medcolor.train.loop"] >= {"medcolor.nets.checkpoint", "medcolor.train.checkpoint"}  # graph is real
    assert _cycles(graph) == []


def test_inference_never_imports_training() -> None:
    """A fresh interpreter: the pipeline and every built-in backend, built through the registry with
    the shipped models, load no ``medcolor.train`` module."""
    code = """
import sys
import numpy as np
import medcolor.pipeline
from medcolor.colorizers import get_colorizer
from medcolor.nets.checkpoint import load_model_options
get_colorizer("lut")
get_colorizer("exemplar", reference_rgb=np.full((8, 8, 3), 128, np.uint8), reference_sha256="0" * 64)
get_colorizer("cnn", **load_model_options("retina", "cnn"))
get_colorizer("cyclegan", **load_model_options("meat", "cyclegan"))
print(sorted(m for m in sys.modules if m.startswith("medcolor")))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = eval(res.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list
    assert "medcolor.colorizers.cyclegan" in loaded and "medcolor.nets.checkpoint" in loaded
    assert [m for m in loaded if m.startswith("medcolor.train")] == []


def _probe_L() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 40), indexing="ij")
    return (100 * (0.5 * x + 0.3 * y + 0.2 * torch.sin(9 * x * y))).clamp(0, 100)[None, None].float()


def test_shipped_checkpoints_give_the_outputs_they_gave_before_the_nets_move() -> None:
    """tests/data/shipped_model_ab.json: ab of every shipped model on a fixed L image, printed by the
    code before the networks moved from medcolor/train and medcolor/colorizers/_nets.py to
    medcolor/nets (keyed by weights sha256, so a retrained model is not compared with another's; the
    withdrawn models, which have no file any more, are not in it; ``retina``, retrained with a photo of
    another camera, by the code that retrained it, before the gain). A model shipped with an inference chroma
    gain (its manifest's ``chroma_gain``) gives those a,b times the gain."""
    from medcolor.colorizers import get_colorizer
    from medcolor.nets.checkpoint import apply_chroma_gain, chroma_gain, load_model_options, shipped_models

    ref = json.loads((ROOT / "tests" / "data" / "shipped_model_ab.json").read_text())["models"]
    checked = []
    for key, entry in shipped_models().items():
        expected = ref.get(entry["weights_sha256"])
        if expected is None or entry.get("withdrawn"):
            continue
        method = entry.get("method", "cnn")
        col = get_colorizer(method, device="cpu", **load_model_options(entry.get("name", key), method))
        ab = col.colorize(_probe_L())[0, :, ::8, ::8].double()
        want = apply_chroma_gain(_probe_L()[:, :, ::8, ::8].double(), torch.tensor([expected["ab"]], dtype=torch.float64),
                                 chroma_gain(entry))[0]
        assert torch.allclose(ab, want, atol=2e-3), key
        checked.append(key)
    assert set(checked) == {"retina", "cyclegan-meat"}, checked   # cnn meat and cyclegan-retina withdrawn


# declared dependencies used without an import in medcolor/ or cli/
NOT_IMPORTED = {
    "pylibjpeg": "pydicom's decoder plug-in framework (JPEG 2000, RLE)",
    "pylibjpeg-openjpeg": "JPEG 2000 decoder plug-in of pydicom",
    "pylibjpeg-rle": "RLE decoder plug-in of pydicom",
    "pyjpegls": "JPEG-LS decoder plug-in of pydicom",
    "python-gdcm": "JPEG / JPEG-LS / JPEG 2000 decoder plug-in of pydicom",
}
IMPORT_NAMES = {"scikit-image": "skimage", "opencv-python-headless": "cv2", "Pillow": "PIL",
                "dask": "distributed", "dicomweb-client": "dicomweb_client"}


def test_every_declared_dependency_is_used() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + project["optional-dependencies"]["scale"] \
        + project["optional-dependencies"]["stow"]
    source = "\n".join(p.read_text() for p in _modules().values())
    unused = []
    for spec in declared:
        dist = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0)
        if dist in NOT_IMPORTED:
            continue
        module = IMPORT_NAMES.get(dist, dist)
        if not re.search(rf"^\s*(import|from) {re.escape(module)}\b", source, re.M):
            unused.append(dist)
    assert unused == []


def test_doctor_lists_every_declared_dependency() -> None:
    """doctor reads the dependency list from medcolor's metadata: nothing to keep in step by hand."""
    tomllib = pytest.importorskip("tomllib")
    from medcolor.doctor import packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [re.match(r"[A-Za-z0-9_.\-]+", spec).group(0) for spec in project["dependencies"]]
    assert set(declared) <= set(packages())
