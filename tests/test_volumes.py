"""Volumes (issue 18) and --modality (issue 15 item 5): SimpleITK's GDCM series reader as the reference for
medcolor's DICOM order and geometry, MHA/NRRD/NIfTI input, RGB NIfTI/NRRD/MHA output keeping the geometry,
colour MPR (a sphere phantom lands where it belongs, dciodvfy, ΔL recomputed), HU presets for NIfTI."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from PIL import Image
from typer.testing import CliRunner

from medcolor.cli.app import app
from medcolor.io import read_slice, scan, series_geometry
from medcolor.metrics import lightness
from medcolor.reformat import parse_planes, resample
from medcolor.windowing import PRESETS, window_to_l
from tests._volume_fixtures import AIR, SPHERE, sphere_values, write_phantom
from tests.conftest import CT_DIR, dciodvfy_errors

SHARED_CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_chest_lung_pet_ct_dx_A0002"
CENTRE, RADIUS = (6.0, -9.0, 4.0), 12.0
OBLIQUE = (1.0, 0.0, 0.0, 0.0, float(np.cos(0.3)), float(np.sin(0.3)))  # rows tilted 17° about x
runner = CliRunner()


def _run(*args: str) -> None:
    r = runner.invoke(app, ["run", *args])
    assert r.exit_code == 0, r.output


def _gdcm(folder: Path) -> tuple[list[str], sitk.Image]:
    reader = sitk.ImageSeriesReader()
    names = list(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetFileNames(names)
    return names, reader.Execute()


def _dicom_series_folders(tmp_path: Path) -> list[Path]:
    """Every multi-slice DICOM series the tests use: the sample CT, the shared CT when present, and phantoms
    (axial, normal reversed with file names in reverse, oblique)."""
    folders = [CT_DIR] + ([SHARED_CT] if SHARED_CT.is_dir() else [])
    write_phantom(tmp_path / "axial")
    write_phantom(tmp_path / "reversed", iop=(1, 0, 0, 0, -1, 0), origin=(-32, 32, 40), reverse_names=True)
    write_phantom(tmp_path / "oblique", iop=OBLIQUE, n=24, step=1.5)
    return folders + [tmp_path / "axial", tmp_path / "reversed", tmp_path / "oblique"]


def test_dicom_order_and_geometry_equal_simpleitk(tmp_path: Path) -> None:
    folders = _dicom_series_folders(tmp_path)
    for folder in folders:
        names, image = _gdcm(folder)
        series = scan([folder]).series
        assert len(series) == 1, folder
        assert [str(r.path) for r in series[0].slices] == [str(Path(n)) for n in names], folder
        g = series_geometry(series[0])
        np.testing.assert_allclose(g.origin, image.GetOrigin(), atol=1e-4, err_msg=str(folder))
        np.testing.assert_allclose(g.spacing, image.GetSpacing(), atol=1e-4, err_msg=str(folder))
        np.testing.assert_allclose(g.direction, image.GetDirection(), atol=1e-4, err_msg=str(folder))
        first = sitk.GetArrayViewFromImage(image)[0]
        np.testing.assert_array_equal(read_slice(series[0].slices[0], series[0]), first)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_files_read_with_simpleitk_geometry(tmp_path: Path, suffix: str) -> None:
    """NIfTI (nibabel reads it; SimpleITK is the cross-check), NRRD and MHA: every presented voxel holds
    SimpleITK's value at the same patient position."""
    _, image = _gdcm(write_phantom(tmp_path / "dcm", iop=OBLIQUE, n=12)[0].parent)
    path = tmp_path / f"phantom{suffix}"
    sitk.WriteImage(image, str(path))
    series = scan([path]).series[0]
    assert series.kind == ("nifti" if suffix == ".nii.gz" else "volume")
    g = series_geometry(series)
    ref = sitk.ReadImage(str(path))
    rng = np.random.default_rng(0)
    for k in (0, 5, 11):
        values = read_slice(series.slices[k], series)
        for r, c in rng.integers(0, 64, size=(20, 2)):
            point = g.to_lps(np.array([c, r, k]))
            index = ref.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
            assert values[r, c] == ref[index], (suffix, k, r, c)
        np.testing.assert_allclose(series.slices[k].position, g.to_lps(np.array([0, 0, k])), atol=1e-4)


def test_parse_planes() -> None:
    assert parse_planes(["coronal,sagittal", "coronal", " Axial "]) == ("coronal", "sagittal", "axial")


@pytest.mark.parametrize("args, message", [
    (["--reformat", "coronl"], "unknown plane 'coronl'"),
    (["--reformat", "coronal", "--reformat-spacing", "0"], "reformat spacing must be a positive number"),
    (["--reformat", "coronal", "--multiframe"], "--multiframe is not available with --reformat"),
])
def test_bad_reformat_options_are_refused_before_work(tmp_path: Path, args: list[str], message: str) -> None:
    r = runner.invoke(app, ["run", str(CT_DIR), "-o", str(tmp_path / "o"), *args])
    assert r.exit_code == 2 and message in r.output and not (tmp_path / "o").exists(), r.output


