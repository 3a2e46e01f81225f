"""Batch throughput with --workers 1 and 2, and export instances/s (C-STORE).

    python benchmarks/batch_and_export.py [--copies 4] [--method exemplar]

Builds a folder of COPIES copies of the sample CT series (new UIDs each, 6 slices of 512x512) plus the
X-ray, colours it with ``medcolor.batch.run_batch`` on 1 and on 2 local worker processes (wall time
including worker start-up), then C-STOREs every output instance into (a) a pynetdicom Storage SCP on
127.0.0.1 and (b) dcmtk's storescp and Orthanc inside a private network namespace when available.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medcolor.batch import run_batch  # noqa: E402
from medcolor.pacs import Target, export, find_instances  # noqa: E402
from medcolor.pipeline import RunOptions  # noqa: E402


def build_input(dst: Path, copies: int) -> int:
    n = 0
    for c in range(copies):
        series_uid, study_uid = generate_uid(), generate_uid()
        (dst / f"ct{c}").mkdir(parents=True)
        for p in sorted((ROOT / "sample_dicom" / "ct_chest").glob("*.dcm")):
            ds = pydicom.dcmread(p)
            ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(dst / f"ct{c}" / p.name)
            n += 1
    shutil.copy(ROOT / "sample_dicom" / "xray_chest" / "chest_xray.dcm", dst / "xray.dcm")
    return n + 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--method", default="exemplar")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="medcolor-bench-"))
    try:
        n = build_input(tmp / "in", a.copies)
        print(f"input: {a.copies} CT series x 6 slices (512x512) + 1 X-ray (1024x1024) = {n} slices; "
              f"method {a.method}; {os.cpu_count()} CPUs")
        out = None
        for workers in (1, 2):
            out = tmp / f"out{workers}"
            t0 = time.perf_counter()
            r = run_batch(tmp / "in", RunOptions(output=out, method=a.method), workers=workers)
            dt = time.perf_counter() - t0
            assert not r.failed, r.counts()
            print(f"batch --workers {workers}: {dt:6.2f} s  {r.n_slices_coloured / dt:6.2f} slices/s  "
                  f"{len(r.coloured) / dt:5.2f} series/s")
        t0 = time.perf_counter()
        r = run_batch(tmp / "in", RunOptions(output=out, method=a.method), workers=1)
        print(f"batch rerun (resume, nothing to do): {time.perf_counter() - t0:.2f} s, {len(r.resumed)} series skipped")

        instances = find_instances(out)
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import SecondaryCaptureImageStorage

        ae = AE(ae_title="BENCH")
        ae.add_supported_context(SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.1"])
        ae.add_supported_context("1.2.840.10008.5.1.4.1.1.7.4", ["1.2.840.10008.1.2.1"])
        server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda e: 0x0000)])
        port = server.server_address[1]
        try:
            res = export(instances, Target("127.0.0.1", port, "BENCH"))
        finally:
            server.shutdown()
        c = res.counts()
        print(f"export -> pynetdicom SCP (loopback, same process): {len(instances)} instances "
              f"{res.seconds:.2f} s  {len(instances) / res.seconds:6.1f} instances/s  {c}")
        if shutil.which("unshare"):
            for server_name in ("storescp", "orthanc"):
                cmd = (f"ip link set lo up && exec {sys.executable} {ROOT / 'tests' / '_pacs_scenario.py'} "
                       f"{server_name} {out} {tmp / ('w-' + server_name)}")
                p = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, text=True, cwd=ROOT)
                if p.returncode != 0:
                    print(f"export -> {server_name}: not run ({p.stderr.strip().splitlines()[-1:]})")
                    continue
                d = json.loads(p.stdout.strip().splitlines()[-1])
                line = next((ln for ln in d["export_stdout"].splitlines() if "instances/s" in ln), "")
                print(f"export -> {server_name} (namespace; medcolor export CLI): {line.split(': ', 1)[-1]}"
                      f"  [{len(d['instances'])} instances in the PACS]")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
