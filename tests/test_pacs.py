"""medcolor export: every C-STORE status checked, against real SCPs (Orthanc and dcmtk storescp in a
private network namespace, a pynetdicom SCP on loopback that refuses one instance)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from medcolor.cli.app import app
from medcolor.pacs import SC_FAMILY, Target, classify_status, export, find_instances
from tests.conftest import CT_DIR, ROOT, XRAY

runner = CliRunner()
MF = "1.2.840.10008.5.1.4.1.1.7.4"
SC = "1.2.840.10008.5.1.4.1.1.7"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sc_out(tmp_path_factory) -> Path:
    """6 single-frame SC (CT) + 1 multi-frame true-colour SC (X-ray) in one export folder."""
    out = tmp_path_factory.mktemp("export")
    assert invoke("run", CT_DIR, "-o", out / "ct", "--method", "lut").exit_code == 0
    assert invoke("run", XRAY, "-o", out / "xr", "--method", "lut", "--multiframe").exit_code == 0
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_classify_status() -> None:
    assert classify_status(0x0000)[0] == "stored"
    for code in (0xB000, 0xB007, 0xB006):
        assert classify_status(code)[0] == "warning"
    for code in (0xA700, 0xA7FF, 0xA900, 0xC000, 0xCFFF, 0x0122, 0x0110):
        assert classify_status(code)[0] == "failed"
    assert classify_status(None)[0] == "retry"


def test_target_parse() -> None:
    assert Target.parse("pacs.local:104:ORTHANC") == Target("pacs.local", 104, "ORTHANC")
    with pytest.raises(Exception):
        Target.parse("pacs:ORTHANC")


def test_find_instances(sc_out: Path) -> None:
    found = find_instances(sc_out)
    assert len(found) == 7
    assert sorted(f[1] for f in found).count(MF) == 1
    assert all(f[1] in SC_FAMILY for f in found)


def _pynetdicom_scp(statuses: dict[int, int]):
    """A Storage SCP on 127.0.0.1 that answers InstanceNumber -> status (default success)."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import MultiFrameTrueColorSecondaryCaptureImageStorage, SecondaryCaptureImageStorage

    received: list[str] = []

    def handle(event):
        ds = event.dataset
        received.append(str(ds.SOPInstanceUID))
        return statuses.get(int(ds.get("InstanceNumber", 0) or 0), 0x0000)

    ae = AE(ae_title="TESTSCP")
    ae.add_supported_context(SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_supported_context(MultiFrameTrueColorSecondaryCaptureImageStorage, ["1.2.840.10008.1.2.1"])
    port = _free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle)])
    return server, port, received


def test_export_refused_instance_is_failed(sc_out: Path) -> None:
    server, port, received = _pynetdicom_scp({2: 0xA700, 3: 0xB000})
    try:
        res = invoke("export", sc_out / "ct", "--host", "127.0.0.1", "--port", port, "--called-aet", "TESTSCP",
                     "--retries", "0")
    finally:
        server.shutdown()
    assert res.exit_code == 1, res.output
    assert "4 stored, 1 stored with warnings, 1 failed" in res.output
    assert "0xA700" in res.output and "0xB000" in res.output
    assert len(received) == 6


def test_export_all_stored_and_send_on_run(sc_out: Path, tmp_path: Path) -> None:
    server, port, received = _pynetdicom_scp({})
    try:
        res = invoke("export", sc_out, "--host", "127.0.0.1", "--port", port, "--called-aet", "TESTSCP")
        assert res.exit_code == 0, res.output
        assert "7 stored, 0 stored with warnings, 0 failed" in res.output
        res = invoke("run", XRAY, "-o", tmp_path / "o", "--method", "lut", "--send", f"127.0.0.1:{port}:TESTSCP")
        assert res.exit_code == 0, res.output
        assert "1 stored" in res.output
    finally:
        server.shutdown()
    assert len(received) == 8


def test_export_unreachable_fails_after_retries(sc_out: Path) -> None:
    t = Target("127.0.0.1", _free_port(), "NOBODY")
    result = export(find_instances(sc_out / "ct"), t, retries=1, backoff=0.05, timeout=2)
    assert result.failed and result.counts()["failed"] == 6
    assert "cannot connect" in result.instances[0].message


def test_export_permanent_reject_fails_at_once(sc_out: Path) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    ae = AE(ae_title="TESTSCP")
    ae.require_called_aet = True
    ae.add_supported_context(SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.1"])
    port = _free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    try:
        result = export(find_instances(sc_out / "ct"), Target("127.0.0.1", port, "WRONGAET"), retries=3, backoff=0.05)
    finally:
        server.shutdown()
    assert result.counts()["failed"] == 6
    assert result.associations == 1
    assert "rejected (permanent)" in result.instances[0].message


def _namespace_ok() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0


def _scenario(server: str, out: Path, work: Path, *extra: str) -> dict:
    cmd = (f"ip link set lo up && exec {sys.executable} {ROOT / 'tests' / '_pacs_scenario.py'} {server} "
           f"{out} {work} {' '.join(extra)}")
    r = subprocess.run(["unshare", "-n", "sh", "-c", cmd], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


needs_ns = pytest.mark.skipif(not _namespace_ok(), reason="needs unshare -n (root or user namespaces) and ip")


@needs_ns
@pytest.mark.skipif(not (shutil.which("Orthanc") or Path("/usr/sbin/Orthanc").exists()),
                    reason="Orthanc (Debian package orthanc) not installed")
def test_export_into_orthanc(sc_out: Path, tmp_path: Path) -> None:
    d = _scenario("orthanc", sc_out, tmp_path / "orthanc")
    assert d["export_rc"] == 0, d["export_stderr"]
    assert "7 stored, 0 stored with warnings, 0 failed" in d["export_stdout"]
    sent = {}
    for p, sop, _ in find_instances(sc_out):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        sent[str(ds.SOPInstanceUID)] = (sop, str(ds.SeriesInstanceUID))
    got = {i["sop_instance_uid"]: (i["sop_class_uid"], i["series_instance_uid"]) for i in d["instances"]}
    assert got == sent
    assert d["n_series"] == 2


@needs_ns
@pytest.mark.skipif(not Path("/usr/bin/storescp").exists(), reason="dcmtk storescp not installed")
def test_export_into_storescp_with_refused_sop_class(sc_out: Path, tmp_path: Path) -> None:
    d = _scenario("storescp", sc_out, tmp_path / "scp", "--reject-sop", MF)
    assert d["export_rc"] == 1
    assert "6 stored, 0 stored with warnings, 1 failed" in d["export_stdout"]
    assert "MF00001.dcm" in d["export_stderr"]
    assert len(d["instances"]) == 6 and all(i["sop_class_uid"] == SC for i in d["instances"])
