"""Writing a colourised series as RGB Secondary Capture DICOM files.

:class:`SecondaryCaptureWriter` owns the files: names from counters, atomic temp-then-rename, the
overwrite rule, the multi-frame frame spool and abort. What each instance contains is
:class:`medcolor.writers.sc_iod.RGBSecondaryCapture` (one template per series, per-instance attributes
set for each file); every file is written by pydicom's own writer functions (``write_file_meta_info`` and
``write_dataset``: what ``pydicom.dcmwrite`` does for this template, the same bytes, without the deep copy of
the file meta it makes for every file). De-identification is
:class:`medcolor.writers.deidentify.Deidentifier`.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import generate_uid

from medcolor.errors import MedcolorError
from medcolor.types import Derivation, Series, SliceRef
from medcolor.writers._files import SeriesFiles, refuse_existing, temp_path, unlink_quietly
from medcolor.writers._source import says_yes
from medcolor.writers.deidentify import Deidentifier
from medcolor.writers.sc_iod import RGBSecondaryCapture

__all__ = ["SecondaryCaptureWriter"]

_MULTIFRAME_NAME = "MF00001.dcm"
_PREAMBLE = b"\0" * 128 + b"DICM"   # PS3.10 7.1: an empty 128-byte preamble and the DICM prefix
_MAX_PIXEL_BYTES = 0xFFFFFFFE  # 32-bit explicit length, even


class SecondaryCaptureWriter(SeriesFiles):
    """Writes one colourised series as RGB Secondary Capture DICOM.

    Files: ``out_dir/S{series_number:03d}_{MODALITY}/IM{index+1:05d}.dcm`` (one per slice), or
    ``.../MF00001.dcm`` with ``multiframe=True`` (written by :meth:`close`). Names come from counters
    only. Every file is written under a hidden ``.part`` name and the series' files are renamed into
    place together at :meth:`close`; an existing file is never replaced unless ``overwrite``. The
    writer never modifies its inputs.

    ``deidentify``: the PS3.15 basic profile; ``uid_map``: its original-to-new UID/ID map, shared by
    the writers of a run. A source with burned-in annotation is then refused, as is (always) a source
    whose SOP Instance UID is not a UID, here at construction, before anything is computed.
    Usable as a context manager (``close()`` on success, ``abort()`` on an exception). Not
    thread-safe: the per-series dataset is reused between writes, so use one writer per thread.
    Files are renamed into place but not fsync'ed (atomic for readers, not durable across a crash).
    """

    def __init__(self, out_dir: Path, series: Series, derivation: Derivation, series_number: int, *,
                 multiframe: bool = False, overwrite: bool = False, deidentify: bool = False,
                 uid_map: dict[str, str] | None = None) -> None:
        super().__init__(out_dir, series, series_number, overwrite)
        self.derivation = derivation
        self.multiframe = multiframe
        self.deidentify = deidentify
        self.series_instance_uid = generate_uid()
        self._deidentifier = Deidentifier(uid_map) if deidentify else None
        first = series.slices[0] if series.slices else None
        is_dicom = first is not None and first.dataset is not None  # DICOM, or a plane reformatted from DICOM
        self.template = RGBSecondaryCapture.from_reference(
            first.dataset if (is_dicom and first is not None) else None,
            rows=series.rows, columns=series.columns, derivation=derivation, series_number=series_number,
            series_instance_uid=self.series_instance_uid,
            # a new study for NIfTI / plain images, once per writer
            study_instance_uid=series.study_instance_uid if is_dicom else generate_uid(),
            modality=series.modality or None, multiframe=multiframe, pixel_spacing=series.pixel_spacing,
            burned_in_annotation=is_dicom and any(says_yes(r.dataset, "BurnedInAnnotation") for r in series.slices),
            deidentifier=self._deidentifier,
            where=first.path if first is not None else (series.source_label or None))
        if series.derived_from and first is not None and "ImageOrientationPatient" in first.dataset:
            self.template.dataset.ImageOrientationPatient = first.dataset.ImageOrientationPatient  # the plane's
        for ref in series.derived_from or series.slices:  # a source that cannot be referenced fails now
            self.template.source_values(ref)
        # multi-frame: frames spooled to a hidden file at their slice index; index -> source
        self._frames: dict[int, SliceRef] = {}
        self._spool: BinaryIO | None = None
        self._spool_path: Path | None = None
        self._frame_bytes = series.rows * series.columns * 3
        if multiframe:
            refuse_existing(self.directory / _MULTIFRAME_NAME, overwrite)

    # ----------------------------------------------------------------- public API

    @property
    def study_instance_uid(self) -> str:
        return str(self.template.dataset.StudyInstanceUID)

    def write(self, index: int, ref: SliceRef, rgb: np.ndarray) -> Path | None:
        """Write slice ``index`` (0-based; InstanceNumber index+1) coloured from source ``ref``.

        ``rgb``: uint8 [rows, columns, 3] sRGB (ValueError otherwise). Returns the file written
        (published at :meth:`close`), or None in multi-frame mode.
        """
        index = self._accept(index, rgb)
        if self.multiframe:
            self._spool_frame(index, ref, rgb)
            return None
        final = self.directory / f"IM{index + 1:05d}.dcm"  # a counter name inside the checked folder
        content = datetime.now().astimezone() if self._deidentifier is None else None
        if self.series.derived_from and ref.position is not None:  # a reformatted plane: where this slice is
            self.template.dataset.ImagePositionPatient = [round(float(v), 4) for v in ref.position]
        self.template.instance(sop_instance_uid=generate_uid(), instance_number=index + 1,
                               sources=self.series.derived_from or [ref],
                               content=content, pixel_data=np.ascontiguousarray(rgb).tobytes())
        self._write_file(final)
        self._written[index] = final
        return final

    # ----------------------------------------------------------------- internals

    def _write_file(self, final: Path) -> None:
        """Write the template's current instance under a temporary name for ``final`` (refused if
        ``final`` exists, unless overwriting); it is published with the series at close()."""
        ds = self.template.dataset
        try:
            with open(self._stage(final), "xb") as f:
                fp = DicomFileLike(f)
                fp.write(_PREAMBLE)
                write_file_meta_info(fp, ds.file_meta, enforce_standard=True)
                fp.is_little_endian, fp.is_implicit_VR = True, False   # Explicit VR Little Endian (sc_iod)
                write_dataset(fp, ds)
        finally:
            del ds["PixelData"]  # the template holds no slice between writes

    def _spool_frame(self, index: int, ref: SliceRef, rgb: np.ndarray) -> None:
        if index in self._frames:
            raise ValueError(f"frame {index} was already written")
        if (len(self._frames) + 1) * self._frame_bytes > _MAX_PIXEL_BYTES:
            raise MedcolorError("series too large for one multi-frame file (4 GiB pixel data)",
                                where=ref.path, hint="write single-frame instances instead")
        if self._spool is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._spool_path = temp_path(self.directory / _MULTIFRAME_NAME, ".frames")
            self._spool = open(self._spool_path, "xb+")
        self._spool.seek(index * self._frame_bytes)  # frames land in slice order, whatever the arrival
        self._spool.write(memoryview(np.ascontiguousarray(rgb)).cast("B"))
        self._frames[index] = ref

    def _finish(self) -> None:
        if self.multiframe and self._frames:
            self._write_multiframe()

    def _write_multiframe(self) -> None:
        spool = self._spool
        assert spool is not None
        order = sorted(self._frames)
        frame_bytes = self._frame_bytes
        for k, index in enumerate(order):  # close the gaps of slices never written (k <= index)
            if k != index:
                spool.seek(index * frame_bytes)
                frame = spool.read(frame_bytes)
                spool.seek(k * frame_bytes)
                spool.write(frame)
        length = len(order) * frame_bytes
        spool.truncate(length)
        if length & 1:  # the pad byte of an odd-length value, so the streamed value's length is even
            spool.seek(length)
            spool.write(b"\x00")
        spool.flush()
        spool.seek(0)
        self.template.instance(sop_instance_uid=generate_uid(), instance_number=1,
                               sources=[self._frames[i] for i in order], content=datetime.now().astimezone(),
                               pixel_data=spool)  # type: ignore[arg-type]
        final = self.directory / _MULTIFRAME_NAME
        self._write_file(final)
        self._written[0] = final

    def _release(self) -> None:  # the multi-frame spool
        if self._spool is not None:
            try:
                self._spool.close()
            except OSError:
                pass
            self._spool = None
        unlink_quietly(self._spool_path)
        self._spool_path = None
        self._frames.clear()
