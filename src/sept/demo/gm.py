"""A labelled instrument dataset rendered from General MIDI with fluidsynth: the demo's main data.

32 classes, one General MIDI program each, named as a listener would name the instrument
(``"acoustic guitar"``, ``"french horn"``, ``"steel drums"`` ...). Each clip is a short phrase of
one to four notes in the instrument's playing range, with velocities and durations drawn from a
seeded generator: the same files every time. The train pool (fold 1) plays only the even MIDI
notes of the range and the test clips (fold 2) only the odd ones, so no test clip repeats a
training note. Every class is written into one MIDI file, rendered in one fluidsynth call (16 kHz,
reverb and chorus off), cut into clips, mixed to mono and peak-normalised; the CSV lists each
clip's path, class, fold, program and notes.

Needs the Debian packages ``fluidsynth`` and ``fluid-soundfont-gm`` (FluidR3 General MIDI;
``make demo`` installs them when it runs as root). The rendered set is cached:
``<cache root>/demo/gm-instruments-v<VERSION>-<train>+<test>x<seed>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sept.errors import DataError, UnknownNameError
from sept.utils.atomic import atomic_write_json

VERSION = 2
SAMPLE_RATE = 16_000
CLIP_SECONDS = 2.0
SLOT_SECONDS = 2.5  # a clip plus 0.5 s for the release tail before the next one
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
INSTALL_HINT = "apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm"
CSV_NAME = "gm-instruments.csv"
TRAIN_FOLD, TEST_FOLD = 1, 2


@dataclass(frozen=True)
class Instrument:
    """A General MIDI program (0-based) and the MIDI note range it plays in."""

    program: int
    low: int
    high: int


#: the demo's classes: readable name -> General MIDI program and playing range
INSTRUMENTS: dict[str, Instrument] = {
    "accordion": Instrument(21, 53, 84),
    "acoustic bass": Instrument(32, 28, 55),
    "acoustic guitar": Instrument(25, 40, 76),
    "bagpipe": Instrument(109, 60, 79),
    "banjo": Instrument(105, 50, 79),
    "bassoon": Instrument(70, 34, 65),
    "cello": Instrument(42, 36, 72),
    "church organ": Instrument(19, 36, 84),
    "clarinet": Instrument(71, 50, 86),
    "distortion guitar": Instrument(30, 40, 76),
    "electric bass": Instrument(33, 28, 55),
    "electric guitar": Instrument(27, 40, 79),
    "electric piano": Instrument(4, 40, 84),
    "flute": Instrument(73, 60, 93),
    "french horn": Instrument(60, 41, 72),
    "glockenspiel": Instrument(9, 79, 108),
    "harmonica": Instrument(22, 60, 84),
    "harp": Instrument(46, 36, 91),
    "harpsichord": Instrument(6, 41, 89),
    "marimba": Instrument(12, 48, 84),
    "oboe": Instrument(68, 58, 89),
    "piano": Instrument(0, 33, 96),
    "saxophone": Instrument(65, 49, 80),
    "sitar": Instrument(104, 48, 77),
    "steel drums": Instrument(114, 55, 84),
    "timpani": Instrument(47, 38, 57),
    "trombone": Instrument(57, 40, 72),
    "trumpet": Instrument(56, 54, 82),
    "tuba": Instrument(58, 28, 55),
    "vibraphone": Instrument(11, 53, 89),
    "violin": Instrument(40, 55, 96),
    "xylophone": Instrument(13, 65, 96),
}

Note = tuple[float, float, int, int]  # (start s, duration s, MIDI note, velocity)


def find_soundfont(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, ``$SEPT_SOUNDFONT`` or Debian's General MIDI soundfont; :class:`DataError` if none."""
    for candidate in (explicit, os.environ.get("SEPT_SOUNDFONT"), *SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise DataError(
        f"no General MIDI soundfont found (looked in {', '.join(SOUNDFONTS)}); install it: {INSTALL_HINT}"
    )


def fold_notes(instrument: Instrument, fold: int) -> list[int]:
    """The notes clips of ``fold`` may play: the even notes of the range for the train pool, the odd
    ones for the test clips (disjoint sets)."""
    parity = 0 if fold == TRAIN_FOLD else 1
    return [n for n in range(instrument.low, instrument.high + 1) if n % 2 == parity]


def phrase(rng: np.random.Generator, notes: Sequence[int]) -> list[Note]:
    """One clip's notes: one to four notes in sequence, each drawn from ``notes``."""
    out: list[Note] = []
    t = 0.05 + 0.1 * float(rng.random())
    for _ in range(int(rng.integers(1, 5))):
        if t > CLIP_SECONDS - 0.4:
            break
        dur = float(min(rng.uniform(0.3, 1.1), CLIP_SECONDS - 0.1 - t))
        out.append((t, dur, int(rng.choice(notes)), int(rng.integers(60, 121))))
        t += dur + float(rng.uniform(0.0, 0.12))
    return out


def _midi_file(path: Path, clips: Sequence[tuple[int, Sequence[Note]]]) -> None:
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
    # -ni: no shell, no MIDI input; -R/-C 0: no reverb or chorus; -g: gain; -r: sample rate;
    # -o synth.cpu-cores=1: one rendering thread, so the samples are the same on every machine
    cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.8", "-r", str(SAMPLE_RATE)]
    cmd += ["-o", "synth.cpu-cores=1", "-F", str(wav), str(soundfont), str(midi)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0 or not wav.is_file():
        raise DataError(
            f"fluidsynth failed on {midi.name} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    wave, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise DataError(f"fluidsynth wrote {sr} Hz instead of {SAMPLE_RATE} Hz")
    return wave.mean(axis=1)


def write_slot(wave: np.ndarray, slot: int, path: Path, what: str) -> None:
    """Cut clip ``slot`` ([CLIP_SECONDS] from its SLOT_SECONDS slot) out of a rendered ``wave`` [S],
    peak-normalise it to 0.9 and write it to ``path`` as 16-bit FLAC; a silent clip is a
    :class:`DataError` naming ``what``."""
    import soundfile as sf

    n = round(CLIP_SECONDS * SAMPLE_RATE)
    start = round(slot * SLOT_SECONDS * SAMPLE_RATE)
    clip = np.zeros(n, dtype=np.float32)
    piece = wave[start : start + n]
    clip[: len(piece)] = piece
    peak = float(np.abs(clip).max())
    if peak < 1e-4:
        raise DataError(f"the render of {what} is silent")
    sf.write(str(path), 0.9 * clip / peak, SAMPLE_RATE, subtype="PCM_16")


def _class_rows(
    work: Path, index: int, name: str, train_clips: int, test_clips: int, seed: int, font: Path
) -> list[str]:
    """Render the clips of class ``name`` (the ``index``-th of :data:`INSTRUMENTS`) into ``work``;
    returns their CSV rows."""

    inst = INSTRUMENTS[name]
    rng = np.random.default_rng([seed, index])
    folds = [TRAIN_FOLD] * train_clips + [TEST_FOLD] * test_clips
    pools = {f: fold_notes(inst, f) for f in (TRAIN_FOLD, TEST_FOLD)}
    clips = [(inst.program, phrase(rng, pools[f])) for f in folds]
    slug = name.replace(" ", "-")
    _midi_file(work / f"{slug}.mid", clips)
    wave = _render(work / f"{slug}.mid", work / f"{slug}.wav", font)
    (work / "audio" / slug).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (fold, (_, notes)) in enumerate(zip(folds, clips, strict=True)):
        rel = f"audio/{slug}/{slug}-{i:03d}.flac"
        write_slot(wave, i, work / rel, f"{name} clip {i} (soundfont {font})")
        played = " ".join(str(note) for _, _, note, _ in notes)
        rows.append(f"{rel},{name},{fold},{inst.program},{played}")
    (work / f"{slug}.mid").unlink()
    (work / f"{slug}.wav").unlink()
    return rows


def render_gm_dataset(
    out: str | os.PathLike[str],
    train_clips: int = 24,
    test_clips: int = 12,
    seed: int = 0,
    *,
    classes: Sequence[str] | None = None,
    soundfont: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> Path:
    """Render the dataset into ``out`` (skipped if already complete); returns its CSV.

    ``classes`` picks some of :data:`INSTRUMENTS` (default all; a class's clips do not depend on
    which others are rendered). Columns: ``path,classname,fold,program,notes``. Classes render in
    ``workers`` parallel fluidsynth processes (default: up to 2). The folder is built beside ``out``
    and renamed into place, so an interrupted render leaves nothing.
    """
    out = Path(out)
    csv_path = out / CSV_NAME
    if (out / "done.json").is_file() and csv_path.is_file():
        return csv_path
    names = list(INSTRUMENTS) if classes is None else list(classes)
    unknown = [c for c in names if c not in INSTRUMENTS]
    if unknown:
        raise UnknownNameError("instrument", unknown[0], list(INSTRUMENTS))
    if train_clips < 1 or test_clips < 1:
        raise DataError(f"train_clips ({train_clips}) and test_clips ({test_clips}) must be >= 1")
    font = find_soundfont(soundfont)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    order = list(INSTRUMENTS)
    try:
        with ThreadPoolExecutor(max_workers=workers or min(2, os.cpu_count() or 1)) as pool:
            parts = pool.map(
                lambda c: _class_rows(work, order.index(c), c, train_clips, test_clips, seed, font), names
            )
            rows = ["path,classname,fold,program,notes"] + [r for part in parts for r in part]
        (work / CSV_NAME).write_text("\n".join(rows) + "\n", encoding="utf-8")
        atomic_write_json(
            work / "done.json",
            {
                "version": VERSION,
                "classes": names,
                "train_clips": train_clips,
                "test_clips": test_clips,
                "seed": seed,
                "soundfont": str(font),
            },
        )
        if (out / "done.json").is_file():  # another process finished the same render meanwhile
            return csv_path
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return csv_path


def default_gm_folder(train_clips: int = 24, test_clips: int = 12, seed: int = 0) -> Path:
    """``<cache root>/demo/gm-instruments-v<VERSION>-<train>+<test>x<seed>``."""
    from sept.utils.paths import cache_root

    return cache_root() / "demo" / f"gm-instruments-v{VERSION}-{train_clips}+{test_clips}x{seed}"
