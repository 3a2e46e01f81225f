"""Finding inputs, sniffing, grouping DICOM into series and sorting slices; ``read_slice``."""
from __future__ import annotations

import contextlib
import gc
import glob
import math
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

import medcolor.io._decode as _decode
import medcolor.io._dicom as _dicom
import medcolor.io._images as _images
import medcolor.io._nifti as _nifti
import medcolor.io._volume as _volume
from medcolor.errors import MedcolorError, SkipInput
from medcolor.types import FileOutcome, Series, SliceRef

_GLOB_CHARS = set("*?[")


@dataclass
class ScanResult:
    """Series found by :func:`scan` and the outcomes of input files that are in none of them
    (status "skipped" or "failed", with a one-line reason)."""

    series: list[Series] = field(default_factory=list)
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def skipped(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "skipped"]


# ---------------------------------------------------------------- inputs

def _walk(folder: Path) -> list[Path]:
    out: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            out.append(Path(root) / name)
    return out


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[FileOutcome]]:
    """Files (in input order; folders walked recursively and sorted; globs expanded, ``**`` allowed),
    without repeats, plus a failed outcome for each input that matches nothing."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[Path] = []
    missing: list[FileOutcome] = []
    seen: set[str] = set()
    real_dirs: dict[str, str] = {}

    def add(p: Path) -> None:
        # realpath(p), with the folder's resolved once: only a file that is itself a link is resolved
        parent = str(p.parent)
        real_dir = real_dirs.get(parent)
        if real_dir is None:
            real_dir = real_dirs[parent] = os.path.realpath(parent)
        key = os.path.realpath(p) if os.path.islink(p) else os.path.join(real_dir, p.name)
        if key not in seen:
            seen.add(key)
            files.append(p)

    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            for f in _walk(p):
                add(f)
        elif p.is_file():
            add(p)
        elif _GLOB_CHARS & set(str(item)):
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                missing.append(FileOutcome(p, "failed", "no file matches this pattern"))
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    for f in _walk(mp):
                        add(f)
                elif mp.is_file():
                    add(mp)
        else:
            missing.append(FileOutcome(p, "failed", "no such file or folder"))
    return files, missing


# ---------------------------------------------------------------- per-file classification

@dataclass
class _Candidate:
    ref: SliceRef
    key: tuple
    order: int                 # index of the file in discovery order
    orientation: tuple[float, ...] | None = None


def _round_iop(iop: tuple[float, ...] | None) -> tuple[float, ...] | None:
    return None if iop is None else tuple(round(v, 3) + 0.0 for v in iop)


def _dicom_candidates(path: Path, kind: str, order: int) -> list[_Candidate]:
    hdr = _dicom.read_header(path, kind)
    ds = hdr.dataset
    frames = _dicom.n_frames(ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    series_uid = str(ds.get("SeriesInstanceUID", "") or "") or None
    photometric = display_photometric(ds)
    sop_uid = str(ds.get("SOPInstanceUID", "") or "") or None
    sop_class = str(ds.get("SOPClassUID", "") or "") or None
    try:
        inst = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        inst = None
    out = []
    for f in range(frames):
        frame = f if frames > 1 else None
        iop = _dicom.frame_orientation(ds, frame)
        ref = SliceRef(path=path, frame=frame, sop_instance_uid=sop_uid, sop_class_uid=sop_class,
                       instance_number=inst, position=_dicom.frame_position(ds, frame), dataset=ds,
                       pixel_offset=hdr.pixel_offset)
        group_uid = series_uid or f"no-series-uid:{path.parent}"
        key = ("dicom", group_uid, _round_iop(iop), rows, cols, photometric)
        out.append(_Candidate(ref, key, order, iop))
    return out


def display_photometric(ds) -> str:  # noqa: ANN001
    """"MONOCHROME1" when the image is displayed with high values dark: PhotometricInterpretation
    MONOCHROME1, or MONOCHROME2 with Presentation LUT Shape INVERSE (PS3.3 C.11.6: INVERSE on
    MONOCHROME1 is the DX module's way of saying MONOCHROME1 again, not a second inversion)."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if photometric == "MONOCHROME2" and shape == "INVERSE":
        return "MONOCHROME1"
    return photometric


def _sort_key_factory(cands: list[_Candidate]):  # noqa: ANN202
    normal = None
    iop = next((c.orientation for c in cands if c.orientation is not None), None)
    if iop is not None:
        n = np.cross(np.asarray(iop[:3]), np.asarray(iop[3:]))
        if np.linalg.norm(n) > 1e-6:
            normal = n / np.linalg.norm(n)
    use_position = normal is not None and all(c.ref.position is not None for c in cands)

    def key(c: _Candidate):  # noqa: ANN202
        inst = c.ref.instance_number if c.ref.instance_number is not None else math.inf
        frame = c.ref.frame if c.ref.frame is not None else -1
        proj = round(float(np.dot(normal, c.ref.position)), 4) if use_position else 0.0
        return (proj, inst, c.ref.path.name, str(c.ref.path), frame)

    return key, use_position, normal


def _common_label(paths: list[Path]) -> str:
    uniq = sorted({str(p) for p in paths})
    if len(uniq) == 1:
        return uniq[0]
    try:
        return os.path.commonpath(uniq)
    except ValueError:
        return uniq[0]


def _build_dicom_series(cands: list[_Candidate], outcomes: list[FileOutcome]) -> Series:
    # duplicates: the first file in discovery order wins
    kept: list[_Candidate] = []
    seen: dict[tuple, Path] = {}
    dup_files: dict[Path, Path] = {}
    for c in sorted(cands, key=lambda c: (c.order, c.ref.frame or 0)):
        k = (c.ref.sop_instance_uid, c.ref.frame)
        if c.ref.sop_instance_uid is not None and k in seen and seen[k] != c.ref.path:
            dup_files[c.ref.path] = seen[k]
            continue
        seen[k] = c.ref.path
        kept.append(c)
    # a file is dropped as a whole if any of its frames duplicated another file's
    kept = [c for c in kept if c.ref.path not in dup_files]
    notes: list[str] = []
    for dup, original in dup_files.items():
        outcomes.append(FileOutcome(dup, "skipped", f"duplicate of {original.name} (same SOPInstanceUID)"))
    if dup_files:
        notes.append(f"dropped {len(dup_files)} duplicate file(s) with the same SOPInstanceUID as another "
                        f"file: {', '.join(sorted(p.name for p in dup_files))}")
    key, use_position, normal = _sort_key_factory(kept)
    kept.sort(key=key)
    if not use_position and len(kept) > 1:
        notes.append("slice positions unknown: slices sorted by InstanceNumber, then file name")
    if use_position and len(kept) >= 3:
        proj = np.array([float(np.dot(normal, c.ref.position)) for c in kept])
        d = np.diff(proj)
        same = int(np.sum(np.abs(d) < 1e-3))
        if same:
            notes.append(f"{same} slice(s) share a position with another slice "
                            "(several echoes, phases or acquisitions in one series?)")
        step = d[np.abs(d) >= 1e-3]
        if step.size >= 2:
            med = float(np.median(step))
            if float(step.max()) > 1.5 * med:
                notes.append(f"uneven slice spacing (largest gap {step.max():.2f} mm, usual "
                                f"{med:.2f} mm): slices may be missing")
    first = kept[0].ref
    ds = first.dataset
    dropped = _dicom.drop_invalid_copied(ds)
    if dropped:
        notes.append(f"invalid {', '.join(dropped)} in the header of {first.path.name}, the series' reference: "
                     "not copied to the output")
    if str(ds.get("PresentationLUTShape", "") or "").strip().upper() == "INVERSE" and \
            str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME2":
        notes.append("Presentation LUT Shape INVERSE: shown inverted, as MONOCHROME1")
    frame = first.frame
    modality = str(ds.get("Modality", "") or "OT").upper()
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16)
    return Series(
        kind="dicom",
        modality=modality,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        slices=[c.ref for c in kept],
        series_instance_uid=str(ds.get("SeriesInstanceUID", "") or "") or None,
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or "") or None,
        is_hu=_dicom.is_hounsfield(ds, frame),
        file_windows=_dicom.file_windows(ds, frame),
        photometric=display_photometric(ds),
        bits=bits,
        pixel_spacing=_dicom.frame_spacing(ds, frame),
        warnings=notes,
        source_label=_common_label([c.ref.path for c in kept]),
    )


