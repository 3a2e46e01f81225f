"""medcolor.windowing: presets, window resolution, DICOM-exact LINEAR windowing, MONAI transforms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage import color as skcolor

from medcolor.errors import MedcolorError
from medcolor.types import Series, Window
from medcolor.windowing import (DEFAULT_CT_PRESET, PRESET_SOURCES, PRESETS, WindowToL, WindowToLd,
                                normalize_preset_name, percentile_window, resolve_window, window_to_l)


def _series(modality="CT", is_hu=True, kind="dicom", file_windows=(), bits=16, label="/data/series1"):
    return Series(kind=kind, modality=modality, rows=4, columns=4, slices=[], is_hu=is_hu,
                  file_windows=list(file_windows), bits=bits, source_label=label)


def _dicom_linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 written as in the standard (if / else if / else), output 0..100."""
    x = np.asarray(x, dtype=np.float64)
    out = ((x - (c - 0.5)) / (w - 1) + 0.5) * 100 if w > 1 else np.zeros_like(x)
    out = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, out)
    out = np.where(x > c - 0.5 + (w - 1) / 2, 100.0, out)
    return out


# ----------------------------------------------------------------------------------- presets
def test_presets_are_hu_and_sourced():
    for name in ("lung", "mediastinum", "bone", "brain", "abdomen", "liver", "soft_tissue"):
        assert name in PRESETS
    assert set(PRESET_SOURCES) == set(PRESETS)
    for name, win in PRESETS.items():
        assert win.units == "HU" and win.name == name and win.width >= 1
    # 3D Slicer's Volumes presets
    assert (PRESETS["abdomen"].width, PRESETS["abdomen"].center) == (350, 40)
    assert (PRESETS["brain"].width, PRESETS["brain"].center) == (100, 50)
    assert (PRESETS["bone"].width, PRESETS["bone"].center) == (1000, 400)
    assert (PRESETS["lung"].width, PRESETS["lung"].center) == (1400, -500)


@pytest.mark.parametrize("raw,expected", [("Lung", "lung"), ("CT-Soft-Tissue", "soft_tissue"),
                                          ("soft tissue", "soft_tissue"), ("SOFT_TISSUE", "soft_tissue"),
                                          ("ct_bone", "bone"), ("Mediastinum", "mediastinum")])
def test_preset_name_normalization(raw, expected):
    assert normalize_preset_name(raw) == expected
    assert resolve_window(raw, _series()) == PRESETS[expected]


# ---------------------------------------------------------------------------- resolve_window
def test_default_uses_file_window_first():
    s = _series(file_windows=[(40.0, 400.0), (-600.0, 1500.0)])
    w = resolve_window(None, s)
    assert (w.center, w.width, w.name, w.units) == (40.0, 400.0, "file", "HU")
    s_mr = _series("MR", is_hu=False, file_windows=[(300.0, 600.0)])
    assert resolve_window(None, s_mr).units == "modality"
    assert resolve_window("file", s_mr).center == 300.0


def test_default_per_modality():
    assert resolve_window(None, _series()) == PRESETS[DEFAULT_CT_PRESET]
    sample = np.arange(1000, dtype=np.float32)
    w = resolve_window(None, _series("MR", is_hu=False), sample)
    assert w.name == "percentile(1,99)" and w.units == "modality"
    assert w.center == pytest.approx(499.5) and w.width == pytest.approx(np.percentile(sample, 99) - np.percentile(sample, 1))
    assert resolve_window(None, _series("DX", is_hu=False), sample).name.startswith("percentile")
    img = resolve_window(None, _series("OT", is_hu=False, kind="image", bits=8))
    assert img.units == "srgb" and img.name == "srgb"
    assert resolve_window(None, _series("OT", is_hu=False, kind="image", bits=16), sample).name.startswith("percentile")
    with pytest.raises(MedcolorError):
        resolve_window(None, _series("MR", is_hu=False), None)


