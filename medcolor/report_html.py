"""``report.html``: one self-contained page beside ``report.json`` (for ``run`` and ``batch``).

Per series: before/after thumbnails of a few slices, a colour bar of the mapping (L -> colour, the mean
a*/b* of the output per L* bin), |ΔL| and colourfulness, method and parameters, failures; then every
input file that was skipped or failed. Images are inline base64 PNG; no script, no external resource
(a Content-Security-Policy forbids both). Every string goes through :func:`html.escape` - strings
taken from DICOM (SeriesDescription, PatientName with ``--report-phi``, reasons that quote a path) may
hold markup. The page is built from the report dictionary (already free of patient data unless
``--report-phi``) and the written outputs; nothing is read from the sources.

Thumbnails are read back from the outputs: "after" is the coloured output, "before" its L* rendered
as sRGB gray - by construction the windowed source (the output keeps the source's L; |ΔL| says how
closely).
"""
from __future__ import annotations

import base64
import html
import io
import logging
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

log = logging.getLogger("medcolor")

HTML_NAME = "report.html"
THUMB_SIZE = 128
THUMB_SLICES = 3
L_BINS = 50

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 6px}
.meta{color:#555;font-size:13px;margin-bottom:16px}
.series{background:#fff;border:1px solid #ddd;border-radius:8px;padding:14px;margin:0 0 16px}
.failed{border-color:#c33}.status{font-weight:600}.st-done{color:#1a7f37}.st-failed{color:#c33}
.st-partial,.st-skipped{color:#b35900}
.thumbs{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.pair{display:flex;gap:2px;background:#000;padding:2px;border-radius:4px}
.pair img{width:128px;height:auto;image-rendering:auto;display:block}
.bar img{width:384px;height:24px;display:block;border:1px solid #999}
.barlabels{display:flex;justify-content:space-between;width:384px;font-size:11px;color:#555}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f0f0f0}.err{color:#c33}.warn{color:#b35900}
.kv td:first-child{color:#555;white-space:nowrap}code{font-size:12px}
.side{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.tissue{display:flex;flex-wrap:wrap;gap:18px;margin:8px 0;align-items:flex-start}
.tissue h3{font-size:14px;margin:0 0 4px}.tissue p{font-size:13px}
.popmap{width:192px;height:auto;image-rendering:pixelated;border:1px solid #999}
.sw{display:inline-block;width:22px;height:14px;border:1px solid #888;vertical-align:middle}
"""


def esc(value: Any) -> str:
    """Any value as escaped HTML text (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any, spec: str = ".3f") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec) if math.isfinite(value) else str(value)
    return esc(value) if value not in (None, "") else "-"


# --------------------------------------------------------------------------- images


def _png_b64(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _downscale(rgb: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return rgb
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return np.asarray(img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR))


def _l_to_gray_rgb(L: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) as 8-bit sRGB gray of that lightness."""
    y = np.where(L > 8.0, ((L + 16.0) / 116.0) ** 3, L / 903.2962963)
    s = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(np.clip(y, 0, None), 1 / 2.4) - 0.055)
    g = np.clip(np.round(s * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def _read_output_frames(out_dir: Path, outputs: list[str], k: int) -> list[np.ndarray]:
    """Up to ``k`` evenly spaced RGB slices (uint8 [H, W, 3]) read back from a series' outputs."""
    dicoms = [o for o in outputs if o.lower().endswith(".dcm")]
    images = [o for o in outputs if o.lower().endswith((".png", ".tif", ".tiff"))]
    frames: list[np.ndarray] = []
    try:
        if dicoms:
            import pydicom

            if len(dicoms) == 1:  # multi-frame (or a single slice)
                arr = pydicom.dcmread(out_dir / dicoms[0]).pixel_array
                arr = arr if arr.ndim == 4 else arr[None]
                idx = np.unique(np.linspace(0, len(arr) - 1, min(k, len(arr))).round().astype(int))
                frames = [np.asarray(arr[i]) for i in idx]
            else:
                idx = np.unique(np.linspace(0, len(dicoms) - 1, min(k, len(dicoms))).round().astype(int))
                frames = [pydicom.dcmread(out_dir / dicoms[i]).pixel_array for i in idx]
        elif images:
            from PIL import Image

            idx = np.unique(np.linspace(0, len(images) - 1, min(k, len(images))).round().astype(int))
            frames = [np.asarray(Image.open(out_dir / images[i]).convert("RGB")) for i in idx]
    except Exception as exc:  # noqa: BLE001 - a report must not fail a run
        log.warning("report.html: could not read back outputs for thumbnails (%s)", type(exc).__name__)
        return []
    return [f.astype(np.uint8) for f in frames if f.ndim == 3 and f.shape[-1] == 3]


def series_images(out_dir: Path, outputs: list[str], k: int = THUMB_SLICES,
                  size: int = THUMB_SIZE) -> tuple[list[tuple[str, str]], str | None, tuple[float, float] | None]:
    """(before, after) base64 PNG thumbnails of up to ``k`` slices, the colour bar (base64 PNG of
    L 0..100 left to right coloured with the output's mean a*/b* per L* bin) and the L* range that
    holds data (None when nothing could be read)."""
    from skimage.color import lab2rgb, rgb2lab

    frames = [_downscale(f, size) for f in _read_output_frames(Path(out_dir), outputs, k)]
    if not frames:
        return [], None, None
    pairs, labs = [], []
    for rgb in frames:
        lab = rgb2lab(rgb)
        labs.append(lab.reshape(-1, 3))
        pairs.append((_png_b64(_l_to_gray_rgb(lab[..., 0])), _png_b64(rgb)))
    lab = np.concatenate(labs)
    bins = np.clip((lab[:, 0] / 100.0 * L_BINS).astype(int), 0, L_BINS - 1)
    count = np.bincount(bins, minlength=L_BINS)
    a = np.bincount(bins, lab[:, 1], minlength=L_BINS)
    b = np.bincount(bins, lab[:, 2], minlength=L_BINS)
    have = count >= 4
    centers = (np.arange(L_BINS) + 0.5) * 100.0 / L_BINS
    xs = np.linspace(0, 100, 256)
    if have.any():
        a_x = np.interp(xs, centers[have], a[have] / count[have])
        b_x = np.interp(xs, centers[have], b[have] / count[have])
    else:
        a_x = b_x = np.zeros_like(xs)
    bar_lab = np.stack([xs, a_x, b_x], axis=-1)[None].repeat(16, axis=0)
    bar = (np.clip(lab2rgb(bar_lab), 0, 1) * 255).round().astype(np.uint8)
    # a strip under the bar: white where the outputs hold that L*, dark where the colour is interpolated
    strip = np.where(np.interp(xs, centers, have.astype(float))[None, :, None] > 0.5, 235, 60)
    bar = np.concatenate([bar, np.broadcast_to(strip, (4, 256, 3)).astype(np.uint8)], axis=0)
    used = centers[have]
    l_range = (float(used.min() - 50 / L_BINS), float(used.max() + 50 / L_BINS)) if used.size else None
    return pairs, _png_b64(bar), l_range


# --------------------------------------------------------------------------- tissue (exemplar)

_HEX = re.compile(r"^#[0-9a-f]{6}$")
_CODES = {"L": "lean", "F": "fat", "C": "connective", "B": "background"}


def _swatch(hex_: Any) -> str:
    """A small colour box; only a well-formed #rrggbb ever reaches the style attribute."""
    colour = str(hex_) if _HEX.match(str(hex_ or "")) else "#808080"
    return f'<span class="sw" style="background:{esc(colour)}" title="{esc(colour)}"></span>'


def _population_map_png(rows: list[str], colours: dict[str, str]) -> str | None:
    """The reference's population map (one letter a pixel) painted with the populations' mean colours
    (unnamed clusters gray) as a base64 PNG; None when the map is empty or ragged."""
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        return None
    rgb = {code: tuple(int(colours.get(name, "#808080")[i:i + 2], 16) for i in (1, 3, 5))
           for code, name in _CODES.items()}
    arr = np.array([[rgb.get(ch, (128, 128, 128)) for ch in row] for row in rows], dtype=np.uint8)
    return _png_b64(arr)


def _tissue_html(t: dict[str, Any]) -> str:
    """The exemplar's tissue mode: the reference's named populations (map, swatch, share, mean Lab) and the
    Hounsfield class -> population -> colour legend of this series."""
    pops = [p for p in t.get("populations") or [] if isinstance(p, dict)]
    colours = {str(p.get("name")): str(p.get("hex")) for p in pops if _HEX.match(str(p.get("hex") or ""))}
    parts = ['<div class="tissue"><div><h3>reference populations</h3>']
    png = _population_map_png([str(r) for r in t.get("population_map") or []], colours)
    if png:
        parts.append(f'<img class="popmap" alt="reference population map" src="data:image/png;base64,{png}">')
    parts.append("<table><tr><th></th><th>population</th><th>share</th><th>mean L*, a*, b*</th></tr>")
    for p in pops:
        lab = ", ".join(_fmt(v, ".1f") for v in p.get("lab") or [])
        parts.append(f'<tr><td>{_swatch(p.get("hex"))}</td><td>{esc(p.get("name"))}</td>'
                     f'<td>{_fmt(100.0 * float(p.get("share") or 0.0), ".0f")} %</td><td>{lab}</td></tr>')
    parts.append("</table>")
    for w in t.get("reference_warnings") or []:
        parts.append(f'<p class="warn">{esc(w)}</p>')
    parts.append('</div><div><h3>tissue &rarr; colour</h3><table><tr><th>class</th><th>HU</th><th>population</th>'
                 "<th>colour (at L*)</th><th>share of sample</th></tr>")
    for row in t.get("legend") or []:
        lo, hi = (row.get("hu") or [None, None])[:2]
        hu = f'{"" if lo is None else _fmt(lo, ".0f")} .. {"" if hi is None else _fmt(hi, ".0f")}'
        pop = esc(row.get("population"))
        if row.get("mapped_to") not in (None, row.get("population")):
            pop += f' (for {esc(row.get("mapped_to"))})'
        if row.get("chroma_factor") not in (None, 1, 1.0):
            pop += f' &times;{_fmt(row.get("chroma_factor"), "g")} chroma'
        where = "" if row.get("in_window") else " outside the window; shown at"
        parts.append(f'<tr><td>{esc(row.get("class"))}</td><td>{hu}</td><td>{pop}</td>'
                     f'<td>{_swatch(row.get("hex"))} {esc(where)} L* {_fmt(row.get("L"), ".0f")}</td>'
                     f'<td>{_fmt(100.0 * float(row.get("sample_share") or 0.0), ".0f")} %</td></tr>')
    parts.append(f'</table><p>mode {esc(t.get("mode"))}: {esc(t.get("mode_reason"))}</p></div></div>')
    return "".join(parts)


# --------------------------------------------------------------------------- page


def _series_html(out_dir: Path, s: dict[str, Any], with_images: bool) -> str:
    status = str(s.get("status", ""))
    parts = [f'<section class="series{" failed" if status == "failed" else ""}">',
             f'<h2>{esc(s.get("label"))} &middot; {esc(s.get("modality"))} &middot; '
             f'<span class="status st-{esc(status)}">{esc(status)}</span></h2>']
    rows = [("source series", s.get("description") or "-")]
    if s.get("patient"):
        rows.append(("patient", s["patient"]))
    rows += [("slices", f'{s.get("n_slices")} ({s.get("rows")} x {s.get("columns")})'),
             ("window", s.get("window") or "-"), ("method", s.get("method") or "-")]
    params = s.get("parameters") or {}
    if params:
        rows.append(("parameters", "; ".join(f"{k}={v}" for k, v in params.items())))
    if s.get("reference_sha256"):
        rows.append(("reference sha256", s["reference_sha256"]))
    if s.get("model_sha256"):
        rows.append(("model sha256", s["model_sha256"]))
    if s.get("resumed"):
        rows.append(("resumed", "completed in an earlier run with the same parameters"))
    parts.append('<table class="kv">' + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
                 + "</table>")
    sm = s.get("summary") or {}
    if sm:
        within = s.get("delta_l_within_bounds")
        parts.append(
            "<p><table><tr><th>mean |ΔL|</th><th>p99 |ΔL| (max)</th><th>max |ΔL|</th><th>colourfulness</th>"
            "<th>PSNR L (dB)</th><th>SSIM L</th><th>ΔL within bounds</th></tr><tr>"
            f'<td>{_fmt(sm.get("delta_l_mean"))}</td><td>{_fmt(sm.get("delta_l_p99_max"))}</td>'
            f'<td>{_fmt(sm.get("delta_l_max"))}</td><td>{_fmt(sm.get("colourfulness_mean"), ".1f")}</td>'
            f'<td>{_fmt(sm.get("psnr_l_mean"), ".1f")}</td><td>{_fmt(sm.get("ssim_l_mean"), ".4f")}</td>'
            f'<td>{"yes" if within else "<span class=err>no</span>"}</td></tr></table></p>')
    if s.get("error"):
        parts.append(f'<p class="err">failure: {esc(s["error"])}</p>')
    for w in s.get("warnings") or []:
        parts.append(f'<p class="warn">warning: {esc(w)}</p>')
    outputs = [str(o) for o in s.get("outputs") or []]
    pairs, bar, l_range = series_images(out_dir, outputs) if with_images and outputs else ([], None, None)
    row = []
    if pairs:
        row.append('<div class="thumbs">' + "".join(
            f'<div class="pair" title="before (windowed gray) / after (colour)">'
            f'<img alt="before" src="data:image/png;base64,{b}"><img alt="after" src="data:image/png;base64,{a}">'
            "</div>" for b, a in pairs) + "</div>")
    if isinstance(s.get("tissue"), dict) and s["tissue"]:
        row.append(_tissue_html(s["tissue"]))
    if row:
        parts.append('<div class="side">' + "".join(row) + "</div>")
    if bar:
        rng = f" (outputs hold L* {l_range[0]:.0f}..{l_range[1]:.0f})" if l_range else ""
        parts.append(f'<div class="bar"><div>colour mapping: L* &rarr; mean colour of the output{esc(rng)}'
                     f'</div><img alt="colour bar" src="data:image/png;base64,{bar}">'
                     '<div class="barlabels"><span>L* 0</span><span>50</span><span>100</span></div></div>')
    if outputs:
        parts.append(f"<p>outputs: {len(outputs)} file(s) in <code>{esc(str(Path(outputs[0]).parent))}</code></p>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: dict[str, Any], out_dir: Path, title: str = "medcolor report",
                with_images: bool = True) -> str:
    """The page for a report dictionary (``report.json``'s content) whose outputs are in ``out_dir``."""
    counts = report.get("counts") or {}
    opts = report.get("options") or {}
    head = (f"medcolor {esc(report.get('medcolor_version'))} &middot; {esc(report.get('created'))} &middot; "
            f"device {esc(report.get('device'))} &middot; {_fmt(report.get('seconds'), '.1f')} s &middot; "
            f"files: {esc(counts.get('done', 0))} done, {esc(counts.get('skipped', 0))} skipped, "
            f"{esc(counts.get('failed', 0))} failed")
    opt_text = ", ".join(f"{k}={v}" for k, v in opts.items() if v is not None)
    body = [f"<h1>{esc(title)}</h1>", f'<div class="meta">{head}<br>options: {esc(opt_text)}<br>'
            "Colourised images keep the source's luminance; not for primary diagnosis.</div>"]
    for s in report.get("series") or []:
        body.append(_series_html(Path(out_dir), s, with_images))
    files = [f for f in report.get("files") or [] if f.get("status") != "done"]
    if files:
        body.append("<h2>files not coloured</h2><table><tr><th>file</th><th>status</th><th>reason</th></tr>")
        body += [f'<tr><td>{esc(f.get("path"))}</td><td class="{"err" if f.get("status") == "failed" else ""}">'
                 f'{esc(f.get("status"))}</td><td>{esc(f.get("reason"))}</td></tr>' for f in files]
        body.append("</table>")
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html_report(out_dir: Path, report: dict[str, Any], title: str = "medcolor report",
                      name: str = HTML_NAME) -> Path:
    """Write ``report.html`` atomically (temporary file, then rename) into ``out_dir``."""
    out_dir = Path(out_dir)
    text = render_html(report, out_dir, title=title)
    path = out_dir / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def iter_failures(report: dict[str, Any]) -> Iterable[str]:
    for f in report.get("files") or []:
        if f.get("status") == "failed":
            yield f"{f.get('path')}: {f.get('reason')}"