def _nifti_series(path: Path) -> Series:
    info = _nifti.nifti_info(path)
    notes = []
    if info["extra_dims"]:
        notes.append(f"volume has shape {info['shape']}: only the first 3-D volume is used")
    descrip = info["descrip"].upper()
    modality = "CT" if descrip.split()[:1] == ["CT"] else "OT"
    refs = [SliceRef(path=path, frame=k, position=info["positions"][k]) for k in range(info["n_slices"])]
    return Series(kind="nifti", modality=modality, rows=info["rows"], columns=info["columns"], slices=refs,
                  bits=info["bits"], pixel_spacing=info["spacing"], warnings=notes, source_label=str(path))


def _image_series(path: Path) -> Series:
    info = _images.image_info(path)
    notes = []
    if info.colour:
        notes.append("colour image: colourised from its CIE L* gray")
    refs = [SliceRef(path=path, frame=(i if info.frames > 1 else None)) for i in range(info.frames)]
    return Series(kind="image", modality="OT", rows=info.rows, columns=info.columns, slices=refs,
                  bits=info.bits, warnings=notes, source_label=str(path))


def _sniff_kind(path: Path) -> tuple[str, str | None]:
    """("dicom", "part10"|"raw") | ("nifti" | "volume" | "image", None) | ("none", reason)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as exc:
        return "error", f"cannot open file ({exc.strerror or exc})"
    if not head:
        return "none", "not DICOM (empty file)"
    kind = _dicom.sniff_dicom(head)
    if kind == "part10":
        return "dicom", kind
    if _nifti.is_nifti(path):
        return "nifti", None
    if _volume.is_volume(path):
        return "volume", None
    if path.suffix.lower() in _images.IMAGE_SUFFIXES:
        return "image", None
    if kind == "raw":
        return "dicom", kind
    return "none", "not DICOM"


def _one_line(text: str) -> str:
    """One printable line: header values quoted in a reason may hold NUL, newlines or escapes."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def scan(inputs: Sequence[str | os.PathLike]) -> ScanResult:
    """Find every input file, sniff it, group DICOM into series and sort their slices.

    Inputs: files, folders (recursive) or glob patterns. Returns the series (DICOM groups in the
    order their first file was found, a split series' larger part first; NIfTI volumes and plain
    images one series each) and an outcome for every file that is in no series.
    """
    with warnings.catch_warnings(), _gc_paused():
        # pydicom warns about every odd value (invalid VR content, ...); the scan reports what matters
        warnings.simplefilter("ignore")
        return _scan(inputs)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block. A scan keeps every header it reads, a few hundred small
    objects per file, and each collection walks them all again: a quarter of the scan's time
    (``benchmarks/stages.py``). The headers hold no reference cycles, so nothing waits for the collector."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """Everything alive at the start of the block (modules, the backend, the scanned headers) is left out of
    the cyclic garbage collector's walks until its end (``gc.freeze``): a run's headers live as long as the
    run, and its full collections would otherwise walk them, and every module, each time. Objects are still
    freed when their last reference goes."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _classify(order: int, path: Path) -> tuple[list[_Candidate], Series | None, FileOutcome | None]:
    """One input file -> its DICOM candidates, or a NIfTI/plain-image series, or the outcome of a file that
    is in no series (skipped or failed with a one-line reason). Never raises for a bad file."""
    kind, extra = _sniff_kind(path)
    try:
        if kind == "dicom":
            return _dicom_candidates(path, extra or "part10", order), None, None
        if kind == "nifti":
            return [], _nifti_series(path), None
        if kind == "volume":
            return [], _volume.volume_series(path), None
        if kind == "image":
            return [], _image_series(path), None
        if kind == "error":
            return [], None, FileOutcome(path, "failed", extra or "cannot open file")
        return [], None, FileOutcome(path, "skipped", extra or "not DICOM")
    except SkipInput as exc:
        return [], None, FileOutcome(path, "skipped", _one_line(exc.what))
    except MedcolorError as exc:
        return [], None, FileOutcome(path, "failed", _one_line(exc.what + (f". {exc.hint}" if exc.hint else "")))
    except Exception as exc:  # noqa: BLE001 - a bad file must not stop the scan
        return [], None, FileOutcome(path, "failed", f"unreadable ({_one_line(str(exc))[:160]})")