def test_explicit_width_level():
    w = resolve_window("1500,-600", _series())
    assert (w.width, w.center, w.units, w.name) == (1500.0, -600.0, "HU", "custom")
    w = resolve_window(" 400 , 50 ", _series("MR", is_hu=False))
    assert (w.width, w.center, w.units) == (400.0, 50.0, "modality")
    assert resolve_window("2.5e3,1e2", _series()).width == 2500.0
    for bad in ("0,50", "-10,50"):
        with pytest.raises(MedcolorError, match="width must be > 0"):
            resolve_window(bad, _series())
    with pytest.raises(MedcolorError, match=">= 1"):
        resolve_window("0.5,0", _series())
    # a float NIfTI may use a width below 1 (LINEAR_EXACT)
    assert resolve_window("0.5,0.25", _series("MR", is_hu=False, kind="nifti")).width == 0.5


def test_percentile_specs():
    sample = np.linspace(0, 100, 10001)
    w = resolve_window("percentile:5,95", _series("MR", is_hu=False), sample)
    assert w.center == pytest.approx(50) and w.width == pytest.approx(90) and w.name == "percentile(5,95)"
    assert resolve_window("Percentile", _series("MR", is_hu=False), sample).name == "percentile(1,99)"
    with pytest.raises(MedcolorError):
        resolve_window("percentile:95,5", _series("MR", is_hu=False), sample)
    with pytest.raises(MedcolorError):
        resolve_window("percentile", _series("MR", is_hu=False), None)


def test_hu_preset_on_non_hu_series_is_refused():
    s = _series("MR", is_hu=False, label="/data/mr")
    with pytest.raises(MedcolorError) as err:
        resolve_window("lung", s)
    msg = str(err.value)
    assert msg == ("/data/mr: lung is a Hounsfield-unit window but this MR series has no HU. "
                   "use --window percentile or W,L in the image's own units.")
    assert "\n" not in msg


def test_unknown_names_and_file_without_voi():
    with pytest.raises(MedcolorError, match="did you mean 'mediastinum'"):
        resolve_window("mediastinun", _series())
    with pytest.raises(MedcolorError, match="did you mean 'lung'"):
        resolve_window("lugn", _series())
    with pytest.raises(MedcolorError, match="unknown window"):
        resolve_window("xyzzy", _series())
    with pytest.raises(MedcolorError, match="no VOI window"):
        resolve_window("file", _series())


def test_percentile_window_edge_cases():
    assert percentile_window(np.full(50, 7.0)) == Window(center=7.5, width=1.0, name="percentile(1,99)",
                                                         units="modality")
    data = np.array([np.nan, 0.0, 10.0, np.inf, 5.0])
    w = percentile_window(data, 0, 100)
    assert w.center == 5.0 and w.width == 10.0
    assert percentile_window(torch.arange(11.0), 0, 100, units="HU").units == "HU"
    with pytest.raises(MedcolorError):
        percentile_window(np.array([np.nan, np.nan]))
    with pytest.raises(MedcolorError):
        percentile_window(np.arange(5.0), 50, 50)


# ------------------------------------------------------------------------------- window_to_l
@pytest.mark.parametrize("c,w", [(40.0, 400.0), (-600.0, 1500.0), (0.0, 2.0), (50.0, 100.0), (0.5, 3.0)])
def test_window_matches_dicom_linear(c, w):
    x = np.concatenate([np.linspace(c - w, c + w, 2001), [c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2]])
    ref = _dicom_linear(x, c, w)
    win = Window(center=c, width=w)
    np.testing.assert_allclose(window_to_l(x, win), ref, atol=2e-3)
    np.testing.assert_allclose(window_to_l(x.astype(np.float32), win), ref, atol=5e-3)
    np.testing.assert_allclose(window_to_l(torch.from_numpy(x), win).numpy(), ref, atol=2e-3)


