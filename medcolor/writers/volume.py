"""RGB volume writer: ``--format nifti`` (RGB24 NIfTI via nibabel) and ``--format nrrd|mha`` (SimpleITK vector
image of 3 x uint8 per voxel). 3D Slicer and ITK-SNAP open both in true colour.

One file per output series, ``out_dir/S{nnn}_{MOD}/volume.{nii.gz,nrrd,mha}``, written when the series is
complete (atomically, like every writer). The geometry is the source series' (``medcolor.io.series_geometry``:
origin, spacing, direction of the slices as medcolor presents them), so every voxel sits where its source
voxel sat; the NIfTI affine is that geometry in RAS. The writer never knows which backend ran: the
derivation text goes into the NIfTI ``descrip`` (80 bytes) and the NRRD/MHA metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from medcolor.errors import MedcolorError
from medcolor.io import series_geometry
from medcolor.types import Derivation, Series, SliceRef
from medcolor.writers._files import SeriesFiles, checked_path

__all__ = ["VolumeWriter", "VOLUME_FORMATS"]

VolumeFormat = Literal["nifti", "nrrd", "mha"]
VOLUME_FORMATS: dict[str, str] = {"nifti": "volume.nii.gz", "nrrd": "volume.nrrd", "mha": "volume.mha"}


class VolumeWriter(SeriesFiles):
    """Collects the coloured slices ``[rows, columns, 3]`` uint8 of one series and writes them as one RGB
    volume at :meth:`close` (every slice must have been written)."""

    def __init__(self, out_dir: Path, series: Series, series_number: int, *, fmt: VolumeFormat = "nifti",
                 overwrite: bool = False, derivation: Derivation | None = None) -> None:
        if fmt not in VOLUME_FORMATS:
            raise MedcolorError(f"unknown volume format {fmt!r}", where="--format",
                                hint=f"use one of {', '.join(VOLUME_FORMATS)}")
        super().__init__(out_dir, series, series_number, overwrite)
        self.fmt = fmt
        self.derivation = derivation
        self.geometry = series_geometry(series)  # fails now (before any compute) for an image without geometry
        self._rgb: np.ndarray | None = np.zeros((len(series.slices), series.rows, series.columns, 3), np.uint8)
        self._have = np.zeros(len(series.slices), dtype=bool)

    def write(self, index: int, ref: SliceRef, rgb: np.ndarray) -> None:
        """Keep slice ``index``; the file is written at :meth:`close`. Returns None (no file per slice)."""
        index = self._accept(index, rgb)
        assert self._rgb is not None
        self._rgb[index] = rgb
        self._have[index] = True
        return None

    def _finish(self) -> None:
        missing = np.flatnonzero(~self._have)
        if missing.size:
            raise MedcolorError(f"{missing.size} slice(s) could not be coloured, so no volume is written",
                                where=self.series.source_label, hint="see the per-slice errors")
        final = checked_path(self.out_dir, self.directory / VOLUME_FORMATS[self.fmt])
        tmp = self._stage(final)
        text = self.derivation.description() if self.derivation is not None else "medcolor"
        if self.fmt == "nifti":
            self._write_nifti(tmp, text)
        else:
            self._write_itk(tmp, text)
        self._written[0] = final

    def _write_nifti(self, tmp: Path, text: str) -> None:
        import nibabel as nib

        rgb = self._rgb
        assert rgb is not None
        voxels = np.empty(rgb.shape[:3], dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        for channel, name in enumerate("RGB"):
            voxels[name] = rgb[..., channel]
        img = nib.Nifti1Image(voxels.transpose(2, 1, 0), self.geometry.affine_ras())  # [k,j,i] -> [i,j,k]
        img.header.set_xyzt_units("mm")
        img.header["descrip"] = text.encode("ascii", "replace")[:79]
        img.set_qform(self.geometry.affine_ras(), code=1)
        img.set_sform(self.geometry.affine_ras(), code=1)
        # nibabel picks the file type from the name; the staged name ends in ".part", so save by object
        with open(tmp, "xb") as fp:
            import gzip

            with gzip.GzipFile(fileobj=fp, mode="wb", compresslevel=1) as gz:
                gz.write(img.to_bytes())

    def _write_itk(self, tmp: Path, text: str) -> None:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(self._rgb, isVector=True)  # [k,j,i,3] uint8 -> 3-component vector
        self.geometry.apply_to(image)
        image.SetMetaData("medcolor_derivation", text)
        writer = sitk.ImageFileWriter()
        # SimpleITK picks the format from the extension: write under the final suffix, in the staged name
        staged = tmp.with_name(tmp.name + Path(VOLUME_FORMATS[self.fmt]).suffix)
        writer.SetFileName(str(staged))
        writer.SetUseCompression(True)
        try:
            writer.Execute(image)
        except RuntimeError as exc:
            staged.unlink(missing_ok=True)
            raise MedcolorError(f"cannot write the volume ({' '.join(str(exc).split())[:160]})",
                                where=self.directory, hint="check the output folder") from None
        if self.fmt == "nrrd":  # say the 3 components are RGB (NRRD kind "RGB-color"), not a plain vector
            _nrrd_rgb_kind(staged)
        staged.replace(tmp)

    def _release(self) -> None:
        self._rgb = None


def _nrrd_rgb_kind(path: Path) -> None:
    """Rewrite an attached-data NRRD header's ``kinds: vector ...`` as ``kinds: RGB-color ...`` (NRRD
    format 4: the 3-component kind for RGB colour, which 3D Slicer shows in true colour)."""
    data = path.read_bytes()
    end = data.index(b"\n\n") + 2                      # the header ends at the first blank line
    header = data[:end].replace(b"\nkinds: vector ", b"\nkinds: RGB-color ", 1)
    path.write_bytes(header + data[end:])
