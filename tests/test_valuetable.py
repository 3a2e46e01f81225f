"""The per-series value table (medcolor.valuetable): the same output, byte for byte and figure for figure,
as the general path, on real files; used only where it applies, with a per-slice fallback."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from medcolor import pipeline, valuetable
from medcolor.pipeline import RunOptions, run
from tests.conftest import CT_DIR, MR, XRAY


def _run(src, out: Path, monkeypatch, table: bool, **kw):
    if not table:
        monkeypatch.setattr(pipeline, "_build_table", lambda *a, **k: None)
    try:
        return run([src], RunOptions(output=out, **kw))
    finally:
        monkeypatch.undo()


def _pixels(out: Path) -> list[np.ndarray]:
    return [pydicom.dcmread(p).pixel_array for p in sorted(out.rglob("*.dcm"))]


def _same_run(src, tmp_path: Path, monkeypatch, **kw):
    fast = _run(src, tmp_path / "table", monkeypatch, True, **kw)
    slow = _run(src, tmp_path / "general", monkeypatch, False, **kw)
    assert not fast.failed and not slow.failed
    a, b = _pixels(tmp_path / "table"), _pixels(tmp_path / "general")
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    for sf, ss in zip(fast.series, slow.series):
        assert ss.fast_path == {"value_table": False}
        _same_figures(sf.slices, ss.slices)
    return fast


def _same_figures(a: list[dict], b: list[dict]) -> None:
    """Every per-slice figure of the report is the same: one measure function, fed the same L, colours
    and L* by either path."""
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x == y


@pytest.mark.parametrize("method,window", [("lut", "1500,-600"), ("exemplar", "1500,-600"),
                                           ("exemplar", "lung"), ("lut", "400,40")])
def test_table_path_writes_the_general_paths_bytes_on_ct(tmp_path, monkeypatch, method, window):
    fast = _same_run(CT_DIR, tmp_path, monkeypatch, method=method, window=window)
    fp = fast.series[0].fast_path
    assert fp["value_table"] is True
    assert fp["texture_levels"] == (1 if method == "lut" else 257)


def test_table_path_on_monochrome1_and_reinhard(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for p in sorted(CT_DIR.glob("*.dcm"))[:2]:
        ds = pydicom.dcmread(p)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.save_as(src / p.name)
    fast = _same_run(src, tmp_path, monkeypatch, method="lut", window="400,40")
    assert fast.series[0].fast_path["value_table"]
    fast = _same_run(CT_DIR, tmp_path / "r", monkeypatch, method="exemplar", exemplar_mode="reinhard")
    assert fast.series[0].fast_path["texture_levels"] == 1


def test_table_path_on_an_xray_with_a_percentile_window(tmp_path, monkeypatch):
    fast = _same_run(XRAY, tmp_path, monkeypatch, method="exemplar")
    assert fast.series[0].fast_path["value_table"] is True


def test_non_integer_values_take_the_general_path(tmp_path, monkeypatch):
    """The MR sample has RescaleSlope 3.77: its values are not integers, so no table."""
    fast = _same_run(MR, tmp_path, monkeypatch, method="lut")
    assert fast.series[0].fast_path == {"value_table": False}


def test_a_slice_the_table_does_not_cover_falls_back_alone(tmp_path, monkeypatch):
    """One slice of the series gets a fractional rescale: the table (built from a sample without it,
    as slice 1 of 6 is not sampled with --sample-slices 2) refuses it and that slice takes the general path."""
    src = tmp_path / "in"
    shutil.copytree(CT_DIR, src)
    odd = sorted(src.glob("*.dcm"))[1]
    ds = pydicom.dcmread(odd)
    ds.RescaleIntercept = float(ds.RescaleIntercept) + 0.5
    ds.save_as(odd)
    calls = []
    real = valuetable.ValueTable.apply

    def spy(self, values):
        out = real(self, values)
        calls.append(out is None)
        return out

    monkeypatch.setattr(valuetable.ValueTable, "apply", spy)
    fast = run([src], RunOptions(output=tmp_path / "table", method="exemplar", window="lung", sample_slices=2))
    monkeypatch.undo()
    assert fast.series[0].fast_path["value_table"] is True
    assert sorted(calls) == [False] * 5 + [True]
    slow = _run(src, tmp_path / "general", monkeypatch, False, method="exemplar", window="lung", sample_slices=2)
    for x, y in zip(_pixels(tmp_path / "table"), _pixels(tmp_path / "general")):
        np.testing.assert_array_equal(x, y)
    _same_figures(fast.series[0].slices, slow.series[0].slices)


def _lut_chain(window, **kw):
    from medcolor.colorizers.lut import LutColorizer
    from medcolor.types import Series, SeriesContext

    col = LutColorizer()
    col.prepare(SeriesContext(modality="CT", window=window, is_hu=True, n_slices=4, rows=8, columns=8,
                              inverted=False), torch.zeros(1, 1, 8, 8))
    series = Series(kind="dicom", modality="CT", rows=8, columns=8, slices=[], is_hu=True)
    return pipeline._Chain(series, window, False, col, [], **kw)


def _build(chain, sample, n_pixels=10 ** 6):
    return valuetable.build(chain.keys, 1, None, chain.window, sample, n_pixels)


def test_build_refuses_what_it_cannot_or_should_not_tabulate(monkeypatch):
    from medcolor.types import Window

    w = Window(center=40.0, width=400.0, name="", units="HU")
    chain = _lut_chain(w)
    ints = np.array([[-1000.0, 0.0], [40.0, 3000.0]], dtype=np.float32)
    table = _build(chain, ints)
    assert table is not None and table.clamp_lo and table.clamp_hi
    assert table.n_rows == 404 and table.l_tab[0] == 0.0 and table.l_tab[-1] == 100.0
    assert _build(chain, ints + 0.25) is None                                        # not integers
    assert _build(chain, np.array([np.nan], np.float32)) is None
    assert _build(chain, ints, 500) is None                                          # dearer than the slices
    assert _build(chain, np.array([2.0 ** 25], np.float32)) is not None              # a linear ramp: clamped
    srgb = Window(center=127.5, width=256.0, name="srgb", units="srgb")
    assert _build(_lut_chain(srgb), np.array([2.0 ** 25], np.float32)) is None       # beyond float32's integers
    monkeypatch.setattr(valuetable, "MAX_CELLS", 100)
    assert _build(chain, ints) is None                                               # too large
    monkeypatch.undo()
    # not a per-pixel backend: the pipeline builds no table
    monkeypatch.setattr(type(chain.colorizer), "pixel_keys", lambda self: None)
    assert pipeline._build_table(chain, ints, torch.device("cpu")) is None


def test_apply_clamps_beyond_the_ramp_and_refuses_fractions():
    from medcolor.types import Window
    from medcolor.windowing import window_to_l

    w = Window(center=40.0, width=400.0, name="", units="HU")
    chain = _lut_chain(w)
    table = _build(chain, np.zeros((2, 2), np.float32))
    x = np.array([[-3000, -161, 40, 241], [5000, 0, 1, 2]], dtype=np.float32)
    l_in, rgb, l_out = table.apply(x)
    np.testing.assert_array_equal(l_in, window_to_l(x, w))
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8 and l_out.shape == (2, 4)
    L, ab = chain.colour(torch.from_numpy(l_in)[None, None])
    np.testing.assert_array_equal(rgb, chain.encode(L, ab)[0])                      # the general path's bytes
    assert np.abs(l_out - l_in).max() <= 0.3
    x[0, 0] = -np.inf                                                                 # clamped, as -3000
    assert np.array_equal(table.apply(x)[1], rgb)
    x[1, 1] = 0.5
    assert table.apply(x) is None
    x[1, 1] = np.nan
    assert table.apply(x) is None


def test_texture_level_is_whole_levels_zero_where_flat_and_per_slice():
    """One definition of the texture level serves the backend (whole batches) and the table (one slice)."""
    from medcolor.colorizers.base import PixelKeys, local_mean_std, texture_level

    g = torch.Generator().manual_seed(0)
    L = torch.rand(2, 1, 67, 45, generator=g) * 100
    L[:, :, 10:30, 5:20] = 37.25                     # flat: level 0
    keys = PixelKeys(texture_size=5, texture_scale=256 / 30.0, texture_levels=257)
    level = texture_level(L, keys)
    assert torch.all(level[:, :, 12:28, 7:18] == 0) and level.max() > 100
    assert level.min() >= 0 and level.max() <= 256 and torch.equal(level, level.round())
    assert torch.equal(texture_level(L[1:], keys), level[1:])
    # the CPU arithmetic is local_mean_std's, value for value
    _, std = local_mean_std(L, 5)
    assert torch.equal(level, (std * keys.texture_scale).round_().clamp_(0.0, 256.0))
