"""Fuzz the reader: ``medcolor.io.scan`` + ``read_slice`` on mutated real DICOM files.

    nice -n 19 python benchmarks/fuzz_reader.py --seconds 180            # mutation fuzzer (default)
    nice -n 19 python benchmarks/fuzz_reader.py --runs 1000000 --seed 1
    nice -n 19 python benchmarks/fuzz_reader.py --engine atheris --seconds 1800   # coverage-guided (pip install atheris)

Seeds: every small file of tests/data/bad/ (generated from sample_dicom and pydicom's test files) plus
sample CT / MR / RLE / JPEG 2000 / deflate / big-endian files from pydicom's test data. Mutations: byte
flips, random bytes, truncation, element length-field corruption (including 0xFFFFFFFF and huge values),
value corruption of the Image Pixel attributes (Rows, Columns, Bits*, NumberOfFrames, ...), insertion of
element headers (sequences, pixel data, odd tags), chunk duplication and deletion, splicing two seeds.

Each input is written to a temporary file and given to ``scan()``; every slice found is read with
``read_slice()``. Counted as a finding (the input is saved to --artifacts):
  - uncaught: any exception other than MedcolorError (SkipInput is one) escaping scan/read_slice;
  - catch-all: a file the scan reports as "unreadable (...)", i.e. an exception that only the scan's
    last-resort handler caught (a reader bug hidden from the user as a vague message);
  - hang: one input taking longer than --timeout seconds;
  - multi-line: a reason with a newline.
Prints the counts at the end (and every --every seconds). Exit status 1 when anything was found.
"""
from __future__ import annotations

import argparse
import atexit
import collections
import hashlib
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pydicom  # noqa: E402

from medcolor.errors import MedcolorError  # noqa: E402
from medcolor.io import read_slice, scan  # noqa: E402

PYD = Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"
SEED_LIMIT = 64 * 1024
PYDICOM_SEEDS = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                 "MR_small_implicit.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "JPEG2000.dcm", "image_dfl.dcm", "ExplVR_BigEndNoMeta.dcm", "no_meta.dcm", "JPEG-lossy.dcm",
                 "emri_small.dcm", "SC_rgb_small_odd.dcm", "liver_1frame.dcm", "rtdose_1frame.dcm"]
IMAGE_PIXEL_TAGS = [(0x0028, e) for e in (0x0002, 0x0004, 0x0008, 0x0010, 0x0011, 0x0100, 0x0101, 0x0102,
                                          0x0103, 0x1050, 0x1051, 0x1052, 0x1053, 0x2110)] + \
                   [(0x0002, 0x0010), (0x0008, 0x0016), (0x0020, 0x000E), (0x0020, 0x0032), (0x0020, 0x0037)]
