"""The exemplar's Hounsfield-aware modes: reference populations, Hounsfield classes and their soft borders,
the class map on a synthetic HU phantom, mode selection, --tissue-map and --vgg19-weights errors, gram mode
on the CPU, and what report.json / report.html show.

Synthetic photos are built in CIE-Lab with known populations (seeded noise); the phantom is a cylinder of
rings of known Hounsfield values. Real data: the shipped chest CT slices and beef photos.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from medcolor.cli.app import app
from medcolor.color import gamut_map_chroma, lab_to_srgb, srgb_to_lab
from medcolor.colorizers import get_colorizer
from medcolor.colorizers.hounsfield import (CLASSES, DEFAULT_MAP, TYPICAL_HU, MapEntry, class_weights, hu_from_l,
                                            parse_tissue_map)
from medcolor.colorizers.populations import split_reference
from medcolor.errors import MedcolorError
from medcolor.types import SeriesContext, Window
from medcolor.windowing import window_to_l
from tests.conftest import BEEF, CT_DIR, XRAY, dciodvfy_errors

runner = CliRunner()
WIDE = Window(0.0, 2200.0, "custom", "HU")          # -1100 .. +1100 HU all on the ramp
SOFT = Window(40.0, 400.0, "custom", "HU")
LEAN, FAT, CONNECTIVE, PLATE = (45.0, 30.0, 12.0), (85.0, 2.0, 14.0), (68.0, 12.0, -4.0), (60.0, 0.0, 1.0)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def hue(a: float, b: float) -> float:
    return math.degrees(math.atan2(b, a)) % 360.0


def hue_gap(h1: float, h2: float) -> float:
    return abs((h1 - h2 + 180.0) % 360.0 - 180.0)


def photo(parts: list[tuple[tuple[float, float, float], float]], shape=(120, 160), noise=1.5, seed=0) -> np.ndarray:
    """uint8 sRGB photo made of horizontal bands of the given Lab colours (fractions of the rows), plus
    seeded Gaussian Lab noise."""
    h, w = shape
    rng = np.random.default_rng(seed)
    lab = np.zeros((3, h, w), dtype=np.float32)
    row = 0
    for i, (colour, frac) in enumerate(parts):
        n = h - row if i == len(parts) - 1 else round(frac * h)
        lab[:, row:row + n] = np.array(colour, dtype=np.float32)[:, None, None]
        row += n
    lab += rng.normal(0, noise, lab.shape).astype(np.float32)
    rgb = lab_to_srgb(torch.from_numpy(lab)[None]).clamp(0, 1)[0]
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def lab_of(rgb: np.ndarray) -> torch.Tensor:
    return srgb_to_lab(torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0)


def ctx(window: Window = WIDE, n: int = 1, hw=(192, 192), is_hu=True, modality="CT") -> SeriesContext:
    return SeriesContext(modality=modality, window=window, is_hu=is_hu, n_slices=n, rows=hw[0], columns=hw[1])


RINGS = (("bone", 0, 30, 700.0), ("muscle", 30, 55, 45.0), ("fat", 55, 80, -100.0), ("air", 80, 200, -1000.0))


def phantom(size: int = 192, noise: float = 8.0, seed: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """HU image of a cylinder: bone core, muscle ring, fat ring, air around; the masks of each ring's inside
    (4 px away from its edges)."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    hu = np.zeros((size, size), dtype=np.float32)
    masks = {}
    for name, r0, r1, value in RINGS:
        hu[(r >= r0) & (r < r1)] = value
        masks[name] = (r >= r0 + 4) & (r < r1 - 4)
    hu += np.random.default_rng(seed).normal(0, noise, hu.shape).astype(np.float32)
    return np.round(hu), masks


