"""Neighbour quality: a phrase naming another class, one phrase under two classes, near-duplicates."""

from __future__ import annotations

import pytest

from sept.neighbors import list_shipped, load_neighbors, validate_phrases
from sept.neighbors.generate import generate_neighbors
from sept.neighbors.sources import NeighborSource
from sept.neighbors.validate import check_classes, named_classes, near_key

US8K = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "siren", "street_music"]


@pytest.mark.parametrize(
    ("phrase", "named"),
    [
        ("a siren wailing", "siren"),
        ("two sirens in the distance", "siren"),  # plural
        ("kids playing music on the street", None),  # no class name as a whole
        ("a dog barking at night", "dog_bark"),  # -ing form of the name's last word
        ("drilling into concrete", "drilling"),
        ("street musicians", None),
    ],
)
def test_a_phrase_naming_another_class_is_found(phrase, named):
    found = named_classes(phrase, "jackhammer", [*US8K, "jackhammer"])
    assert found == ([named] if named else [])


def test_a_phrase_naming_another_class_is_dropped():
    result = validate_phrases(["a siren wailing", "a yapping hound"], "dog_bark", US8K)
    assert result.kept == ["a yapping hound"]
    assert result.dropped == [("a siren wailing", "names another class 'siren'")]


def test_a_name_inside_the_own_class_name_is_allowed():
    """'horn' is a class, but a 'car horn' phrase may say horn."""
    result = validate_phrases(["a horn in a traffic jam"], "car horn", ["car horn", "horn"])
    assert result.kept == ["a horn in a traffic jam"]


def test_near_duplicates_are_dropped():
    assert near_key("dogs barking loudly") == near_key("a dog barks loudly") == ("bark", "dog", "loudly")
    result = validate_phrases(
        ["an infant wailing", "a wailing infant", "a ticking clock", "the clock ticks", "a clock tower"],
        "crying_baby",
        ["crying_baby"],
    )
    assert result.kept == ["an infant wailing", "a ticking clock", "a clock tower"]
    assert [r for _, r in result.dropped] == [
        "near-duplicate of 'an infant wailing'",
        "near-duplicate of 'a ticking clock'",
    ]


def test_one_phrase_under_two_classes_is_a_problem_of_the_set():
    problems = check_classes({"engine_idling": ["a rumbling motor"], "jackhammer": ["the motor rumbles"]})
    assert len(problems) == 1 and "more than one class" in problems[0]
    assert "'engine_idling' ('a rumbling motor')" in problems[0] and "'jackhammer'" in problems[0]


class _SameAnswer(NeighborSource):
    """A source that proposes the same phrases for every class."""

    name = "fixed"
    deterministic = True

    def propose(self, request):
        return ["a loud noise outside", "a rumble", f"{request.classname} sound alike"]

    def provenance(self):
        from sept.neighbors.schema import Provenance

        return Provenance("authored", "test", "", "2026-01-01")


def test_generation_never_gives_one_phrase_to_two_classes():
    ns, reports = generate_neighbors(["jackhammer", "engine_idling"], _SameAnswer(), n=1, min_count=1)
    assert ns.classes["jackhammer"] == ["a loud noise outside"]
    assert ns.classes["engine_idling"] == ["a rumble"]
    assert ("a loud noise outside", "already a phrase of class 'jackhammer'") in reports[1].dropped


@pytest.mark.parametrize("name", list_shipped())
def test_every_shipped_set_passes_the_rules(name):
    ns = load_neighbors(name)  # validates, raising with every problem
    assert not check_classes(ns.classes)
