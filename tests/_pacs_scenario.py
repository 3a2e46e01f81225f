"""Run inside a private network namespace (``unshare -n sh -c 'ip link set lo up && python ...'``):
start a real PACS (Orthanc or dcmtk's storescp) on loopback, run ``medcolor export`` into it, and print
one JSON line with what the exporter said and what the PACS holds. Used by tests/test_pacs.py and
benchmarks/batch_and_export.py; nothing here is reachable from outside the namespace.

    python tests/_pacs_scenario.py orthanc OUT_DIR WORK_DIR [--reject-sop UID]
    python tests/_pacs_scenario.py storescp OUT_DIR WORK_DIR [--reject-sop UID]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DICOM_PORT, HTTP_PORT, AET = 4242, 8042, "TESTPACS"
SC_CLASSES = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.4")


def _wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    t0 = time.time()
    while time.time() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def _get(path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}{path}", timeout=10) as r:
        return json.loads(r.read())


def start_orthanc(work: Path, reject_sop: str | None) -> subprocess.Popen:
    exe = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    (work / "storage").mkdir(parents=True, exist_ok=True)
    config = {"Name": "medcolor-test", "StorageDirectory": str(work / "storage"),
              "IndexDirectory": str(work / "storage"), "DicomAet": AET, "DicomPort": DICOM_PORT,
              "HttpPort": HTTP_PORT, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
              "DicomCheckCalledAet": True, "Plugins": [], "HttpServerEnabled": True, "DicomServerEnabled": True,
              "StorageCompression": False, "LuaScripts": []}
    if reject_sop:
        lua = work / "filter.lua"
        lua.write_text("function ReceivedInstanceFilter(dicom, origin, info)\n"
                       f"  if dicom.SOPClassUID == '{reject_sop}' then return false end\n"
                       "  return true\nend\n")
        config["LuaScripts"] = [str(lua)]
    cfg = work / "orthanc.json"
    cfg.write_text(json.dumps(config))
    proc = subprocess.Popen([exe, str(cfg)], stdout=open(work / "orthanc.log", "wb"), stderr=subprocess.STDOUT)
    _wait_port(HTTP_PORT)
    _wait_port(DICOM_PORT)
    t0 = time.time()
    while time.time() - t0 < 20:
        try:
            _get("/system")
            break
        except OSError:
            time.sleep(0.1)
    return proc


def start_storescp(work: Path, reject_sop: str | None) -> subprocess.Popen:
    exe = shutil.which("storescp", path="/usr/bin:/usr/local/bin") or "storescp"
    store = work / "received"
    store.mkdir(parents=True, exist_ok=True)
    args = [exe, "--aetitle", AET, "-od", str(store), "+B"]
    if reject_sop:  # a presentation-context profile without that SOP class: the SCP rejects its context
        cfg = work / "storescp.cfg"
        keep = [s for s in SC_CLASSES if s != reject_sop]
        cfg.write_text("[[TransferSyntaxes]]\n[Uncompressed]\nTransferSyntax1 = LocalEndianExplicit\n"
                       "TransferSyntax2 = OppositeEndianExplicit\nTransferSyntax3 = LittleEndianImplicit\n"
                       "[[PresentationContexts]]\n[SCContexts]\n"
                       + "".join(f"PresentationContext{i + 1} = {s}\\Uncompressed\n" for i, s in enumerate(keep))
                       + "[[Profiles]]\n[SC]\nPresentationContexts = SCContexts\n")
        args += ["-xf", str(cfg), "SC"]
    args.append(str(DICOM_PORT))
    proc = subprocess.Popen(args, stdout=open(work / "storescp.log", "wb"), stderr=subprocess.STDOUT)
    _wait_port(DICOM_PORT)
    return proc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("server", choices=["orthanc", "storescp"])
    ap.add_argument("out_dir")
    ap.add_argument("work_dir")
    ap.add_argument("--reject-sop")
    ap.add_argument("--calling-aet", default="MEDCOLOR")
    a = ap.parse_args()
    work = Path(a.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    proc = (start_orthanc if a.server == "orthanc" else start_storescp)(work, a.reject_sop)
    result: dict = {"server": a.server}
    try:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "medcolor", "export", a.out_dir, "--host", "127.0.0.1",
                            "--port", str(DICOM_PORT), "--called-aet", AET, "--calling-aet", a.calling_aet,
                            "--retries", "1"], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "COLUMNS": "200"})
        result.update(export_rc=r.returncode, export_stdout=r.stdout, export_stderr=r.stderr[-3000:],
                      export_seconds=time.perf_counter() - t0)
        if a.server == "orthanc":
            instances = []
            for iid in _get("/instances"):
                tags = _get(f"/instances/{iid}/tags?simplify")
                instances.append({"sop_class_uid": tags.get("SOPClassUID"), "sop_instance_uid": tags.get("SOPInstanceUID"),
                                  "series_instance_uid": tags.get("SeriesInstanceUID"),
                                  "series_description": tags.get("SeriesDescription")})
            result["instances"] = instances
            result["n_series"] = len(_get("/series"))
        else:
            import pydicom

            files = sorted((work / "received").iterdir())
            result["instances"] = []
            for f in files:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                result["instances"].append({"sop_class_uid": str(ds.SOPClassUID), "sop_instance_uid": str(ds.SOPInstanceUID),
                                            "series_instance_uid": str(ds.SeriesInstanceUID)})
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