def coloured(col, hu: np.ndarray, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
    """(L [1,1,H,W], gamut-mapped ab [1,2,H,W]) of one HU slice after prepare on it."""
    L = window_to_l(torch.from_numpy(hu)[None, None], window)
    col.prepare(ctx(window, hw=hu.shape), L)
    return L, gamut_map_chroma(L, col.colorize(L))


# ----------------------------------------------------------------------------- reference populations
def test_reference_clustering_names_known_populations() -> None:
    rgb = photo([(LEAN, 0.45), ((36.0, 25.0, 8.0), 0.15), (FAT, 0.2), (PLATE, 0.2)])
    pops = split_reference(lab_of(rgb))
    assert set(pops.by_name) == {"lean", "fat", "background"}      # the darker lean joins the lean
    assert pops.by_name["lean"].share == pytest.approx(0.6, abs=0.02)
    assert pops.by_name["fat"].share == pytest.approx(0.2, abs=0.02)
    assert pops.by_name["background"].share == pytest.approx(0.2, abs=0.02)
    assert math.dist(pops.by_name["fat"].lab, FAT) < 2.5
    assert math.dist(pops.by_name["background"].lab, PLATE) < 2.5
    assert pops.warnings == ["the reference has no connective population; that class takes its fall-back"]
    # every pixel is labelled; the label map is a small picture of the photo (rows of letters)
    rows = pops.label_map(32)
    assert rows[0][0] == "L" and rows[-1][0] == "B" and len({len(r) for r in rows}) == 1


def test_reference_clustering_finds_connective_tissue_and_is_deterministic() -> None:
    rgb = photo([(LEAN, 0.5), (CONNECTIVE, 0.25), (FAT, 0.25)], seed=3)
    a, b = split_reference(lab_of(rgb)), split_reference(lab_of(rgb.copy()))
    assert set(a.by_name) == {"lean", "fat", "connective"} and not a.warnings
    assert math.dist(a.by_name["connective"].lab, CONNECTIVE) < 2.5
    assert math.dist(a.by_name["lean"].lab, LEAN) < 2.5
    assert a.describe() == b.describe() and np.array_equal(a.labels, b.labels)


def test_a_one_population_photo_says_it_cannot_be_split() -> None:
    pops = split_reference(lab_of(photo([(LEAN, 1.0)])))
    assert set(pops.by_name) == {"lean"}
    assert any("could not be split" in w for w in pops.warnings)


def test_shipped_beef_photo_agrees_with_the_reddest_and_lightest_rule() -> None:
    """tools/tissue_color.py's rule: lean = the reddest cluster with L >= 20, fat = the lightest other."""
    from PIL import Image

    pops = split_reference(lab_of(np.asarray(Image.open(BEEF).convert("RGB"))))
    lean, fat = pops.by_name["lean"], pops.by_name["fat"]
    assert hue_gap(lean.hue, 4.0) < 10 and lean.chroma > 12          # a dull red lean
    assert fat.lab[0] > lean.lab[0] + 20 and fat.chroma < 7 and hue_gap(fat.hue, 57.0) < 15


# ----------------------------------------------------------------------------- Hounsfield classes
@pytest.mark.parametrize("inverted", [False, True])
def test_hu_from_l_inverts_the_dicom_window(inverted: bool) -> None:
    hu = torch.arange(-155.0, 235.0, 7.0, dtype=torch.float64)          # on the ramp of W 400 L 40
    L = window_to_l(hu, SOFT, invert=inverted)
    assert torch.allclose(hu_from_l(L, SOFT, inverted), hu, atol=1e-2)


def test_class_weights_are_a_smooth_partition() -> None:
    hu = torch.arange(-1200.0, 1500.0, 0.5, dtype=torch.float64)
    w = class_weights(hu)
    assert w.shape == (len(CLASSES), hu.numel())
    assert torch.allclose(w.sum(dim=0), torch.ones_like(hu)) and bool((w >= 0).all())
    assert float((w[:, 1:] - w[:, :-1]).abs().max()) < 0.02       # no step anywhere (0.5 HU apart)
    for name, value in TYPICAL_HU.items():                          # the narrowest class, water, 45 HU wide
        assert CLASSES[int(class_weights(torch.tensor([value])).argmax())] == name
        assert float(class_weights(torch.tensor([value]))[CLASSES.index(name)]) > 0.75


# ----------------------------------------------------------------------------- the class map on a phantom
@pytest.fixture(scope="module")
def three_population_photo() -> np.ndarray:
    return photo([(LEAN, 0.5), (CONNECTIVE, 0.25), (FAT, 0.25)], seed=3)


def test_phantom_rings_take_their_populations_hue(three_population_photo: np.ndarray) -> None:
    hu, masks = phantom()
    col = get_colorizer("exemplar", reference_rgb=three_population_photo)
    L, ab = coloured(col, hu, WIDE)
    assert col.provenance()["method"] == "exemplar (tissue)"
    mean = {k: (float(ab[0, 0][torch.from_numpy(m)].mean()), float(ab[0, 1][torch.from_numpy(m)].mean()))
            for k, m in masks.items()}
    assert hue_gap(hue(*mean["muscle"]), hue(*LEAN[1:])) < 12, mean       # muscle -> lean
    assert hue_gap(hue(*mean["fat"]), hue(*FAT[1:])) < 15, mean           # fat -> the photo's fat, not the lean
    assert hue_gap(hue(*mean["bone"]), hue(*CONNECTIVE[1:])) < 15, mean   # bone -> connective tissue
    assert math.hypot(*mean["air"]) < 0.5, mean                           # air -> no colour
    assert math.hypot(*mean["muscle"]) > 0.7 * math.hypot(*LEAN[1:])      # the lean's chroma is kept
    assert math.dist(mean["fat"], mean["muscle"]) > 15


def test_tissue_mode_keeps_fat_apart_where_welsh_gives_it_the_lean(three_population_photo) -> None:
    """In CT fat is darker than muscle; keyed on lightness alone, fat takes the darker (lean) colours."""
    hu, masks = phantom()
    ring = torch.from_numpy(masks["fat"])
    out = {}
    for mode in ("welsh", "tissue"):
        _, ab = coloured(get_colorizer("exemplar", reference_rgb=three_population_photo, mode=mode), hu, WIDE)
        out[mode] = hue(float(ab[0, 0][ring].mean()), float(ab[0, 1][ring].mean()))
    assert hue_gap(out["welsh"], hue(*FAT[1:])) > 40 and hue_gap(out["tissue"], hue(*FAT[1:])) < 15


def test_no_colour_edge_where_the_ct_has_none(three_population_photo: np.ndarray) -> None:
    """A smooth HU ramp across every class border: the colour changes smoothly too (a hard border would
    jump by the whole fat-to-lean distance, ~20 ab units, within 1 HU)."""
    hu = np.tile(np.linspace(-1000.0, 900.0, 1901, dtype=np.float32), (8, 1))
    col = get_colorizer("exemplar", reference_rgb=three_population_photo)
    L, ab = coloured(col, hu, WIDE)
    step = (ab[0, :, 4, 1:] - ab[0, :, 4, :-1]).norm(dim=0)       # 1 HU apart
    assert float(step.max()) < 1.0, float(step.max())


def test_colour_follows_the_population_lightness_inside_a_class() -> None:
    """Welsh matching inside a class: a lean whose colour changes with its lightness gives muscle of low and
    high HU those colours, in that order."""
    parts = [((38.0, 30.0, 0.0), 0.25), ((44.0, 28.0, 10.0), 0.25), ((50.0, 24.0, 18.0), 0.25), (FAT, 0.25)]
    col = get_colorizer("exemplar", reference_rgb=photo(parts, noise=1.0))
    hu = np.tile(np.linspace(20.0, 95.0, 256, dtype=np.float32), (64, 1))
    hu[:, :40] = -100.0                                              # some fat beside the muscle
    _, ab = coloured(col, np.round(hu), SOFT)
    low, high = ab[0, :, 32, 50:90].mean(dim=1), ab[0, :, 32, 210:250].mean(dim=1)
    assert hue(float(high[0]), float(high[1])) > hue(float(low[0]), float(low[1])) + 10


def test_tissue_mode_is_a_per_pixel_function_of_its_keys(three_population_photo: np.ndarray) -> None:
    from medcolor.colorizers.base import texture_level

    hu, _ = phantom()
    col = get_colorizer("exemplar", reference_rgb=three_population_photo)
    L, _ = coloured(col, hu, WIDE)
    keys = col.pixel_keys()
    assert keys is not None and keys.texture_size == 5
    level = texture_level(L, keys)
    pick = torch.arange(0, L.numel(), 997)
    got = col.colorize_keys(L.flatten()[pick].view(1, 1, 1, -1), level.flatten()[pick].view(1, 1, 1, -1))
    assert torch.allclose(got[0, :, 0], col.colorize(L).flatten(2)[0][:, pick], atol=1e-5)


# ----------------------------------------------------------------------------- modes and maps
def test_auto_picks_tissue_for_hu_and_welsh_for_other_series(three_population_photo) -> None:
    col = get_colorizer("exemplar", reference_rgb=three_population_photo)
    L = torch.rand(1, 1, 64, 64) * 100
    col.prepare(ctx(SOFT, hw=(64, 64)), L)
    assert col.provenance()["method"] == "exemplar (tissue)" and "Hounsfield" in col.mode_reason
    col.prepare(ctx(Window(0.0, 0.0, "srgb", "srgb"), hw=(64, 64), is_hu=False, modality="DX"), L)
    prov = col.provenance()
    assert prov["method"] == "exemplar (welsh)" and "not in Hounsfield units" in prov["parameters"]["mode_reason"]
    assert "tissue" not in prov and col.warnings == []


@pytest.mark.parametrize("mode", ["tissue", "gram"])
def test_tissue_or_gram_on_a_non_hu_series_falls_back_to_welsh_with_a_warning(mode, three_population_photo) -> None:
    col = get_colorizer("exemplar", reference_rgb=three_population_photo, mode=mode)
    col.prepare(ctx(Window(500.0, 800.0, "percentile(1,99)", "modality"), hw=(64, 64), is_hu=False,
                    modality="MR"), torch.rand(1, 1, 64, 64) * 100)
    assert col.provenance()["method"] == "exemplar (welsh)"
    assert any(f"exemplar mode {mode} needs a CT in Hounsfield units" in w for w in col.warnings)


def test_tissue_map_overrides_and_validates(three_population_photo) -> None:
    m = parse_tissue_map({"Bone": "fat", "lung": {"population": "lean", "chroma": 0}})
    assert m["bone"] == MapEntry("fat") and m["lung"] == MapEntry("lean", 0.0) and m["fat"] == DEFAULT_MAP["fat"]
    hu, masks = phantom()
    col = get_colorizer("exemplar", reference_rgb=three_population_photo, tissue_map={"muscle": "neutral"})
    _, ab = coloured(col, hu, WIDE)
    # muscle -> neutral: gray, but for the soft border with water (noise puts some pixels near it)
    assert float(ab[0].norm(dim=0)[torch.from_numpy(masks["muscle"])].mean()) < 0.1 * math.hypot(*LEAN[1:])
    assert "muscle>neutral" in col.provenance()["parameters"]["tissue_map"]
    for bad, text in [([1], "expected a JSON object"), ({"liver": "lean"}, "unknown Hounsfield class 'liver'"),
                      ({"fat": "lard"}, "unknown population 'lard'"),
                      ({"fat": {"chroma": 1}}, "unknown population None"),
                      ({"fat": {"population": "fat", "chroma": 3}}, "chroma must be a number from 0 to 2"),
                      ({"fat": {"population": "fat", "hue": 3}}, "unknown key(s) 'hue'")]:
        with pytest.raises(MedcolorError, match=text.replace("(", r"\(").replace(")", r"\)")):
            parse_tissue_map(bad)
    with pytest.raises(MedcolorError, match="tissue and gram modes, not welsh"):
        get_colorizer("exemplar", reference_rgb=three_population_photo, mode="welsh", tissue_map={})


def test_a_missing_population_falls_back_and_says_so() -> None:
    col = get_colorizer("exemplar", reference_rgb=photo([(LEAN, 1.0)]))
    hu, masks = phantom()
    _, ab = coloured(col, hu, WIDE)
    assert float(ab[0].norm(dim=0)[torch.from_numpy(masks["fat"])].mean()) < 0.5     # fat -> neutral
    assert any("could not be split" in w for w in col.warnings)
    assert any("class fat is mapped to fat" in w and "takes neutral" in w for w in col.warnings)
    legend = {row["class"]: row for row in col.provenance()["tissue"]["legend"]}
    assert legend["fat"]["population"] == "neutral" and legend["fat"]["mapped_to"] == "fat"


@pytest.mark.parametrize("content,text", [
    ("{not json", "not valid JSON"),
    ('{"liver": "lean"}', "unknown Hounsfield class 'liver'"),
    ('{"fat": "lard"}', "unknown population 'lard'"),
    ('["fat"]', "expected a JSON object"),
    (None, "cannot read the tissue map"),
])
def test_a_bad_tissue_map_file_is_one_line_rc_2_before_any_work(tmp_path: Path, content, text) -> None:
    f = tmp_path / "map.json"
    if content is not None:
        f.write_text(content)
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, "-o", out, "--tissue-map", f)
    assert res.exit_code == 2, res.output
    assert text in res.output and "map.json" in res.output and "Traceback" not in res.output
    assert not out.exists()                                         # validated before any work


