"""Colourisation backends: registry, devices, the exemplar (Welsh) and lut backends.

Real data: the shipped chest CT slices (HU via the rescale tags, windowed with the DICOM LINEAR
formula inline) and the beef reference photo.
"""
from __future__ import annotations

import math
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from medcolor.colorizers import (
    BackendInfo,
    Colorizer,
    backend_names,
    get_colorizer,
    list_backends,
    local_mean_std,
    register_backend,
    resolve_device,
)
from medcolor.colorizers import registry as registry_mod
from medcolor.colorizers.exemplar import ExemplarColorizer
from medcolor.colorizers.lut import LutColorizer, hu_table, window_inverse
from medcolor.errors import MedcolorError
from medcolor.types import SeriesContext, Window

ROOT = Path(__file__).resolve().parents[1]
CT_FILES = sorted((ROOT / "sample_dicom" / "ct_chest").glob("*.dcm"))
BEEF = ROOT / "sample_dicom" / "refs" / "beef_marbled.jpg"
XRAY = ROOT / "sample_dicom" / "xray_chest" / "chest_xray.dcm"
LUNG = Window(-600.0, 1500.0, "lung", "HU")
SOFT = Window(40.0, 400.0, "soft_tissue", "HU")


# ----------------------------------------------------------------------------- helpers / fixtures
def window_l(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window -> L in 0..100."""
    return (np.clip((x - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0) * 100.0).astype(np.float32)


def hue_deg(a: float, b: float) -> float:
    return math.degrees(math.atan2(b, a))


def hue_diff(h1: float, h2: float) -> float:
    d = abs(h1 - h2) % 360.0
    return min(d, 360.0 - d)


def ctx_for(window: Window, n: int = 6, rows: int = 512, cols: int = 512, modality: str = "CT",
            is_hu: bool = True) -> SeriesContext:
    return SeriesContext(modality=modality, window=window, is_hu=is_hu, n_slices=n, rows=rows, columns=cols)


@pytest.fixture(scope="module")
def ct_hu() -> np.ndarray:
    """[6, 512, 512] float32 HU of the sample chest CT."""
    out = []
    for f in CT_FILES:
        ds = pydicom.dcmread(f)
        out.append(ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    return np.stack(out)


@pytest.fixture(scope="module")
def beef() -> np.ndarray:
    with Image.open(BEEF) as im:
        return np.array(im.convert("RGB"))


@pytest.fixture(scope="module")
def lung_L(ct_hu) -> torch.Tensor:
    return torch.from_numpy(window_l(ct_hu, LUNG.center, LUNG.width))[:, None]


@pytest.fixture(scope="module")
def welsh(beef, lung_L) -> ExemplarColorizer:
    col = get_colorizer("exemplar", reference_rgb=beef, reference_sha256="ab" * 32, mode="welsh")
    col.prepare(ctx_for(LUNG), lung_L)
    return col


@pytest.fixture(scope="module")
def welsh_ab(welsh, lung_L) -> torch.Tensor:
    return welsh.colorize(lung_L[:2])


def reference_mean_hue(rgb: np.ndarray) -> float:
    from medcolor.color import srgb_to_lab

    lab = srgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
    return hue_deg(float(lab[1].mean()), float(lab[2].mean()))


def gamut_mapped(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    color = pytest.importorskip("medcolor.color")
    if not hasattr(color, "gamut_map_chroma"):
        pytest.skip("medcolor.color.gamut_map_chroma not available yet")
    return color.gamut_map_chroma(L, ab)


class ToyColorizer(Colorizer):
    """A third-party style backend for the entry-point tests."""

    name = "toy"
    summary = "toy backend"
    option_names = ("tint",)

    def prepare(self, ctx, sample_L):
        pass

    def colorize(self, L):
        return torch.zeros(L.shape[0], 2, L.shape[2], L.shape[3], device=self.device)

    def provenance(self):
        return {"method": "toy", "parameters": {}, "reference_sha256": None, "model_sha256": None}


# ----------------------------------------------------------------------------- registry
def test_builtin_backends_are_listed_with_availability():
    names = backend_names()
    assert names[:4] == ["exemplar", "lut", "cnn", "cyclegan"]
    infos = {i.name: i for i in list_backends()}
    assert all(isinstance(i, BackendInfo) for i in infos.values())
    assert infos["exemplar"].available and infos["exemplar"].reason == ""
    assert infos["lut"].available and infos["lut"].summary
    assert infos["cnn"].available and infos["cnn"].reason == ""
    assert infos["cyclegan"].available and infos["cyclegan"].reason == ""


def test_get_colorizer_builds_lazily_imported_classes(beef):
    assert isinstance(get_colorizer("lut"), LutColorizer)
    assert isinstance(get_colorizer(" Exemplar ", reference_rgb=beef), ExemplarColorizer)


def test_unknown_name_says_did_you_mean_and_lists_names():
    with pytest.raises(MedcolorError) as err:
        get_colorizer("exemplr")
    text = str(err.value)
    assert err.value.where == "--method"
    assert "did you mean 'exemplar'" in text
    for name in ("exemplar", "lut", "cnn", "cyclegan"):
        assert name in text
    with pytest.raises(MedcolorError, match="known backends: exemplar, lut"):
        get_colorizer("zzzzzz")


@pytest.mark.parametrize("name", ["cyclegan", "CycleGAN"])
def test_cyclegan_without_a_model_says_what_to_do(name):
    with pytest.raises(MedcolorError) as err:
        get_colorizer(name)
    text = str(err.value)
    assert "needs a model" in text and "medcolor train --method cyclegan" in text
    assert "\n" not in text


def test_unknown_backend_option_is_a_user_error():
    with pytest.raises(MedcolorError, match="unknown option.*colour_space.*options it takes: invert, ramp"):
        get_colorizer("lut", colour_space="hsv")


def _fake_entry_points(*eps: EntryPoint):
    def entry_points(group=None, **_):
        return [ep for ep in eps if group is None or ep.group == group]
    return entry_points


def test_entry_point_backends_are_loaded_lazily(monkeypatch):
    group = registry_mod.ENTRY_POINT_GROUP
    assert group == "medcolor.colorizers"
    monkeypatch.setattr(registry_mod, "entry_points", _fake_entry_points(
        EntryPoint("toy", f"{__name__}:ToyColorizer", group),
        EntryPoint("broken", "medcolor_no_such_module:Nope", group),
        EntryPoint("lut", f"{__name__}:ToyColorizer", group),      # cannot shadow a built-in
        EntryPoint("other", f"{__name__}:ToyColorizer", "some.other.group"),
    ))
    assert backend_names() == ["exemplar", "lut", "cnn", "cyclegan", "broken", "toy"]
    col = get_colorizer("toy", tint="red")
    assert isinstance(col, ToyColorizer) and col.options == {"tint": "red"}
    assert isinstance(get_colorizer("lut"), LutColorizer)
    infos = {i.name: i for i in list_backends()}
    assert infos["toy"].available and infos["toy"].summary == "toy backend"
    assert not infos["broken"].available and "could not be loaded" in infos["broken"].reason
    with pytest.raises(MedcolorError, match="'broken' could not be loaded.*ModuleNotFoundError"):
        get_colorizer("broken")
    with pytest.raises(MedcolorError, match="did you mean 'toy'"):
        get_colorizer("tooy")


def test_register_backend_and_builtins_cannot_be_replaced(monkeypatch):
    monkeypatch.setattr(registry_mod, "_REGISTERED", {})
    register_backend("toy2", f"{__name__}:ToyColorizer", "registered toy")
    assert isinstance(get_colorizer("toy2"), ToyColorizer)
    with pytest.raises(ValueError):
        register_backend("lut", f"{__name__}:ToyColorizer")


# ----------------------------------------------------------------------------- devices
def test_resolve_device_cpu_and_auto(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_resolve_device_cuda_without_cuda_is_a_user_error(monkeypatch, spec):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MedcolorError) as err:
        resolve_device(spec)
    assert err.value.where == "--device"
    assert err.value.what == "CUDA was requested but no CUDA device is available"
    assert err.value.hint == "use --device cpu or auto"


def test_resolve_device_bad_index_and_bad_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(MedcolorError, match="--device: CUDA device 3 was requested but only 1"):
        resolve_device("cuda:3")
    for bad in ("cuda:x", "gpu", "cuda:-1"):
        with pytest.raises(MedcolorError, match="--device"):
            resolve_device(bad)


def test_get_colorizer_on_missing_cuda_raises(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MedcolorError, match="CUDA was requested"):
        get_colorizer("lut", device="cuda")
    ok, reason = LutColorizer.availability(torch.device("cuda"))
    assert not ok and "CUDA" in reason
    assert LutColorizer.availability("cpu") == (True, "")
    infos = {i.name: i for i in list_backends("cuda")}           # doctor reports, never raises
    assert not infos["exemplar"].available and "CUDA" in infos["exemplar"].reason


# ----------------------------------------------------------------------------- local statistics
def test_local_mean_std_matches_avg_pool_reference():
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 1, 64, 48), (1, 1, 1, 1), (1, 1, 3, 7), (1, 1, 2, 1)]:
        L = torch.rand(*shape, generator=g) * 100
        m, s = local_mean_std(L, 5)
        x = torch.cat([L, L * L], 1)
        p = torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
        ref_s = (p[:, 1:] - p[:, :1] ** 2).clamp(min=0).sqrt()
        assert torch.allclose(m, p[:, :1], atol=1e-3)
        assert torch.allclose(s, ref_s, atol=2e-2)


# ----------------------------------------------------------------------------- exemplar (welsh)
def test_exemplar_shape_dtype_device(welsh_ab, lung_L):
    assert welsh_ab.shape == (2, 2, 512, 512)
    assert welsh_ab.dtype == torch.float32 and welsh_ab.device.type == "cpu"
    assert torch.isfinite(welsh_ab).all()


def test_exemplar_is_deterministic(beef, lung_L, welsh, welsh_ab):
    other = ExemplarColorizer(reference_rgb=beef.copy(), reference_sha256="ab" * 32, mode="welsh")
    other.prepare(ctx_for(LUNG), lung_L)
    assert torch.equal(other.colorize(lung_L[:2]), welsh_ab)
    assert torch.equal(welsh.colorize(lung_L[:2]), welsh_ab)


def test_exemplar_is_consistent_across_slices_and_batches(welsh, lung_L, welsh_ab):
    # batching does not change a slice's colour
    single = welsh.colorize(lung_L[1:2])
    assert torch.allclose(single[0], welsh_ab[1], atol=1e-5)
    # the same L values with the same 5x5 texture get the same ab in another slice and place
    a = lung_L[0:1].clone()
    b = lung_L[3:4].clone()
    patch = a[..., 200:260, 150:230]
    b[..., 300:360, 60:140] = patch
    ab_a = welsh.colorize(a)[..., 202:258, 152:228]
    ab_b = welsh.colorize(b)[..., 302:358, 62:138]
    assert torch.allclose(ab_a, ab_b, atol=1e-3)


def _tissue_stats(ct_hu, lung_L, ab):
    L = lung_L[0, 0]
    tissue = torch.from_numpy(ct_hu[0] > -950)      # the body: no outside air, no clipped pixels
    a, b = ab[0, 0], ab[0, 1]
    edges = torch.quantile(L[tissue], torch.tensor([0.25, 0.5, 0.75])).tolist()
    bounds = [-1.0, *edges, 101.0]
    quart = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        m = tissue & (L > lo) & (L <= hi)
        quart.append((float(a[m].mean()), float(b[m].mean())))
    return tissue, quart


def test_exemplar_is_not_a_flat_tint_and_follows_luminance(ct_hu, lung_L, welsh_ab):
    tissue, quart = _tissue_stats(ct_hu, lung_L, welsh_ab)
    spread = max(math.dist(p, q) for p in quart for q in quart)
    assert spread >= 5.0, quart
    # mid-gray tissue gets the red lean-meat colour, bright tissue the whitish/yellowish fat colour
    (a_mid, b_mid), (a_bright, b_bright) = quart[1], quart[3]
    assert a_mid > 8.0 and a_mid > b_mid
    assert a_bright < a_mid - 4.0
    assert hue_deg(a_bright, b_bright) > hue_deg(a_mid, b_mid) + 20.0


def test_exemplar_colour_survives_gamut_mapping_and_hue_matches_reference(ct_hu, beef, lung_L, welsh_ab):
    ab = gamut_mapped(lung_L[:2], welsh_ab)
    tissue = torch.from_numpy(ct_hu[0] > -950)
    chroma = ab[0].norm(dim=0)
    assert float(chroma[tissue].mean()) >= 5.0
    coloured = chroma > 5.0
    out_hue = hue_deg(float(ab[0, 0][coloured].mean()), float(ab[0, 1][coloured].mean()))
    assert hue_diff(out_hue, reference_mean_hue(beef)) <= 35.0


def test_exemplar_soft_tissue_window_colours_muscle_red(beef, ct_hu):
    L = torch.from_numpy(window_l(ct_hu[:3], SOFT.center, SOFT.width))[:, None]
    col = get_colorizer("exemplar", reference_rgb=beef)
    col.prepare(ctx_for(SOFT, n=3), L)
    ab = gamut_mapped(L[:1], col.colorize(L[:1]))[0]
    muscle = torch.from_numpy((ct_hu[0] > 20) & (ct_hu[0] < 80))
    a, b = float(ab[0][muscle].mean()), float(ab[1][muscle].mean())
    assert a > 6.0 and a > 2 * abs(b)


def test_exemplar_provenance_and_no_warnings(welsh):
    prov = welsh.provenance()
    assert prov["method"] == "exemplar (welsh)"
    assert prov["reference_sha256"] == "ab" * 32 and prov["model_sha256"] is None
    p = prov["parameters"]
    assert p["mode"] == "welsh" and p["neighbourhood"] == 5 and p["luminance_remap"] == "quantile"
    assert p["table_bins"] == "101x33"
    assert all(len(str(v)) < 40 for v in p.values())
    assert welsh.warnings == []


def test_exemplar_reinhard_is_a_flat_tint_with_a_warning(beef, lung_L):
    col = get_colorizer("exemplar", reference_rgb=beef, mode="reinhard")
    col.prepare(ctx_for(LUNG), lung_L)
    ab = col.colorize(lung_L[:2])
    assert ab.shape == (2, 2, 512, 512) and ab.dtype == torch.float32
    assert float(ab.flatten(2).std(dim=2).max()) == 0.0       # the known trap: one colour everywhere
    assert float(ab[0].norm(dim=0).mean()) > 5.0
    prov = col.provenance()
    assert prov["method"] == "exemplar (reinhard)"
    assert prov["parameters"]["transfer"] == "global tint"
    assert prov["parameters"]["reference_hash"] == "pixels" and len(prov["reference_sha256"]) == 64
    assert any("global tint" in w for w in col.warnings)


def test_exemplar_option_errors(beef):
    with pytest.raises(MedcolorError, match="--ref: the exemplar backend needs a reference"):
        get_colorizer("exemplar")
    with pytest.raises(MedcolorError, match="unknown exemplar mode 'welch'"):
        get_colorizer("exemplar", reference_rgb=beef, mode="welch")
    with pytest.raises(MedcolorError, match="RGB image"):
        get_colorizer("exemplar", reference_rgb=beef[..., 0])
    with pytest.raises(MedcolorError, match="8-bit"):
        get_colorizer("exemplar", reference_rgb=beef.astype(np.float32))
    with pytest.raises(RuntimeError, match="before prepare"):
        get_colorizer("exemplar", reference_rgb=beef).colorize(torch.zeros(1, 1, 4, 4))


def test_exemplar_gray_reference_warns_and_large_reference_is_shrunk(beef, lung_L):
    gray = np.repeat(beef.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert any("almost no colour" in w for w in ExemplarColorizer(reference_rgb=gray).warnings)
    small = ExemplarColorizer(reference_rgb=beef, max_reference_pixels=2000)
    assert small._ref_L.numel() <= 2000
    small.prepare(ctx_for(LUNG), lung_L[:1])
    assert torch.isfinite(small.colorize(lung_L[:1])).all()


# ----------------------------------------------------------------------------- lut
def _lut_ab_at(hu_values: list[float], window: Window = Window(0.0, 2000.0, "custom", "HU")):
    col = get_colorizer("lut")
    col.prepare(ctx_for(window, n=1, rows=1, cols=len(hu_values)), torch.zeros(1, 1, 1, 1))
    L = torch.from_numpy(window_l(np.array(hu_values, dtype=np.float32), window.center, window.width))
    ab = col.colorize(L.view(1, 1, 1, -1))[0, :, 0, :]
    return [(float(ab[0, i]), float(ab[1, i])) for i in range(len(hu_values))]


def test_lut_tissue_hues():
    air, lung, fat, muscle, bone = _lut_ab_at([-1000.0, -700.0, -100.0, 40.0, 700.0])
    chroma = lambda p: math.hypot(*p)  # noqa: E731
    assert chroma(air) < 2.0                                          # air: neutral
    assert lung[0] > 10.0 and lung[0] > 2 * abs(lung[1])              # lung: pinkish
    a_m, b_m = muscle
    assert a_m > b_m > 0 and chroma(muscle) > 40                      # muscle: red
    assert fat[1] > 30 and hue_deg(*fat) > hue_deg(*muscle) + 30      # fat: yellow, hue past red
    assert chroma(bone) < 12 and chroma(bone) < chroma(muscle) / 3    # bone: ivory, low chroma


def test_lut_table_is_smooth_and_window_inverse_exact():
    t = hu_table()
    assert t.shape == (4096, 2)
    assert np.abs(np.diff(t, axis=0)).max() < 1.0                     # at most 1 ab unit per HU
    hu = np.linspace(-1000, 1000, 101)
    for c, w in [(-600, 1500), (40, 400), (0, 2000), (300, 1500)]:
        inside = hu[(hu > c - w / 2 + 1) & (hu < c + w / 2 - 1)]
        back = window_inverse(window_l(inside, c, w).astype(np.float64), c, w)
        assert np.allclose(back, inside, atol=0.05 * w / 1000 + 1e-3)
        assert np.all(np.diff(window_inverse(np.linspace(0, 100, 11), c, w)) > 0)


def test_lut_provenance_and_window_mapping(ct_hu):
    L = torch.from_numpy(window_l(ct_hu[:1], SOFT.center, SOFT.width))[:, None]
    col = get_colorizer("lut")
    col.prepare(ctx_for(SOFT, n=1), L)
    ab = col.colorize(L)
    assert ab.shape == (1, 2, 512, 512) and ab.dtype == torch.float32
    prov = col.provenance()
    assert prov["method"] == "lut (ct-muscle-like)"
    assert prov["parameters"]["ramp"] == "ct-muscle-like v1"
    assert prov["parameters"]["keyed_on"] == "HU" and prov["parameters"]["window"] == "W=400 L=40"
    assert prov["reference_sha256"] is None and prov["model_sha256"] is None
    muscle = torch.from_numpy((ct_hu[0] > 30) & (ct_hu[0] < 60))
    a, b = float(ab[0, 0][muscle].mean()), float(ab[0, 1][muscle].mean())
    assert a > b > 0


def test_lut_non_hu_ramp_fixed_and_quantile():
    mr = Window(500.0, 1000.0, "file", "modality")
    col = get_colorizer("lut")
    col.prepare(ctx_for(mr, modality="MR", is_hu=False), torch.zeros(1, 1, 2, 2))
    assert col.provenance()["method"] == "lut (luminance ramp)"
    ab = col.colorize(torch.tensor([0.0, 55.0, 95.0]).view(1, 1, 1, 3))[0, :, 0]
    assert abs(float(ab[0, 0])) < 1e-4 and abs(float(ab[1, 0])) < 1e-4   # black: neutral
    assert float(ab[0, 1]) > float(ab[1, 1]) > 0                        # mid: red
    assert math.hypot(float(ab[0, 2]), float(ab[1, 2])) < 15            # bright: ivory

    ds = pydicom.dcmread(XRAY)
    px = ds.pixel_array.astype(np.float32)
    lo, hi = np.percentile(px, [1, 99])
    xr = Window(float((lo + hi) / 2), float(hi - lo), "percentile(1,99)", "modality")
    L = torch.from_numpy(window_l(px, xr.center, xr.width))[None, None]
    q = get_colorizer("lut", ramp="quantile")
    q.prepare(ctx_for(xr, n=1, rows=px.shape[0], cols=px.shape[1], modality="DX", is_hu=False), L)
    ab = q.colorize(L)
    assert torch.isfinite(ab).all() and float(ab.norm(dim=1).mean()) > 5.0
    assert q.provenance()["parameters"]["keyed_on"] == "L quantiles"
    # srgb images are never treated as HU even if is_hu were set
    s = get_colorizer("lut")
    s.prepare(ctx_for(Window(127.5, 256.0, "srgb", "srgb"), modality="OT", is_hu=True), L)
    assert s.provenance()["parameters"]["keyed_on"] == "L"


def test_lut_invert_mirrors_L():
    win = Window(0.0, 2000.0, "custom", "HU")
    plain, inverted = get_colorizer("lut"), get_colorizer("lut", invert=True)
    for c in (plain, inverted):
        c.prepare(ctx_for(win, n=1), torch.zeros(1, 1, 1, 1))
    L = torch.linspace(0, 100, 21).view(1, 1, 1, -1)
    assert torch.allclose(plain.colorize(L), inverted.colorize(100 - L), atol=1e-4)


# ----------------------------------------------------------------------------- both backends
def _backends(beef):
    return [get_colorizer("exemplar", reference_rgb=beef), get_colorizer("lut"),
            get_colorizer("exemplar", reference_rgb=beef, mode="reinhard")]


@pytest.mark.parametrize("value", [0.0, 100.0, 37.5])
def test_constant_images_tiny_and_odd_sizes_never_give_nan(beef, lung_L, value):
    for col in _backends(beef):
        # a constant series sample (all clipped) and a real one
        for sample in (torch.full((2, 1, 8, 8), value), lung_L[:1]):
            col.prepare(ctx_for(LUNG, n=2, rows=8, cols=8), sample)
            for shape in [(1, 1, 1, 1), (2, 1, 3, 7), (1, 1, 17, 5), (1, 1, 64, 64)]:
                ab = col.colorize(torch.full(shape, value))
                assert ab.shape == (shape[0], 2, shape[2], shape[3])
                assert ab.dtype == torch.float32 and ab.device.type == "cpu"
                assert torch.isfinite(ab).all(), (col, shape)


def test_inputs_are_moved_to_float32_on_the_device(beef, lung_L):
    for col in _backends(beef):
        col.prepare(ctx_for(LUNG), lung_L[:1].double())
        ab = col.colorize(lung_L[:1, :, :32, :32].to(torch.float64))
        assert ab.dtype == torch.float32
        assert col.colorize(lung_L[0, 0, :16, :16]).shape == (1, 2, 16, 16)   # [H,W] promoted
    with pytest.raises(ValueError, match=r"\[B,1,H,W\]"):
        col.colorize(torch.zeros(1, 3, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(beef, lung_L):
    for name, opts in [("exemplar", {"reference_rgb": beef}), ("lut", {})]:
        cpu, gpu = get_colorizer(name, "cpu", **opts), get_colorizer(name, "cuda", **opts)
        cpu.prepare(ctx_for(LUNG), lung_L)
        gpu.prepare(ctx_for(LUNG), lung_L.cuda())
        ab_gpu = gpu.colorize(lung_L[:1].cuda())
        assert ab_gpu.device.type == "cuda" and ab_gpu.dtype == torch.float32
        assert torch.allclose(ab_gpu.cpu(), cpu.colorize(lung_L[:1]), atol=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_welsh_sorted_values_are_torch_sorts_values(dtype: torch.dtype) -> None:
    """numpy's sort on the CPU gives exactly torch.sort's values (ties, zeros and repeated values included),
    and a tensor that needs a gradient keeps torch.sort's, which carries it."""
    from medcolor.colorizers import welsh

    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.rand(5000, generator=g, dtype=dtype) * 100, torch.zeros(40, dtype=dtype),
                   torch.full((40,), 12.5, dtype=dtype)])[torch.randperm(5080, generator=g)]
    assert torch.equal(welsh.sorted_values(x), torch.sort(x).values)
    assert welsh.sorted_values(x).dtype == dtype
    y = x.clone().requires_grad_(True)
    welsh.sorted_values(y).sum().backward()
    assert y.grad is not None and torch.equal(y.grad, torch.ones_like(x))