def _lps_of_pixel(ds: pydicom.Dataset, r: float, c: float) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, float)
    sy, sx = (float(v) for v in ds.PixelSpacing)
    return np.asarray(ds.ImagePositionPatient, float) + c * sx * iop[:3] + r * sy * iop[3:]


def test_coronal_reformat_puts_the_sphere_where_it_belongs(tmp_path: Path) -> None:
    write_phantom(tmp_path / "dcm", centre=CENTRE, radius=RADIUS)
    out = tmp_path / "out"
    _run(str(tmp_path / "dcm"), "-o", str(out), "--reformat", "coronal", "--method", "lut",
         "--window", "400,40")
    files = sorted((out / "S001_CT").glob("*.dcm"))
    best, area = None, -1
    for f in files:
        ds = pydicom.dcmread(f)
        bright = lightness(ds.pixel_array) > 90
        if bright.sum() > area:
            best, area = (ds, bright), int(bright.sum())
    ds, bright = best
    assert [round(v, 4) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    rows, cols = np.nonzero(bright)
    centre = _lps_of_pixel(ds, rows.mean(), cols.mean())
    np.testing.assert_allclose(centre, CENTRE, atol=1.0)  # the sphere's centre within 1 mm
    # the largest disc is the sphere's equator: its radius is the sphere's (sampling: 1 mm pixels)
    assert abs(np.sqrt(area / np.pi) * float(ds.PixelSpacing[0]) - RADIUS) < 1.0


def test_mpr_series_are_valid_derived_dicom_with_delta_l_bounds(tmp_path: Path) -> None:
    """Three planes: dciodvfy has no error, each plane is its own series referencing every source image,
    DerivationDescription names the plane and spacing, and the ΔL the report gives holds when recomputed
    from the reformatted windowed volume."""
    sources = write_phantom(tmp_path / "dcm", n=20, centre=CENTRE, radius=RADIUS)
    source_uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in sources}
    out = tmp_path / "out"
    _run(str(tmp_path / "dcm"), "-o", str(out), "--reformat", "axial,coronal,sagittal", "--window",
         "mediastinum")
    report = json.loads((out / "report.json").read_text())
    series_uids = set()
    _, image = _gdcm(tmp_path / "dcm")
    for number, plane in enumerate(("axial", "coronal", "sagittal"), start=1):
        files = sorted((out / f"S{number:03d}_CT").glob("*.dcm"))
        ds = pydicom.dcmread(files[len(files) // 2])
        assert dciodvfy_errors(files[len(files) // 2]) == []
        assert f"reformat={plane} 1x1 mm" in ds.DerivationDescription
        assert {item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence} == source_uids
        series_uids.add(ds.SeriesInstanceUID)
        entry = next(s for s in report["series"] if s["label"] == f"S{number:03d}_CT")
        assert entry["status"] == "done" and entry["summary"]["delta_l_p99_max"] <= 1.5
        volume, _ = resample(image, plane)
        L_in = window_to_l(torch.from_numpy(sitk.GetArrayFromImage(volume)), PRESETS["mediastinum"]).numpy()
        worst = 0.0
        for f in files:
            k = pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber - 1
            worst = max(worst, float(np.abs(lightness(pydicom.dcmread(f).pixel_array) - L_in[k]).max()))
        assert worst <= entry["summary"]["delta_l_max"] + 1e-3 and worst <= 1.5, (plane, worst)
    assert len(series_uids) == 3
    assert pydicom.dcmread(sources[0], stop_before_pixels=True).SeriesInstanceUID not in series_uids


@pytest.mark.parametrize("fmt", ["nifti", "nrrd", "mha"])
def test_rgb_volume_keeps_the_source_geometry(tmp_path: Path, fmt: str) -> None:
    folder = write_phantom(tmp_path / "dcm", iop=OBLIQUE, n=10)[0].parent
    _, image = _gdcm(folder)
    out = tmp_path / "out"
    _run(str(folder), "-o", str(out), "--format", fmt, "--method", "lut", "--window", "400,40")
    path = next((out / "S001_CT").glob("volume.*"))
    assert [p.name for p in (out / "S001_CT").iterdir()] == [path.name]
    rgb = sitk.ReadImage(str(path))
    assert rgb.GetNumberOfComponentsPerPixel() == 3 and rgb.GetPixelID() == sitk.sitkVectorUInt8
    for get in ("GetOrigin", "GetSpacing", "GetDirection"):
        np.testing.assert_allclose(getattr(rgb, get)(), getattr(image, get)(), atol=1e-4)
    L = lightness(sitk.GetArrayFromImage(rgb).reshape(-1, 64, 3)).reshape(10, 64, 64)
    hu = sitk.GetArrayFromImage(image)
    assert (L[hu == SPHERE] > 99).all() and (L[hu == AIR] < 1).all()
    if fmt == "nrrd":  # NRRD's kind for true colour, which Slicer shows as RGB
        assert b"\nkinds: RGB-color domain domain domain\n" in path.read_bytes()[:2000]
    if fmt == "nifti":
        img = nib.load(path)
        assert img.header["datatype"] == 128  # RGB24
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
        direction = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
        np.testing.assert_allclose(lps[:3, :3], direction, atol=1e-4)
        np.testing.assert_allclose(lps[:3, 3], image.GetOrigin(), atol=1e-4)


def test_run_on_a_volume_file_gives_the_series_outputs(tmp_path: Path) -> None:
    """MHA of the sample CT: per-slice SC by default, the same colours as the DICOM run with --modality CT."""
    names, image = _gdcm(CT_DIR)
    sitk.WriteImage(image, str(tmp_path / "ct.mha"))
    _run(str(CT_DIR), "-o", str(tmp_path / "d"), "-f", "both", "--window", "mediastinum")
    _run(str(tmp_path / "ct.mha"), "-o", str(tmp_path / "v"), "-f", "both", "--window", "mediastinum",
         "--modality", "CT")
    dcm = sorted((tmp_path / "v" / "S001_CT").glob("*.dcm"))
    assert len(dcm) == len(names) and dciodvfy_errors(dcm[0]) == []
    for k in range(len(names)):
        a = np.asarray(Image.open(tmp_path / "d" / "S001_CT" / f"IM{k + 1:05d}.png"))
        b = np.asarray(Image.open(tmp_path / "v" / "S001_CT" / f"IM{k + 1:05d}.png"))
        np.testing.assert_array_equal(a, b)


def test_nifti_with_modality_ct_matches_the_dicom_colours(tmp_path: Path) -> None:
    """NIfTI of a CT series: without --modality the report says the values look like HU and a preset is
    refused; with --modality CT --window mediastinum the colours equal the DICOM run's."""
    folder = SHARED_CT if SHARED_CT.is_dir() else CT_DIR
    names, image = _gdcm(folder)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    _run(str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "plain"), "-f", "png")
    warnings = json.loads((tmp_path / "plain" / "report.json").read_text())["series"][0]["warnings"]
    assert any("look like Hounsfield units" in w and "--modality CT" in w for w in warnings), warnings
    r = runner.invoke(app, ["run", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "refused"), "-f", "png",
                            "--window", "mediastinum"])
    assert r.exit_code != 0
    _run(str(folder), "-o", str(tmp_path / "d"), "-f", "png", "--window", "mediastinum")
    _run(str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "n"), "-f", "png", "--window", "mediastinum",
         "--modality", "ct")
    for k in range(len(names)):
        a = np.asarray(Image.open(tmp_path / "d" / "S001_CT" / f"IM{k + 1:05d}.png"))
        b = np.asarray(Image.open(tmp_path / "n" / "S001_CT" / f"IM{k + 1:05d}.png"))
        np.testing.assert_array_equal(a, b)


def test_bad_modality_is_refused_before_work(tmp_path: Path) -> None:
    r = runner.invoke(app, ["run", str(CT_DIR), "-o", str(tmp_path / "o"), "--modality", "XX"])
    assert r.exit_code == 2 and "unknown modality 'XX'" in r.output and not (tmp_path / "o").exists()


def test_monai_transforms_equal_the_pipeline_and_the_example_runs(tmp_path: Path) -> None:
    """LoadImaged -> WindowToLd -> Colorized in a Compose gives medcolor run's colours (same backend, window,
    modality); docs/examples/monai_volumes.py runs (Compose + DataLoader over NIfTI files)."""
    import subprocess
    import sys

    from monai.transforms import Compose

    from medcolor.transforms import Colorized, LoadImaged, WindowToLd

    _, image = _gdcm(CT_DIR)
    sitk.WriteImage(image, str(tmp_path / "ct.nii.gz"))
    lung = PRESETS["lung"]
    chain = Compose([LoadImaged(keys="image", modality="CT"), WindowToLd(keys="image", window=lung),
                     Colorized(keys="image", window=lung, method="exemplar")])
    rgb = chain({"image": str(tmp_path / "ct.nii.gz")})["image_rgb"]
    assert rgb.dtype == torch.uint8 and tuple(rgb.shape) == (3, 6, 512, 512)
    _run(str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "run"), "-f", "png", "--window", "lung",
         "--modality", "CT")
    for k in range(6):
        png = np.asarray(Image.open(tmp_path / "run" / "S001_CT" / f"IM{k + 1:05d}.png"))
        np.testing.assert_array_equal(rgb[:, k].permute(1, 2, 0).numpy(), png)
    example = Path(__file__).resolve().parents[1] / "docs" / "examples" / "monai_volumes.py"
    r = subprocess.run([sys.executable, str(example), "--out", str(tmp_path / "ex")], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("volume ")]
    assert len(lines) == 2 and "rgb (3, 6, 512, 512)" in lines[0], r.stdout
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == ["volume0_middle.png", "volume1_middle.png"]


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_medcolor_reader_affine_of_a_volume_equals_the_dicom_series(tmp_path: Path, suffix: str) -> None:
    from monai.transforms import LoadImage

    from medcolor.io import MedcolorReader

    _, image = _gdcm(CT_DIR)
    sitk.WriteImage(image, str(tmp_path / f"ct{suffix}"))
    dicom = LoadImage(reader=MedcolorReader(), image_only=True)(str(CT_DIR))
    volume = LoadImage(reader=MedcolorReader(modality="CT"), image_only=True)(str(tmp_path / f"ct{suffix}"))
    np.testing.assert_allclose(np.asarray(volume.meta["affine"]), np.asarray(dicom.meta["affine"]), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(volume), np.asarray(dicom))
    assert volume.meta["is_hu"] and volume.meta["modality"] == "CT"