def _scan(inputs: Sequence[str | os.PathLike]) -> ScanResult:
    files, outcomes = expand_inputs(inputs)
    groups: dict[tuple, list[_Candidate]] = defaultdict(list)
    others: list[tuple[int, Series]] = []
    for order, path in enumerate(files):
        cands, series, outcome = _classify(order, path)
        for c in cands:
            groups[c.key].append(c)
        if series is not None:
            others.append((order, series))
        if outcome is not None:
            outcomes.append(outcome)

    by_uid: dict[str, list[tuple]] = defaultdict(list)
    for key in groups:
        by_uid[key[1]].append(key)
    built: list[tuple[int, int, Series]] = []
    for uid, keys in by_uid.items():
        parts = [(_build_dicom_series(groups[k], outcomes), k) for k in keys]
        parts.sort(key=lambda p: -len(p[0].slices))
        if len(parts) > 1:
            for s, _k in parts:
                s.warnings.append(f"this DICOM series was split into {len(parts)} parts by orientation, size "
                                  f"or photometric interpretation (e.g. a localizer); this part has "
                                  f"{len(s.slices)} slice(s) of {s.rows}x{s.columns}")
        first_order = min(c.order for k in keys for c in groups[k])
        for rank, (s, _k) in enumerate(parts):
            if s.slices:
                built.append((first_order, rank, s))
    built.extend((order, 0, s) for order, s in others)
    built.sort(key=lambda t: (t[0], t[1]))
    return ScanResult(series=[s for _, _, s in built], outcomes=outcomes)


