"""medcolor.color: reference values (skimage), round trips, shapes, errors, devices, gamut mapping,
8-bit encoding exactness and the |dL| promise."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import color as skcolor

from medcolor import color

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="no CUDA device"))]


def _rand_rgb(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=dtype)


def _ct_like_L(h=128, w=128, seed=0) -> torch.Tensor:
    """A CT-like L image: body ellipse (soft tissue ~50), lungs (dark), bones (bright), noise,
    smooth ramps; values in 0..100 as a soft-tissue window would give."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    body = ((xx - 0.5) ** 2 / 0.16 + (yy - 0.5) ** 2 / 0.1) < 1
    lungs = (((xx - 0.33) ** 2 + (yy - 0.45) ** 2) < 0.015) | (((xx - 0.67) ** 2 + (yy - 0.45) ** 2) < 0.015)
    bone = ((xx - 0.5) ** 2 + (yy - 0.75) ** 2) < 0.003
    L = np.where(body, 48.0, 0.0) + 10 * np.sin(xx * 20) * body
    L[lungs] = 5.0
    L[bone] = 97.0
    L = np.clip(L + rng.normal(0, 3, L.shape), 0, 100)
    return torch.from_numpy(L).float().view(1, 1, h, w)


def _dL(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    rgb8 = color.lab_to_rgb8(L, ab)
    return (color.rgb8_to_lab(rgb8)[..., :1, :, :].double() - L.double()).abs()


# ----------------------------------------------------------------------------- reference values
def test_srgb_to_lab_matches_skimage():
    rgb = _rand_rgb((3, 16, 16))
    ours = color.srgb_to_lab(rgb).permute(1, 2, 0).numpy()
    ref = skcolor.rgb2lab(rgb.permute(1, 2, 0).numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_lab_to_srgb_matches_skimage_in_gamut():
    rgb = _rand_rgb((3, 16, 16), seed=1) * 0.9 + 0.05
    lab = color.srgb_to_lab(rgb)
    ours = color.lab_to_srgb(lab).permute(1, 2, 0).numpy()
    ref = skcolor.lab2rgb(lab.permute(1, 2, 0).numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_known_values():
    white = torch.ones(3, 1, 1, dtype=torch.float64)
    np.testing.assert_allclose(color.srgb_to_lab(white).flatten().numpy(), [100, 0, 0], atol=1e-2)
    red = torch.tensor([1.0, 0, 0], dtype=torch.float64).view(3, 1, 1)
    np.testing.assert_allclose(color.srgb_to_lab(red).flatten().numpy(), [53.24, 80.09, 67.20], atol=0.02)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_float(dtype):
    rgb = _rand_rgb((2, 3, 8, 8), dtype=dtype)
    back = color.lab_to_srgb(color.srgb_to_lab(rgb))
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert torch.allclose(back, rgb, atol=tol)


# ------------------------------------------------------------------------------ shapes / errors
@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 3, 5, 7), (2, 4, 3, 5, 7)])
def test_shapes(shape):
    rgb = _rand_rgb(shape, dtype=torch.float32)
    lab = color.srgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    L, ab = lab[..., :1, :, :], lab[..., 1:, :, :]
    assert color.gamut_map_chroma(L, ab).shape == ab.shape
    rgb8 = color.lab_to_rgb8(L, ab)
    assert rgb8.shape == rgb.shape and rgb8.dtype == torch.uint8
    assert color.rgb8_to_lab(rgb8).shape == rgb.shape
    assert color.rgb8_to_L(rgb8).shape == L.shape
    hwc = color.to_hwc_numpy(rgb8)
    assert hwc.shape == shape[:-3] + shape[-2:] + (3,) and hwc.dtype == np.uint8
    assert np.array_equal(hwc[..., 0], rgb8[..., 0, :, :].numpy())


