"""Helpers shared by the benchmark scripts (not part of the library, not run by the unit tests).

- :func:`full_clap_folder`: a full-size, randomly initialised ``transformers.ClapModel(ClapConfig())``
  (153 M parameters: HTSAT audio tower, RoBERTa-base text tower), its default ``ClapFeatureExtractor``
  (48 kHz, 10 s) and a byte-level BPE tokenizer, saved with ``save_pretrained`` so the ``clap``
  backbone loads it exactly as it loads a hub checkpoint. Random weights cost the same as trained
  ones, so timings are realistic.
- :func:`real_clips`: real recordings from ``../shared/data`` (or ``$SEPT_BENCH_DATA``).
- :class:`Check`: prints "name: measured vs target" lines and the exit status of a benchmark.
- :func:`machine`: CPU model, cores, torch threads: printed at the top of every benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# as the sept CLI does (sept.cli.main): idle OpenMP threads sleep instead of spinning; it must be
# set before torch is imported, and every benchmark imports this module first
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parent.parent
#: where built models, generated audio and caches live between runs (override: $SEPT_BENCH_DIR)
WORK = Path(os.environ.get("SEPT_BENCH_DIR", Path.home() / ".cache" / "sept-bench"))
DATA = Path(os.environ.get("SEPT_BENCH_DATA", REPO.parent / "shared" / "data"))
_CLAP_MARKER = "sept-bench-full-clap.json"


# ---- machine ---------------------------------------------------------------------------------------
def machine() -> str:
    """One line: CPU model, logical cores, torch version and intra-op threads, GPU if any."""
    import torch

    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {load}"
    )


# ---- memory -----------------------------------------------------------------------------------------
def status_mib(key: str) -> float:
    """A line of /proc/self/status in MiB (VmRSS: now, VmHWM: the peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    raise SystemExit(f"no {key} in /proc/self/status")


def reset_peak_rss() -> float:
    """Free what can be freed (garbage, malloc's unused pages), then reset the process's peak RSS
    (VmHWM) to its current RSS; returns that RSS in MiB."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return status_mib("VmRSS")


# ---- results -----------------------------------------------------------------------------------------
@dataclass
class Check:
    """Collects target checks; :meth:`exit_code` is 1 when any missed."""

    title: str
    failed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        print(f"== {self.title}")
        print(f"machine: {machine()}")
        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")

    def ratio(self, name: str, value: float, target: float, *, at_least: bool, unit: str = "x") -> bool:
        """Print ``name: value (target >= / <= target) PASS|MISS`` and record a miss."""
        ok = value >= target if at_least else value <= target
        sign = ">=" if at_least else "<="
        shown = f"{value:.3f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2e}"
        print(f"RESULT {name}: {shown}{unit} (target {sign} {target:g}{unit}) {'PASS' if ok else 'MISS'}")
        if not ok:
            self.failed.append(name)
        return ok

    def flag(self, name: str, ok: bool, detail: str) -> bool:
        print(f"RESULT {name}: {detail} {'PASS' if ok else 'MISS'}")
        if not ok:
            self.failed.append(name)
        return ok

    def exit_code(self) -> int:
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if self.failed:
            print(f"missed targets: {', '.join(self.failed)}")
            return 1
        print("all targets met")
        return 0


def timed(fn: Callable[[], object], repeat: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# ---- data --------------------------------------------------------------------------------------------
def real_clips(name: str = "us8k-mini") -> list:  # -> list[Clip]
    """Clips of a set in ``DATA`` (``us8k-mini``: 786 urban sounds, ``fsdd``: 3,000 spoken digits)."""
    from sept.data.clips import load_clips

    folder = DATA / name
    if not (folder / "metadata.csv").exists():
        raise SystemExit(f"real audio not found: {folder}/metadata.csv (set SEPT_BENCH_DATA)")
    return load_clips(folder / "metadata.csv", folder)


# ---- a full-size random CLAP -----------------------------------------------------------------------------
def _tokenizer_corpus() -> list[str]:
    """English text to learn BPE merges from: every shipped neighbour phrase, class name and template."""
    from sept.methods.sept_margins import DEFAULT_MARGIN_TEMPLATES

    lines: list[str] = []
    folder = REPO / "src" / "sept" / "resources" / "neighbors"
    for path in sorted(folder.glob("*.json")):
        classes = json.loads(path.read_text(encoding="utf-8"))["classes"]
        for name, phrases in classes.items():
            readable = name.replace("_", " ")
            lines.append(readable)
            lines += list(phrases)
            lines += [t.format(readable) for t in DEFAULT_MARGIN_TEMPLATES]
            lines += [t.format(p) for t in DEFAULT_MARGIN_TEMPLATES for p in phrases[:2]]
    return lines


def roberta_like_tokenizer(max_length: int = 512):  # -> transformers.RobertaTokenizer
    """A byte-level BPE tokenizer with RoBERTa's special tokens, trained offline on :func:`_tokenizer_corpus`.

    Common words of the prompts and phrases become single tokens, as in RoBERTa's 50k vocabulary,
    so prompt lengths (what the text tower's cost depends on) are realistic.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _tokenizer_corpus(),
        vocab_size=8000,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    model = json.loads(bpe._tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return RobertaTokenizer(vocab=model["vocab"], merges=merges, model_max_length=max_length)


def full_clap_folder(work: Path = WORK) -> Path:
    """``<work>/clap-full``: built once (about 10 s, 0.6 GB), reused afterwards."""
    folder = work / "clap-full"
    if (folder / _CLAP_MARKER).exists():
        return folder
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ClapModel(ClapConfig())
    model.save_pretrained(folder)
    ClapFeatureExtractor().save_pretrained(folder)
    roberta_like_tokenizer().save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    (folder / _CLAP_MARKER).write_text(json.dumps({"parameters": params}))
    print(
        f"built a full-size random CLAP ({params / 1e6:.0f} M parameters) in {folder} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return folder


def clap_backbone(**options):  # -> sept.backbones.clap.ClapBackbone
    from sept.backbones.registry import create_backbone

    return create_backbone("clap", model=str(full_clap_folder()), **options)


def offline_backbone():  # -> Backbone
    from sept.backbones.registry import DEFAULT_BACKBONE, create_backbone

    return create_backbone(DEFAULT_BACKBONE)


def backbone_by_name(name: str, device: str | None = None):
    """A backbone for a benchmark, by name.

    ``"clap"``: the full-size random CLAP (on ``device``: default CUDA if any); ``"offline"`` or
    ``"yamnet-minilm"``: the default backbone (CPU only); a converted family (``pengi``,
    ``msclap-2022``, ``msclap-2023``): its full-size random folder, built once by
    ``bench_backbone_step.full_folder``; any other registered name: ``create_backbone(name)`` with
    its registered defaults (real weights, which must be available).
    """
    from sept.backbones.registry import DEFAULT_BACKBONE, create_backbone

    options: dict = {"device": device} if device else {}
    if name == "clap":
        return clap_backbone(**options)
    if name in ("offline", DEFAULT_BACKBONE):
        if device not in (None, "cpu"):
            raise SystemExit("the offline backbone runs on the CPU only; use --backbone clap for a GPU")
        return offline_backbone()
    from sept.backbones.convert import convertible_families

    if name in convertible_families():
        import bench_backbone_step

        return create_backbone(name, model=str(bench_backbone_step.full_folder(name)), **options)
    try:
        return create_backbone(name, **options)
    except Exception as exc:
        raise SystemExit(f"cannot load backbone {name!r}: {exc}") from exc


def add_device_args(parser) -> None:
    """``--device`` (clap only) and ``--precision`` (autocast of training and inference steps)."""
    parser.add_argument("--device", default=None, help="clap backbone: cpu or cuda (default: cuda if any)")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="as the run config's precision: auto = bf16/fp16 autocast on CUDA, fp32 on the CPU",
    )


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS in MiB of the child, its stdout + stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-4000:]}")
    return wall, usage.ru_maxrss / 1024.0, out


def distinct_clips(n: int, source: str = "us8k-mini") -> Path:
    """A CSV (path,classname) of ``n`` real clips with pairwise different bytes: the recordings of
    ``source``, then copies at gains of 1 - 0.001 k (k = 1, 2, ...); a file whose bytes equal an
    earlier one's (a duplicate recording, a silent clip whose copies stay silent) is left out, so no
    feature-cache entry is shared. Files go to ``<WORK>/audio-<source>/`` (shared by every n); the
    table to ``distinct-<n>.csv`` there."""
    import csv

    import numpy as np
    import soundfile as sf

    from sept.utils.hashing import hash_bytes

    folder = WORK / f"audio-{source}"
    table = folder / f"distinct-{n}.csv"
    if table.exists():
        return table
    originals = real_clips(source)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    i = 0
    while len(rows) < n:
        clip, copy = originals[i % len(originals)], i // len(originals)
        i += 1
        if copy > 100:
            raise SystemExit(f"cannot make {n} distinct clips from {source}")
        rel = f"audio/{copy:03d}/{Path(clip.path).name}"
        out = folder / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():
            if copy == 0:
                out.write_bytes(Path(clip.path).read_bytes())
            else:
                wave, rate = sf.read(clip.path, dtype="float32")
                sf.write(out, np.clip(wave * (1.0 - 0.001 * copy), -1, 1), rate, format="FLAC")
        key = hash_bytes(out.read_bytes())
        if key not in seen:
            seen.add(key)
            rows.append((rel, clip.classname))
    tmp = table.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "classname"])
        writer.writerows(rows)
    tmp.replace(table)
    print(f"listed {n} distinct clips in {table} ({time.perf_counter() - t0:.0f} s)")
    return table
