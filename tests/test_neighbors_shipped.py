"""Every shipped neighbour set is valid, has >= 10 phrases per class and covers its dataset's classes."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from sept.demo.gm import INSTRUMENTS
from sept.neighbors import list_shipped, load_neighbors, load_shipped, neighbors_for
from sept.neighbors.validate import Rules, check_classes, class_names, normalize

# Class lists of docs/BENCHMARK.md (raw labels of the MahiA CSVs) and of ../shared/data.
ESC50 = (
    "airplane, breathing, brushing teeth, can opening, car horn, cat, chainsaw, chirping birds, church bells, "
    "clapping, clock alarm, clock tick, coughing, cow, crackling fire, crickets, crow, crying baby, dog, "
    "door wood creaks, door wood knock, drinking sipping, engine, fireworks, footsteps, frog, glass breaking, "
    "hand saw, helicopter, hen, insects, keyboard typing, laughing, mouse click, pig, pouring water, rain, "
    "rooster, sea waves, sheep, siren, sneezing, snoring, thunderstorm, toilet flush, train, vacuum cleaner, "
    "washing machine, water drops, wind"
)
URBAN = "air conditioner, car horn, children playing, dog bark, drilling, engine idling, gun shot, jackhammer, siren, street music"
EXPECTED = {
    "Beijing-Opera": "bangu, daluo, naobo, xiaoluo",
    "CREMA-D": "anger, disgust, fear, happy, neutral, sad",
    "ESC50": ESC50,
    "ESC50-Actions": "breathing, brushing teeth, clapping, coughing, crying baby, drinking sipping, footsteps, "
    "laughing, sneezing, snoring",
    "GT-Music-Genre": "blues, classical, country, disco, hiphop, jazz, metal, pop, reggae, rock",
    "NS-Instruments": "bass, brass, flute, guitar, keyboard, mallet, organ, reed, string, vocal",
    "RAVDESS": "angry, calm, disgust, fearful, happy, neutral, sad, surprised",
    "SESA": "casual, explosion, gunshot, siren",
    "TUT2017": "beach, bus, cafe/restaurant, car, city_center, forest_path, grocery_store, home, library, "
    "metro_station, office, park, residential_area, train, tram",
    "UrbanSound8K": URBAN,
    "VocalSound": "Cough, Laughter, Sigh, Sneeze, Sniff, Throat clearing",
    "us8k-mini": URBAN.replace(" ", "_").replace(",_", ", "),
    "fsdd": "eight, five, four, nine, one, seven, six, three, two, zero",
    "gm-instruments": ", ".join(INSTRUMENTS),  # the demo's rendered General MIDI instruments
}
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _names(text: str) -> list[str]:
    return sorted(t.strip() for t in text.split(", "))


def test_every_dataset_has_a_shipped_set():
    assert sorted(list_shipped()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_set_is_valid_and_covers_the_classes(name):
    ns = load_shipped(name)  # validates schema and phrase rules
    assert ns.dataset == name
    assert sorted(ns.classes) == _names(EXPECTED[name])
    assert check_classes(ns.classes, Rules(), min_per_class=10) == []
    for classname, phrases in ns.classes.items():
        assert len(phrases) >= 10, classname
        assert all(len(p.split()) <= 8 for p in phrases)
        own = class_names(classname)
        assert not any(normalize(p) in own for p in phrases)
    prov = ns.provenance
    assert prov.source == "authored" and prov.model and prov.prompt and prov.date


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_phrase_names_another_class_of_the_set(name):
    ns = load_shipped(name)
    names = {n: c for c in ns.classes for n in class_names(c)}
    for classname, phrases in ns.classes.items():
        clash = [p for p in phrases if names.get(normalize(p), classname) != classname]
        assert clash == [], (classname, clash)


def test_instrument_phrases_never_contain_a_class_name():
    """Stricter than the shared rule: no phrase holds any instrument's name (singular or plural) as a
    run of words, so "a pipe organ" is fine but "a grand piano" would not be."""
    ns = load_shipped("gm-instruments")
    names = {normalize(c) for c in ns.classes}
    for classname, phrases in ns.classes.items():
        assert len(phrases) == 12, classname
        for p in phrases:
            words = f" {normalize(p)} "
            hits = [n for n in names if f" {n} " in words or f" {n}s " in words]
            assert hits == [], (classname, p, hits)


def test_class_lists_match_benchmark_md():
    doc = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARK.md"
    rows = {}
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in EXPECTED:
            rows[cells[0]] = cells[4]
    assert len(rows) == 11
    for name, text in rows.items():
        if name == "ESC50":
            assert "50 ESC-50 categories" in text
            continue
        assert sorted(load_shipped(name).classes) == _names(text), name


@pytest.mark.parametrize("name", ["us8k-mini", "fsdd"])
def test_class_lists_match_shared_data(name):
    meta = SHARED / "data" / name / "metadata.csv"
    if not meta.is_file():
        pytest.skip(f"{meta} not present (fresh clone without ../shared)")
    with open(meta, newline="") as f:
        labels = sorted({row["classname"] for row in csv.DictReader(f)})
    assert sorted(load_shipped(name).classes) == labels


def test_shared_lists_and_raw_label_lookup():
    urban, mini = load_neighbors("UrbanSound8K"), load_neighbors("us8k-mini")
    assert neighbors_for(["dog_bark"], urban)["dog_bark"] == neighbors_for(["dog bark"], mini)["dog bark"]
    assert neighbors_for(["dog_bark"], urban)["dog_bark"] == urban.classes["dog bark"]
    esc, actions = load_neighbors("esc50"), load_neighbors("ESC50-Actions")
    assert actions.classes == {c: esc.classes[c] for c in actions.classes}


def test_shipped_files_are_json_with_a_stable_field_order():
    from importlib import resources

    folder = resources.files("sept") / "resources" / "neighbors"
    for f in folder.iterdir():
        if f.name.endswith(".json"):
            keys = re.findall(r'^  "(\w+)":', f.read_text(), flags=re.MULTILINE)
            assert keys == ["schema_version", "dataset", "provenance", "classes"], f.name


@pytest.mark.parametrize(
    "name", sorted(n for n in EXPECTED if n not in ("us8k-mini", "fsdd", "gm-instruments"))
)
def test_a_runs_readable_class_names_find_the_datasets_own_set(name):
    """Runs ask for readable names (the registry's overrides applied): GT-Music-Genre's "hip hop"
    must find the set's "hiphop", or every +sept run on it stops at preflight."""
    from sept.data.names import readable_name
    from sept.data.registry import dataset_info
    from sept.neighbors.resolve import resolve_neighbors

    info = dataset_info(name)
    readable = [readable_name(raw, info.readable_overrides) for raw in info.classnames]
    resolved = resolve_neighbors(readable, None, name)
    assert resolved.origin == "dataset" and resolved.name == name
    assert sorted(resolved.by_class) == sorted(readable)
