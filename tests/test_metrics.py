"""medcolor.metrics: the run report's per-slice measures against skimage and direct formulas."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage import color as skcolor
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medcolor import color, metrics


def _coloured(h=64, w=48, seed=2):
    rng = np.random.default_rng(seed)
    L = torch.from_numpy(rng.random((1, 1, h, w)).astype(np.float32) * 100)
    ab = torch.from_numpy(((rng.random((1, 2, h, w)) * 2 - 1) * 100).astype(np.float32))
    return L[0, 0].numpy(), color.to_hwc_numpy(color.lab_to_rgb8(L, ab))[0]


def test_lightness_is_cie_l_of_the_8_bit_colour():
    _, rgb = _coloured()
    ref = skcolor.rgb2lab(rgb)[..., 0]
    # skimage uses the rounded CIE constants 0.008856 / 7.787: differences up to ~2e-4 near them
    np.testing.assert_allclose(metrics.lightness(rgb), ref, atol=5e-4)
    assert metrics.lightness(rgb).dtype == np.float32 and metrics.lightness(rgb[:, ::2]).shape == (64, 24)
    with pytest.raises(ValueError):
        metrics.lightness(rgb.astype(np.float32))


def test_measure_slice_against_direct_formulas():
    l_in, rgb = _coloured()
    m = metrics.measure_slice(l_in, rgb)
    assert set(m) == {"delta_l_mean", "delta_l_p99", "delta_l_max", "psnr_l", "ssim_l", "colourfulness"}
    l_out = skcolor.rgb2lab(rgb)[..., 0]
    d = np.abs(l_out - l_in.astype(np.float64)).ravel()
    assert m["delta_l_mean"] == pytest.approx(d.mean(), abs=1e-3)
    assert m["delta_l_max"] == pytest.approx(d.max(), abs=1e-3)
    p99 = np.sort(d)[math.ceil(0.99 * d.size) - 1]                  # the upper edge of its 0.01 bin
    assert p99 - 1e-3 <= m["delta_l_p99"] <= p99 + 0.01 + 1e-3 and round(m["delta_l_p99"] * 100, 6).is_integer()
    assert m["delta_l_mean"] <= 0.5 and m["delta_l_p99"] <= 1.5 and m["delta_l_max"] >= m["delta_l_p99"]
    assert m["psnr_l"] == pytest.approx(peak_signal_noise_ratio(l_in, l_out.astype(np.float32), data_range=100),
                                        abs=1e-3)
    assert m["ssim_l"] == pytest.approx(structural_similarity(l_in, l_out.astype(np.float32), data_range=100),
                                        abs=1e-4)
    assert m["colourfulness"] == pytest.approx(metrics.colourfulness(rgb))
    # the L* a value table hands over is used as given
    given = metrics.measure_slice(l_in, rgb, metrics.lightness(rgb))
    assert given == m
    # a wrong L is reported (beyond 10: the exact order statistic); an exact one scores perfectly
    far = metrics.measure_slice(l_in + 30, rgb)
    d30 = np.abs(metrics.lightness(rgb) - (l_in + 30)).ravel()
    assert far["delta_l_mean"] == pytest.approx(30, abs=0.6)
    assert far["delta_l_p99"] == np.sort(d30)[math.ceil(0.99 * d30.size) - 1]
    exact = metrics.measure_slice(metrics.lightness(rgb), rgb)
    assert exact["delta_l_max"] == 0.0 and math.isinf(exact["psnr_l"]) and exact["ssim_l"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.measure_slice(l_in[:10], rgb)


def test_measure_slice_on_tiny_slices():
    """Slices smaller than SSIM's 7x7 window get every figure but SSIM (NaN), never an error."""
    l_in, rgb = _coloured(3, 5)
    m = metrics.measure_slice(l_in, rgb)
    assert math.isnan(m["ssim_l"]) and m["delta_l_max"] < 1.0 and np.isfinite(m["colourfulness"])
    one = metrics.measure_slice(l_in[:1, :1], rgb[:1, :1])
    assert one["delta_l_max"] <= one["delta_l_p99"] <= one["delta_l_max"] + 0.01


def test_ssim_is_skimages_default_ssim():
    """The run's SSIM is skimage's structural_similarity with its defaults (what medcolor evaluate uses),
    computed with OpenCV's box filter: the same value to float rounding -- no farther from skimage's
    float64 result than skimage's own float32 result is (plus 1e-5), whatever the sizes and values."""
    rng = np.random.default_rng(0)
    for shape in [(512, 512), (96, 80), (7, 7), (7, 40), (37, 523)]:
        noise = (rng.random(shape) * 100).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), 3)
        quant = (np.round(smooth * 2.55) / 2.55).astype(np.float32)     # 8-bit quantisation of L
        for a, b in [(noise, smooth), (smooth, quant), (smooth, smooth * np.float32(0.5) + np.float32(20)),
                     (noise, noise)]:
            for data_range in (100.0, 255.0, 1.0):
                ref = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=data_range)
                tol = abs(structural_similarity(a, b, data_range=data_range) - ref) + 1e-5
                assert metrics.ssim(a, b, data_range) == pytest.approx(ref, abs=tol), (shape, data_range)
    ct = (rng.random((64, 70)) * 4000 - 1000).astype(np.float32)             # raw CT numbers, float64 view
    ct2 = ct + rng.normal(0, 30, ct.shape).astype(np.float32)
    v1, v2 = ct.astype(np.float64)[::2, ::-1], ct2.astype(np.float64)[::2, ::-1]
    assert metrics.ssim(v1, v2, 4000) == pytest.approx(structural_similarity(v1, v2, data_range=4000), abs=2e-6)
    with pytest.raises(ValueError):
        metrics.ssim(noise[:6, :6], noise[:6, :6], 100)
    with pytest.raises(ValueError):
        metrics.ssim(noise, noise[:-1], 100)


def test_colourfulness():
    gray = np.full((16, 16, 3), 128, np.uint8)
    assert metrics.colourfulness(gray) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (32, 24, 3), dtype=np.uint8)
    r, g, b = (img[..., k].astype(np.float64) for k in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    ref = math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert metrics.colourfulness(img) == pytest.approx(ref, rel=1e-5)
    assert metrics.colourfulness(img[:, ::-1]) == pytest.approx(ref, rel=1e-5)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert metrics.colourfulness(red) == pytest.approx(0.3 * math.sqrt(255 ** 2 + 127.5 ** 2))
    assert metrics.colorfulness is metrics.colourfulness


def test_summarize():
    s = metrics.summarize([1.0, 2.0, 3.0, 4.0])
    assert s == pytest.approx({"mean": 2.5, "std": math.sqrt(1.25), "min": 1.0, "max": 4.0})
    empty = metrics.summarize([])
    assert set(empty) == {"mean", "std", "min", "max"} and all(math.isnan(v) for v in empty.values())
