"""`sept embed` and `sept eval` end to end on generated audio with the tiny random CLAP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sept.backbones import create_backbone
from sept.cli.main import main
from sept.data.clips import load_clips
from sept.features import extract_features
from tests.tiny_models import save_tiny_clap


@pytest.fixture(scope="module")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny")


def test_embed_then_reuse_cache(
    tone_dataset: Path, tiny_clap_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["embed", "--data", str(tone_dataset / "meta.csv"), "--backbone", "clap"]
    args += ["--backbone-opt", f"model={tiny_clap_dir}", "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    assert main(args) == 0
    assert "12 computed, 0 skipped" in capsys.readouterr().out
    assert main(args) == 0
    assert "12 from cache, 0 computed" in capsys.readouterr().out
    # the cached features equal a fresh computation with the same backbone
    bb = create_backbone("clap", model=str(tiny_clap_dir))
    clips = load_clips(tone_dataset / "meta.csv")
    cached = extract_features(bb, clips, tmp_path / "c", progress=False)
    fresh = extract_features(bb, clips, use_cache=False, batch_size=3, progress=False)
    assert cached.computed == 0
    np.testing.assert_allclose(cached.features.numpy(), fresh.features.numpy(), atol=1e-5)


def test_zeroshot_eval_writes_metrics_json(
    tone_dataset: Path, tiny_clap_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tone_dataset / "mid_beep" / "corrupt.wav").write_bytes(b"garbage")
    out = tmp_path / "res.json"
    args = ["eval", "--method", "zeroshot", "--data", str(tone_dataset), "--backbone", "clap"]
    args += ["--backbone-opt", f"model={tiny_clap_dir}", "--cache-dir", str(tmp_path / "c"), "--no-progress"]
    assert main([*args, "--ensemble", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["classnames"] == ["high_whistle", "low_hum", "mid_beep"]
    assert res["prompt_names"]["low_hum"] == "low hum"
    assert res["num_clips"] == 12 and res["num_skipped"] == 1
    assert len(res["templates"]) == 5
    cm = np.array(res["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == 12
    assert res["accuracy"] == pytest.approx(100 * np.trace(cm) / 12)
    assert set(res["per_class_accuracy"]) == set(res["classnames"])
    assert 0 <= res["macro_f1"] <= 100
    assert "accuracy" in capsys.readouterr().out


def test_eval_fold_filter_and_errors(tone_dataset: Path, tiny_clap_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.json"
    base = ["eval", "--data", str(tone_dataset / "meta.csv"), "--backbone", "clap", "--no-progress"]
    base += ["--backbone-opt", f"model={tiny_clap_dir}", "--cache-dir", str(tmp_path / "c")]
    assert main([*base, "--fold", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["num_clips"] == 6
    assert main([*base, "--fold", "9"]) == 2  # no clip in that fold: a clear error, exit 2
    assert main(["eval", "--data", str(tone_dataset), "--backbone", "no-such-backbone"]) == 2