# ----------------------------------------------------------------------------- gram
def _vgg19_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from medcolor.nets.backbones import VGG

    g = torch.Generator().manual_seed(seed)
    layers = VGG("vgg19").state_dict()
    sd = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in layers.items()}
    sd["classifier.0.weight"] = torch.zeros(4, 4)                   # ignored, as torchvision's classifier
    return sd


def test_gram_mode_on_cpu_in_a_few_steps(three_population_photo: np.ndarray) -> None:
    hu, masks = phantom(128)
    opts = dict(reference_rgb=three_population_photo, gram_steps=3, gram_size=64, gram_slices=1)
    tissue = get_colorizer("exemplar", **opts, mode="tissue")
    gram = get_colorizer("exemplar", **opts, mode="gram")
    _, ab_t = coloured(tissue, hu, WIDE)
    _, ab_g = coloured(gram, hu, WIDE)
    prov = gram.provenance()
    p = prov["parameters"]
    assert prov["method"] == "exemplar (gram)" and p["vgg19"].startswith("random-init vgg19 layout (seed 0")
    assert p["gram_steps"] == 3 and p["gram_slices"] == 1 and math.isfinite(p["gram_loss_last"])
    assert p["gram_loss_last"] < p["gram_loss_first"]
    assert not torch.equal(ab_t, ab_g)                               # it changed the colours ...
    for name in ("fat", "muscle"):                                   # ... but not a class's mean colour
        m = torch.from_numpy(masks[name])
        mt = torch.stack([ab_t[0, k][m].mean() for k in (0, 1)])
        mg = torch.stack([ab_g[0, k][m].mean() for k in (0, 1)])
        assert float((mt - mg).norm()) < 1.0, (name, mt, mg)
    assert gram.pixel_keys() is not None                             # distilled: still one table per series


