"""The header of a DICOM file as ``pydicom.dcmread(fp, stop_before_pixels=True)`` returns it, read faster
in the common case: a Part 10 file whose data set is little endian (explicit VR, or implicit VR).

The preamble, the file meta and the data set's top-level elements are walked over one buffer with
``struct``, into the same ``RawDataElement``s pydicom's reader makes (values stay raw: pydicom converts
them when they are used, as ever). An undefined-length sequence is read by pydicom's own
``read_sequence``, except that a :class:`SequenceCache` (one per scan) hands back the sequence already
read from the same bytes in an earlier file: the files of a series repeat most of their sequences
byte for byte (referenced images, code sequences), and reading them was about a third of the header.
Such a sequence object is then shared by those files' headers (nothing in medcolor modifies a source
header), and the file offsets recorded inside it are those of the first file.

Everything else is left to the caller (``read_header_fast`` returns None and the caller uses
``dcmread``): no preamble, big endian, deflated or missing transfer syntax, a file meta pydicom would
re-read as implicit VR, a command set, a VR pydicom does not know, a first element that disagrees with
the transfer syntax's VR encoding, an undefined length on anything but an SQ, an item delimiter at the
top level, an empty data set, a truncated header, or one over ``MAX_HEADER_BYTES``: the cases where
pydicom's own reading has heuristics, warnings or errors this module does not copy. Tested to give the
same header as ``dcmread`` on every DICOM file of the test data.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filereader import read_sequence
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pydicom.values import convert_string

MAX_HEADER_BYTES = 16 * 1024 * 1024
_CHUNK = 32 * 1024
_STOP_TAGS = frozenset((0x7FE00010, 0x7FE00009, 0x7FE00008))   # where stop_before_pixels stops
_KNOWN_VR = {vr.encode(default_encoding): str(vr) for vr in VR}
_LONG_VR = frozenset(vr.encode(default_encoding) for vr in EXPLICIT_VR_LENGTH_32)
_HH = struct.Struct("<HH").unpack_from
_H = struct.Struct("<H").unpack_from
_L = struct.Struct("<L").unpack_from
_ITEM_DELIMITER = 0xFFFEE00D


class SequenceCache:
    """Undefined-length sequences read in one scan, by the bytes they were read from (at most
    ``max_bytes`` each, ``per_tag`` kept per tag and reading context)."""

    def __init__(self, per_tag: int = 4, max_bytes: int = 64 * 1024) -> None:
        self.per_tag = per_tag
        self.max_bytes = max_bytes
        self._seen: dict[tuple, list[tuple[bytes, Sequence]]] = {}

    def candidates(self, key: tuple) -> list[tuple[bytes, Sequence]]:
        return self._seen.get(key, [])

    def add(self, key: tuple, raw: bytes, seq: Sequence) -> None:
        if len(raw) > self.max_bytes:
            return
        kept = self._seen.setdefault(key, [])
        kept.insert(0, (raw, seq))
        del kept[self.per_tag:]


class _Buffer:
    """File bytes from offset ``base``, topped up on demand."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.base = fp.tell()
        self.buf = fp.read(_CHUNK)
        self.eof = len(self.buf) < _CHUNK

    def have(self, pos: int, n: int) -> int:
        """Make ``n`` bytes from buffer position ``pos`` available; their (possibly new) position, or -1
        when the file ends first or the header would grow past MAX_HEADER_BYTES."""
        while pos + n > len(self.buf):
            if self.eof or self.base + pos + n > MAX_HEADER_BYTES:
                return -1
            want = max(_CHUNK, pos + n - len(self.buf))
            self.fp.seek(self.base + len(self.buf))
            more = self.fp.read(want)
            self.eof = len(more) < want
            self.buf = self.buf[pos:] + more
            self.base += pos
            pos = 0
        return pos


def read_header_fast(fp: BinaryIO, sequences: SequenceCache | None = None) -> FileDataset | None:
    """``dcmread(fp, stop_before_pixels=True)`` of the file open as ``fp`` (at offset 0), with ``fp`` left
    at the pixel data element (or the end of the file) as dcmread leaves it; None (``fp`` anywhere) when
    the file is not the plain case, and the caller should use ``dcmread``."""
    b = _Buffer(fp)
    if len(b.buf) < 132 or b.buf[128:132] != b"DICM":
        return None
    preamble = b.buf[:128]
    walked = _walk(b, 132, False, None, meta=True)
    if walked is None or not walked[0]:
        return None
    meta_elements, _, pos = walked
    meta_ds = Dataset(meta_elements, parent_encoding=default_encoding)
    meta_ds.set_original_encoding(False, True, default_encoding)
    file_meta = FileMetaDataset(meta_ds)
    file_meta.set_original_encoding(is_implicit_vr=False, is_little_endian=True,
                                    character_encoding=default_encoding)
    try:
        file_meta[next(iter(file_meta.keys()))]  # pydicom re-reads the meta as implicit VR if this fails
    except NotImplementedError:
        return None
    ts = file_meta.get("TransferSyntaxUID")
    if not ts:
        return None
    ts = UID(str(ts))
    if ts == ImplicitVRLittleEndian:
        implicit = True
    elif ts == ExplicitVRLittleEndian or (ts.is_encapsulated and ts.is_little_endian and not ts.is_deflated):
        implicit = False
    else:
        return None
    walked = _walk(b, pos, implicit, sequences, meta=False)
    if walked is None or not walked[0]:
        return None
    elements, encoding, pos = walked
    dataset = Dataset(elements, parent_encoding=default_encoding)
    dataset.set_original_encoding(implicit, True, encoding)
    ds = FileDataset(fp, dataset, preamble, file_meta, implicit, True)
    ds.set_original_encoding(implicit, True, dataset._character_set)
    fp.seek(b.base + pos)
    return ds