def test_nifti_in_nifti_out_every_voxel_stays_where_it_was(tmp_path: Path) -> None:
    """A RAS-oriented NIfTI (medcolor flips its i and j axes to show it as DICOM does): the RGB NIfTI written
    back puts each voxel's colour at the source voxel's world position (lightness follows the source value)."""
    i, j, k = np.meshgrid(np.arange(20), np.arange(16), np.arange(5), indexing="ij")
    values = (i * 40 + j * 5 + k * 7).astype(np.int16)                  # 0..890, all distinct per (i, j)
    affine = np.array([[0.8, 0, 0, -10.0], [0, 0.9, 0, 20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(values, affine), tmp_path / "ras.nii.gz")
    _run(str(tmp_path / "ras.nii.gz"), "-o", str(tmp_path / "out"), "--format", "nifti", "--method", "lut",
         "--window", "1000,500")
    out = nib.load(tmp_path / "out" / "S001_OT" / "volume.nii.gz")
    rgb = np.asarray(out.dataobj)
    L = lightness(np.stack([rgb["R"], rgb["G"], rgb["B"]], axis=-1).reshape(-1, 1, 3)).reshape(rgb.shape)
    world = nib.affines.apply_affine(out.affine, np.stack([i, j, k], axis=-1).reshape(-1, 3))
    src_ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(affine), world)).astype(int)
    expected = values[src_ijk[:, 0], src_ijk[:, 1], src_ijk[:, 2]].reshape(values.shape)
    L_expected = window_to_l(torch.from_numpy(expected.astype(np.float32)),
                             type(PRESETS["lung"])(500.0, 1000.0, units="modality")).numpy()
    assert np.abs(L - L_expected).max() < 1.0
    assert not np.allclose(out.affine, affine)  # the axes were flipped, and the affine says so


