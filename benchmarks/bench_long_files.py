"""Long recordings: peak memory and time of embedding one 30-minute file, ranged vs whole-file decoding.

A backbone keeps a window of each clip (10 s for the offline backbone). Files over
``sept.features.extract.LONG_FILE_BYTES`` are hashed in chunks and only the kept span (plus 1 s
margins) is decoded and resampled; before, the whole file was read, decoded, mixed and resampled.
Each measurement is a fresh child process running :func:`sept.features.extract_features` (no
cache) on one file, 3 runs each; the figure is the peak RSS during the extraction above the RSS
before it (``VmHWM``, reset after loading the model; median of the 3 runs):

- a 10-s real clip (the baseline: model, pipeline, one window);
- a 30-minute recording (real us8k-mini clips end to end, 44.1 kHz stereo; WAV and FLAC), ranged;
- the same recording through the whole-file path (``LONG_FILE_BYTES`` raised above its size).

Checked: the ranged path's peak is less than 32 MiB above the 10-s clip's (the decoded recording
alone is 605 MiB of float32), and it gives the whole-file path's window (waveforms: max |diff|
<= 1e-6; features: cosine >= 0.9999, as YAMNet's uint8-quantised front end may move an input by
one step for a last-bit difference in the waveform).

    python benchmarks/bench_long_files.py [--minutes 30]

``--silent-hours 2`` instead measures the whole ``sept embed`` command (peak RSS of the process,
3 runs, median) on a 2-hour silent 44.1 kHz stereo FLAC (about 1 MiB on disk: far under
``LONG_FILE_BYTES``, but 2.4 GiB of float32 once decoded) against a 10-s clip; checked: within
64 MiB. Memory is bounded by the decoded length the header gives, not by the file's size.

    python benchmarks/bench_long_files.py --silent-hours 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib

RATE = 44100
RUNS = 3
TOLERANCE_MIB = 32.0
#: ``sept embed`` on a long silent file: peak RSS above the 10-s clip's (issue 17)
EMBED_TOLERANCE_MIB = 64.0


def child(path: str, whole: bool) -> int:
    """Embed one file; print the peak RSS (MiB), the seconds the extraction took and the feature."""
    import sept.features.extract as extract
    from sept.data.clips import Clip

    backbone = benchlib.backbone_by_name("offline")
    if whole:  # the whole-file path as before ranged decoding: read, decode and resample it all
        from sept.audio.io import load_audio

        extract.LONG_FILE_BYTES = 1 << 62
        extract.load_window = lambda p, rate, window, data=None: window.fit(load_audio(p, rate), rate)
    clip = Clip(path=Path(path), relpath=Path(path).name, classname="recording")
    before = benchlib.reset_peak_rss()
    t0 = time.perf_counter()
    fs = extract.extract_features(backbone, [clip], use_cache=False, progress=False)
    took = time.perf_counter() - t0
    if len(fs.clips) != 1:
        raise SystemExit(f"{path}: not embedded ({fs.skipped})")
    growth = benchlib.status_mib("VmHWM") - before
    info = {"peak": growth, "seconds": took, "feature": fs.features[0].tolist()}
    if whole:  # after the measurement: the two paths' windows, sample by sample
        from sept.audio.io import load_audio
        from sept.audio.ranged import load_window

        window, rate = backbone.window, backbone.sample_rate
        diff = load_window(path, rate, window) - window.fit(load_audio(path, rate), rate)
        info["window_diff"] = float(abs(diff).max())
    print(json.dumps(info))
    return 0


def recordings(minutes: float) -> dict[str, Path]:
    """A 10-s clip and a ``minutes``-long 44.1 kHz stereo recording (WAV and FLAC) of real clips."""
    import numpy as np
    import soundfile as sf

    from sept.audio.io import load_audio

    folder = benchlib.WORK / "long-files"
    folder.mkdir(parents=True, exist_ok=True)
    names = {"10-s clip": folder / "clip10s.wav", "wav": folder / f"rec{minutes:g}min.wav"}
    names["flac"] = names["wav"].with_suffix(".flac")
    if all(p.exists() for p in names.values()):
        return names
    need = round(minutes * 60 * RATE)
    parts, have = [], 0
    clips = benchlib.real_clips("us8k-mini")
    while have < need:
        wave = load_audio(clips[len(parts) % len(clips)].path, RATE)
        parts.append(wave)
        have += wave.shape[0]
    mono = np.concatenate(parts)[:need]
    stereo = np.stack([mono, np.roll(mono, RATE // 10)], axis=1) * 0.7
    for key in ("wav", "flac"):
        tmp = names[key].with_suffix(".tmp")
        sf.write(tmp, stereo, RATE, format=key.upper(), subtype="PCM_16")
        tmp.replace(names[key])
    mid = need // 2
    sf.write(names["10-s clip"], mono[mid - 5 * RATE : mid + 5 * RATE], RATE, subtype="PCM_16")
    return names


def measure(path: Path, whole: bool) -> list[dict]:
    runs = []
    for _ in range(RUNS):
        cmd = [sys.executable, __file__, "--child", str(path)] + (["--whole"] if whole else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs


def silent_recording(hours: float) -> dict[str, Path]:
    """A 10-s tone clip and an ``hours``-long silent 44.1 kHz stereo FLAC, each in its own folder
    with a metadata.csv for ``sept embed --data``."""
    import numpy as np
    import soundfile as sf

    folder = benchlib.WORK / "long-silence"
    out = {
        "10-s clip": folder / "clip" / "metadata.csv",
        "silent": folder / f"silent{hours:g}h" / "metadata.csv",
    }
    if all(p.exists() for p in out.values()):
        return out
    t = np.arange(10 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out["10-s clip"].parent.mkdir(parents=True, exist_ok=True)
    sf.write(out["10-s clip"].parent / "clip.flac", np.stack([tone, tone], axis=1), RATE, subtype="PCM_16")
    out["silent"].parent.mkdir(parents=True, exist_ok=True)
    tmp = out["silent"].parent / "silent.tmp.flac"
    block = np.zeros((60 * RATE, 2), dtype=np.int16)
    with sf.SoundFile(tmp, "w", samplerate=RATE, channels=2, format="FLAC", subtype="PCM_16") as f:
        for _ in range(round(hours * 60)):
            f.write(block)
    tmp.replace(out["silent"].parent / "silent.flac")
    for key, name in (("10-s clip", "clip.flac"), ("silent", "silent.flac")):
        out[key].write_text(f"path,classname\n{name},x\n")
    return out


def embed_peak(csv: Path) -> tuple[float, float]:
    """Peak RSS (MiB) and seconds of one ``sept embed`` process on ``csv`` (offline backbone, no cache)."""
    cmd = [
        sys.executable,
        "-m",
        "sept",
        "embed",
        "--data",
        str(csv),
        "--no-cache",
        "--no-progress",
        "--workers",
        "1",
    ]
    wall, peak, out = benchlib.run_child(cmd, env={"PYTHONPATH": str(benchlib.REPO / "src")})
    if "1 clips embedded" not in out and "1 clip embedded" not in out:
        raise SystemExit(f"sept embed did not embed {csv}:\n{out[-2000:]}")
    return peak, wall


def silent_main(hours: float) -> int:
    check = benchlib.Check(f"sept embed on a {hours:g}-hour silent FLAC vs a 10-s clip, offline backbone")
    files = silent_recording(hours)
    peaks: dict[str, float] = {}
    for key, csv in files.items():
        audio = next(p for p in csv.parent.iterdir() if p.suffix == ".flac")
        runs = [embed_peak(csv) for _ in range(RUNS)]
        peaks[key] = statistics.median(r[0] for r in runs)
        secs = statistics.median(r[1] for r in runs)
        print(
            f"{key}: {audio} ({audio.stat().st_size / 2**20:.2f} MiB on disk): peak RSS {peaks[key]:.1f} MiB, {secs:.1f} s"
        )
    check.ratio(
        f"{hours:g}-hour silent FLAC: peak RSS above the 10-s clip's",
        peaks["silent"] - peaks["10-s clip"],
        EMBED_TOLERANCE_MIB,
        at_least=False,
        unit=" MiB",
    )
    return check.exit_code()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--silent-hours",
        type=float,
        default=None,
        help="measure `sept embed` on a silent FLAC this long instead",
    )
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.whole)
    if args.silent_hours:
        return silent_main(args.silent_hours)

    import numpy as np

    check = benchlib.Check(f"long recordings ({args.minutes:g} min, 44.1 kHz stereo), offline backbone")
    files = recordings(args.minutes)
    for key, path in files.items():
        print(f"{key}: {path} ({path.stat().st_size / 2**20:.1f} MiB on disk)")
    short = measure(files["10-s clip"], whole=False)
    base = statistics.median(r["peak"] for r in short)
    print(f"10-s clip: peak +{base:.1f} MiB, {statistics.median(r['seconds'] for r in short):.2f} s")
    for fmt in ("wav", "flac"):
        ranged, whole = measure(files[fmt], whole=False), measure(files[fmt], whole=True)
        peak = {
            "ranged": statistics.median(r["peak"] for r in ranged),
            "whole": statistics.median(r["peak"] for r in whole),
        }
        secs = {
            "ranged": statistics.median(r["seconds"] for r in ranged),
            "whole": statistics.median(r["seconds"] for r in whole),
        }
        a, b = np.array(ranged[0]["feature"]), np.array(whole[0]["feature"])
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        wave_diff = whole[0]["window_diff"]
        print(
            f"{fmt}: ranged peak +{peak['ranged']:.1f} MiB, {secs['ranged']:.2f} s; "
            f"whole-file peak +{peak['whole']:.1f} MiB, {secs['whole']:.2f} s; "
            f"memory whole / ranged {peak['whole'] / max(peak['ranged'], 1e-9):.0f}x, time {secs['whole'] / secs['ranged']:.1f}x; "
            f"window max |diff| {wave_diff:.1e}, feature cosine {cosine:.7f} (max |diff| {np.abs(a - b).max():.1e})"
        )
        check.ratio(
            f"{fmt}: ranged peak above the 10-s clip's",
            peak["ranged"] - base,
            TOLERANCE_MIB,
            at_least=False,
            unit=" MiB",
        )
        check.ratio(f"{fmt}: window ranged vs whole, max |diff|", wave_diff, 1e-6, at_least=False, unit="")
        check.ratio(f"{fmt}: feature cosine ranged vs whole", cosine, 0.9999, at_least=True, unit="")
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