def test_window_width_one_is_a_step():
    x = np.array([-1.0, 9.4, 9.5, 9.5001, 10.0, 20.0])
    out = window_to_l(x, Window(center=10.0, width=1.0))
    assert out.tolist() == [0, 0, 0, 100, 100, 100]
    assert window_to_l(torch.from_numpy(x), Window(center=10.0, width=1.0)).tolist() == out.tolist()


def test_window_below_one_uses_linear_exact():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    out = window_to_l(x, Window(center=0.5, width=0.5, units="modality"))
    np.testing.assert_allclose(out, [0, 0, 50, 100, 100], atol=1e-4)


def test_window_types_shapes_invert_and_nan():
    win = PRESETS["soft_tissue"]
    x16 = np.array([[-1000, 50], [250, 3000]], dtype=np.int16)
    out = window_to_l(x16, win)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 2)
    t = window_to_l(torch.from_numpy(x16), win)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, atol=1e-4)
    inv = window_to_l(x16, win, invert=True)
    np.testing.assert_allclose(inv, 100 - out, atol=1e-5)
    assert window_to_l(np.array([np.nan, 50.0]), win)[0] == 0.0
    assert float(window_to_l(torch.tensor([float("nan")]), win)[0]) == 0.0
    with pytest.raises(MedcolorError):
        window_to_l(x16, Window(center=0, width=0))


def test_srgb_window_is_cie_lightness_of_gray():
    v = np.arange(256, dtype=np.float32)
    win = Window(center=127.5, width=256, name="srgb", units="srgb")
    out = window_to_l(v, win)
    ref = skcolor.rgb2lab(np.repeat((v / 255.0)[:, None, None], 3, axis=2))[:, 0, 0]
    np.testing.assert_allclose(out, ref, atol=2e-3)
    np.testing.assert_allclose(window_to_l(torch.from_numpy(v), win).numpy(), out, atol=2e-3)
    assert out[0] == 0 and abs(out[255] - 100) < 1e-3


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                    elements=st.floats(-5000, 5000, width=32)),
       c=st.floats(-2000, 2000), w=st.floats(1, 5000), invert=st.booleans(), as_torch=st.booleans())
def test_window_property(x, c, w, invert, as_torch):
    win = Window(center=c, width=w)
    inp = torch.from_numpy(x) if as_torch else x
    out = window_to_l(inp, win, invert=invert)
    arr = out.numpy() if as_torch else out
    assert tuple(arr.shape) == x.shape and arr.dtype == np.float32
    assert np.all((arr >= 0) & (arr <= 100))
    # monotone in x (non-increasing when inverted)
    order = np.argsort(x.ravel(), kind="stable")
    seq = arr.ravel()[order]
    diffs = np.diff(seq) if not invert else -np.diff(seq)
    assert np.all(diffs >= -1e-3)


# --------------------------------------------------------------------------- MONAI transforms
def test_monai_transforms():
    from monai.data import MetaTensor
    from monai.transforms import Compose

    win = PRESETS["lung"]
    img = MetaTensor(torch.tensor([[[-1200.0, -500.0, 200.0]]]))
    out = WindowToL(win)(img)
    assert isinstance(out, torch.Tensor) and out.shape == img.shape
    np.testing.assert_allclose(out.flatten().tolist(), window_to_l(np.array([-1200.0, -500.0, 200.0]), win), atol=1e-4)
    pipeline = Compose([WindowToLd(keys=["image"], window=win, invert=True)])
    d = pipeline({"image": np.array([[-1200.0, 200.0]], dtype=np.float32), "index": 3})
    assert d["index"] == 3
    np.testing.assert_allclose(d["image"], [[100.0, 0.0]], atol=1e-4)
    with pytest.raises(KeyError):
        WindowToLd(keys=["missing"], window=win)({"image": np.zeros(2)})
    assert WindowToLd(keys=["missing"], window=win, allow_missing_keys=True)({"image": np.zeros(2)})
