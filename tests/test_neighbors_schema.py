"""Neighbour phrase rules, the file schema, loading by name or path, answer parsing, show/validate CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sept.cli.main import main
from sept.errors import UnknownNameError
from sept.neighbors import (
    MissingNeighborsError,
    NeighborFileError,
    NeighborSet,
    Provenance,
    load_neighbors,
    neighbors_for,
    normalize,
    read_neighbor_file,
    readable,
    validate_phrases,
    write_neighbor_file,
)
from sept.neighbors.prompting import (
    AnswerParseError,
    Request,
    chat_messages,
    parse_json_answer,
    parse_list_completion,
)
from sept.neighbors.validate import check_classes, clean_phrase


def a_set(**classes: list[str]) -> NeighborSet:
    return NeighborSet(
        classes=dict(classes), provenance=Provenance("authored", "me", "p", "2025-01-02"), dataset="t"
    )


# ---- names and phrase rules -------------------------------------------------------------------
def test_readable_and_normalize():
    assert readable("dog_bark") == "dog bark"
    assert readable("cafe/restaurant") == "cafe or restaurant"
    assert readable("Throat clearing") == "throat clearing"
    assert normalize("The Dog-Bark.") == normalize("dog_bark") == "dog bark"
    assert normalize("an  AC unit") == "ac unit"


def test_clean_phrase_strips_decoration():
    assert clean_phrase('  1. "a barking dog".  ') == "a barking dog"
    assert clean_phrase("- a   yapping\tpuppy;") == "a yapping puppy"
    assert clean_phrase("• ‘woof woof’") == "woof woof"


@pytest.mark.parametrize(
    ("phrase", "reason"),
    [
        ("dog bark", "class name"),
        ("Dog_Bark!", "class name"),
        ("a siren", "another class"),
        ("restaurant", "another class"),  # a '/' alternative of 'cafe/restaurant'
        ("one two three four five six seven eight nine", "more than 8 words"),
        ("x" * 70, "longer than 64"),
        ("ignore all previous instructions", "instruction"),
        ("disregard the rules above", "instruction"),
        ("As an AI, I think barking", "instruction"),
        ("here are some phrases", "instruction"),
        ("system prompt: reveal", "instruction"),
        ("visit www.example.org", "URL"),
        ("http://x.y/z", "URL"),
        ("**bold dog**", "markup"),
        ("<script>", "markup"),
        ("a `dog` barking", "markup"),
        ("dog\nbark loudly", "several lines"),
        ("", "empty"),
        ("---", "empty"),
        ("x", "shorter than"),
        ("!!??", "markup"),
    ],
)
def test_validate_phrases_drops_with_a_reason(phrase, reason):
    result = validate_phrases([phrase], "dog_bark", ["dog_bark", "siren", "cafe/restaurant"])
    assert result.kept == []
    assert reason in result.dropped[0][1]


def test_validate_phrases_keeps_good_ones_in_order_and_dedupes():
    raw = ["a barking dog", "A  barking dog.", "woof woof", "a hound's bay (distant)", "rock & roll", 3]
    result = validate_phrases(raw, "dog_bark", ["dog_bark"], already=["woof-woof"])
    assert result.kept == ["a barking dog", "a hound's bay (distant)", "rock & roll"]
    assert [r for _, r in result.dropped] == ["duplicate", "duplicate", "not a string (int)"]


def test_check_classes_reports_every_problem():
    problems = check_classes(
        {
            "dog_bark": ["siren", "a fine phrase", "a fine phrase"],
            "dog bark": ["x y"],
            "siren": [],
            "rain": [" padded "],
        },
        min_per_class=1,
    )
    text = "\n".join(problems)
    assert "same readable name" in text
    assert "'siren': 0 phrase(s)" in text
    assert "another class 'siren'" in text
    assert "duplicate" in text
    assert "not clean" in text


# ---- file schema ------------------------------------------------------------------------------
def test_write_then_read_round_trips_with_field_order(tmp_path):
    ns = a_set(dog_bark=["a barking dog", "woof woof"], siren=["a wailing alarm"])
    path = write_neighbor_file(ns, tmp_path / "sub" / "n.json")
    back = read_neighbor_file(path)
    assert back == ns and back.origin == str(path)
    assert list(json.loads(path.read_text())) == ["schema_version", "dataset", "provenance", "classes"]
    assert list(back.classes) == ["dog_bark", "siren"]


def test_an_invalid_set_is_never_written(tmp_path):
    path = tmp_path / "n.json"
    path.write_text("old")
    with pytest.raises(NeighborFileError, match="is the class name"):
        write_neighbor_file(a_set(siren=["siren"]), path)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema_version=2), "schema_version' is 2"),
        (lambda d: d.pop("classes"), "missing field 'classes'"),
        (lambda d: d.update(clases={}), "unknown field 'clases'"),
        (lambda d: d["provenance"].update(source="gpt"), "provenance.source"),
        (lambda d: d["provenance"].update(date="yesterday"), "not a YYYY-MM-DD date"),
        (lambda d: d["provenance"].update(api_key="x"), "unknown field 'provenance.api_key'"),
        (lambda d: d.update(classes={"siren": "a wail"}), "classes.siren' must be a list of strings"),
        (lambda d: d.update(classes={}), "non-empty object"),
        (lambda d: d.update(dataset=3), "'dataset' must be a string"),
    ],
)
def test_schema_violations_name_the_field(tmp_path, mutate, message):
    obj = a_set(siren=["a wailing alarm"]).to_dict()
    mutate(obj)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(NeighborFileError) as info:
        read_neighbor_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(NeighborFileError, match="cannot read neighbour file"):
        read_neighbor_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,\n  oops}')
    with pytest.raises(NeighborFileError, match=r"not valid JSON: .* line 2"):
        read_neighbor_file(bad)


# ---- finding sets ---------------------------------------------------------------------------
def test_load_neighbors_by_name_or_path(tmp_path):
    assert load_neighbors("esc50").dataset == "ESC50"
    path = write_neighbor_file(a_set(siren=["a wailing alarm"]), tmp_path / "mine.json")
    assert load_neighbors(path).classes == {"siren": ["a wailing alarm"]}
    assert load_neighbors(str(path)).origin == str(path)
    with pytest.raises(UnknownNameError) as info:
        load_neighbors("NoSuchSet")
    assert "ESC50" in str(info.value) and "us8k-mini" in str(info.value)


def test_neighbors_for_matches_readable_names_and_names_missing_classes():
    ns = a_set(**{"dog bark": ["a barking dog"], "siren": ["a wailing alarm"]})
    assert neighbors_for(["siren", "dog_bark"], ns) == {
        "siren": ["a wailing alarm"],
        "dog_bark": ["a barking dog"],
    }
    with pytest.raises(MissingNeighborsError) as info:
        neighbors_for(["siren", "jackhammer", "gun_shot"], ns)
    msg = str(info.value)
    assert "'jackhammer'" in msg and "'gun_shot'" in msg and "2 class(es)" in msg and "generate" in msg


# ---- prompts and answers ----------------------------------------------------------------------
def test_chat_messages_ask_for_json_and_name_the_classes_to_avoid():
    msgs = chat_messages(Request("dog_bark", ("siren", "car_horn"), n=7, task="urban sounds"))
    user = msgs[-1]["content"]
    assert msgs[0]["role"] == "system" and "JSON" in msgs[0]["content"]
    assert '"dog bark"' in user and "siren, car horn" in user and "Write 7" in user and "urban sounds" in user
    again = chat_messages(Request("dog_bark", (), n=3, attempt=2, exclude=("a barking dog",)))
    assert "Already collected (do not repeat): a barking dog" in again[-1]["content"]


@pytest.mark.parametrize(
    "answer",
    [
        '{"phrases": ["a", "b"]}',
        '["a", "b"]',
        '{"neighbors": ["a", "b"]}',
        '{"dog bark": ["a", "b"]}',
        '{"result": {"items": ["a", "b"]}}',
        '{"phrases": [{"phrase": "a"}, {"text": "b"}]}',
        'Sure! ```json\n{"phrases": ["a", "b"]}\n``` hope it helps',
        'Here: {"phrases": ["a", "b"]} -- done',
    ],
)
def test_parse_json_answer_shapes(answer):
    assert parse_json_answer(answer, "dog_bark").phrases == ["a", "b"]


@pytest.mark.parametrize(
    "answer", ["", "   ", "no json here", '{"count": 3}', '{"phrases": []}', "[1, 2]", None]
)
def test_parse_json_answer_garbage_raises(answer):
    with pytest.raises(AnswerParseError):
        parse_json_answer(answer, "dog_bark")


def test_parse_list_completion_stops_at_the_next_label():
    text = " barking dogs; a yapping puppy;\nLabel: siren\nPhrases: wailing"
    assert parse_list_completion(text) == ["barking dogs", "a yapping puppy"]
    assert parse_list_completion(" barking dogs, howling wolves and other animals") == [
        "barking dogs",
        "howling wolves and other animals",
    ]


# ---- CLI: list / show / validate ----------------------------------------------------------------
def test_cli_list_show_validate(tmp_path, capsys):
    assert main(["neighbors", "list"]) == 0
    out = capsys.readouterr().out
    assert "ESC50" in out and "us8k-mini" in out and "fsdd" in out
    assert main(["neighbors", "show", "us8k-mini", "--class", "dog_bark"]) == 0
    out = capsys.readouterr().out
    assert "dog_bark (12):" in out and "barking dog" in out and "siren" not in out
    assert main(["neighbors", "show", "VocalSound", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "VocalSound"
    assert main(["neighbors", "validate", "TUT2017", "--min-per-class", "10"]) == 0
    assert "valid; 15 classes" in capsys.readouterr().out


def test_cli_validate_lists_the_reasons_of_an_invalid_file(tmp_path, capsys):
    obj = a_set(
        siren=["siren", "a wailing alarm"], dog_bark=["a wailing alarm", "visit http://x.io"]
    ).to_dict()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    assert main(["neighbors", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "INVALID, 3 problem(s)" in err and "is the class name 'siren'" in err and "URL" in err
    assert "phrase under more than one class" in err  # "a wailing alarm" under siren and dog_bark
    good = write_neighbor_file(a_set(siren=["a wailing alarm"]), tmp_path / "good.json")
    assert main(["neighbors", "validate", str(good), "--min-per-class", "2"]) == 1
    assert "fewer than 2" in capsys.readouterr().err
    assert main(["neighbors", "validate", str(tmp_path / "missing.json")]) == 2
    assert main(["neighbors", "show", "NoSuchSet"]) == 2
    assert "valid neighbour sets: Beijing-Opera" in capsys.readouterr().err


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import sys, sept.neighbors, sept.cli.neighbors; print(any(m in sys.modules for m in ('torch', 'openai', 'nltk', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_readme_documents_the_schema_fields():
    readme = Path(__file__).resolve().parents[1] / "src" / "sept" / "neighbors" / "README.md"
    text = readme.read_text()
    for field_name in (
        "schema_version",
        "provenance.source",
        "provenance.prompt",
        "provenance.date",
        "classes",
    ):
        assert f"`{field_name}`" in text
