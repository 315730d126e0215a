"""Render a many-class General MIDI instrument set (32 classes, one GM program each) with fluidsynth.

Used by the CoCoOp-shift and sampled-vs-exact SEPT measurements (benchmarks/README.md, section
"SEPT recipes"). Each class is one General MIDI program named by its instrument; each clip is a
short phrase of one to four notes in the instrument's range (seeded: the same files every time),
rendered through :mod:`sept.demo.gm`'s MIDI writer and fluidsynth call. Clip ``i`` goes to fold
``1 + i % 2``, so base-to-new on fold 2 trains on fold 1 and tests on fold 2. A neighbour set for
the classes is written beside the CSV (``neighbors.json``, authored here: WordNet's senses are
too sparse and too generic for instruments, e.g. "recorder" -> "recording equipment").

    python benchmarks/render_gm_many.py OUT_DIR [--clips 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from sept.demo import gm

#: class name -> (General MIDI program, 0-based; lowest and highest MIDI note played)
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "piano": (0, 40, 88),
    "harpsichord": (6, 41, 84),
    "celesta": (8, 60, 96),
    "glockenspiel": (9, 72, 100),
    "vibraphone": (11, 53, 89),
    "marimba": (12, 45, 84),
    "xylophone": (13, 65, 100),
    "dulcimer": (15, 50, 84),
    "pipe organ": (19, 36, 84),
    "accordion": (21, 48, 84),
    "harmonica": (22, 60, 84),
    "acoustic guitar": (24, 40, 76),
    "violin": (40, 55, 93),
    "viola": (41, 48, 84),
    "cello": (42, 36, 72),
    "double bass": (43, 28, 55),
    "harp": (46, 36, 91),
    "timpani": (47, 40, 55),
    "trumpet": (56, 55, 82),
    "trombone": (57, 40, 72),
    "tuba": (58, 28, 58),
    "french horn": (60, 41, 77),
    "saxophone": (65, 49, 80),
    "oboe": (68, 58, 91),
    "bassoon": (70, 34, 70),
    "clarinet": (71, 50, 89),
    "flute": (73, 60, 96),
    "recorder": (74, 60, 91),
    "sitar": (104, 48, 77),
    "banjo": (105, 48, 79),
    "bagpipe": (109, 55, 79),
    "steel drum": (114, 55, 84),
}


#: authored neighbour phrases (acoustic variants and other names of each instrument's sound)
NEIGHBORS: dict[str, list[str]] = {
    "piano": [
        "grand piano chords",
        "upright piano notes",
        "pianoforte melody",
        "struck piano strings",
        "concert piano",
    ],
    "harpsichord": [
        "plucked keyboard",
        "baroque cembalo",
        "spinet notes",
        "virginal keyboard",
        "jangly harpsichord",
    ],
    "celesta": [
        "celeste bells",
        "tinkling keyboard bells",
        "music box chime",
        "sugar plum celeste",
        "struck steel plates",
    ],
    "glockenspiel": ["orchestral bells", "metal bar chimes", "bright bell tones", "toy bells", "lyre bells"],
    "vibraphone": ["vibes", "vibraharp", "shimmering metal bars", "jazz vibes", "tremolo mallet bars"],
    "marimba": [
        "wooden mallet bars",
        "mellow marimba tones",
        "rosewood bars",
        "wooden bars struck with mallets",
        "soft mallets",
    ],
    "xylophone": [
        "wooden bars struck hard",
        "bright wooden mallets",
        "clacking xylophone",
        "orchestral xylophone",
        "dry wooden tones",
    ],
    "dulcimer": ["hammered dulcimer", "struck zither", "cimbalom", "santur strings", "hammered strings"],
    "pipe organ": [
        "church organ",
        "cathedral organ",
        "organ pipes",
        "sustained organ chord",
        "pipe organ drone",
    ],
    "accordion": ["squeezebox", "bellows keyboard", "bellows reeds", "musette accordion", "button accordion"],
    "harmonica": [
        "mouth organ",
        "bluesy reed wail",
        "harmonica bends",
        "pocket reeds",
        "chromatic harmonica",
    ],
    "acoustic guitar": [
        "nylon string guitar",
        "classical guitar",
        "strummed guitar",
        "plucked guitar strings",
        "Spanish guitar",
    ],
    "violin": ["fiddle", "bowed violin", "solo violin melody", "violin strings", "Stradivarius tone"],
    "viola": ["bowed viola", "alto fiddle", "viola strings", "mellow bowed strings", "viola melody"],
    "cello": ["violoncello", "bowed cello", "deep bowed strings", "cello melody", "low string tone"],
    "double bass": ["contrabass", "upright bass", "bass fiddle", "bowed bass", "string bass"],
    "harp": ["concert harp", "plucked harp strings", "harp glissando", "pedal harp", "celtic harp"],
    "timpani": ["kettledrums", "timpani rolls", "orchestral drums", "tuned drums", "kettle drum hits"],
    "trumpet": ["brass trumpet", "cornet", "trumpet fanfare", "bugle call", "bright brass"],
    "trombone": ["slide trombone", "sackbut", "tenor trombone", "low brass", "bass trombone"],
    "tuba": ["sousaphone", "bass horn", "oompah tuba", "deep brass", "euphonium"],
    "french horn": ["horn call", "orchestral horn", "mellow brass horn", "hunting horn", "valve horn"],
    "saxophone": ["alto sax", "sax solo", "jazz saxophone", "tenor sax", "reed sax"],
    "oboe": ["hautboy", "double reed oboe", "nasal reed", "oboe melody", "cor anglais"],
    "bassoon": ["fagotto", "low double reed", "contrabassoon", "bassoon melody", "woody low reed"],
    "clarinet": [
        "licorice stick",
        "B-flat clarinet",
        "clarinet melody",
        "single reed woodwind",
        "bass clarinet",
    ],
    "flute": ["concert flute", "transverse flute", "breathy flute", "piccolo", "flute melody"],
    "recorder": ["alto recorder", "soprano recorder", "wooden recorder", "fipple whistle", "blockflute"],
    "sitar": ["Indian sitar", "sitar drone", "plucked sitar", "raga strings", "buzzing sitar strings"],
    "banjo": ["five string banjo", "bluegrass banjo", "twangy banjo", "banjo picking", "plucked banjo"],
    "bagpipe": ["bagpipes", "highland pipes", "drone pipes", "Scottish bagpipes", "skirling pipes"],
    "steel drum": [
        "steel pan",
        "Caribbean steel drum",
        "pan drum",
        "calypso steel band",
        "metallic pan tones",
    ],
}


def write_neighbors(out: Path) -> Path:
    """``out/neighbors.json``: :data:`NEIGHBORS` as a validated neighbour file."""
    from sept.neighbors.schema import NeighborSet, Provenance, write_neighbor_file

    ns = NeighborSet(classes=NEIGHBORS, provenance=Provenance(source="authored"), dataset="gm-many")
    return write_neighbor_file(ns, out / "neighbors.json")


def render(out: Path, clips: int, seed: int) -> Path:
    """Write ``out/gm-many.csv`` (path,classname,fold) and the clips under ``out/audio``."""

    font = gm.find_soundfont()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".render.", dir=out))
    rows = ["path,classname,fold"]
    try:
        for c, (name, (program, low, high)) in enumerate(INSTRUMENTS.items()):
            rng = np.random.default_rng([seed, c])
            notes = list(range(low, high + 1))
            slug = name.replace(" ", "_")
            song = [(program, gm.phrase(rng, notes)) for _ in range(clips)]
            gm._midi_file(work / f"{slug}.mid", song)
            wave = gm._render(work / f"{slug}.mid", work / f"{slug}.wav", font)
            (out / "audio" / slug).mkdir(parents=True, exist_ok=True)
            for i in range(clips):
                rel = f"audio/{slug}/{slug}-{i:03d}.flac"
                gm.write_slot(wave, i, out / rel, f"{name} clip {i}")
                rows.append(f"{rel},{name},{1 + i % 2}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    csv = out / "gm-many.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips", type=int, default=32, help="clips per class (half per fold)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    csv = render(args.out, args.clips, args.seed)
    write_neighbors(args.out)
    print(f"{csv}: {len(INSTRUMENTS)} classes x {args.clips} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
