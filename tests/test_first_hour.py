"""Issue 15, "a first hour without surprises": one test per numbered item, through the real CLI (Typer's
runner, or a subprocess where a process boundary matters). Item 5 (--modality, NIfTI HU) is issue 18's."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from medcolor import __version__
from medcolor.cli.app import app
from tests.conftest import BEEF, CT_DIR, XRAY

ROOT = Path(__file__).resolve().parents[1]
MEDCOLOR = [sys.executable, "-m", "medcolor"]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("error:", "interrupted:"))]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ 1. Ctrl-C tells the truth
def test_1_interrupt_while_writing_report_html_says_what_is_on_disk(tmp_path, monkeypatch):
    import medcolor.report_html

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(medcolor.report_html, "write_html_report", interrupted)
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, "-o", out, "--method", "lut")
    assert res.exit_code == 130
    lines = error_lines(res.output)
    assert len(lines) == 1, res.output
    assert "no partial output" not in res.output
    n = len(list(out.rglob("*.dcm")))
    assert n == 6 and (out / "report.json").is_file()
    assert f"holds {n} output files and report.json" in lines[0]
    assert "--overwrite" in lines[0]           # the advice works: a rerun without it is refused
    monkeypatch.undo()
    assert invoke("run", CT_DIR, "-o", out, "--method", "lut", "--overwrite").exit_code == 0


def test_1_interrupt_before_anything_written_says_nothing_was_written(tmp_path, monkeypatch):
    import medcolor.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(medcolor.pipeline, "colour_series", interrupted)
    res = invoke("run", CT_DIR, "-o", tmp_path / "out", "--method", "lut")
    assert res.exit_code == 130
    assert "nothing was written" in error_lines(res.output)[0]


def test_1_real_sigint_message_matches_the_disk(tmp_path):
    """A real Ctrl-C (SIGINT) to the process once its first output appears: whatever moment it lands, the
    message's count and report state are what is on disk."""
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen(MEDCOLOR + ["run", str(CT_DIR), "-o", str(out), "--method", "exemplar"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not list(out.rglob("*.dcm")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal landed")
    assert proc.returncode == 130, stderr
    line = error_lines(stderr)[-1]
    n = len([p for p in out.rglob("*") if p.is_file() and p.parent != out and not p.name.startswith(".")])
    assert f"holds {n} output file" in line or (n == 0 and "nothing was written" in line), (line, n)
    assert ("and report.json" in line) == (out / "report.json").is_file()
    assert "Traceback" not in stderr and not list(out.rglob("*.part"))


# ------------------------------------------------------------------ 2. a rerun never destroys results
def test_2_run_into_earlier_results_refuses_and_keeps_the_report(tmp_path):
    out = tmp_path / "out"
    assert invoke("run", CT_DIR, "-o", out, "--method", "lut").exit_code == 0
    before = (out / "report.json").read_bytes()
    res = invoke("run", CT_DIR, "-o", out, "--method", "lut")
    assert res.exit_code == 2
    lines = error_lines(res.output)
    assert len(lines) == 1 and "--overwrite" in lines[0] and "another -o" in lines[0]
    assert "report.json" in lines[0] and "S001_CT/IM00001.dcm" in lines[0] and "S001_CT/IM00002.dcm" in lines[0]
    assert (out / "report.json").read_bytes() == before
    assert invoke("run", CT_DIR, "-o", out, "--method", "lut", "--overwrite").exit_code == 0


# ------------------------------------------------------------------ 3. environment faults: one line, rc 1
@pytest.mark.parametrize("target,words", [("nohost.invalid:104:ORTHANC", "cannot resolve the host"),
                                          ("127.0.0.1:{port}:ORTHANC", "connection refused")])
def test_3_send_target_unreachable_fails_before_colouring(tmp_path, target, words):
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, "-o", out, "--method", "lut", "--send", target.format(port=free_port()))
    assert res.exit_code == 1
    lines = error_lines(res.output)
    assert len(lines) == 1 and words in lines[0], res.output
    assert "report it" not in res.output and "internal error" not in res.output
    assert not out.exists()                                     # checked before any colouring


def test_3_batch_send_unresolvable_fails_before_colouring(tmp_path):
    res = invoke("batch", CT_DIR, tmp_path / "out", "--method", "lut", "--send", "nohost.invalid:104:ORTHANC")
    assert res.exit_code == 1 and "cannot resolve the host" in res.output
    assert not (tmp_path / "out").exists()


def test_3_output_is_an_existing_file(tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me")
    res = invoke("run", CT_DIR, "-o", target, "--method", "lut")
    assert res.exit_code == 1
    assert "is a file, not a folder" in error_lines(res.output)[0] and "report it" not in res.output
    assert target.read_text() == "keep me"


def _can_mount_readonly(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o ro tmpfs {tmp_path}"],
                           capture_output=True)
    return probe.returncode == 0


def test_3_read_only_output_disk(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _can_mount_readonly(ro):
        pytest.skip("cannot mount a read-only tmpfs here (unshare -rm not permitted)")
    script = f"mount -t tmpfs -o ro tmpfs {ro} && exec {' '.join(MEDCOLOR)} run {CT_DIR} -o {ro}/out --method lut"
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "read-only" in res.stderr and "Traceback" not in res.stderr and "report it" not in res.stderr
    assert len(error_lines(res.stderr)) == 1


def test_3_a_send_that_fails_after_colouring_counts_as_failed(tmp_path):
    """A peer that accepts TCP but speaks no DICOM: the outputs are written, the send fails, rc is 1."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        out = tmp_path / "out"
        res = invoke("batch", CT_DIR, out, "--method", "lut", "--send", f"127.0.0.1:{port}:ORTHANC")
    finally:
        stop.set()
        thread.join()
        server.close()
    assert res.exit_code == 1
    assert re.search(r"export to .*: 0 stored, 0 stored with warnings, 6 failed", res.output), res.output
    assert len(list(out.rglob("*.dcm"))) == 6


# ------------------------------------------------------------------ 4. a bad --window: rc 2 before any work
@pytest.mark.parametrize("window", ["foo", "bones", "400", "0,40", "percentile:99,1", "lungs", "chest"])
def test_4_bad_window_refused_before_any_output(tmp_path, window):
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, "-o", out, "--window", window)
    assert res.exit_code == 2
    assert len(error_lines(res.output)) == 1 and res.output.count("\n") == 1, res.output
    assert "--window" in res.output
    assert not out.exists()
    res = invoke("batch", CT_DIR, tmp_path / "batch-out", "--window", window)
    assert res.exit_code == 2 and not (tmp_path / "batch-out").exists()


def test_4_near_misses_get_did_you_mean():
    assert "did you mean 'bone'?" in invoke("run", CT_DIR, "-o", "unused", "-w", "bones").output
    assert "did you mean 'lung'?" in invoke("run", CT_DIR, "-o", "unused", "-w", "lungs").output


# ------------------------------------------------------------------ 6. the summary fits 80 columns
def test_6_summary_fits_80_columns_and_names_the_source(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(XRAY, src / "chest_xray.dcm")
    shutil.copy(BEEF, src / "beef_marbled.jpg")
    res = subprocess.run(MEDCOLOR + ["run", str(src), "-o", str(tmp_path / "out"), "--method", "exemplar"],
                         capture_output=True, text=True, env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert res.returncode == 0, res.stderr
    table = res.stdout.split("files:")[0]
    assert max(len(line) for line in table.splitlines()) <= 80, res.stdout
    assert "chest_xray.dcm" in res.stdout and "…ef_marbled.jpg" in res.stdout   # cut at the start
    assert "exemplar" in res.stdout
    rows = [line for line in res.stdout.splitlines() if line.lstrip().startswith("S00")]
    assert len(rows) == 2                                      # one line per series, not wrapped
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {Path(s["source"]).name for s in report["series"]} == {"chest_xray.dcm", "beef_marbled.jpg"}


# ------------------------------------------------------------------ 7. global flags anywhere, --dry-run
def test_7_global_flags_after_the_subcommand(tmp_path):
    res = invoke("run", CT_DIR, "-o", tmp_path / "a", "--method", "lut", "-q")
    assert res.exit_code == 0 and "series" not in res.output and "files: 6 done" in res.output
    res = runner.invoke(app, ["run", str(CT_DIR), "-o", str(tmp_path / "b"), "--method", "nope", "--debug"])
    assert res.exit_code != 0 and "No such option" not in res.output
    assert "unknown colouriser" in str(res.exception)         # --debug: the exception itself, not one line
    for flag in ("-V", "--version"):
        assert invoke("run", flag).output.strip() == f"medcolor {__version__}"
    assert invoke("-vv", "run", CT_DIR, "-o", tmp_path / "c", "-m", "lut", "--dry-run").exit_code == 0


def test_7_dry_run_lists_series_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    res = invoke("run", CT_DIR, XRAY, "-o", out, "--method", "lut", "--format", "both", "--dry-run")
    assert res.exit_code == 0
    assert "S001_CT/" in res.output and "S002_DX/" in res.output
    assert "6 DICOM SC + 6 PNG" in res.output and "nothing was written" in res.output
    assert not out.exists()


# ------------------------------------------------------------------ 8. exit codes as the README says
def test_8_every_input_skipped_is_rc_0(tmp_path):
    src = tmp_path / "notes"
    src.mkdir()
    (src / "readme.txt").write_text("not an image")
    res = invoke("run", src, "-o", tmp_path / "out")
    assert res.exit_code == 0 and "0 failed" in res.output and "skipped" in res.output


def test_8_a_failed_input_is_rc_1(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x00")
    res = invoke("run", src, "-o", tmp_path / "out")
    assert res.exit_code == 1 and "1 failed" in res.output


# ------------------------------------------------------------------ 9. messages that do not mislead
def test_9_window_file_on_a_png_does_not_suggest_a_preset(tmp_path):
    res = invoke("run", BEEF, "-o", tmp_path / "out", "--window", "file")
    assert res.exit_code == 1
    assert "percentile" in res.output and "preset" not in res.output


def test_9_invalid_study_uid_names_the_attribute_and_suggests_deidentify(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for f in sorted(CT_DIR.iterdir())[:2]:
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ".."
        ds.save_as(src / f.name)
    res = subprocess.run(MEDCOLOR + ["batch", str(src), str(tmp_path / "out"), "--method", "lut"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "StudyInstanceUID" in res.stderr and "--deidentify" in res.stderr
    assert "medcolor bug" not in res.stderr + res.stdout
    assert "UserWarning" not in res.stderr and "Invalid value for VR UI" not in res.stderr
    ok = invoke("run", src, "-o", tmp_path / "deid", "--method", "lut", "--deidentify")
    assert ok.exit_code == 0


# ------------------------------------------------------------------ 10. help
def test_10_help_names_extras_and_methods():
    batch = invoke("batch", "--help").output
    assert "medcolor[scale]" in batch and "cyclegan" in batch
    assert re.search(r"Usage: \S+ batch \[OPTIONS\] IN_DIR OUT_DIR\n", batch)
    run = invoke("run", "--help").output
    assert re.search(r"Usage: \S+ run \[OPTIONS\] INPUTS\.\.\.\n", run) and "{" not in run.splitlines()[0]
    assert "<bool>" not in run and "<bool>" not in batch
    assert "medcolor[stow]" in invoke("export", "--help").output
    assert "report.html" in invoke("demo", "--help").output


# ------------------------------------------------------------------ 11. X-ray default window
def test_11_xray_default_window_is_the_tuned_percentile(tmp_path):
    res = invoke("run", XRAY, "-o", tmp_path / "out", "--method", "lut")
    assert res.exit_code == 0
    series = json.loads((tmp_path / "out" / "report.json").read_text())["series"][0]
    assert series["window"].startswith("percentile(5,99.9)")


# ------------------------------------------------------------------ README: every command works as written
def readme_commands() -> list[str]:
    """The `medcolor ...` commands of README.md's bash blocks, as written (comments dropped; from the
    install line only its `medcolor demo`)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if "&& medcolor " in line:
                line = "medcolor " + line.split("&& medcolor ", 1)[1]
            if line.startswith("medcolor "):
                commands.append(line)
    return commands


def test_readme_commands_each_use_their_own_output_folder():
    commands = readme_commands()
    assert len(commands) >= 7 and commands[0] == "medcolor demo"
    outputs = [re.search(r"-o (\S+)", c).group(1) for c in commands if re.search(r"-o (\S+)", c)]
    outputs += [c.split()[3] for c in commands if c.startswith("medcolor batch ")]
    assert len(outputs) == len(set(outputs)) >= 5


def test_readme_commands_work_as_written(tmp_path):
    (tmp_path / "sample_dicom").symlink_to(ROOT / "sample_dicom")
    for command in readme_commands():
        args = command.split()[1:]
        res = subprocess.run(MEDCOLOR + args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{command}: rc {res.returncode}\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr
        out = re.search(r"-o (\S+)", command)
        if out and "--dry-run" not in command:
            assert (tmp_path / out.group(1) / "report.json").is_file(), command
        if "--dry-run" in command:
            assert not (tmp_path / out.group(1)).exists()
    assert (tmp_path / "medcolor-demo" / "report.html").is_file()
    again = subprocess.run(MEDCOLOR + ["batch", "sample_dicom/", "out-batch/"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "0 series coloured" in again.stdout


def test_10_doctor_names_the_extra_of_a_missing_package():
    from medcolor.doctor import extras_of, versions

    extras = extras_of()
    assert extras.get("dicomweb-client") == "stow" and extras.get("pydicom") is None
    res = invoke("doctor")
    assert res.exit_code == 0
    for name, version in versions().items():
        if version.startswith("not installed") and extras.get(name):
            assert f"medcolor[{extras[name]}]" in res.output
