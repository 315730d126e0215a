"""Helpers of the reliability tests (tests/test_reliability_*.py); no tests here.

- :func:`bad_audio_corpus` writes every kind of bad or odd audio file the issue lists, each with
  what sept must do with it (decode it, or refuse it with a reason);
- :func:`validate_tree` opens every file a run left behind the way sept reads it back (``.npy``
  without pickle, JSON, safetensors) and lists the corrupt ones;
- :func:`run_sept` / :func:`kill_sept` run the ``sept`` command in a subprocess;
- :func:`comparable` drops the fields of a results file that legitimately differ between two
  identical runs (timings, the resumption point, absolute paths of the run root).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]

# ---- the bad-audio corpus -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A generated input: ``error`` is None when sept must decode it, else a substring of the reason."""

    name: str
    error: str | None
    what: str


def _tone(seconds: float, sr: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav_bytes(wave: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _patched(data: bytes, offset: int, value: int, size: int) -> bytes:
    out = bytearray(data)
    out[offset : offset + size] = value.to_bytes(size, "little")
    return bytes(out)


def bad_audio_corpus(folder: Path, sr: int = 16_000) -> list[Case]:
    """Write the corpus into ``folder`` (flat; odd names included); returns one :class:`Case` per file.

    A missing file is listed (``missing.wav``) but not written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    good = _wav_bytes(_tone(1.0, sr), sr)
    rng = np.random.default_rng(0)
    nan = _tone(1.0, sr)
    nan[100] = np.nan
    inf = _tone(1.0, sr)
    inf[200:210] = np.inf
    cases: list[tuple[Case, bytes | None]] = [
        (Case("empty.wav", "empty", "an empty file"), b""),
        (
            Case("zero_samples.wav", "zero samples", "a WAV with a header and no samples"),
            _wav_bytes(np.zeros(0, np.float32), sr),
        ),
        (Case("truncated_header.wav", "libsndfile", "a WAV cut inside its header"), good[:30]),
        (Case("truncated_data.wav", None, "a WAV cut in the middle of its samples"), good[: len(good) // 2]),
        (Case("random_bytes.wav", "libsndfile", "random bytes named .wav"), rng.bytes(4096)),
        (
            Case("riff_junk.wav", "libsndfile", "a RIFF header followed by junk"),
            b"RIFF\xff\xff\xff\x7fWAVEfmt " + rng.bytes(64),
        ),
        (Case("text.flac", "libsndfile", "a text file named .flac"), b"this is a text file, not FLAC\n" * 20),
        (Case("nan.wav", "NaN", "float samples with a NaN"), _wav_bytes(nan, sr, "FLOAT")),
        (Case("inf.wav", "NaN or infinite", "float samples with infinities"), _wav_bytes(inf, sr, "FLOAT")),
        (
            Case("rate_1hz.wav", "sample rate of 1 Hz", "a header claiming 1 Hz (would resample into GBs)"),
            _patched(good, 24, 1, 4),
        ),
        (Case("rate_0hz.wav", "libsndfile", "a header claiming 0 Hz"), _patched(good, 24, 0, 4)),
        (
            Case("rate_2ghz.wav", "sample rate of", "a header claiming 2 GHz"),
            _patched(good, 24, 2**31 - 1, 4),
        ),
        (Case("zero_channels.wav", "libsndfile", "a header claiming 0 channels"), _patched(good, 22, 0, 2)),
        (
            Case("huge_data_length.wav", None, "a header claiming 4 GB of data"),
            _patched(good, 40, 0xFFFFFFF0, 4),
        ),
        (
            Case("clipped.wav", None, "clipped int16 samples"),
            _wav_bytes(np.clip(_tone(1.0, sr) * 10, -1, 1), sr),
        ),
        (
            Case("over_range.wav", None, "float samples beyond +-1 (a hot mix, 40 dB over full scale)"),
            _wav_bytes(_tone(1.0, sr, amplitude=100.0), sr, "FLOAT"),
        ),
        (
            Case("absurd_amplitude.wav", "too large", "float samples of 1e38: garbage, not sound"),
            _wav_bytes(_tone(1.0, sr, amplitude=1e38), sr, "FLOAT"),
        ),
        (
            Case("far_over_range.wav", "too large", "float samples of 1e20"),
            _wav_bytes(_tone(1.0, sr, amplitude=1e20), sr, "FLOAT"),
        ),
        (
            Case("float_max.wav", "too large", "float samples at the float32 limit, resampled"),
            _wav_bytes(_tone(1.0, 44_100, amplitude=3.4e38), 44_100, "FLOAT"),
        ),
        (
            Case("eight_channels.wav", None, "8 channels"),
            _wav_bytes(np.repeat(_tone(1.0, sr)[:, None], 8, axis=1), sr),
        ),
        (Case("rate_1khz.wav", None, "a 1 kHz sample rate"), _wav_bytes(_tone(2.0, 1000, freq=100.0), 1000)),
        (Case("rate_192khz.flac", None, "a 192 kHz sample rate"), None),
        (Case("silence.wav", None, "pure digital silence"), _wav_bytes(np.zeros(sr, np.float32), sr)),
        (Case("one_sample.wav", None, "a single sample"), _wav_bytes(np.array([0.3], np.float32), sr)),
        (Case("bruit de fond é ü 日本.wav", None, "a non-ASCII name with spaces"), good),
        (Case("name, with comma.ogg", None, "a comma in the name (quoted in the CSV), Ogg Vorbis"), None),
        (Case("missing.wav", "cannot read the file", "a listed file that does not exist"), None),
    ]
    out = []
    for case, data in cases:
        path = folder / case.name
        if case.name == "rate_192khz.flac":
            sf.write(path, _tone(1.0, 192_000), 192_000, subtype="PCM_24")
        elif case.name.endswith(".ogg"):
            sf.write(path, _tone(1.0, sr), sr, format="OGG", subtype="VORBIS")
        elif data is not None:
            path.write_bytes(data)
        out.append(case)
    return out


def write_csv(
    path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("path", "classname")
) -> Path:
    """A CSV written with the csv module (names with commas or quotes are quoted)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---- validating what a run left behind --------------------------------------------------------


@dataclass
class TreeReport:
    """Files opened by :func:`validate_tree`: ``corrupt`` lists ``path: reason``; ``leftovers`` the
    temporary files of interrupted atomic writes (never read by sept, so not corrupt)."""

    checked: int
    corrupt: list[str]
    leftovers: list[str]


def _check_file(path: Path) -> str | None:
    """Why ``path`` is corrupt, or None; each type is opened as sept opens it."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 1 or arr.dtype != np.float32 or not np.isfinite(arr).all():
                return f"unexpected array {arr.dtype} {arr.shape}"
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                handle.metadata()
                for key in handle.keys():  # noqa: SIM118 - not a dict
                    handle.get_tensor(key)
        elif suffix in (".csv", ".txt", ".log", ".md", ".yaml", ".yml", ".jsonl"):
            text = path.read_text(encoding="utf-8")
            if suffix == ".jsonl":
                for line in text.splitlines():
                    if line.strip():
                        json.loads(line)
        else:
            path.read_bytes()
    except Exception as exc:  # any failure to read back is corruption
        return f"{type(exc).__name__}: {exc}"
    return None


def validate_tree(*roots: Path) -> TreeReport:
    """Open every file under ``roots`` (see :func:`_check_file`)."""
    checked, corrupt, leftovers = 0, [], []
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                leftovers.append(str(path))
                continue
            checked += 1
            reason = _check_file(path)
            if reason is not None:
                corrupt.append(f"{path}: {reason}")
    return TreeReport(checked, corrupt, leftovers)


# ---- the sept command in a subprocess -----------------------------------------------------------


def sept_env(**extra: str) -> dict[str, str]:
    """The environment of a ``sept`` subprocess: this interpreter's, offline, quiet, repo importable."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    env.update(extra)
    return env


def sept_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sept", *args]


def run_sept(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``sept ARGS`` to completion; returns the completed process (text output)."""
    return subprocess.run(
        sept_cmd(*args), env=env or sept_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def kill_sept(
    args: list[str],
    when: Callable[[float], bool],
    env: dict[str, str] | None = None,
    timeout: float = 300,
    poll: float = 0.01,
    group: bool = False,
) -> tuple[bool, float]:
    """Start ``sept ARGS`` and SIGKILL it as soon as ``when(elapsed_seconds)`` holds.

    ``group``: kill its whole process group (a sweep's worker processes too, as when the machine
    or the job is stopped). Returns (killed, elapsed): ``killed`` is False when it finished first.
    """
    proc = subprocess.Popen(
        sept_cmd(*args),
        env=env or sept_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=group,
    )

    def kill() -> None:
        if group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    start = time.monotonic()
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                raise TimeoutError(f"sept {' '.join(args)} ran over {timeout} s")
            if when(elapsed):
                kill()
                return True, elapsed
            time.sleep(poll)
        return False, time.monotonic() - start
    finally:
        if proc.poll() is None:
            kill()
        elif group:  # workers outliving their parent
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def after_event(root: Path, pattern: str, delay: float = 0.0, count: int = 1) -> Callable[[float], bool]:
    """A kill condition for :func:`kill_sept`: true ``delay`` seconds after ``count`` files matching
    ``pattern`` under ``root`` were written since this call (by the process being watched; the
    previous one is dead by then). Progress events, unlike fixed times, hold on any machine speed."""
    start = time.time() - 0.02  # file times come from the kernel's coarse clock
    seen: list[float] = []

    def written() -> int:
        n = 0
        for path in root.rglob(pattern) if root.exists() else ():
            with contextlib.suppress(FileNotFoundError):  # a checkpoint removed meanwhile
                n += path.stat().st_mtime >= start
        return n

    def when(elapsed: float) -> bool:
        if not seen and written() >= count:
            seen.append(elapsed)
        return bool(seen) and elapsed >= seen[0] + delay

    return when


# ---- comparing results ---------------------------------------------------------------------------

#: keys whose values differ between two identical runs (wall-clock times, where training resumed)
VOLATILE_KEYS = frozenset({"seconds", "resumed_from_epoch"})


def comparable(obj: Any, run_root: Path | None = None) -> Any:
    """``obj`` without :data:`VOLATILE_KEYS`, and with ``run_root`` replaced by ``<root>`` in strings."""
    if isinstance(obj, dict):
        return {k: comparable(v, run_root) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [comparable(v, run_root) for v in obj]
    if isinstance(obj, str) and run_root is not None:
        return obj.replace(str(run_root), "<root>")
    return obj


def differences(a: Any, b: Any, rel: float = 1e-4, abs_: float = 1e-6, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ: structure, strings and integers exactly, floats beyond
    ``rel`` / ``abs_`` (accuracies are multiples of 100 / N, so a changed prediction shows)."""
    import math

    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(a.keys() ^ b.keys())} differ"]
        return [d for k in a for d in differences(a[k], b[k], rel, abs_, f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, rel, abs_, f"{where}[{i}]")
        ]
    if isinstance(a, float) or isinstance(b, float):
        ok = (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
        )
        return [] if ok else [f"{where}: {a!r} != {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} != {b!r}"]


def safetensors_diff(a: Path, b: Path) -> float:
    """Largest absolute difference between the tensors of two files (inf if the names or shapes differ)."""
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    if ta.keys() != tb.keys() or any(ta[k].shape != tb[k].shape for k in ta):
        return float("inf")
    return max((float((ta[k] - tb[k]).abs().max()) for k in ta if ta[k].numel()), default=0.0)


# ---- shared slow-test assets (built once per session, reused across test modules) --------------


@dataclass(frozen=True)
class Assets:
    """A tiny CLAP folder, a tone dataset (5 classes x 8 clips, 2 folds), a larger one to embed
    (5 x 32 clips: long enough that kills land mid-way), and uninterrupted reference outputs of
    :func:`embed_args` and :func:`run_args`."""

    clap: Path
    data: Path
    embed_data: Path
    ref_cache: Path
    ref_run: Path


def embed_args(assets: Assets, cache: Path) -> list[str]:
    return [
        "embed", "--data", str(assets.embed_data), "--backbone", "clap", "--backbone-opt", f"model={assets.clap}",
        "--cache-dir", str(cache), "--batch-size", "3", "--workers", "1", "--no-progress",
    ]  # fmt: skip


def run_args(
    assets: Assets, root: Path, methods: tuple[str, ...] = ("coop",), seeds: tuple[str, ...] = ("0", "1")
) -> list[str]:
    """base2new on fold 2, 3 shots, 60 short epochs (~0.3 s of training per run, so that kills
    can land in it); run root ``root/runs``, feature cache ``root/cache``."""
    return [
        "run", "--protocol", "base2new", "--method", *methods, "--dataset", str(assets.data), "--fold", "2",
        "--seeds", *seeds, "--shots", "3", "--run-root", str(root / "runs"), "--cache-dir", str(root / "cache"),
        "--backbone", "clap", "--backbone-opt", f"model={assets.clap}", "--no-progress", "--batch-size", "4",
        "--set", "optim.epochs=60", "--set", "optim.batch_size=4", "--set", "optim.warmup_epochs=0",
    ]  # fmt: skip


def shared_assets(base: Path) -> Assets:
    """Build (once: a marker file records completion) the assets under ``base``."""
    from tests.test_methods_support import make_tone_dataset
    from tests.tiny_models import save_tiny_clap

    assets = Assets(
        base / "clap",
        base / "data" / "metadata.csv",
        base / "embed-data" / "metadata.csv",
        base / "ref-cache",
        base / "ref-run",
    )
    if (base / "done").exists():
        return assets
    save_tiny_clap(assets.clap)
    make_tone_dataset(assets.data.parent, per_class=8, folds=2)
    make_tone_dataset(assets.embed_data.parent, per_class=32, folds=2)
    for args in (embed_args(assets, assets.ref_cache), run_args(assets, assets.ref_run, ("coop", "palm"))):
        done = run_sept(args)
        if done.returncode != 0:
            raise RuntimeError(f"reference run failed: {done.stderr[-2000:]}")
    (base / "done").write_text("ok\n")
    return assets