def test_gram_vgg19_weights_are_checked_key_by_key(three_population_photo) -> None:
    from medcolor.nets.backbones import VGG

    col = get_colorizer("exemplar", reference_rgb=three_population_photo, mode="gram", vgg19_state=_vgg19_state(),
                        vgg19_label="vgg19.pth", vgg19_sha256="ab" * 32)
    assert col.provenance()["parameters"]["vgg19"] == "file vgg19.pth sha256 " + "ab" * 8
    vgg16 = VGG("vgg16").state_dict()
    missing_text = r"--vgg19-weights v16.pth: \d+ vgg19 key.s. missing from the weights .first: features.16.weight"
    with pytest.raises(MedcolorError, match=missing_text):
        get_colorizer("exemplar", reference_rgb=three_population_photo, mode="gram", vgg19_state=vgg16,
                      vgg19_label="v16.pth")
    bad = _vgg19_state()
    bad["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    shape_text = r"features.0.weight: shape \(64, 3, 5, 5\) in the weights, \(64, 3, 3, 3\) in the vgg19"
    with pytest.raises(MedcolorError, match=shape_text):
        get_colorizer("exemplar", reference_rgb=three_population_photo, mode="gram", vgg19_state=bad)
    bad["features.0.weight"] = torch.full((64, 3, 3, 3), float("nan"))
    with pytest.raises(MedcolorError, match="NaN"):
        get_colorizer("exemplar", reference_rgb=three_population_photo, mode="gram", vgg19_state=bad)
    with pytest.raises(MedcolorError, match="gram mode only, not tissue"):
        get_colorizer("exemplar", reference_rgb=three_population_photo, mode="tissue", vgg19_state=_vgg19_state())


@pytest.mark.parametrize("kind", ["text", "vgg16", "missing"])
def test_a_bad_vgg19_weights_file_is_one_line_rc_2(tmp_path: Path, kind: str) -> None:
    from medcolor.nets.backbones import VGG

    f = tmp_path / "weights.pth"
    if kind == "text":
        f.write_text("not a state dict")
    elif kind == "vgg16":
        torch.save(VGG("vgg16").state_dict(), f)
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, "-o", out, "--exemplar-mode", "gram", "--vgg19-weights", f)
    assert res.exit_code == 2, res.output
    assert "--vgg19-weights" in res.output and "weights.pth" in res.output and "Traceback" not in res.output
    assert not out.exists()


