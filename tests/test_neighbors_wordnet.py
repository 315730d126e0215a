"""The offline ``wordnet`` source (skipped with the reason when WordNet data is not installed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("nltk")

from sept.cli.main import main
from sept.neighbors import WordNetMissingError, read_neighbor_file
from sept.neighbors.generate import generate_neighbors
from sept.neighbors.prompting import Request


@pytest.fixture(scope="module")
def wordnet_source():
    from sept.neighbors.sources.wordnet import WordNetSource

    try:
        return WordNetSource()
    except WordNetMissingError as exc:
        pytest.skip(f"WordNet data not installed ({exc}); CI runs scripts/install_wordnet.sh")


def test_synonyms_hyponyms_and_hypernyms(wordnet_source):
    heli = wordnet_source.propose(Request("helicopter"))
    assert {"chopper", "whirlybird"} <= set(heli)
    laugh = wordnet_source.propose(Request("Laughter"))
    assert {"giggle", "cackle", "titter"} <= set(laugh)  # hyponyms of laugh.n.01
    siren = wordnet_source.propose(Request("siren"))
    assert "warning device" in siren  # a hypernym fills in when there is no synonym
    assert "enchantress" not in siren  # the nymph sense is skipped
    rain = wordnet_source.propose(Request("rain"))
    assert rain.index("rainfall") < rain.index("drizzle")  # synonyms before hyponyms


def test_multiword_and_slash_names(wordnet_source):
    assert "coffeehouse" in wordnet_source.propose(Request("cafe/restaurant"))
    assert "eatery" in wordnet_source.propose(Request("cafe/restaurant"))
    assert "pneumatic hammer" in wordnet_source.propose(Request("jackhammer"))
    assert "automobile horn" in wordnet_source.propose(Request("car_horn"))


def test_generate_a_valid_set(wordnet_source, tmp_path):
    classes = ["helicopter", "rain", "Laughter", "cafe/restaurant"]
    ns, reports = generate_neighbors(classes, wordnet_source, n=5, min_count=1)
    assert list(ns.classes) == classes and ns.provenance.source == "wordnet"
    assert all(1 <= len(p) <= 5 for p in ns.classes.values())
    assert "cafe" not in ns.classes["cafe/restaurant"] and "restaurant" not in ns.classes["cafe/restaurant"]
    assert "laughter" not in [p.lower() for p in ns.classes["Laughter"]]
    assert all(r.attempts == 1 for r in reports)  # deterministic: never asked twice


def test_cli_generate_wordnet(wordnet_source, tmp_path, capsys):
    out = tmp_path / "wn.json"
    assert main(["neighbors", "generate", "--source", "wordnet", "--dataset", "SESA", "--out", str(out)]) == 0
    ns = read_neighbor_file(out)
    assert ns.dataset == "SESA" and sorted(ns.classes) == ["casual", "explosion", "gunshot", "siren"]
    assert "wrote 4 classes" in capsys.readouterr().out


def test_missing_wordnet_data_says_how_to_install(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "NLTK_DATA": str(tmp_path / "none")}
    code = "from sept.neighbors.sources.wordnet import load_wordnet; load_wordnet()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if run.returncode == 0:
        pytest.skip("WordNet is installed system-wide; cannot hide it from NLTK")
    assert "WordNetMissingError" in run.stderr and "scripts/install_wordnet.sh" in run.stderr


def test_only_sound_senses_ranked_by_similarity(wordnet_source):
    """The dog's bark, not the barque or tree bark; music, not composers; the sound of a tick first."""
    bark = wordnet_source.propose(Request("dog_bark"))
    assert bark[0] == "bark" and "bow-wow" in bark
    assert not {"barque", "poodle", "pawl", "andiron"} & set(bark)
    music = wordnet_source.propose(Request("street_music"))
    assert "melody" in music and not [p for p in music if p[:1].isupper()]  # no Mozart, Stravinsky
    assert "mattress" not in wordnet_source.propose(Request("clock tick"))  # tick, the fabric
    assert wordnet_source.propose(Request("gun_shot"))[:2] == ["gunfire", "gunshot"]  # joined words first
    assert "cockerel" in wordnet_source.propose(Request("rooster"))  # only an animal sense: still used