def _walk(b: _Buffer, pos: int, implicit: bool, sequences: SequenceCache | None, *, meta: bool):
    """The elements from buffer position ``pos``: the file meta group (``meta``), or the data set's top level
    up to the pixel data or the end of the file. Returns (tag -> RawDataElement, or DataElement for an
    undefined-length sequence; the character set encodings; the buffer position where reading
    stopped), or None for a case left to dcmread."""
    elements: dict[BaseTag, RawDataElement | DataElement] = {}
    encoding: str | list[str] = default_encoding
    first = True
    buf = b.buf
    while True:
        if pos + 12 > len(buf):  # (12: the longest element header) top the buffer up
            p = b.have(pos, 8)
            if p < 0:
                if b.eof and pos == len(b.buf) and not meta:
                    return elements, encoding, pos   # the file ends after a whole element
                return None
            pos, buf = p, b.buf
        group, elem = _HH(buf, pos)
        tag = group << 16 | elem
        if meta:
            if group != 2:
                return elements, encoding, pos
        elif tag in _STOP_TAGS:
            return elements, encoding, pos
        elif group <= 2 or tag == _ITEM_DELIMITER:
            return None   # a command set, meta elements in the data set, a stray delimiter
        if implicit:
            if first and 0x41 <= buf[pos + 4] <= 0x5A and 0x41 <= buf[pos + 5] <= 0x5A:
                return None   # looks explicit: pydicom would switch to explicit VR, with a warning
            vr = None
            (length,) = _L(buf, pos + 4)
            start = pos + 8
        else:
            code = buf[pos + 4:pos + 6]
            vr = _KNOWN_VR.get(code)
            if vr is None:
                return None
            if code in _LONG_VR:
                if pos + 12 > len(buf):
                    p = b.have(pos, 12)
                    if p < 0:
                        return None
                    pos, buf = p, b.buf
                (length,) = _L(buf, pos + 8)
                start = pos + 12
            else:
                (length,) = _H(buf, pos + 6)
                start = pos + 8
        first = False
        btag = BaseTag(tag)
        if length == 0xFFFFFFFF:
            if vr != "SQ" or meta:
                return None
            got = _sequence(b, start, implicit, encoding, tag, sequences)
            if got is None:
                return None
            seq, value_tell, pos = got
            buf = b.buf
            elements[btag] = DataElement(btag, vr, seq, value_tell, is_undefined_length=True)
            continue
        if start + length > len(buf):
            p = b.have(start, length)
            if p < 0:
                return None   # the value runs past the end of the file
            start, buf = p, b.buf
        value = buf[start:start + length] if length else empty_value_for_VR(vr, raw=True)
        if tag == 0x00080005:
            encoding = convert_encodings(convert_string(value or b"", True))
        elements[btag] = RawDataElement(btag, vr, length, value, b.base + start, implicit, True)
        pos = start + length


def _sequence(b: _Buffer, start: int, implicit: bool, encoding: str | list[str], tag: int,
              sequences: SequenceCache | None) -> tuple[Sequence, int, int] | None:
    """The undefined-length sequence whose value starts at buffer position ``start``: (the sequence, its
    value's file offset, the buffer position after its delimiter). From ``sequences`` when an earlier
    file had the same bytes there, else read by pydicom."""
    key = (tag, implicit, tuple(encoding) if isinstance(encoding, list) else encoding)
    for raw, seq in sequences.candidates(key) if sequences is not None else ():
        p = b.have(start, len(raw))
        if p >= 0 and b.buf[p:p + len(raw)] == raw:
            return seq, b.base + p, p + len(raw)
        if p >= 0:
            start = p
    value_tell = b.base + start
    b.fp.seek(value_tell)
    seq = read_sequence(b.fp, implicit, True, 0xFFFFFFFF, encoding)
    end = b.fp.tell()
    p = b.have(start, end - value_tell)
    if p < 0:
        return None
    if sequences is not None:
        sequences.add(key, b.buf[p:p + end - value_tell], seq)
    return seq, value_tell, p + end - value_tell
