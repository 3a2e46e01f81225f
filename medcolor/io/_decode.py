"""Decoding one frame of a DICOM file to its stored values.

Uncompressed little-endian frames are read straight from the file at the offset the scan found
(:attr:`medcolor.types.SliceRef.pixel_offset`) and given pydicom's treatment of the unused high bits;
everything else goes through pydicom: ``pydicom.pixels.pixel_array`` for big endian, deflated and odd
layouts, and the decoder plug-ins one by one for compressed syntaxes (GDCM last, after a check of the
codestream's size: it aborts the process on some corrupt input instead of raising). DCMTK's dcmdjpeg is
the last resort for JPEG data every plug-in refuses.
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid as _uid
from pydicom.dataset import Dataset

from medcolor.errors import MedcolorError
from medcolor.io._dicom import MAX_FRAME_PIXELS, frame_bytes, int_attr, n_frames, one_line, resolved_syntax

#: exceptions that are never a property of the input file: always passed through
_NOT_OURS = (KeyboardInterrupt, SystemExit, GeneratorExit)
_JPEG_FAMILY = {_uid.JPEGBaseline8Bit, _uid.JPEGExtended12Bit, _uid.JPEGLossless, _uid.JPEGLosslessSV1}
_J2K_FAMILY = {_uid.JPEG2000, _uid.JPEG2000Lossless, _uid.HTJ2K, _uid.HTJ2KLossless, _uid.HTJ2KLosslessRPCL}
#: the order in which decoder plug-ins are tried (pydicom's own order today, made explicit): the strict ones
#: first, pydicom's RLE decoder (which returns a damaged frame for some corrupt data) after pylibjpeg-rle,
#: GDCM last; a plug-in not named here goes before GDCM
_PLUGIN_ORDER = ("pylibjpeg", "pyjpegls", "pillow", "pydicom")
#: JPEG start-of-frame markers SOF0..SOF15 (not DHT C4, JPG C8, DAC CC) and JPEG-LS SOF55 (F7)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


class _DecoderTracebackFilter(logging.Filter):
    """pydicom's decoders log every failed plug-in attempt with ``LOGGER.exception`` (a traceback on the
    user's terminal for a merely corrupt frame). The failure reaches the user as one MedcolorError line,
    so these records are dropped unless medcolor runs with debug logging (``--debug``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None or logging.getLogger("medcolor").isEnabledFor(logging.DEBUG)


_DECODER_LOGGER = logging.getLogger("pydicom.pixels.decoders.base")
if not any(isinstance(f, _DecoderTracebackFilter) for f in _DECODER_LOGGER.filters):
    _DECODER_LOGGER.addFilter(_DecoderTracebackFilter())


def decode_frame(path: Path, header_ds: Dataset, frame: int | None, pixel_offset: int | None = None) -> np.ndarray:
    """Stored values of one frame ([rows, cols], the dtype pydicom gives), decoding any supported syntax;
    only the requested frame of a multi-frame file. ``pixel_offset``: where frame 0 starts when the scan
    found the frames uncompressed and little endian (then read by plain file I/O), else None."""
    tsu = _uid.UID(resolved_syntax(header_ds))
    frames = n_frames(header_ds)
    index = frame if frames > 1 else None
    rows, cols = int(header_ds.Rows), int(header_ds.Columns)
    if rows * cols > MAX_FRAME_PIXELS:
        raise MedcolorError(f"image too large ({rows}x{cols} pixels per frame)", where=path)
    if not tsu.is_encapsulated and not tsu.is_deflated:
        need = frame_bytes(header_ds) * frames
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise MedcolorError(f"cannot read file ({one_line(exc)})", where=path) from None
        if need > size:
            raise MedcolorError(f"pixel data truncated (needs {need} bytes, file has {size})", where=path,
                                hint="the file is incomplete; copy or export it again")
    if frame is not None and not 0 <= frame < frames:
        raise MedcolorError(f"frame {frame} out of range (file has {frames})", where=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if pixel_offset is not None:
                arr = _read_native(path, header_ds, pixel_offset, index or 0)
            else:
                arr = _decode_with_pydicom(path, header_ds, tsu, index)
    except (MedcolorError, *_NOT_OURS):
        raise
    except FileNotFoundError:
        raise MedcolorError("file not found", where=path, hint="was it moved or deleted after the scan?") from None
    except BaseException as exc:  # decoder plug-ins raise anything, incl. pyo3 PanicException (BaseException)
        raise MedcolorError(f"cannot decode pixel data ({tsu.name}): {one_line(exc)}", where=path,
                            hint="the pixel data is truncated or corrupt, or needs a decoder plug-in "
                                 "(see medcolor doctor)") from None
    if arr.ndim == 3 and index is None and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (rows, cols):
        raise MedcolorError(f"decoded frame has shape {arr.shape}, header says {rows}x{cols}", where=path,
                            hint="the file is inconsistent; re-export it")
    return arr


def _read_native(path: Path, ds: Dataset, offset: int, k: int) -> np.ndarray:
    """Frame ``k`` of uncompressed little-endian pixel data whose frame 0 starts at ``offset``: the array
    ``pydicom.pixels.pixel_array`` gives (dtype, values), read without parsing the header again."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    allocated = int_attr(ds, "BitsAllocated", path, 16)
    stored = int_attr(ds, "BitsStored", path, allocated)
    pixrep = int_attr(ds, "PixelRepresentation", path, 0)
    dtype = np.dtype(f"<{'ui'[pixrep]}{allocated // 8}")
    count = rows * cols
    arr = np.fromfile(path, dtype=dtype, count=count, offset=offset + k * count * dtype.itemsize)
    if arr.size != count:
        raise MedcolorError(f"pixel data truncated (frame {k} has {arr.size} of {count} pixels)", where=path,
                            hint="the file changed or was cut short after the scan; copy or export it again")
    arr = arr.reshape(rows, cols)
    if stored < allocated:
        # pydicom's correct_unused_bits (on by default for native data): unsigned values lose the unused high
        # bits, signed values are sign-extended from bit BitsStored - 1
        if pixrep == 0:
            np.bitwise_and(arr, arr.dtype.type((1 << stored) - 1), out=arr)
        else:
            shift = allocated - stored
            np.left_shift(arr, shift, out=arr)
            np.right_shift(arr, shift, out=arr)
    return arr


def _decode_with_pydicom(path: Path, ds: Dataset, tsu: _uid.UID, index: int | None) -> np.ndarray:
    if tsu.is_deflated:
        full = pydicom.dcmread(str(path), force=True)
        if not full.file_meta.get("TransferSyntaxUID"):
            full.file_meta.TransferSyntaxUID = tsu
        return pydicom.pixels.pixel_array(full, index=index)
    if not tsu.is_encapsulated:
        return pydicom.pixels.pixel_array(str(path), index=index, transfer_syntax_uid=tsu)
    try:
        return _decode_encapsulated(path, index, tsu, ds)
    except MedcolorError:
        raise
    except Exception:  # every plug-in refused the data (a Rust panic is a BaseException: passed on)
        if tsu not in _JPEG_FAMILY:
            raise
        return _decode_with_dcmdjpeg(path, index)


def _decode_encapsulated(path: Path, index: int | None, tsu: _uid.UID, header_ds: Dataset) -> np.ndarray:
    """Try the decoder plug-ins one by one in :data:`_PLUGIN_ORDER`, GDCM last; before GDCM gets a frame,
    its codestream size is checked against the header."""
    plugins = pydicom.pixels.get_decoder(tsu).available_plugins
    rank = {name: i for i, name in enumerate(_PLUGIN_ORDER)}
    order = sorted(plugins, key=lambda p: (p == "gdcm", rank.get(p, len(rank))))
    errors: list[str] = []
    for name in order:
        if name == "gdcm":
            _check_codestream(path, index, tsu, header_ds)
        try:
            return pydicom.pixels.pixel_array(str(path), index=index, transfer_syntax_uid=tsu, decoding_plugin=name)
        except _NOT_OURS:
            raise
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{name}: {one_line(exc)}")
        except BaseException as exc:  # pyo3 PanicException: the data is corrupt; no lenient second try
            raise RuntimeError(f"{name}: {one_line(exc)}") from None
    raise RuntimeError("; ".join(errors) if errors else "no decoder plug-in is installed for this transfer syntax")


def _decode_with_dcmdjpeg(path: Path, index: int | None) -> np.ndarray:
    """Last resort for JPEG data the Python plug-ins refuse (e.g. 12-bit JPEG Extended): let DCMTK's
    dcmdjpeg decompress a temporary copy (the input file is not touched)."""
    tool = shutil.which("dcmdjpeg")
    if tool is None:
        raise RuntimeError("no plug-in decodes it and dcmdjpeg (DCMTK) is not installed")
    with tempfile.TemporaryDirectory(prefix="medcolor-") as tmp:
        out = Path(tmp) / "decoded.dcm"
        res = subprocess.run([tool, str(path), str(out)], capture_output=True, timeout=120)
        if res.returncode != 0 or not out.exists():
            raise RuntimeError("dcmdjpeg failed: " + res.stderr.decode(errors="replace").strip()[:160])
        return pydicom.pixels.pixel_array(str(out), index=index)


def _check_codestream(path: Path, index: int | None, tsu: _uid.UID, header_ds: Dataset) -> None:
    """Refuse a compressed frame whose codestream size differs from Rows/Columns/SamplesPerPixel:
    GDCM aborts the whole process on such input instead of raising."""
    ds = pydicom.dcmread(str(path), force=True)
    frame = pydicom.encaps.get_frame(ds.PixelData, index or 0, number_of_frames=n_frames(header_ds))
    dims = _codestream_dims(frame, tsu)
    rows, cols = int(header_ds.Rows), int(header_ds.Columns)
    spp = int(header_ds.get("SamplesPerPixel", 1) or 1)
    if dims is not None and (dims[0] not in (0, rows) or dims[1] != cols or dims[2] not in (0, spp)):
        raise MedcolorError(f"compressed frame is {dims[0]}x{dims[1]} with {dims[2]} component(s), the header "
                            f"says {rows}x{cols} with {spp}", where=path, hint="the file is inconsistent; re-export it")


def _codestream_dims(frame: bytes, tsu: _uid.UID) -> tuple[int, int, int] | None:
    """(rows, columns, components) stated by the frame's JPEG 2000 SIZ or JPEG / JPEG-LS SOF marker segment,
    or None. (pydicom reads the SOF segment only in a private helper; see the io notes in the report.)"""
    if tsu in _J2K_FAMILY:
        i = frame.find(b"\xff\x4f\xff\x51")  # SOC + SIZ (also inside a JP2 box)
        if i < 0 or len(frame) < i + 42:
            return None
        x, y, xo, yo = struct.unpack(">4L", frame[i + 8:i + 24])
        (c,) = struct.unpack(">H", frame[i + 40:i + 42])
        return y - yo, x - xo, c
    i = 2 if frame[:2] == b"\xff\xd8" else len(frame)  # after SOI, marker segment by marker segment
    while i + 10 <= len(frame) and frame[i] == 0xFF:
        marker = frame[i + 1]
        if marker in _SOF_MARKERS:
            rows, cols, comps = struct.unpack(">HHB", frame[i + 5:i + 10])
            return rows, cols, comps
        i += 1 if marker == 0xFF else 2 + struct.unpack(">H", frame[i + 2:i + 4])[0]  # fill byte, or a segment
    return None


def read_dicom_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] sRGB of the first frame of a DICOM reference image (colour, or gray repeated)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(path), force=True)
            arr = pydicom.pixels.pixel_array(ds, index=0 if n_frames(ds) > 1 else None)
            pi = str(ds.get("PhotometricInterpretation", "")).upper()
            if pi == "PALETTE COLOR":
                arr = pydicom.pixels.apply_color_lut(arr, ds)
    except _NOT_OURS:
        raise
    except BaseException as exc:  # noqa: BLE001 - decoder plug-ins may raise pyo3 PanicException
        raise MedcolorError(f"cannot read DICOM image ({one_line(exc)})", where=path,
                            hint="use a PNG/JPEG/TIFF reference or a valid colour DICOM") from None
    if arr.ndim == 2:
        if pi == "MONOCHROME1":
            arr = arr.max() - arr
        arr = np.repeat(arr[..., None], 3, axis=2)
    bits = int(ds.get("BitsStored", 8) or 8)
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        if pi == "PALETTE COLOR" or bits > 8:
            a = a / (65535.0 if pi == "PALETTE COLOR" else float((1 << bits) - 1)) * 255.0
        arr = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])
