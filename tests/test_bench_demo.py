"""The demo's data and grid: General MIDI instruments (notes, MIDI writer, fluidsynth render) and us8k-mini."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from sept.demo.gm import (
    INSTRUMENTS,
    SAMPLE_RATE,
    TEST_FOLD,
    TRAIN_FOLD,
    _midi_file,
    find_soundfont,
    fold_notes,
    phrase,
    render_gm_dataset,
)
from sept.demo.run import DEMO_GRID, demo_datasets, demo_grid
from sept.errors import DataError, UnknownNameError


def test_instrument_classes_have_readable_distinct_names_and_valid_programs():
    assert len(INSTRUMENTS) >= 30
    assert len({i.program for i in INSTRUMENTS.values()}) == len(INSTRUMENTS)
    for name, inst in INSTRUMENTS.items():
        assert name == name.lower().strip() and all(w.isalpha() for w in name.split())
        assert 0 <= inst.program <= 127 and 0 <= inst.low < inst.high <= 127


def test_train_and_test_notes_are_disjoint_and_phrases_stay_in_them():
    rng = np.random.default_rng(0)
    for inst in INSTRUMENTS.values():
        train, test = fold_notes(inst, TRAIN_FOLD), fold_notes(inst, TEST_FOLD)
        assert len(train) >= 5 and len(test) >= 5 and not set(train) & set(test)
        assert set(train) | set(test) == set(range(inst.low, inst.high + 1))
        for pool in (train, test):
            notes = phrase(rng, pool)
            assert 1 <= len(notes) <= 4 and {n for _, _, n, _ in notes} <= set(pool)
            assert all(start > 0 and start + dur <= 2.0 and 60 <= vel <= 120 for start, dur, _, vel in notes)


def test_midi_file_holds_every_clip_in_its_slot(tmp_path):
    mido = pytest.importorskip("mido")
    rng = np.random.default_rng(0)
    pool = fold_notes(INSTRUMENTS["banjo"], TRAIN_FOLD)
    clips = [(program, phrase(rng, pool)) for program in (24, 25, 26)]
    _midi_file(tmp_path / "g.mid", clips)
    song = mido.MidiFile(str(tmp_path / "g.mid"))
    msgs = [m for m in song if not m.is_meta]
    assert [m.program for m in msgs if m.type == "program_change"] == [24, 25, 26]
    ons = [m for m in msgs if m.type == "note_on"]
    assert [m.note for m in ons] == [n for _, notes in clips for _, _, n, _ in notes]
    assert song.length == pytest.approx(3 * 2.5, abs=0.01)  # three 2.5 s slots


def test_unknown_instrument_lists_the_valid_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="accordion"):
        render_gm_dataset(tmp_path / "gm", classes=["kazoo"])


def test_missing_soundfont_names_the_packages(tmp_path, monkeypatch):
    monkeypatch.setattr("sept.demo.gm.SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    monkeypatch.delenv("SEPT_SOUNDFONT", raising=False)
    with pytest.raises(DataError, match="fluid-soundfont-gm"):
        find_soundfont()


def test_demo_grid_runs_seven_methods_on_both_datasets(tmp_path, monkeypatch):
    (tmp_path / "us8k-mini").mkdir()
    (tmp_path / "us8k-mini" / "metadata.csv").write_text("path,fold,classname\n")
    monkeypatch.setattr(
        "sept.demo.run.instrument_dataset", lambda echo: {"data": str(tmp_path / "gm-instruments.csv")}
    )
    entries = demo_datasets(tmp_path, echo=lambda s: None)
    assert entries[1] == {"name": "us8k-mini", "root": str(tmp_path / "us8k-mini"), "folds": [2]}
    grid = demo_grid(entries, tmp_path / "runs")
    methods = [m.name for m in grid.methods]
    assert methods == [m if isinstance(m, str) else m["name"] for m in DEMO_GRID["methods"]]
    assert len(methods) == 7 and len(grid.seeds) >= 3
    assert {m.name: m.overrides for m in grid.methods}["coop+sept"] == ("optim.epochs=50",)
    for host in ("coop", "kgcoop", "coop+dept"):
        assert host in methods and f"{host}+sept" in methods
    assert grid.config == {}  # each dataset's SEPT runs use the shipped set named after it
    assert len(demo_datasets(None, echo=lambda s: None)) == 1  # no data root: the instruments only


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "done.json"
    }


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None, reason="fluidsynth is not installed (make demo installs it)"
)
def test_rendered_instruments_are_deterministic_decodable_and_cached(tmp_path, monkeypatch):
    try:
        find_soundfont()
    except DataError as exc:
        pytest.skip(str(exc))
    from sept.audio.io import decode_audio

    few = ["flute", "timpani", "distortion guitar"]
    out = render_gm_dataset(tmp_path / "a", train_clips=2, test_clips=2, classes=few)
    again = render_gm_dataset(tmp_path / "b", train_clips=2, test_clips=2, classes=few, workers=1)
    assert _digest(out.parent) == _digest(again.parent)  # the same bytes from a second render
    alone = render_gm_dataset(tmp_path / "c", train_clips=2, test_clips=2, classes=["timpani"])
    audio = {k: v for k, v in _digest(alone.parent).items() if k.endswith(".flac")}
    assert audio and audio.items() <= _digest(out.parent).items()  # a class's clips: its own seed

    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 * len(few) and {r["classname"] for r in rows} == set(few)
    spectra = {}
    for r in rows:
        wave = decode_audio((out.parent / r["path"]).read_bytes(), SAMPLE_RATE, r["path"])
        assert wave.shape == (2 * SAMPLE_RATE,) and np.abs(wave).max() == pytest.approx(0.9, abs=0.01)
        spectra.setdefault(r["classname"], np.abs(np.fft.rfft(wave)))
        assert int(r["program"]) == INSTRUMENTS[r["classname"]].program
    for name in few:
        played = {
            fold: {
                int(n)
                for r in rows
                if (r["classname"], r["fold"]) == (name, fold)
                for n in r["notes"].split()
            }
            for fold in ("1", "2")
        }
        assert played["1"] and played["2"] and not played["1"] & played["2"]
    centroids = [float((s * np.arange(len(s))).sum() / s.sum()) for s in spectra.values()]
    assert len({round(c, -2) for c in centroids}) == len(few)  # distinct sounds

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr("sept.demo.gm._render", no_render)
    assert render_gm_dataset(tmp_path / "a", train_clips=2, test_clips=2, classes=few) == out  # cached


def test_demo_precision_follows_the_cpu_and_the_request(tmp_path, monkeypatch):
    import sept.utils.cpu as cpu
    from sept.demo.run import demo_precision

    zen4 = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512bw\n"
    older = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"
    assert "avx512_bf16" in cpu.cpu_flags(zen4) and not cpu.cpu_flags(older) & cpu.BF16_FLAGS
    assert cpu.cpu_flags("") == frozenset()
    for flags, expected in ((zen4, "bf16"), (older, "fp32")):
        monkeypatch.setattr(
            cpu, "native_bf16", lambda flags=flags: bool(cpu.cpu_flags(flags) & cpu.BF16_FLAGS)
        )
        assert demo_precision("auto") == expected
    assert demo_precision("fp32") == "fp32" and demo_precision("bf16") == "bf16"
    entries = [{"data": str(tmp_path / "gm-instruments.csv")}]
    assert demo_grid(entries, tmp_path / "runs", precision="bf16").overrides == ("precision=bf16",)
    assert demo_grid(entries, tmp_path / "runs", precision="fp32").overrides == ()
