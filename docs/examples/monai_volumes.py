"""medcolor's transforms in a MONAI Compose with a DataLoader over a small NIfTI dataset.

    python docs/examples/monai_volumes.py [NIFTI ...] [--out FOLDER]

Without NIfTI files it makes a dataset of two from the shipped sample CT (sample_dicom/ct_chest, read with
SimpleITK's GDCM series reader and written as .nii.gz; the second is the first mirrored left-right).
Each volume is loaded with medcolor's reader as CT (HU), windowed to L* with the lung preset and coloured
with the lut backend; the middle slice of each is saved as PNG under --out (default: monai_volumes_out).
It prints one line per volume: shape, value range of L, colourfulness of the RGB.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from PIL import Image

from medcolor.metrics import colourfulness
from medcolor.transforms import Colorized, LoadImaged, WindowToLd
from medcolor.windowing import PRESETS

SAMPLE_CT = Path(__file__).resolve().parents[2] / "sample_dicom" / "ct_chest"


def sample_dataset(folder: Path) -> list[Path]:
    """Two NIfTI volumes made from the shipped sample CT."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(SAMPLE_CT)))
    image = reader.Execute()
    paths = [folder / "ct.nii.gz", folder / "ct_mirrored.nii.gz"]
    sitk.WriteImage(image, str(paths[0]))
    sitk.WriteImage(sitk.Flip(image, [True, False, False]), str(paths[1]))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nifti", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("monai_volumes_out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = args.nifti or sample_dataset(Path(tmp))
        lung = PRESETS["lung"]
        transforms = Compose([
            LoadImaged(keys="image", modality="CT"),
            WindowToLd(keys="image", window=lung),
            Colorized(keys="image", window=lung, method="lut"),
        ])
        loader = DataLoader(Dataset([{"image": str(f)} for f in files], transform=transforms), batch_size=1,
                            num_workers=0)
        for n, batch in enumerate(loader):
            L, rgb = batch["image"][0], batch["image_rgb"][0]        # [S, H, W] float, [3, S, H, W] uint8
            middle = np.ascontiguousarray(rgb[:, rgb.shape[1] // 2].permute(1, 2, 0).numpy())
            Image.fromarray(middle).save(args.out / f"volume{n}_middle.png")
            print(f"volume {n}: L {tuple(L.shape)} in [{float(L.min()):.1f}, {float(L.max()):.1f}], "
                  f"rgb {tuple(rgb.shape)}, colourfulness {colourfulness(middle):.1f}")


if __name__ == "__main__":
    main()