# ----------------------------------------------------------------------------- pipeline and report
def test_run_on_sample_ct_reports_populations_and_legend(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, "-o", out, "--window", "400,40", "--format", "both")
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    s = report["series"][0]
    assert s["method"] == "exemplar (tissue)" and report["options"]["exemplar_mode"] == "auto"
    assert s["parameters"]["mode_reason"] == "auto: the series is in Hounsfield units"
    t = s["tissue"]
    assert [p["name"] for p in t["populations"]] == ["lean", "fat", "connective"]
    legend = {row["class"]: row for row in t["legend"]}
    assert list(legend) == list(CLASSES)
    assert legend["muscle"]["population"] == "lean" and legend["fat"]["population"] == "fat"
    assert legend["fat"]["in_window"] and not legend["air"]["in_window"]
    assert legend["fat"]["hex"] != legend["muscle"]["hex"]
    html = (out / "report.html").read_text()
    assert "reference populations" in html and "tissue &rarr; colour" in html
    assert html.count('class="sw"') == len(t["populations"]) + len(t["legend"])
    first = sorted(out.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    assert "method exemplar (tissue)" in ds.DerivationDescription
    assert dciodvfy_errors(first) == []
    assert s["summary"]["delta_l_mean"] <= 0.5 and s["summary"]["delta_l_p99_max"] <= 1.5


def test_report_html_escapes_tissue_strings() -> None:
    from medcolor.report_html import _tissue_html

    html = _tissue_html({"mode": "tissue", "mode_reason": "<script>x</script>",
                         "populations": [{"name": "<b>lean</b>", "share": 0.5, "lab": [1, 2, 3],
                                          "hex": "red;background:url(x)"}],
                         "population_map": ["L<"], "legend": [{"class": "<i>", "hu": [None, 1],
                                                               "population": "fat", "hex": "#00ff00"}]})
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "url(x)" not in html and "background:#00ff00" in html and "background:#808080" in html


def test_xray_run_reports_welsh_and_why(tmp_path: Path) -> None:
    res = invoke("run", XRAY, "-o", tmp_path / "out", "--exemplar-mode", "tissue")
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "out" / "report.json").read_text())["series"][0]
    assert s["method"] == "exemplar (welsh)" and s["tissue"] == {}
    assert any("needs a CT in Hounsfield units" in w for w in s["warnings"])


