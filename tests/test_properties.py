"""Property tests (hypothesis): for any image and any window, windowing -> a backend -> 8-bit sRGB keeps
the output's L within the report's |ΔL| bounds of the windowed L, and the output shape equals the input
shape (odd sizes, 1-pixel images, NaN/inf pixels, huge and tiny windows, MONOCHROME1 inversion)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medcolor.color import lab_to_rgb8, to_hwc_numpy, upsample_ab
from medcolor.metrics import measure_slice
from medcolor.pipeline import RunOptions, build_colorizer
from medcolor.report import DELTA_L_BOUNDS
from medcolor.types import SeriesContext, Window
from medcolor.windowing import window_to_l

MAX_DL = 1.0  # one 8-bit sRGB step is at most ~0.5 L* except at the very dark end

pixel = st.one_of(st.floats(min_value=-1e6, max_value=1e6, width=32),
                  st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, -1024.0, 65535.0]))
images = st.tuples(st.integers(1, 23), st.integers(1, 23)).flatmap(
    lambda hw: arrays(np.float32, hw, elements=pixel))
windows = st.builds(
    Window,
    center=st.floats(min_value=-5000, max_value=5000, allow_nan=False, allow_infinity=False),
    width=st.one_of(st.floats(min_value=1e-3, max_value=1.0), st.floats(min_value=1.0, max_value=1e5)),
    name=st.just("custom"),
    units=st.sampled_from(["HU", "modality", "srgb"]),
)

_COLORIZERS: dict[str, object] = {}


def colorizer(method: str):
    if method not in _COLORIZERS:
        _COLORIZERS[method] = build_colorizer(RunOptions(output=".", method=method), torch.device("cpu"))
    return _COLORIZERS[method]


def _check(L: torch.Tensor, rgb_hwc: np.ndarray) -> None:
    m = measure_slice(L[0, 0].numpy(), rgb_hwc)
    assert m["delta_l_mean"] <= DELTA_L_BOUNDS["mean"] and m["delta_l_p99"] <= DELTA_L_BOUNDS["p99"] \
        and m["delta_l_max"] <= MAX_DL, m


@pytest.mark.parametrize("method", ["lut", "exemplar"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=images, window=windows, invert=st.booleans(), hu=st.booleans())
def test_delta_l_bounded_and_shape_kept(method: str, img: np.ndarray, window: Window, invert: bool,
                                        hu: bool) -> None:
    h, w = img.shape
    x = torch.from_numpy(img).reshape(1, 1, h, w)
    L = window_to_l(x, window, invert=invert)
    assert L.shape == (1, 1, h, w) and L.dtype == torch.float32
    assert torch.isfinite(L).all() and float(L.min()) >= 0.0 and float(L.max()) <= 100.0
    # numpy and torch windowing agree
    np.testing.assert_allclose(window_to_l(img, window, invert=invert), L[0, 0].numpy(), atol=1e-3)
    c = colorizer(method)
    ctx = SeriesContext(modality="CT" if hu else "MR", window=window, is_hu=hu and window.units == "HU",
                        n_slices=1, rows=h, columns=w, inverted=invert)
    c.prepare(ctx, L)
    ab = c.colorize(L)
    assert ab.ndim == 4 and ab.shape[:2] == (1, 2)
    assert torch.isfinite(ab).all()
    ab = upsample_ab(ab.float(), (h, w))
    assert ab.shape == (1, 2, h, w)
    rgb = lab_to_rgb8(L, ab)
    assert rgb.shape == (1, 3, h, w) and rgb.dtype == torch.uint8
    _check(L, to_hwc_numpy(rgb)[0])


@settings(max_examples=60, deadline=None)
@given(L=arrays(np.float32, st.tuples(st.integers(1, 17), st.integers(1, 17)),
                elements=st.floats(0, 100, width=32)),
       chroma=st.floats(0, 300), hue=st.floats(0, 2 * np.pi))
def test_any_chroma_keeps_l(L: np.ndarray, chroma: float, hue: float) -> None:
    """Whatever ab a backend predicts (even far out of gamut), the encoded L stays put."""
    h, w = L.shape
    ab = np.empty((2, h, w), np.float32)
    ab[0], ab[1] = chroma * np.cos(hue), chroma * np.sin(hue)
    Lt = torch.from_numpy(L).reshape(1, 1, h, w)
    hwc = to_hwc_numpy(lab_to_rgb8(Lt, torch.from_numpy(ab)[None]))[0]
    assert hwc.shape == (h, w, 3)
    _check(Lt, hwc)
