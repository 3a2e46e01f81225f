"""PNG / TIFF writer for colourised slices (8-bit sRGB, no patient data in names or metadata).

Files: ``out_dir/S{series_number:03d}_{MODALITY}/IM{index+1:05d}.png`` for DICOM and NIfTI series.
For plain-image series (kind "image") the file is named after the source file's stem,
``<stem>_color.png`` (``<stem>_color_{index+1:05d}.png`` when the image has several slices), so an
evaluation tool can match a prediction to its ground truth by stem. Atomic like every writer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, PngImagePlugin

from medcolor import __version__
from medcolor.errors import MedcolorError
from medcolor.types import Derivation, Series, SliceRef
from medcolor.writers._files import (
    CloseOnSuccess,
    StagedFiles,
    checked_path,
    refuse_existing,
    series_dir,
)
from medcolor.writers.dicom_sc import _check_index, _check_rgb

__all__ = ["ImageWriter"]

ImageFormat = Literal["png", "tiff"]
_SUFFIX = {"png": ".png", "tiff": ".tiff"}


class ImageWriter(CloseOnSuccess):
    """Writes colourised slices as 8-bit RGB PNG (zlib level 1, fast) or uncompressed TIFF.

    ``derivation`` (optional) is stored as PNG iTXt "Software"/"Description" (TIFF: Software and
    ImageDescription tags); it never holds patient data.
    """

    def __init__(self, out_dir: Path, series: Series, series_number: int, *,
                 fmt: ImageFormat = "png", overwrite: bool = False,
                 derivation: Derivation | None = None) -> None:
        if fmt not in _SUFFIX:
            raise MedcolorError(f"unknown image format {fmt!r}", where="--format",
                                hint="use png or tiff")
        self.out_dir = Path(out_dir)
        self.series = series
        self.series_number = series_number
        self.fmt = fmt
        self.overwrite = overwrite
        self.derivation = derivation
        self.directory = checked_path(self.out_dir, series_dir(self.out_dir, series_number,
                                                               series.modality))
        self._written: dict[int, Path] = {}
        self._staged = StagedFiles(overwrite)
        self._closed = False

    def file_name(self, index: int, ref: SliceRef) -> str:
        """The output file name for slice ``index`` (see the module docstring)."""
        suffix = _SUFFIX[self.fmt]
        if self.series.kind == "image":
            stem = Path(ref.path).stem
            if not stem or stem in (".", "..") or "/" in stem or "\\" in stem:
                raise MedcolorError("source file name cannot name an output", where=ref.path,
                                    hint="rename the input file")
            if len(self.series.slices) > 1:
                return f"{stem}_color_{index + 1:05d}{suffix}"
            return f"{stem}_color{suffix}"
        return f"IM{index + 1:05d}{suffix}"

    def write(self, index: int, ref: SliceRef, rgb: np.ndarray) -> Path:
        """Write slice ``index`` (0-based); ``rgb`` uint8 [rows, columns, 3] sRGB. Returns the path."""
        if self._closed:
            raise RuntimeError("writer is closed")
        index = _check_index(index)
        _check_rgb(rgb, self.series.rows, self.series.columns)
        final = checked_path(self.out_dir, self.directory / self.file_name(index, ref))
        refuse_existing(final, self.overwrite)
        image = Image.fromarray(np.ascontiguousarray(rgb))  # uint8 [H, W, 3] -> mode "RGB"
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._staged.stage(final)
        with open(tmp, "xb") as fp:
            image.save(fp, **self._save_options())
        self._written[index] = final
        return final

    def close(self) -> list[Path]:
        """Publish the series' files together; returns them in slice order. Idempotent."""
        if not self._closed:
            try:
                self._staged.commit()
            except BaseException:
                self.abort()
                raise
        self._closed = True
        return [self._written[i] for i in sorted(self._written)]

    def abort(self) -> None:
        """Remove every temporary file: nothing of an unfinished series is published. Idempotent."""
        self._closed = True
        self._staged.discard()
        self._written.clear()

    def _save_options(self) -> dict[str, Any]:
        software = f"medcolor {__version__}"
        description = self.derivation.description() if self.derivation is not None else ""
        if self.fmt == "png":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("Software", software)
            if description:
                info.add_itxt("Description", description)
            return {"format": "PNG", "compress_level": 1, "pnginfo": info}
        tags = {305: software}
        if description:
            tags[270] = description
        return {"format": "TIFF", "tiffinfo": tags}

