"""Shared fixtures: generated audio and tiny datasets (tests never need ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """A sine at ``freq`` Hz with a little noise: float32 [S]."""
    t = np.arange(round(seconds * sr)) / sr
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (amplitude * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, sr: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr, **kwargs)
    return path


@pytest.fixture
def tone_dataset(tmp_path: Path) -> Path:
    """A folder per class (3 classes x 4 clips, different rates, lengths and formats) + a CSV."""
    root = tmp_path / "tones"
    rows = ["path,classname,fold"]
    specs = {"low_hum": 220.0, "mid_beep": 880.0, "high_whistle": 3000.0}
    for c, (name, freq) in enumerate(specs.items()):
        for i in range(4):
            sr = (8000, 16000, 22050, 44100)[i]
            ext = ("wav", "flac", "ogg", "wav")[i]
            rel = f"{name}/clip_{i}.{ext}"
            write_audio(root / rel, tone(freq * (1 + 0.02 * i), 0.5 + 0.7 * i, sr, seed=10 * c + i), sr)
            rows.append(f"{rel},{name},{1 + i % 2}")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return root
