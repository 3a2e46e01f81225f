"""medcolor.metrics against skimage and direct formulas."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage import color as skcolor
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from medcolor import color, metrics


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    noise = rng.random((96, 80)).astype(np.float32) * 100
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    noisy = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 100).astype(np.float32)
    return noise, smooth, noisy


def _sk_ssim(a, b, data_range):
    return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def test_ssim_matches_skimage(images):
    noise, smooth, noisy = images
    for a, b in [(smooth, noisy), (noise, smooth), (noise, noise), (smooth, smooth * 0.5 + 20)]:
        assert metrics.ssim(a, b, 100) == pytest.approx(_sk_ssim(a, b, 100), abs=1e-3)
    assert metrics.ssim(smooth, smooth, 100) == pytest.approx(1.0, abs=1e-6)
    # torch input and a different data range
    assert metrics.ssim(torch.from_numpy(smooth), torch.from_numpy(noisy), 255) == pytest.approx(
        _sk_ssim(smooth, noisy, 255), abs=1e-3)
    with pytest.raises(ValueError):
        metrics.ssim(smooth[:5, :5], noisy[:5, :5], 100)
    with pytest.raises(ValueError):
        metrics.ssim(smooth, noisy[:-1], 100)


def test_psnr_nrmse_match_skimage(images):
    _, smooth, noisy = images
    assert metrics.psnr(smooth, noisy, 100) == pytest.approx(peak_signal_noise_ratio(smooth, noisy, data_range=100))
    assert metrics.psnr(smooth, smooth, 100) == math.inf
    for norm in ("euclidean", "min-max", "mean"):
        assert metrics.nrmse(smooth, noisy, norm) == pytest.approx(
            normalized_root_mse(smooth, noisy, normalization=norm), rel=1e-6)
    with pytest.raises(ValueError):
        metrics.nrmse(smooth, noisy, "bogus")


def test_delta_e2000_matches_skimage_and_sharma():
    rng = np.random.default_rng(1)
    lab1 = np.stack([rng.random(5000) * 100, rng.normal(0, 50, 5000), rng.normal(0, 50, 5000)], -1)
    lab2 = lab1 + rng.normal(0, 8, lab1.shape)
    lab2[:200, 1:] = 0.0          # zero chroma branch
    lab2[200:400, 1] = -lab1[200:400, 1]   # hue differences around pi
    np.testing.assert_allclose(metrics.delta_e2000(lab1, lab2), skcolor.deltaE_ciede2000(lab1, lab2), atol=1e-9)
    # Sharma, Wu & Dalal (2005) test data, pairs 1-3
    a = np.array([[50, 2.6772, -79.7751], [50, 3.1571, -77.2803], [50, 2.8361, -74.0200]])
    b = np.array([[50, 0, -82.7485]] * 3)
    np.testing.assert_allclose(metrics.delta_e2000(a, b), [2.0425, 2.8615, 3.4412], atol=1e-4)
    # channel-first tensors
    t1 = torch.from_numpy(lab1[:64].T.reshape(3, 8, 8).copy())
    t2 = torch.from_numpy(lab2[:64].T.reshape(3, 8, 8).copy())
    np.testing.assert_allclose(metrics.delta_e2000(t1, t2, channel_axis=0).ravel(),
                               skcolor.deltaE_ciede2000(lab1[:64], lab2[:64]), atol=1e-9)


def test_delta_l_gray_and_colour():
    rng = np.random.default_rng(2)
    L = torch.from_numpy(rng.random((1, 1, 64, 64)).astype(np.float32) * 100)
    ab = torch.from_numpy(((rng.random((1, 2, 64, 64)) * 2 - 1) * 100).astype(np.float32))
    rgb8 = color.lab_to_rgb8(L, ab)[0]            # [3, H, W]
    d_t = metrics.delta_l(L[0, 0], rgb8)
    d_np = metrics.delta_l(L[0, 0].numpy(), color.to_hwc_numpy(rgb8))
    assert d_t == pytest.approx(d_np)
    assert d_t["mean"] <= 0.5 and d_t["p99"] <= 1.5 and d_t["max"] >= d_t["p99"] >= 0
    # against a float64 reference via skimage
    ref = skcolor.rgb2lab(color.to_hwc_numpy(rgb8))[..., 0]
    diff = np.abs(ref - L[0, 0].numpy().astype(np.float64)).ravel()
    assert d_t["mean"] == pytest.approx(diff.mean(), abs=1e-3)
    assert d_t["max"] == pytest.approx(diff.max(), abs=1e-3)
    # a wrong L is reported
    assert metrics.delta_l(L[0, 0] + 10, rgb8)["mean"] == pytest.approx(10, abs=0.6)
    with pytest.raises(ValueError):
        metrics.delta_l(L[0, 0], rgb8.float())


def test_colourfulness():
    gray = np.full((16, 16, 3), 128, np.uint8)
    assert metrics.colourfulness(gray) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (32, 24, 3), dtype=np.uint8)
    r, g, b = (img[..., k].astype(np.float64) for k in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    ref = math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    assert metrics.colourfulness(img) == pytest.approx(ref, rel=1e-5)
    assert metrics.colourfulness(torch.from_numpy(img).permute(2, 0, 1)) == pytest.approx(ref, rel=1e-5)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert metrics.colourfulness(red) == pytest.approx(0.3 * math.sqrt(255 ** 2 + 127.5 ** 2))
    assert metrics.colorfulness is metrics.colourfulness


def test_summarize():
    s = metrics.summarize([1.0, 2.0, 3.0, 4.0])
    assert s == pytest.approx({"mean": 2.5, "std": math.sqrt(1.25), "min": 1.0, "max": 4.0})
    empty = metrics.summarize([])
    assert set(empty) == {"mean", "std", "min", "max"} and all(math.isnan(v) for v in empty.values())


def test_measure_rgb8_equals_the_separate_measures() -> None:
    from medcolor.color import delta_l_stats, rgb8_to_L_numpy
    from medcolor.metrics import colourfulness, measure_rgb8, psnr

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    l_in = (rgb8_to_L_numpy(rgb) + rng.normal(0, 0.3, (64, 48))).astype(np.float32)
    l_out, m = measure_rgb8(l_in, rgb)
    np.testing.assert_allclose(l_out, rgb8_to_L_numpy(rgb), atol=1e-4)
    mean, p99, dmax = delta_l_stats(l_in, rgb)
    assert m["delta_l_mean"] == pytest.approx(mean, rel=1e-6) and m["delta_l_p99"] == pytest.approx(p99)
    assert m["delta_l_max"] == pytest.approx(dmax, rel=1e-6)
    assert m["psnr_l"] == pytest.approx(psnr(l_in, rgb8_to_L_numpy(rgb), 100.0), rel=1e-6)
    assert m["colourfulness"] == pytest.approx(colourfulness(rgb), rel=1e-6)
    with pytest.raises(ValueError):
        measure_rgb8(l_in[:10], rgb)


def _ssim_cases():
    rng = np.random.default_rng(7)
    cases = []
    for shape in [(512, 512), (96, 80), (11, 11), (12, 40), (40, 12), (37, 523)]:
        noise = (rng.random(shape) * 100).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), 3)
        noisy = np.clip(smooth + rng.normal(0, 4, shape), 0, 100).astype(np.float32)
        quant = (np.round(smooth * 2.55) / 2.55).astype(np.float32)     # 8-bit quantisation of L in 0..100
        cases += [(f"{shape} noise/noisy", noise, noisy), (f"{shape} smooth/noisy", smooth, noisy),
                  (f"{shape} smooth/quantised", smooth, quant), (f"{shape} noise/smooth", noise, smooth),
                  (f"{shape} scaled", smooth, smooth * np.float32(0.5) + np.float32(20))]
    return cases


def test_ssim_fused_kernel_equals_cv2_reference(monkeypatch):
    if color._fast() is None:
        pytest.skip("numba not available")
    for name, a, b in _ssim_cases():
        for data_range in (100.0, 255.0, 1.0):
            got, ref = metrics.ssim(a, b, data_range), metrics._ssim_cv2(a, b, data_range)
            assert got == pytest.approx(ref, abs=1e-5), (name, data_range)
        assert metrics.ssim(a, a, 100) == pytest.approx(1.0, abs=1e-6), name
        assert metrics.ssim(b, b, 100) == pytest.approx(1.0, abs=1e-6), name
    # larger values (e.g. raw CT numbers) and a non-contiguous float64 view
    rng = np.random.default_rng(8)
    ct = (rng.random((64, 70)) * 4000 - 1000).astype(np.float32)
    ct2 = ct + rng.normal(0, 30, ct.shape).astype(np.float32)
    assert metrics.ssim(ct, ct2, 4000) == pytest.approx(metrics._ssim_cv2(ct, ct2, 4000), abs=1e-5)
    v1, v2 = ct.astype(np.float64)[::2, ::-1], ct2.astype(np.float64)[::2, ::-1]
    assert metrics.ssim(v1, v2, 4000) == pytest.approx(metrics._ssim_cv2(v1, v2, 4000), abs=1e-5)
    # without numba, ssim takes the cv2 + numpy path and gives the same value
    _, a, b = _ssim_cases()[6]
    fused = metrics.ssim(a, b, 100)
    monkeypatch.setattr(color, "_fast", lambda: None)
    assert metrics.ssim(a, b, 100) == pytest.approx(fused, abs=1e-5)
    assert metrics.ssim(a, b, 100) == pytest.approx(_sk_ssim(a, b, 100), abs=1e-3)
