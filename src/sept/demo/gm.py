"""A small labelled instrument dataset rendered from General MIDI with fluidsynth.

Ten classes named like NSynth's instrument families (bass, brass, flute, guitar, keyboard,
mallet, organ, reed, string, vocal), so the shipped ``NS-Instruments`` neighbour phrases cover
them. Each clip is a short phrase (one to four notes, sometimes a chord) of one of several General
MIDI programs of its family, with random pitches in the instrument's range, velocities and
durations (seeded: the same files every time). All clips of a class are written into one MIDI
file, rendered in one fluidsynth call (16 kHz, reverb and chorus off), cut, mixed to mono and
peak-normalised. Clip ``i`` of a class goes to fold ``1 + i % 2``.

Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm`` (``make demo`` installs them
when it runs as root). The rendered set is cached: ``<cache root>/demo/gm-instruments-<version>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sept.errors import DataError
from sept.utils.atomic import atomic_write_json

VERSION = 1
SAMPLE_RATE = 16_000
CLIP_SECONDS = 2.5
SLOT_SECONDS = 3.0  # a clip plus 0.5 s for the release tail before the next one
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
INSTALL_HINT = "apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm"


@dataclass(frozen=True)
class Family:
    """General MIDI programs (0-based) of a family, its MIDI note range and whether it plays chords."""

    programs: tuple[int, ...]
    low: int
    high: int
    chords: bool = False


FAMILIES: dict[str, Family] = {
    "bass": Family((32, 33, 34, 35, 36, 38), 28, 55),
    "brass": Family((56, 57, 58, 60, 61), 45, 74),
    "flute": Family((72, 73, 74, 75), 67, 93),
    "guitar": Family((24, 25, 26, 27, 29), 45, 76, chords=True),
    "keyboard": Family((0, 1, 4, 5, 6), 45, 84, chords=True),
    "mallet": Family((8, 9, 11, 12, 13), 60, 96),
    "organ": Family((16, 17, 18, 19, 20), 43, 79, chords=True),
    "reed": Family((64, 65, 66, 68, 70, 71), 50, 79),
    "string": Family((40, 41, 42, 44, 48), 48, 84, chords=True),
    "vocal": Family((52, 53, 54), 52, 76),
}


def find_soundfont(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, ``$SEPT_SOUNDFONT`` or Debian's General MIDI soundfont; :class:`DataError` if none."""
    for candidate in (explicit, os.environ.get("SEPT_SOUNDFONT"), *SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise DataError(
        f"no General MIDI soundfont found (looked in {', '.join(SOUNDFONTS)}); install it: {INSTALL_HINT}"
    )


def _phrase(rng: np.random.Generator, family: Family) -> list[tuple[float, float, int, int]]:
    """(start s, duration s, note, velocity) of one clip's notes."""
    notes = []
    t = 0.05 + 0.1 * rng.random()
    for _ in range(int(rng.integers(1, 5))):
        if t > CLIP_SECONDS - 0.4:
            break
        dur = float(min(rng.uniform(0.35, 1.3), CLIP_SECONDS - 0.15 - t))
        root = int(rng.integers(family.low, family.high + 1))
        vel = int(rng.integers(60, 121))
        chord = [0, 4, 7] if family.chords and rng.random() < 0.4 else [0]
        notes += [(t, dur, min(root + k, 127), vel) for k in chord]
        t += dur + float(rng.uniform(0.0, 0.15))
    return notes


def _midi_file(path: Path, clips: list[tuple[int, list[tuple[float, float, int, int]]]]) -> None:
    """One track; clip ``i`` (program, notes) starts at ``i * SLOT_SECONDS``. 480 ticks per beat, 120 bpm."""
    import mido

    ticks = 960  # per second at 120 bpm with 480 ticks per beat
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, message): note-offs before note-ons
    for i, (program, notes) in enumerate(clips):
        base = i * SLOT_SECONDS
        events.append((round(base * ticks), 0, mido.Message("program_change", program=program, channel=0)))
        for start, dur, note, vel in notes:
            on, off = round((base + start) * ticks), round((base + start + dur) * ticks)
            events.append((on, 2, mido.Message("note_on", note=note, velocity=vel, channel=0)))
            events.append((off, 1, mido.Message("note_off", note=note, velocity=0, channel=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = round(len(clips) * SLOT_SECONDS * ticks)
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    song = mido.MidiFile(ticks_per_beat=480)
    song.tracks.append(track)
    song.save(str(path))


def _render(midi: Path, wav: Path, soundfont: Path) -> np.ndarray:
    """fluidsynth's mono render [S] of ``midi`` at 16 kHz."""
    import soundfile as sf

    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError(f"fluidsynth is not installed; install it: {INSTALL_HINT}")
    cmd = [
        exe,
        "-ni",
        "-q",
        "-R",
        "0",
        "-C",
        "0",
        "-g",
        "0.8",
        "-r",
        str(SAMPLE_RATE),
        "-F",
        str(wav),
        str(soundfont),
        str(midi),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0 or not wav.is_file():
        raise DataError(
            f"fluidsynth failed on {midi.name} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    wave, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise DataError(f"fluidsynth wrote {sr} Hz instead of {SAMPLE_RATE} Hz")
    return wave.mean(axis=1)


def render_gm_dataset(
    out: str | os.PathLike[str],
    clips_per_class: int = 40,
    seed: int = 0,
    soundfont: str | os.PathLike[str] | None = None,
) -> Path:
    """Render the dataset into ``out`` (skipped if already complete); returns its CSV ``gm-instruments.csv``.

    The folder is built beside ``out`` and renamed into place, so an interrupted render leaves nothing.
    """
    import soundfile as sf

    out = Path(out)
    csv_path = out / "gm-instruments.csv"
    if (out / "done.json").is_file() and csv_path.is_file():
        return csv_path
    font = find_soundfont(soundfont)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = ["path,classname,fold"]
        for c, (name, family) in enumerate(FAMILIES.items()):
            rng = np.random.default_rng([seed, c])
            clips = [(int(rng.choice(family.programs)), _phrase(rng, family)) for _ in range(clips_per_class)]
            _midi_file(work / f"{name}.mid", clips)
            wave = _render(work / f"{name}.mid", work / f"{name}.wav", font)
            (work / "audio" / name).mkdir(parents=True, exist_ok=True)
            n = round(CLIP_SECONDS * SAMPLE_RATE)
            for i in range(clips_per_class):
                start = round(i * SLOT_SECONDS * SAMPLE_RATE)
                clip = np.zeros(n, dtype=np.float32)
                piece = wave[start : start + n]
                clip[: len(piece)] = piece
                peak = float(np.abs(clip).max())
                if peak < 1e-4:
                    raise DataError(f"the render of {name} clip {i} is silent (soundfont {font})")
                rel = f"audio/{name}/{name}-{i:03d}.flac"
                sf.write(str(work / rel), 0.9 * clip / peak, SAMPLE_RATE)
                rows.append(f"{rel},{name},{1 + i % 2}")
            (work / f"{name}.mid").unlink()
            (work / f"{name}.wav").unlink()
        (work / csv_path.name).write_text("\n".join(rows) + "\n", encoding="utf-8")
        atomic_write_json(
            work / "done.json",
            {"version": VERSION, "clips_per_class": clips_per_class, "seed": seed, "soundfont": str(font)},
        )
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return csv_path


def default_gm_folder(clips_per_class: int = 40, seed: int = 0) -> Path:
    """``<cache root>/demo/gm-instruments-v<VERSION>-<clips>x<seed>``."""
    from sept.utils.paths import cache_root

    return cache_root() / "demo" / f"gm-instruments-v{VERSION}-{clips_per_class}x{seed}"
