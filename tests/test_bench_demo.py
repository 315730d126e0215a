"""The demo's data: us8k-mini when present, else General MIDI instruments (MIDI writer, fluidsynth render)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.bench.cells import expand
from sept.demo.gm import FAMILIES, SAMPLE_RATE, _midi_file, _phrase, find_soundfont, render_gm_dataset
from sept.demo.run import DEMO_GRID, demo_dataset, demo_grid
from sept.errors import DataError


def test_midi_file_holds_every_clip_in_its_slot(tmp_path):
    mido = pytest.importorskip("mido")
    rng = np.random.default_rng(0)
    clips = [(program, _phrase(rng, FAMILIES["guitar"])) for program in (24, 25, 26)]
    _midi_file(tmp_path / "g.mid", clips)
    song = mido.MidiFile(str(tmp_path / "g.mid"))
    msgs = [m for m in song if not m.is_meta]
    assert [m.program for m in msgs if m.type == "program_change"] == [24, 25, 26]
    ons = [m for m in msgs if m.type == "note_on"]
    assert len(ons) == sum(len(notes) for _, notes in clips)
    assert all(FAMILIES["guitar"].low <= m.note <= FAMILIES["guitar"].high + 7 for m in ons)
    assert song.length == pytest.approx(3 * 3.0, abs=0.01)  # three 3 s slots


def test_demo_uses_us8k_mini_when_the_data_root_has_it(tmp_path):
    (tmp_path / "us8k-mini").mkdir()
    (tmp_path / "us8k-mini" / "metadata.csv").write_text("path,fold,classname\n")
    entry = demo_dataset(tmp_path, echo=lambda s: None)
    assert entry == {"name": "us8k-mini", "root": str(tmp_path / "us8k-mini"), "folds": [2]}
    grid = demo_grid(entry, tmp_path / "runs")
    assert [m.name for m in grid.methods] == DEMO_GRID["methods"] and grid.seeds == (0, 1, 2)
    assert grid.config == {}  # us8k-mini has its own shipped neighbour set


def test_missing_soundfont_names_the_packages(tmp_path, monkeypatch):
    monkeypatch.setattr("sept.demo.gm.SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    monkeypatch.delenv("SEPT_SOUNDFONT", raising=False)
    with pytest.raises(DataError, match="fluid-soundfont-gm"):
        find_soundfont()


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None, reason="fluidsynth is not installed (make demo installs it)"
)
def test_rendered_instruments_are_a_usable_dataset(tmp_path, monkeypatch):
    try:
        find_soundfont()
    except DataError as exc:
        pytest.skip(str(exc))
    out = render_gm_dataset(tmp_path / "gm", clips_per_class=4)
    assert render_gm_dataset(tmp_path / "gm", clips_per_class=4) == out  # cached: no second render
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 * len(FAMILIES)
    assert {r["classname"] for r in rows} == set(FAMILIES)
    assert {r["fold"] for r in rows} == {"1", "2"}
    waves = {}
    for r in rows[::4]:
        wave, sr = sf.read(out.parent / r["path"])
        assert sr == SAMPLE_RATE and wave.ndim == 1 and np.abs(wave).max() == pytest.approx(0.9, abs=0.01)
        waves[r["classname"]] = wave
    assert (
        len({round(float(np.abs(np.fft.rfft(w)).argmax()), -1) for w in waves.values()}) > 3
    )  # distinct sounds
    # the demo's grid over it expands to 15 cells on fold 2 with the NSynth-family neighbour set
    monkeypatch.setattr("sept.demo.gm.default_gm_folder", lambda: tmp_path / "gm")
    entry = demo_dataset(None, echo=lambda s: None)
    grid = demo_grid(entry, tmp_path / "runs")
    assert grid.config == {"sept": {"neighbors": "NS-Instruments"}}
    _, cells = expand(grid)
    assert (
        len(cells) == 15
        and {c.fold for c in cells} == {2}
        and {c.dataset_name for c in cells} == {"gm-instruments"}
    )
    assert Path(entry["data"]) == out