def test_shared_ct_colour_nifti_keeps_the_source_affine(tmp_path: Path) -> None:
    """The issue's check on the real CT: the colour NIfTI's affine equals SimpleITK's reading of the series
    within 1e-4 mm (benchmarks/volume_geometry.py prints the same for nifti, nrrd and mha)."""
    if not SHARED_CT.is_dir():
        pytest.skip("the shared 30-slice CT (../shared/data) is not beside this checkout")
    _, image = _gdcm(SHARED_CT)
    _run(str(SHARED_CT), "-o", str(tmp_path / "out"), "--format", "nifti", "--method", "lut")
    img = nib.load(tmp_path / "out" / "S001_CT" / "volume.nii.gz")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    expected = np.eye(4)
    expected[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    expected[:3, 3] = image.GetOrigin()
    assert img.shape == image.GetSize() and np.abs(lps - expected).max() <= 1e-4


def test_metaimage_modality_ct_is_taken_as_hounsfield(tmp_path: Path) -> None:
    _, image = _gdcm(CT_DIR)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp_path / "ct.mha"))
    writer.Execute(image)
    plain = scan([tmp_path / "ct.mha"]).series[0]
    assert (plain.modality, plain.is_hu) == ("OT", False)
    text = (tmp_path / "ct.mha").read_bytes()
    header_end = text.index(b"ElementDataFile")
    (tmp_path / "ct_mod.mha").write_bytes(text[:header_end] + b"Modality = MET_MOD_CT\n" + text[header_end:])
    tagged = scan([tmp_path / "ct_mod.mha"]).series[0]
    assert (tagged.modality, tagged.is_hu) == ("CT", True)