INSERTS = [b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff", b"\xfe\xff\x00\xe0\xff\xff\xff\xff",
           b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",
           b"\xe0\x7f\x10\x00OW\x00\x00\xff\xff\xff\xff", b"\xe0\x7f\x10\x00OB\x00\x00\x10\x00\x00\x00",
           b"\x28\x00\x10\x00US\x02\x00\xff\xff", b"\x28\x00\x08\x00IS\x04\x009999",
           b"\x02\x00\x10\x00UI\x14\x001.2.840.10008.1.2.5\x00", b"\x09\x00\x10\x00LO\x04\x00ABCD",
           b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 192", b"\x28\x00\x30\x10DS\x02\x000 "]


class Timeout(Exception):
    pass


def _alarm(_signum, _frame):  # noqa: ANN001
    raise Timeout()


def load_seeds() -> list[bytes]:
    seeds: list[bytes] = []
    bad = ROOT / "tests" / "data" / "bad"
    for p in sorted(bad.rglob("*")):
        if p.is_file() and p.suffix != ".json" and p.name != "README.md" and 0 < p.stat().st_size <= SEED_LIMIT:
            seeds.append(p.read_bytes())
    for name in PYDICOM_SEEDS:
        p = PYD / name
        if p.is_file() and p.stat().st_size <= 4 * SEED_LIMIT:
            seeds.append(p.read_bytes())
    if not seeds:
        sys.exit("no seed files: run python tests/make_bad_corpus.py first")
    return seeds


def _element_offsets(data: bytes, tags) -> list[int]:  # noqa: ANN001
    out = []
    for g, e in tags:
        for endian in "<>":
            needle = struct.pack(endian + "HH", g, e)
            i = data.find(needle)
            if i >= 0:
                out.append(i)
    return out


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        if not buf:
            buf = bytearray(rng.choice(seeds))
        op = rng.randrange(10)
        n = len(buf)
        if op == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # random bytes
            i = rng.randrange(n)
            buf[i:i + rng.randint(1, 16)] = rng.randbytes(rng.randint(1, 16))
        elif op == 2:  # truncate
            del buf[rng.randrange(n):]
        elif op in (3, 4):  # corrupt a length field of an element (explicit VR 16/32-bit or implicit)
            offs = _element_offsets(bytes(buf), IMAGE_PIXEL_TAGS + [(0x7FE0, 0x0010), (0xFFFE, 0xE000)])
            i = rng.choice(offs) if offs and rng.random() < 0.7 else rng.randrange(max(1, n - 8))
            val = rng.choice([0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32), n, n * 2])
            if rng.random() < 0.5 and i + 8 <= n:
                buf[i + 6:i + 8] = struct.pack("<H", val & 0xFFFF)
            elif i + 12 <= n:
                buf[i + 8:i + 12] = struct.pack("<L", val & 0xFFFFFFFF)
            elif i + 8 <= n:
                buf[i + 4:i + 8] = struct.pack("<L", val & 0xFFFFFFFF)
        elif op == 5:  # corrupt the value of an Image Pixel attribute
            offs = _element_offsets(bytes(buf), IMAGE_PIXEL_TAGS)
            if offs:
                i = rng.choice(offs) + 8
                vals = [b"\x00\x00", b"\xff\xff", b"\x01\x00", b"\x00\x80", b"\x11\x00", b"\x40\x00",
                        b"-1", b"0 ", b"1e309\x00", b"\\\\", b"9" * 8]
                v = rng.choice(vals)
                buf[i:i + len(v)] = v
        elif op == 6:  # insert an element header
            i = rng.randrange(n + 1)
            buf[i:i] = rng.choice(INSERTS)
        elif op == 7:  # duplicate a chunk
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 256))
            k = rng.randrange(n + 1)
            buf[k:k] = buf[i:j]
        elif op == 8:  # delete a chunk
            i = rng.randrange(n)
            del buf[i:i + rng.randint(1, 64)]
        else:  # splice with another seed
            other = rng.choice(seeds)
            i, k = rng.randrange(n), rng.randrange(len(other))
            buf = buf[:i] + bytearray(other[k:k + rng.randint(1, 4096)])
    return bytes(buf)