def test_errors():
    with pytest.raises(ValueError):
        color.srgb_to_lab(torch.rand(4, 5, 5))
    with pytest.raises(ValueError):
        color.lab_to_srgb(torch.rand(2, 5, 5))
    with pytest.raises(ValueError):
        color.gamut_map_chroma(torch.rand(2, 5, 5), torch.rand(2, 5, 5))
    with pytest.raises(ValueError):
        color.lab_to_rgb8(torch.rand(1, 5, 5), torch.rand(3, 5, 5))
    with pytest.raises(ValueError, match="upsample_ab"):
        color.lab_to_rgb8(torch.rand(1, 1, 8, 8), torch.rand(1, 2, 4, 4))
    with pytest.raises(TypeError):
        color.rgb8_to_lab(torch.rand(3, 4, 4))
    with pytest.raises(ValueError):
        color.rgb8_to_lab(torch.zeros(4, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError):
        color.upsample_ab(torch.rand(1, 4, 4, 4), (8, 8))
    # a whole Lab (a backend that replaces L) is resized like ab
    assert color.upsample_ab(torch.rand(1, 3, 4, 4), (8, 8)).shape == (1, 3, 8, 8)


def test_nan_and_out_of_range_inputs_do_not_crash():
    L = torch.tensor([float("nan"), 50.0, 100.5, -3.0]).view(1, 1, 1, 4)
    ab = torch.tensor([[float("inf"), float("nan"), 10.0, 5.0], [1.0, 2.0, 3.0, float("-inf")]]).view(1, 2, 1, 4)
    rgb8 = color.lab_to_rgb8(L, ab)
    assert rgb8.shape == (1, 3, 1, 4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_devices_and_dtypes(device, dtype):
    lab = color.srgb_to_lab(_rand_rgb((1, 3, 16, 16), dtype=dtype)).to(device)
    L, ab = lab[:, :1], lab[:, 1:] * 3
    out = color.gamut_map_chroma(L, ab)
    assert out.device.type == device and out.dtype == dtype
    rgb8 = color.lab_to_rgb8(L, ab)
    assert rgb8.device.type == device
    assert color.rgb8_to_lab(rgb8).device.type == device
    assert color.upsample_ab(ab[..., ::2, ::2], (16, 16)).device.type == device


# ------------------------------------------------------------------------------- gamut mapping
def _max_violation(L, ab):
    lin = color.lab_to_linear_rgb(torch.cat([L, ab], dim=-3).double())
    return max(float((-lin).max()), float((lin - 1).max()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gamut_map_puts_everything_in_gamut(dtype):
    g = torch.Generator().manual_seed(3)
    L = (torch.rand(1, 1, 256, 256, generator=g) * 100).to(dtype)
    ab = ((torch.rand(1, 2, 256, 256, generator=g) * 2 - 1) * 128).to(dtype)
    out = color.gamut_map_chroma(L, ab)
    assert _max_violation(L, out) <= color.GAMUT_TOL_HIGH + 1e-6
    # chroma only ever decreases; L is untouched by construction (ab only is returned)
    assert (torch.hypot(out[:, 0], out[:, 1]) <= torch.hypot(ab[:, 0], ab[:, 1]) + 1e-5).all()


def test_gamut_map_preserves_hue():
    g = torch.Generator().manual_seed(4)
    L = torch.rand(1, 1, 128, 128, generator=g, dtype=torch.float64) * 100
    ab = (torch.rand(1, 2, 128, 128, generator=g, dtype=torch.float64) * 2 - 1) * 128
    out = color.gamut_map_chroma(L, ab)
    chroma = torch.hypot(out[:, 0], out[:, 1])
    keep = chroma > 1
    assert keep.float().mean() > 0.8
    h_in = torch.atan2(ab[:, 1], ab[:, 0])[keep]
    h_out = torch.atan2(out[:, 1], out[:, 0])[keep]
    dh = torch.remainder(h_out - h_in + math.pi, 2 * math.pi) - math.pi
    assert dh.abs().max() < 1e-9


def test_gamut_map_keeps_in_gamut_colours():
    rgb = _rand_rgb((1, 3, 100, 100), seed=5)
    lab = color.srgb_to_lab(rgb)
    L, ab = lab[:, :1], lab[:, 1:]
    out = color.gamut_map_chroma(L, ab)
    changed = (out - ab).abs().amax(dim=1) > 1e-6
    assert changed.float().mean() < 0.02  # only colours within the safety margin of the boundary
    # colours well inside (chroma <= 70 % of the exact maximum) are untouched
    cmax = color.max_chroma(L[:, 0], torch.atan2(ab[:, 1], ab[:, 0]))
    inside = torch.hypot(ab[:, 0], ab[:, 1]) <= 0.7 * cmax
    assert inside.sum() > 1000
    assert not changed[inside].any()
    # gray colours are untouched
    gray = torch.zeros_like(ab)
    assert torch.equal(color.gamut_map_chroma(L, gray), gray)


def test_gamut_map_chroma_goes_to_zero_at_black_and_white():
    L = torch.tensor([0.0, 0.1, 99.95, 100.0], dtype=torch.float64).view(1, 1, 1, 4)
    ab = torch.full((1, 2, 1, 4), 60.0, dtype=torch.float64)
    out = color.gamut_map_chroma(L, ab)
    assert torch.hypot(out[:, 0], out[:, 1]).max() < 1.0


def test_max_chroma_known_primaries():
    # sRGB red: L 53.24, a 80.09, b 67.20 is on the gamut boundary
    h = math.atan2(67.20, 80.09)
    assert abs(float(color.max_chroma(torch.tensor(53.24), torch.tensor(h))) - math.hypot(80.09, 67.20)) < 0.3


def test_gamut_map_first_exit_in_yellow_fold():
    # this ray leaves sRGB near C=34 and re-enters near C=88: the mapping takes the first exit
    L = torch.tensor(96.67, dtype=torch.float64)
    h = math.radians(102.84)
    cmax = float(color.max_chroma(L, torch.tensor(h, dtype=torch.float64)))
    assert 33 < cmax < 35
    ab = torch.tensor([60 * math.cos(h), 60 * math.sin(h)], dtype=torch.float64).view(1, 2, 1, 1)
    out = color.gamut_map_chroma(L.view(1, 1, 1, 1), ab)
    assert float(torch.hypot(out[0, 0], out[0, 1])) <= cmax + 0.05
    assert _max_violation(L.view(1, 1, 1, 1), out) <= color.GAMUT_TOL_HIGH


# -------------------------------------------------------------------------- 8-bit encode/decode
def test_encode_table_is_exact_rounding():
    lin = torch.rand(3, 300, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    ref = torch.floor(color.linear_to_srgb(lin) * 255 + 0.5)
    assert torch.equal(color._encode_rgb8(lin).double(), ref)
    # exactly at and just below every rounding threshold
    codes = torch.arange(255, dtype=torch.float64)
    thr = color.srgb_to_linear((codes + 0.5) / 255)
    assert torch.equal(color._encode_rgb8(thr).long(), codes.long() + 1)
    assert torch.equal(color._encode_rgb8(thr - 1e-12).long(), codes.long())
    # float32: within one code of float64 reference, and almost always equal
    lin32 = lin.float()
    ref32 = torch.floor(color.linear_to_srgb(lin32.double()) * 255 + 0.5)
    diff = (color._encode_rgb8(lin32).double() - ref32).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-4
    # ends
    assert color._encode_rgb8(torch.tensor([0.0, 1.0, -1e-5, 1 + 1e-4])).tolist() == [0, 255, 0, 255]


def test_rgb8_to_lab_matches_float_path_and_skimage():
    rgb8 = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    ours = color.rgb8_to_lab(rgb8, dtype=torch.float64)
    ref = color.srgb_to_lab(rgb8.double() / 255)
    assert torch.allclose(ours, ref, atol=1e-9)
    sk = skcolor.rgb2lab(rgb8.permute(1, 2, 0).numpy())
    # skimage uses the rounded CIE constants 0.008856 / 7.787: differences up to ~2e-4 near them
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), sk, atol=5e-4)
    assert torch.allclose(color.rgb8_to_lab(rgb8), ours.float(), atol=2e-4)
    assert torch.allclose(color.rgb8_to_L(rgb8), ours[:1].float(), atol=2e-5)


def test_lab_to_rgb8_in_gamut_matches_direct_encoding():
    rgb = _rand_rgb((3, 64, 64), seed=8) * 0.8 + 0.1
    lab = color.srgb_to_lab(rgb)
    rgb8 = color.lab_to_rgb8(lab[:1], lab[1:])
    ref = torch.floor(rgb * 255 + 0.5)
    assert (rgb8.double() - ref).abs().max() <= 1
    assert (rgb8.double() != ref).float().mean() < 1e-3


# ----------------------------------------------------------------------------- the dL promise
def _check_promise(d: torch.Tensor) -> None:
    d = d.flatten()
    assert float(d.mean()) <= 0.5
    assert float(torch.quantile(d, 0.99)) <= 1.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_delta_L_random_fields(dtype):
    g = torch.Generator().manual_seed(9)
    L = (torch.rand(2, 1, 256, 256, generator=g) * 100).to(dtype)
    ab = ((torch.rand(2, 2, 256, 256, generator=g) * 2 - 1) * 128).to(dtype)
    d = _dL(L, ab)
    _check_promise(d)
    assert float(d.max()) < 1.0  # measured ~0.25: about one 8-bit step


def test_delta_L_ct_like_with_large_chroma():
    L = _ct_like_L(256, 256)
    yy, xx = torch.meshgrid(torch.linspace(0, 6, 256), torch.linspace(0, 6, 256), indexing="ij")
    hue = xx + 0.5 * yy
    ab = torch.stack([110 * torch.cos(hue), 110 * torch.sin(hue)]).unsqueeze(0)
    _check_promise(_dL(L, ab))
    # low-resolution chroma upsampled to full resolution
    ab_small = ab[..., ::8, ::8].contiguous()
    _check_promise(_dL(L, color.upsample_ab(ab_small, (256, 256))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 2 ** 31 - 1),
       chroma=st.floats(0, 128))
def test_delta_L_property(h, w, seed, chroma):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(1, 1, h, w, generator=g) * 100
    ang = torch.rand(1, 1, h, w, generator=g) * 2 * math.pi
    ab = torch.cat([chroma * torch.cos(ang), chroma * torch.sin(ang)], dim=1)
    d = _dL(L, ab)
    assert float(d.max()) <= 1.5
    assert float(d.mean()) <= 0.5


# ------------------------------------------------------------------------------------ upsample
def test_upsample_ab():
    ab = torch.rand(2, 2, 8, 8)
    assert color.upsample_ab(ab, (8, 8)) is ab
    up = color.upsample_ab(ab, (32, 24))
    assert up.shape == (2, 2, 32, 24)
    ref = torch.nn.functional.interpolate(ab, size=(32, 24), mode="bilinear", align_corners=False)
    assert torch.equal(up, ref)
    const = torch.full((2, 4, 4), 7.0)
    assert torch.allclose(color.upsample_ab(const, (9, 9)), torch.full((2, 9, 9), 7.0))


# ------------------------------------------------------------------ the pipeline's encode and L*
def test_rgb8_to_L_is_the_same_wherever_a_colour_sits():
    """The value table computes L* of its colours as a flat list, the measures of a slice as an image:
    the same colour gets the same float32 L* in both (computed in float64, then rounded)."""
    g = torch.Generator().manual_seed(14)
    rgb = torch.randint(0, 256, (1, 3, 97, 131), dtype=torch.uint8, generator=g)
    img = color.rgb8_to_L(rgb)[0, 0]
    flat = color.rgb8_to_L(rgb.reshape(1, 3, 1, -1).flip(-1).contiguous())[0, 0, 0].flip(0).reshape(97, 131)
    assert torch.equal(img, flat)
    ref = color.rgb8_to_lab(rgb, dtype=torch.float64)[0, 0]
    assert torch.allclose(img.double(), ref, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_delta_L_promise_on_8_bit_output(dtype):
    g = torch.Generator().manual_seed(15)
    L = (torch.rand(2, 1, 256, 256, generator=g) * 100).to(dtype)
    ab = ((torch.rand(2, 2, 256, 256, generator=g) * 2 - 1) * 128).to(dtype)
    d = (color.rgb8_to_L(color.lab_to_rgb8(L, ab)).double() - L.double()).abs()
    _check_promise(d)
    assert float(d.max()) < 1.0
    Lct = _ct_like_L(256, 256).to(dtype)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    hue = 4 * xx - 3 * yy + 2 * torch.sin(5 * yy)
    c = 40 + 90 * (0.5 + 0.5 * torch.sin(6 * xx + 3 * yy))
    ab = torch.stack([c * torch.cos(hue), c * torch.sin(hue)]).unsqueeze(0).to(dtype)
    _check_promise((color.rgb8_to_L(color.lab_to_rgb8(Lct, ab)).double() - Lct.double()).abs())
