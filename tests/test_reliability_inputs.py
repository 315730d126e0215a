"""Bad metadata and configs (issue 8, item 2): a clear error before any compute.

Every case runs ``sept run`` (or ``sept embed``) in-process with the backbone factory and the
feature extractor replaced by guards that fail the test if reached: the error must come before a
model is loaded or a clip embedded, name the file, field or value at fault (with the valid
choices for a wrong name), exit with status 2, and leave the run root empty.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sept.cli.main import main
from sept.errors import ConfigError
from sept.protocols import ProtocolSettings
from sept.training.config import resolve_config
from tests.test_methods_support import make_tone_dataset


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a backbone is built or a clip embedded (a registry lookup is allowed)."""
    from sept.backbones import registry

    def create_backbone(name: str = registry.DEFAULT_BACKBONE, **options: object) -> None:
        registry._spec(name)  # an unknown name raises the real UnknownNameError
        pytest.fail(f"backbone {name!r} was loaded before the input error was found")

    def extract_features(*args: object, **kwargs: object) -> None:
        pytest.fail("clips were embedded before the input error was found")

    monkeypatch.setattr(registry, "create_backbone", create_backbone)
    monkeypatch.setattr("sept.features.extract.extract_features", extract_features)


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """metadata.csv (path,classname,fold) of 5 classes x 6 clips in 2 folds."""
    return make_tone_dataset(tmp_path_factory.mktemp("tones"), per_class=6, folds=2)


def _rows(csv: Path) -> list[list[str]]:
    return [line.split(",") for line in csv.read_text().splitlines()[1:]]


def _write(path: Path, header: str, rows: list[list[str]]) -> Path:
    path.write_text("\n".join([header, *(",".join(r) for r in rows)]) + "\n")
    return path


# Each case: (id, edit(tones_csv, tmp_path) -> (argv additions, run root), expected substrings)
Edit = Callable[[Path, Path], list[str]]


def _variant(
    name: str, change: Callable[[list[list[str]]], list[list[str]]], header: str = "path,classname,fold"
):
    def edit(csv: Path, tmp: Path) -> list[str]:
        out = _write(csv.parent / f"{name}.csv", header, change(_rows(csv)))
        return ["--dataset", str(out)]

    return edit


def _train_test(test_change: Callable[[list[list[str]]], list[list[str]]]):
    def edit(csv: Path, tmp: Path) -> list[str]:
        rows = _rows(csv)
        train = _write(csv.parent / "train.csv", "path,classname", [r[:2] for r in rows if r[2] == "1"])
        test = _write(
            csv.parent / "test.csv", "path,classname", test_change([r[:2] for r in rows if r[2] == "2"])
        )
        return ["--dataset", str(train), "--test", str(test)]

    return edit


def _plain(*extra: str) -> Edit:
    def edit(csv: Path, tmp: Path) -> list[str]:
        return ["--dataset", str(csv), *extra]

    return edit


def _with_file(name: str, text: str, *extra: str) -> Edit:
    def edit(csv: Path, tmp: Path) -> list[str]:
        (tmp / name).write_text(text)
        return ["--dataset", str(csv), *[e.replace("{tmp}", str(tmp)) for e in extra]]

    return edit


def _renamed_classes(csv: Path, tmp: Path) -> list[str]:
    rows = [[r[0], {"dog_bark": "zorp", "siren": "blip"}.get(r[1], "quux"), r[2]] for r in _rows(csv)]
    out = _write(csv.parent / "unknown_names.csv", "path,classname,fold", rows)
    return ["--dataset", str(out), "--method", "coop+sept"]


def _late_class(csv: Path, tmp: Path) -> list[str]:
    """Fold 1 is fine (one shot each); fold 2 tests a class its train list lacks: nothing may run."""
    rows = [*_rows(csv), ["audio/ghost/0.wav", "ghost", "2"]]
    out = _write(csv.parent / "late.csv", "path,classname,fold", rows)
    return ["--dataset", str(out), "--shots", "1"]


def _empty_class_folder(csv: Path, tmp: Path) -> list[str]:
    """Folders per class: train/siren/ exists but is empty, test/siren/ has clips."""
    import shutil

    for side, fold in (("train", "1"), ("test", "2")):
        for rel, cls, f in _rows(csv):
            (tmp / side / cls).mkdir(parents=True, exist_ok=True)
            if f == fold and not (side == "train" and cls == "siren"):
                shutil.copy(csv.parent / rel, tmp / side / cls / Path(rel).name)
    return ["--dataset", str(tmp / "train"), "--test", str(tmp / "test")]