class Fuzzer:
    def __init__(self, artifacts: Path, timeout: float) -> None:
        self.artifacts = artifacts
        self.timeout = timeout
        self.tmp = Path(tempfile.mkdtemp(prefix="medcolor-fuzz-"))
        self.path = self.tmp / "input.dcm"
        self.runs = 0
        self.slices_read = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.findings: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, str] = {}
        self.t0 = time.monotonic()

    def record(self, kind: str, data: bytes, detail: str) -> None:
        key = f"{kind}: {detail.splitlines()[-1][:160] if detail else ''}"
        self.findings[key] += 1
        if key not in self.examples:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            name = f"{kind}-{hashlib.sha1(data).hexdigest()[:12]}.dcm"
            (self.artifacts / name).write_bytes(data)
            (self.artifacts / (name + ".txt")).write_text(detail)
            self.examples[key] = name

    every = 0.0  # > 0: print the full summary every so many seconds (atheris mode)
    _last = 0.0

    def one(self, data: bytes) -> None:
        self.runs += 1
        if self.every and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            print(self.summary(), flush=True)
        self.path.write_bytes(data)
        stage = "scan"
        if self.timeout:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = scan([self.path])
                for o in found.outcomes:
                    self.outcomes[o.status] += 1
                    if o.reason.startswith("unreadable ("):
                        self.record("catch-all", data, o.reason)
                    if "\n" in o.reason:
                        self.record("multi-line", data, o.reason)
                stage = "read_slice"
                for s in found.series:
                    for ref in s.slices[:4]:
                        try:
                            arr = read_slice(ref, s)
                            self.slices_read += 1
                            if arr.shape != (s.rows, s.columns):
                                self.record("shape", data, f"{arr.shape} != {(s.rows, s.columns)}")
                            self.outcomes["slice ok"] += 1
                        except MedcolorError as exc:
                            self.outcomes["slice error"] += 1
                            if "\n" in str(exc):
                                self.record("multi-line", data, str(exc))
        except MedcolorError:
            self.outcomes["MedcolorError from " + stage] += 1
        except Timeout:
            self.record("hang", data, f"more than {self.timeout:g} s in {stage}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - MemoryError, RecursionError and friends count too
            self.record("uncaught", data, f"in {stage}: " + traceback.format_exc())
        finally:
            if self.timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)

    def summary(self) -> str:
        dt = time.monotonic() - self.t0
        lines = [f"inputs tried: {self.runs} in {dt:.0f} s ({self.runs / max(dt, 1e-9):.0f}/s); "
                 f"slices decoded: {self.slices_read}",
                 "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
                 f"uncaught exceptions: {sum(v for k, v in self.findings.items() if k.startswith('uncaught'))}; "
                 f"catch-all: {sum(v for k, v in self.findings.items() if k.startswith('catch-all'))}; "
                 f"hangs: {sum(v for k, v in self.findings.items() if k.startswith('hang'))}; "
                 f"other findings: {sum(v for k, v in self.findings.items() if k.split(':')[0] in ('shape', 'multi-line'))}"]
        for k, v in self.findings.most_common(20):
            lines.append(f"  {v:7d}  {k}  [{self.examples[k]}]")
        if self.findings:
            lines.append(f"inputs saved in {self.artifacts}")
        return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=0, help="stop after this many seconds")
    ap.add_argument("--runs", type=int, default=0, help="stop after this many inputs")
    ap.add_argument("--seed", type=int, default=0, help="random seed (mutation engine)")
    ap.add_argument("--engine", choices=("random", "atheris"), default="random")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it counts as a hang")
    ap.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"))
    ap.add_argument("--every", type=float, default=60.0, help="print progress every N seconds")
    ap.add_argument("--memory-gb", type=float, default=3.0, help="address-space limit (a huge allocation then "
                                                                    "fails as MemoryError instead of OOM)")
    args, rest = ap.parse_known_args()
    if not args.seconds and not args.runs:
        args.seconds = 60
    if args.memory_gb:
        lim = int(args.memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    signal.signal(signal.SIGALRM, _alarm)
    seeds = load_seeds()
    fz = Fuzzer(args.artifacts, args.timeout)
    print(f"{len(seeds)} seeds, engine {args.engine}", flush=True)
    atexit.register(lambda: print(fz.summary(), flush=True))

    if args.engine == "atheris":
        import atheris

        seed_dir = fz.tmp / "seeds"
        seed_dir.mkdir()
        for i, s in enumerate(seeds):
            (seed_dir / f"{i:04d}.dcm").write_bytes(s)
        libfuzzer = [sys.argv[0], str(seed_dir), f"-max_len={SEED_LIMIT}", "-rss_limit_mb=0",
                     f"-timeout={int(args.timeout) + 5}"]
        if args.seconds:
            libfuzzer.append(f"-max_total_time={int(args.seconds)}")
        if args.runs:
            libfuzzer.append(f"-runs={args.runs}")
        atheris.instrument_all()  # Python coverage of pydicom + medcolor.io guides the mutations
        fz.every = args.every  # libFuzzer leaves with os._exit: print the summary as we go
        atheris.Setup(libfuzzer + rest, fz.one)
        atheris.Fuzz()
        return 0

    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds if args.seconds else float("inf")
    next_report = time.monotonic() + args.every
    while time.monotonic() < deadline and (not args.runs or fz.runs < args.runs):
        fz.one(mutate(rng.choice(seeds), rng, seeds))
        if time.monotonic() >= next_report:
            print(fz.summary().splitlines()[0], flush=True)
            next_report += args.every
    return 1 if fz.findings else 0


if __name__ == "__main__":
    sys.exit(main())
