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
from medcolor.writers._files import SeriesFiles, checked_path

__all__ = ["ImageWriter"]

ImageFormat = Literal["png", "tiff"]
_SUFFIX = {"png": ".png", "tiff": ".tiff"}


class ImageWriter(SeriesFiles):
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
        super().__init__(out_dir, series, series_number, overwrite)
        self.fmt = fmt
        self.derivation = derivation

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
        index = self._accept(index, rgb)
        final = checked_path(self.out_dir, self.directory / self.file_name(index, ref))
        image = Image.fromarray(np.ascontiguousarray(rgb))  # uint8 [H, W, 3] -> mode "RGB"
        with open(self._stage(final), "xb") as fp:
            image.save(fp, **self._save_options())
        self._written[index] = final
        return final

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