def _one_class(csv: Path, tmp: Path) -> list[str]:
    rows = [r for r in _rows(csv) if r[1] == "siren"]
    out = _write(csv.parent / "one_class.csv", "path,classname,fold", rows)
    return ["--dataset", str(out), "--protocol", "base2new"]


def _three_classes(csv: Path, tmp: Path) -> list[str]:
    """Base-to-new on 3 classes: new holds one class, which scores 100% whatever the model does."""
    rows = [r for r in _rows(csv) if r[1] in ("dog_bark", "siren", "jackhammer")]
    out = _write(csv.parent / "three_classes.csv", "path,classname,fold", rows)
    return ["--dataset", str(out), "--protocol", "base2new"]


def _test_is_train(csv: Path, tmp: Path) -> list[str]:
    """The same list as train and test: a run would score its own training clips."""
    rows = _rows(csv)
    train = _write(csv.parent / "same.csv", "path,classname", [r[:2] for r in rows])
    return ["--dataset", str(train), "--test", str(train)]


CASES: list[tuple[str, Edit, list[str]]] = [
    ("missing-column", _variant("nocls", lambda rows: rows, "path,label,fold"), ["lacks column(s) classname", "nocls.csv"]),
    ("empty-class", _variant("empty", lambda rows: [*rows[:3], [rows[3][0], "", rows[3][2]], *rows[4:]]), ["line 5: empty field 'classname'"]),
    ("empty-class-folder", _empty_class_folder, ["has class(es) 'siren' that the train list", "train lacks"]),
    ("unknown-test-class", _train_test(lambda rows: [*rows, ["audio/ghost/0.wav", "ghost"]]), ["test.csv has class(es) 'ghost'", "train.csv lacks"]),
    ("class-only-in-fold-2", _late_class, ["dataset 'late-", "fold 2", "has class(es) 'ghost'"]),
    ("duplicate-path", _variant("dups", lambda rows: [*rows, rows[0]]), ["listed more than once", "'audio/dog_bark/0.wav' x2 (dog_bark)"]),
    ("duplicate-path-two-labels", _variant("dups2", lambda rows: [*rows, [rows[0][0], "siren", rows[0][2]]]), ["listed more than once", "dog_bark, siren"]),
    ("escaping-path", _variant("esc", lambda rows: [*rows, ["../../etc/passwd", "siren", "1"]]), ["'../../etc/passwd' escapes the dataset root"]),
    ("unknown-method", _plain("--method", "cooop"), ["unknown method 'cooop'; valid methods: cocoop, coop, kgcoop, palm, zeroshot"]),
    ("unknown-component", _plain("--method", "coop+sepd"), ["unknown component 'sepd'", "sept"]),
    ("unknown-backbone", _plain("--backbone", "clapp"), ["unknown backbone 'clapp'; valid backbones:", "yamnet-minilm"]),
    ("unknown-dataset", lambda csv, tmp: ["--dataset", "ESC-50"], ["unknown dataset 'ESC-50'; valid datasets:", "ESC50"]),
    ("negative-lr", _plain("--set", "optim.lr=-0.1"), ["optim.lr must be > 0, got -0.1"]),
    ("infinite-lr", _plain("--set", "optim.lr=.inf"), ["optim.lr must be a finite number, got inf"]),
    ("nan-lr", _plain("--set", "optim.lr=.nan"), ["optim.lr must be a finite number, got nan"]),
    ("lr-not-a-number", _plain("--set", "optim.lr=fast"), ["optim.lr: expected a number, got 'fast'"]),
    ("zero-shots", _plain("--shots", "0"), ["shots must be >= 1, got 0"]),
    ("negative-lambda", _plain("--method", "coop+sept", "--set", "sept.weight=-0.5"), ["sept.weight must be >= 0, got -0.5"]),
    ("zero-epochs", _plain("--set", "optim.epochs=0"), ["optim.epochs must be >= 1, got 0"]),
    ("negative-seed", _plain("--seeds", "-1"), ["seeds must be a non-empty list of integers >= 0"]),
    ("unknown-option", _plain("--set", "optim.lrr=0.1"), ["unknown option 'optim.lrr'", "lr"]),
    ("option-of-another-method", _plain("--set", "sept.weight=2"), ["--set 'sept.weight=2': none of the methods coop has an option 'sept.weight'"]),
    ("unknown-fold", _plain("--fold", "7"), ["has no fold 7; folds: 1, 2"]),
    ("too-many-shots", _plain("--shots", "50"), ["fewer than 50 train clips", "--with-replacement"]),
    ("no-neighbours-for-classes", _renamed_classes, ["no shipped neighbour set covers the classes", "zorp"]),
    ("missing-neighbour-file", _plain("--method", "coop+sept", "--set", "sept.neighbors=/nonexistent/n.json"), ["cannot read neighbour file '/nonexistent/n.json'"]),
    ("base2new-one-class", _one_class, ["base-to-new needs at least 2"]),
    ("base2new-one-new-class", _three_classes, ["has 3 class(es)", "new: siren", "at least 2 classes on each side"]),
    ("test-is-train", _test_is_train, ["30 of 30 test file(s) are also train files (the test list is the train list)"]),
    ("config-not-yaml", _with_file("bad.yaml", "optim: [unclosed", "--config", "{tmp}/bad.yaml"), ["bad.yaml' is not valid YAML"]),
    ("config-unknown-key", _with_file("k.yaml", "optim:\n  learning_rate: 0.1\n", "--config", "{tmp}/k.yaml"), ["unknown option 'optim.learning_rate'"]),
    ("config-negative-lambda", _with_file("l.yaml", "sept:\n  weight: -2\n", "--config", "{tmp}/l.yaml", "--method", "coop+sept"), ["sept.weight must be >= 0"]),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sept_run_refuses_bad_input_before_any_compute(guarded, tones, tmp_path, capsys, edit, expected):
    run_root = tmp_path / "runs"
    argv = ["run", "--protocol", "fewshot", "--method", "coop", "--run-root", str(run_root)]
    argv += ["--backbone", "clap", "--backbone-opt", "model=/nonexistent", "--no-progress"]
    extra = edit(tones, tmp_path)
    for flag in ("--method", "--protocol", "--dataset", "--backbone"):  # a case's value wins
        if flag in extra and flag in argv:
            i = argv.index(flag)
            del argv[i : i + 2]
    if "--shots" not in extra:
        argv += ["--shots", "2"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sept run: error: ") and "Traceback" not in err
    for text in expected:
        assert text in err, f"{text!r} not in {err!r}"
    assert not run_root.exists() or not any(run_root.rglob("*")), "files were written"


def test_sept_embed_refuses_bad_metadata_before_loading_a_model(guarded, tones, tmp_path, capsys):
    rows = _rows(tones)
    bad = _write(
        tones.parent / "embed_bad.csv", "path,classname", [[r[0], r[1]] for r in rows] + [["../x.wav", "a"]]
    )
    assert main(["embed", "--data", str(bad), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "'../x.wav' escapes the dataset root" in capsys.readouterr().err
    nocol = _write(tones.parent / "embed_nocol.csv", "file,classname", [[r[0], r[1]] for r in rows])
    assert main(["embed", "--data", str(nocol), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "lacks column(s) path" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("method", "override", "message"),
    [
        ("coop", "optim.lr=-1", "optim.lr must be > 0"),
        ("coop+sept", "sept.weight=-1", "sept.weight must be >= 0"),
        ("kgcoop", "kg.weight=-3", "kg.weight must be >= 0"),
        ("coop", "learner.n_ctx=0", "learner.n_ctx must be >= 1"),
        ("coop", "optim.batch_size=0", "optim.batch_size must be >= 1"),
        ("coop", "optim.warmup_epochs=250", "warmup_epochs (250) must be < optim.epochs"),
    ],
)
def test_invalid_hyperparameters_are_config_errors_in_python_too(method, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_config(method, "base2new", overrides=[override])


def test_protocol_settings_refuse_zero_shots_and_negative_seeds(tmp_path):
    with pytest.raises(ConfigError, match="shots must be >= 1, got 0"):
        ProtocolSettings(run_root=tmp_path, shots=0)
    with pytest.raises(ConfigError, match="seeds must be"):
        ProtocolSettings(run_root=tmp_path, seeds=[0, -2])
    with pytest.raises(ConfigError, match="seeds must be"):
        ProtocolSettings(run_root=tmp_path, seeds=[])