@pytest.mark.parametrize("name", ["beef_marbled", "beef_lean_dark", "beef_lean_bright"])
def test_sample_ct_colour_follows_tissue_with_each_shipped_photo(tmp_path: Path, name: str) -> None:
    """Mediastinum window: muscle (20..70 HU) takes the photo's lean hue and most of its chroma, fat
    (-150..-60 HU) the photo's fat hue (or, where that fat is near white, at most half the muscle's chroma),
    and the two are apart in a*, b* (the bars of the shared tools/tissue_color.py, here on the output read
    back with scikit-image and the photo's populations as medcolor names them)."""
    from PIL import Image
    from skimage.color import rgb2lab

    ref = BEEF.parent / f"{name}.jpg"
    out = tmp_path / "out"
    assert invoke("run", CT_DIR, "-o", out, "--ref", ref, "--window", "400,40").exit_code == 0
    hu = {}
    for f in CT_DIR.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        hu[ds.SOPInstanceUID] = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    fat, muscle = [], []
    for f in out.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        h = hu[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        lab = rgb2lab(ds.pixel_array / 255.0)
        fat.append(lab[(h >= -150) & (h <= -60)])
        muscle.append(lab[(h >= 20) & (h <= 70)])
    f_ab, m_ab = np.concatenate(fat).mean(0)[1:], np.concatenate(muscle).mean(0)[1:]
    pops = split_reference(lab_of(np.asarray(Image.open(ref).convert("RGB"))))
    lean, photo_fat = np.array(pops.by_name["lean"].lab), np.array(pops.by_name["fat"].lab)
    assert hue_gap(hue(*m_ab), hue(*lean[1:])) <= 20
    assert np.hypot(*m_ab) >= 0.7 * np.hypot(*lean[1:])
    if np.hypot(*photo_fat[1:]) >= 3:
        assert hue_gap(hue(*f_ab), hue(*photo_fat[1:])) <= 25
    else:
        assert np.hypot(*f_ab) <= 0.5 * np.hypot(*m_ab)
    assert np.hypot(*(f_ab - m_ab)) >= 8