# ---------------------------------------------------------------- reading pixels

def read_slice(ref: SliceRef, series: Series) -> np.ndarray:
    """float32 [rows, cols] of one slice after the modality LUT (HU for CT).

    DICOM: any supported transfer syntax, only the requested frame of a multi-frame file, per-frame
    rescale for enhanced objects; MONOCHROME1 is *not* inverted here (``series.photometric`` says it).
    NIfTI: the slice oriented as in :mod:`medcolor.io._nifti`. Plain images: gray values (0..255 for
    8-bit, as stored for 16-bit; a colour photo gives the sRGB gray of its CIE L*).
    Raises MedcolorError (one line, naming the file) for truncated or undecodable data.
    """
    path = Path(ref.path)
    if series.kind == "nifti":
        return _nifti.read_nifti_slice(path, ref.frame or 0)
    if series.kind == "image":
        return _images.read_image_gray(path, ref.frame)
    if series.kind == "volume":
        return _volume.read_volume_slice(path, ref.frame or 0)
    ds, offset = ref.dataset, ref.pixel_offset
    if ds is None:  # a SliceRef made elsewhere, without its header
        kind, extra = _sniff_kind(path)
        if kind != "dicom":
            raise MedcolorError("not DICOM", where=path)
        header = _dicom.read_header(path, extra or "part10")
        ds, offset = header.dataset, header.pixel_offset
    arr = _decode.decode_frame(path, ds, ref.frame, offset)
    try:
        return _dicom.apply_modality(arr, ds, ref.frame)
    except Exception as exc:  # noqa: BLE001
        raise MedcolorError(f"cannot apply the modality LUT ({_dicom.one_line(exc)})", where=path,
                            hint="the Modality LUT or rescale attributes are malformed") from None


def reads_by_file_io(series: Series) -> bool:
    """Whether reading a slice of ``series`` is plain file I/O (uncompressed little-endian DICOM whose
    frames the scan located, judged by its first slice), so a reader thread serves as well as a reader
    process, without the process's cost of handing every slice over."""
    first = series.slices[0] if series.slices else None
    return series.kind == "dicom" and first is not None and first.pixel_offset is not None


def read_item(series: Series, index: int) -> dict:
    """Slice ``index`` of ``series`` as a batchable item ``{"index": i, "image": float32 [1, H, W],
    "error": str}``: a slice that cannot be read does not raise, its item carries ``error`` (the one-line
    MedcolorError message) and a zero image, so one bad slice does not stop a DataLoader batch; ``error``
    is ``""`` for good slices. Other exceptions (bugs) propagate."""
    try:
        image = read_slice(series.slices[index], series)[None]
        error = ""
    except MedcolorError as exc:
        image = np.zeros((1, series.rows, series.columns), dtype=np.float32)
        error = str(exc)
    return {"index": index, "image": image, "error": error}


class SliceItems:
    """``read_item`` of every slice of a series as a map-style dataset (``len`` and ``[i]``) for
    ``torch.utils.data.DataLoader``; the MONAI flavour with transforms is ``SliceDataset``."""

    def __init__(self, series: Series) -> None:
        self.series = series

    def __len__(self) -> int:
        return len(self.series.slices)

    def __getitem__(self, index: int) -> dict:
        return read_item(self.series, int(index))


def read_image_rgb(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """uint8 [H,W,3] sRGB and the sha256 hex of the file bytes, for exemplar reference photos.

    PNG/JPEG/TIFF (alpha dropped, EXIF orientation applied, 16-bit reduced to 8), or a colour DICOM
    (first frame; YBR converted to RGB, PALETTE COLOR expanded). MedcolorError for unreadable files.
    """
    p = Path(path)
    if not p.is_file():
        raise MedcolorError("no such file", where=p, hint="check the reference image path")
    digest = _images.sha256_file(p)
    kind, _extra = _sniff_kind(p)
    if kind == "dicom":
        return _decode.read_dicom_rgb(p), digest
    try:
        return _images.read_rgb_plain(p), digest
    except MedcolorError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MedcolorError(f"cannot read image ({_dicom.one_line(exc)})", where=p) from None
