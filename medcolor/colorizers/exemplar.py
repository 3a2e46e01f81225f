"""``exemplar`` backend: chroma from a reference photo (e.g. raw meat), deterministic and consistent over a
whole series. Modes (``mode`` option, ``--exemplar-mode``):

* ``auto`` (default): ``tissue`` for a series in Hounsfield units (CT with a linear HU window), ``welsh``
  for everything else (MR, X-ray, NIfTI without HU, photos); the report says which ran and why.
* ``tissue``: colour follows the CT's Hounsfield classes. The photo is split into named populations
  (lean, fat, connective, background: :mod:`medcolor.colorizers.populations`); each Hounsfield class
  (air, lung, fat, water, muscle, contrast, bone: :mod:`medcolor.colorizers.hounsfield`) takes the
  population an anatomical map gives it (muscle -> lean, fat -> fat, bone -> connective, ...;
  ``--tissue-map FILE`` overrides it), with Welsh matching inside the class
  (:mod:`medcolor.colorizers.tissue`), blended across soft class borders. In CT, fat is darker than
  muscle; in a photo of meat it is lighter: keyed on lightness alone (``welsh``) fat would take the
  lean's red.
* ``gram``: ``tissue``, then refined by neural style transfer from the photo (VGG-19 Gram matrices, a*,
  b* only) on a few sample slices and distilled back into the same table (:mod:`medcolor.colorizers.gram`).
* ``welsh``: Welsh et al. (2002): chroma keyed on luminance and 5×5 texture over the whole photo
  (:mod:`medcolor.colorizers.welsh`).
* ``reinhard``: Reinhard et al. (2001) global colour transfer in Lab: ab_out = (ab_t - μ_t) σ_r/σ_t + μ_r.
  A grayscale target has ab_t = 0 and σ_t = 0, so the output is the reference's mean a/b on every
  pixel — a flat tint (a known trap); kept as the simple global alternative, with a warning.

``tissue`` and ``gram`` asked for on a series that is not in Hounsfield units fall back to ``welsh`` with a
warning in the report (a batch may mix CT with MR or X-ray: the other series are still coloured).

Every mode but ``reinhard`` is one (L, texture level) -> ab table per series, built in ``prepare``; the
chroma at a pixel depends only on its L and the texture level of its 5×5 neighbourhood (``pixel_keys``),
so the pipeline tabulates it once per series (integer HU × texture level) and every slice shares it.
In ``tissue`` and ``gram`` the HU value, hence the class, is a function of L inside the window's ramp
(``hounsfield.hu_from_l``); outside it L is 0 or 100, where no chroma survives the gamut map.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medcolor.color import gamut_map_chroma, lab_to_rgb8, srgb_to_lab
from medcolor.colorizers import welsh
from medcolor.colorizers.base import Colorizer, PixelKeys, check_L, local_mean_std, texture_level
from medcolor.colorizers.hounsfield import DEFAULT_MAP, describe_map, parse_tissue_map
from medcolor.errors import MedcolorError
from medcolor.types import SeriesContext

__all__ = ["ExemplarColorizer", "MODES", "read_exemplar_files"]

MODES = ("auto", "welsh", "reinhard", "tissue", "gram")
REINHARD_WARNING = ("exemplar mode 'reinhard' is a global tint: a grayscale target has no chroma "
                    "spread, so every pixel gets the reference's mean a/b (Reinhard et al. 2001); use "
                    "mode 'welsh' or 'tissue' for colour that follows the image")


def _hu_ready(ctx: SeriesContext) -> bool:
    """A series whose L can be turned back into Hounsfield units: HU values under a linear window."""
    return bool(ctx.is_hu) and ctx.window.units == "HU" and ctx.window.width > 1.0


class ExemplarColorizer(Colorizer):
    """Chroma from a reference photo (see the module docstring).

    Options: ``reference_rgb`` uint8 [H,W,3] sRGB (required), ``reference_sha256`` hex string of the
    reference file (recorded in provenance; when missing, the sha256 of the pixel bytes is used and
    the parameters say so), ``mode`` (``MODES``, default "auto"), ``max_reference_pixels`` (default
    262144; larger references are shrunk), ``tissue_map`` (class -> population overrides, as
    :func:`medcolor.colorizers.hounsfield.parse_tissue_map` takes them) and ``tissue_map_label`` (where it
    came from), ``vgg19_state`` (a torchvision VGG-19 state dict, gram mode), ``vgg19_label`` (its file
    name) and ``vgg19_sha256``, ``gram_steps``, ``gram_size``, ``gram_slices`` (see ``gram``).
    """

    name = "exemplar"
    summary = ("chroma from a reference photo: by Hounsfield class and tissue population on CT (tissue), "
               "by luminance and 5x5 texture elsewhere (Welsh et al. 2002)")
    option_names = ("reference_rgb", "reference_sha256", "mode", "max_reference_pixels", "tissue_map",
                    "tissue_map_label", "vgg19_state", "vgg19_label", "vgg19_sha256", "gram_steps", "gram_size",
                    "gram_slices")

    def __init__(self, device: torch.device | str = "cpu", **options: Any) -> None:
        super().__init__(device, **options)
        mode = (options.get("mode") or "auto").strip().lower()
        if mode not in MODES:
            raise MedcolorError(f"unknown exemplar mode {mode!r}", where="--exemplar-mode",
                                hint=f"use one of {', '.join(MODES)}")
        self.mode = mode
        self._check_mode_options(options)
        rgb = options.get("reference_rgb")
        if rgb is None:
            raise MedcolorError("the exemplar backend needs a reference colour photo", where="--ref",
                                hint="pass --ref photo.jpg (e.g. raw meat)")
        rgb = self._check_reference(np.asarray(rgb), int(options.get("max_reference_pixels") or 262144))
        sha = options.get("reference_sha256")
        self._sha_from_pixels = not sha
        self.reference_sha256: str = sha or hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()
        ref = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).to(self.device).permute(2, 0, 1)[None]
        self._ref_rgb01 = ref.float() / 255.0                  # [1,3,h,w]
        lab = srgb_to_lab(self._ref_rgb01)                     # [1,3,h,w] float32
        self._ref_lab = lab[0]
        self._ref_L = lab[:, :1]                               # [1,1,h,w]
        self._ref_ab = lab[0, 1:].reshape(2, -1)               # [2, n]
        self._ref_mean_ab = self._ref_ab.mean(dim=1)           # [2]
        self.reference_mean_chroma = float(self._ref_ab.norm(dim=0).mean())
        self.tissue_map = parse_tissue_map(options.get("tissue_map") or {}, where=self._map_where())
        self._gram_net = None
        if mode == "gram":
            from medcolor.colorizers.gram import vgg19

            name, sha = options.get("vgg19_label") or "", options.get("vgg19_sha256") or ""
            state = options.get("vgg19_state")
            label = "" if state is None else f"file {name} sha256 {sha[:16]}" if sha else f"file {name}"
            self._gram_net = vgg19(state, where=f"--vgg19-weights {name}".strip(), label=label)
        self._populations = None                               # split on first use (tissue/gram)
        self._base_warnings = self._reference_warnings()
        self.warnings = list(self._base_warnings)
        self._table: torch.Tensor | None = None                # [1, 2, N_S, n_L]
        self._s_max: float = 1.0
        self._prepared = False
        self.active_mode = mode                                # the mode that ran on the last series
        self.mode_reason = "asked for" if mode != "auto" else ""
        self._series_info: dict[str, Any] = {}

    def _map_where(self) -> str:
        label = self.options.get("tissue_map_label")
        return f"--tissue-map {label}" if label else "--tissue-map"

    def _check_mode_options(self, options: dict[str, Any]) -> None:
        if options.get("tissue_map") is not None and self.mode in ("welsh", "reinhard"):
            raise MedcolorError(f"a tissue map is used by the tissue and gram modes, not {self.mode}",
                                where="--tissue-map", hint="drop --tissue-map or use --exemplar-mode auto or tissue")
        if options.get("vgg19_state") is not None and self.mode != "gram":
            raise MedcolorError(f"VGG-19 weights are used by the gram mode only, not {self.mode}",
                                where="--vgg19-weights", hint="drop --vgg19-weights or use --exemplar-mode gram")

    def _reference_warnings(self) -> list[str]:
        out: list[str] = []
        if self.reference_mean_chroma < 3.0:
            out.append("exemplar: the reference has almost no colour "
                       f"(mean chroma {self.reference_mean_chroma:.1f}); the output will be nearly gray")
        if float(self._ref_L.std(correction=0)) < 2.0:
            out.append("exemplar: the reference has almost no luminance variation; "
                       "colour cannot follow the target's luminance")
        if self.mode == "reinhard":
            out.append(REINHARD_WARNING)
        return out

    @staticmethod
    def _check_reference(rgb: np.ndarray, max_pixels: int) -> np.ndarray:
        if rgb.ndim == 3 and rgb.shape[2] == 4:
            rgb = rgb[..., :3]
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
            raise MedcolorError(f"the reference must be an RGB image [H,W,3], got shape {rgb.shape}",
                                where="--ref", hint="use a colour photo (JPEG/PNG)")
        if rgb.dtype != np.uint8:
            raise MedcolorError(f"the reference must be 8-bit RGB, got {rgb.dtype}", where="--ref",
                                hint="use an 8-bit colour photo (JPEG/PNG)")
        h, w = rgb.shape[:2]
        if h * w > max_pixels:
            import cv2

            scale = (max_pixels / (h * w)) ** 0.5
            size = (max(1, int(w * scale)), max(1, int(h * scale)))
            rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
        return rgb

    @property
    def populations(self):
        """The reference's named populations (:class:`~medcolor.colorizers.populations.ReferencePopulations`)."""
        if self._populations is None:
            from medcolor.colorizers.populations import split_reference

            self._populations = split_reference(self._ref_lab)
        return self._populations

    # ------------------------------------------------------------------ series state
    def _choose_mode(self, ctx: SeriesContext) -> tuple[str, str]:
        if self.mode in ("welsh", "reinhard"):
            return self.mode, "asked for"
        if _hu_ready(ctx):
            return ("tissue", "auto: the series is in Hounsfield units") if self.mode == "auto" \
                else (self.mode, "asked for")
        why = (f"the series is not in Hounsfield units ({ctx.modality}, window {ctx.window.describe()}), so its "
               "lightness says nothing about tissue class")
        if self.mode == "auto":
            return "welsh", f"auto: {why}; luminance and texture"
        self.warnings.append(f"exemplar mode {self.mode} needs a CT in Hounsfield units: {why}; welsh ran instead")
        return "welsh", f"{self.mode} asked for, but {why}"

    def prepare(self, ctx: SeriesContext, sample_L: torch.Tensor) -> None:
        """Build the series' (L, texture) -> ab table in the mode that fits the series; every slice of the
        series then shares it."""
        self.warnings = list(self._base_warnings)
        self.active_mode, self.mode_reason = self._choose_mode(ctx)
        self._series_info = {}
        with torch.no_grad():
            S = check_L(sample_L, self.device)
            if self.active_mode == "reinhard":
                self._series_info = {"target_mean_L": float(S.mean()), "target_std_L": float(S.std(correction=0))}
            else:
                L_t, s_t = self._series_stats(S)
                if self.active_mode == "welsh":
                    self._build_welsh(L_t, s_t)
                else:
                    self._build_tissue(S, L_t, s_t, ctx)
        self._prepared = True

    def _series_stats(self, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample's informative pixels (L strictly inside 0..100) and their 5×5 local std; sets s_max (the
        99th percentile of that std, at least 1)."""
        _, s_t = local_mean_std(S, welsh.NEIGHBOURHOOD)
        Lt, st = S.flatten(), s_t.flatten()
        informative = (Lt > 0.5) & (Lt < 99.5)
        if int(informative.sum()) < 16:   # everything clipped (or a constant image): use all pixels
            informative = torch.ones_like(Lt, dtype=torch.bool)
            self.warnings.append("exemplar: the series sample is almost all outside the window; "
                                 "the luminance remap uses clipped pixels")
        Lt, st = Lt[informative], st[informative]
        if Lt.numel() > 4_000_000:        # deterministic thinning of very large samples
            step = int(np.ceil(Lt.numel() / 4_000_000))
            Lt, st = Lt[::step], st[::step]
        q_s = welsh.quantiles(st)
        self._s_max = max(float(q_s[int(0.99 * (welsh.N_QUANTILES - 1))]), 1.0)
        return Lt, st

    def _build_welsh(self, Lt: torch.Tensor, st: torch.Tensor) -> None:
        """Whole-photo Welsh table: the reference L remapped onto the series', its texture measured on the
        remapped image and rank-matched onto the series' texture."""
        ref_L = welsh.match_quantiles(self._ref_L.flatten(), welsh.quantiles(Lt)).view_as(self._ref_L)
        _, ref_s = local_mean_std(ref_L, welsh.NEIGHBOURHOOD)
        ref_s = welsh.match_quantiles(ref_s.flatten(), welsh.quantiles(st))
        table = welsh.splat_table(ref_L.flatten(), ref_s, self._ref_ab, self._s_max)
        self._table = table[None].to(self.device, torch.float32).contiguous()
        self._series_info = {"s_max": self._s_max}

    def _build_tissue(self, S: torch.Tensor, Lt: torch.Tensor, st: torch.Tensor, ctx: SeriesContext) -> None:
        from medcolor.colorizers.populations import NAMES
        from medcolor.colorizers.tissue import build_tissue_tables, legend

        pops = self.populations
        self.warnings.extend(f"exemplar: {w}" for w in pops.warnings)
        _, ref_s = local_mean_std(self._ref_L, welsh.NEIGHBOURHOOD)
        tables = build_tissue_tables(pops, self._ref_L.flatten(), ref_s.flatten(), self._ref_ab, self.tissue_map,
                                     Lt, st, self._s_max, ctx.window, ctx.inverted)
        self.warnings.extend(f"exemplar: {w}" for w in tables.warnings)
        table = tables.table
        gram_info: dict[str, Any] = {}
        if self.active_mode == "gram":
            from medcolor.colorizers import gram

            labels = torch.from_numpy(pops.labels.astype(np.int64))
            index = {name: i for i, name in enumerate(NAMES)}
            table, gram_info = gram.refine(
                table, welsh.texture_keys(self._s_max), S, self._ref_rgb01, labels,
                [index.get(c.population) for c in tables.classes], self._gram_net, ctx.window, ctx.inverted,
                steps=int(self.options.get("gram_steps") or gram.GRAM_STEPS),
                size=int(self.options.get("gram_size") or gram.GRAM_SIZE),
                n_slices=int(self.options.get("gram_slices") or gram.GRAM_SLICES))
            tables.table = table
        self._table = table.to(self.device, torch.float32).contiguous()
        self._series_info = {"s_max": self._s_max, "gram": gram_info,
                             "legend": legend(tables, ctx.window, ctx.inverted, _encode)}

    # ------------------------------------------------------------------ per batch
    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        """``L`` [B,1,H,W] (0..100) -> ab [B,2,H,W] float32 on ``self.device`` (full resolution)."""
        if not self._prepared:
            raise RuntimeError("ExemplarColorizer.colorize() called before prepare()")
        L = check_L(L, self.device)
        B, _, H, W = L.shape
        if self.active_mode == "reinhard":
            return self._ref_mean_ab.view(1, 2, 1, 1).expand(B, 2, H, W).clone()
        return welsh.lookup(self._table, L, texture_level(L, welsh.texture_keys(self._s_max)))

    def pixel_keys(self) -> PixelKeys | None:
        if not self._prepared:
            return None
        return PixelKeys() if self.active_mode == "reinhard" else welsh.texture_keys(self._s_max)

    def colorize_keys(self, L: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        if self.active_mode == "reinhard" or level is None:
            return super().colorize_keys(L, level)
        return welsh.lookup(self._table, check_L(L, self.device), check_L(level, self.device))

    # ------------------------------------------------------------------ provenance
    def provenance(self) -> dict[str, Any]:
        mode = self.active_mode
        if mode == "reinhard":
            params: dict[str, Any] = {"mode": "reinhard", "transfer": "global tint",
                                      "luminance_remap": "mean/std (L kept)",
                                      "mean_ab": f"{float(self._ref_mean_ab[0]):.1f},"
                                                 f"{float(self._ref_mean_ab[1]):.1f}"}
        else:
            params = {"mode": mode, "neighbourhood": welsh.NEIGHBOURHOOD, "luminance_remap": "quantile",
                      "texture_remap": "quantile", "table_bins": f"{self._table_width()}x{welsh.N_S}",
                      "texture_levels": welsh.TEXTURE_SUBSTEPS * (welsh.N_S - 1) + 1}
            if self._prepared:
                params["std_max"] = round(self._s_max, 2)
        if self.mode_reason:
            params["mode_reason"] = self.mode_reason
        out: dict[str, Any] = {"method": f"exemplar ({mode})", "parameters": params,
                               "reference_sha256": self.reference_sha256, "model_sha256": None}
        if mode in ("tissue", "gram"):
            params["populations"] = ", ".join(f"{p['name']} {100 * p['share']:.0f}%"
                                              for p in self.populations.describe())
            source = "default" if self.tissue_map == DEFAULT_MAP else self.options.get("tissue_map_label") or "custom"
            params["tissue_map"] = f"{source} {describe_map(self.tissue_map)}"
            if mode == "gram":
                params["vgg19"] = self._gram_net.source
                params.update({f"gram_{k}": v for k, v in self._series_info.get("gram", {}).items()})
            out["tissue"] = self._tissue_report()
        if self._sha_from_pixels:
            params["reference_hash"] = "pixels"
        return out

    def _table_width(self) -> int:
        return int(self._table.shape[-1]) if self._table is not None else welsh.N_L

    def _tissue_report(self) -> dict[str, Any]:
        """What report.json/report.html show: the photo's populations (with a swatch colour), a small map of
        which pixel is which, and the class -> population -> colour legend of this series."""
        pops = self.populations
        populations = []
        for p in pops.describe():
            hex_, _ = _encode(p["lab"][0], torch.tensor(p["lab"][1:]))
            populations.append({**p, "hex": hex_})
        return {"mode": self.active_mode, "mode_reason": self.mode_reason, "populations": populations,
                "population_map": pops.label_map(), "legend": self._series_info.get("legend", []),
                "reference_warnings": list(pops.warnings)}


def read_exemplar_files(tissue_map: str | Path | None, vgg19_weights: str | Path | None) -> dict[str, Any]:
    """The backend options that come from ``--tissue-map`` and ``--vgg19-weights`` files, read and checked
    by the caller (the pipeline, before any work): the backend itself is given data, never a path."""
    out: dict[str, Any] = {}
    if tissue_map is not None:
        from medcolor.colorizers.hounsfield import read_tissue_map

        out.update(tissue_map=read_tissue_map(tissue_map), tissue_map_label=Path(tissue_map).name)
    if vgg19_weights is not None:
        from medcolor.nets.backbones import read_state_dict
        from medcolor.io import sha256_file

        path = Path(vgg19_weights)
        out.update(vgg19_state=read_state_dict(path, "--vgg19-weights"), vgg19_label=path.name, vgg19_sha256=sha256_file(path))
    return out


def _encode(L: float, ab: torch.Tensor) -> tuple[str, tuple[float, float, float]]:
    """One colour (L, ab [2]) -> ("#rrggbb", (L, a, b) after the output's own chroma-only gamut map)."""
    L_t = torch.full((1, 1, 1, 1), float(L))
    ab = gamut_map_chroma(L_t, ab.detach().float().cpu().view(1, 2, 1, 1))
    rgb = lab_to_rgb8(L_t, ab).view(3).tolist()
    return "#" + "".join(f"{int(v):02x}" for v in rgb), (float(L), float(ab[0, 0]), float(ab[0, 1]))
