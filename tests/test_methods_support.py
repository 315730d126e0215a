"""Helpers shared by the method, training and protocol tests (no tests here).

Every method test runs on the tiny random CLAP of ``tests/tiny_models.py`` loaded through
``create_backbone("clap", model=...)``: the real text-tower code path, in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sept.backbones import Backbone, create_backbone
from sept.methods.compose import ComposedMethod
from sept.training.config import RunConfig, resolve_config
from tests.tiny_models import save_tiny_clap

CLASSES = ["dog_bark", "siren", "car_horn", "engine_idling"]
NEW_CLASSES = ["jackhammer", "street_music", "children_playing"]


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory: pytest.TempPathFactory) -> Backbone:
    """The tiny random CLAP on the CPU, loaded like a hub checkpoint."""
    path = save_tiny_clap(Path(tmp_path_factory.mktemp("tiny_clap")), seed=0)
    return create_backbone("clap", model=str(path), device="cpu")


def separable_features(
    dim: int, n_classes: int, per_class: int, seed: int = 1234
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised features [n_classes * per_class, dim] around random class centres, labels [N]."""
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_classes, dim, generator=gen), dim=-1)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    noise = 0.1 * torch.randn(labels.shape[0], dim, generator=gen)
    return F.normalize(centres[labels] + noise, dim=-1), labels


def configure(method: str, overrides: Iterable[str] = (), protocol: str = "base2new") -> RunConfig:
    """A config with short, fast training (override anything with ``key=value``)."""
    fast = ["optim.epochs=6", "optim.batch_size=8", "optim.lr=0.05", "optim.warmup_epochs=0"]
    return resolve_config(method, protocol, overrides=[*fast, *overrides])


def make_method(config: RunConfig, backbone: Backbone, classnames: list[str] | None = None) -> ComposedMethod:
    return config.build_method(backbone, classnames or CLASSES)


#: class name -> base frequency (Hz) of the generated tone dataset
TONE_CLASSES = {
    "dog_bark": 300.0,
    "siren": 900.0,
    "car_horn": 1800.0,
    "engine_idling": 120.0,
    "jackhammer": 3500.0,
}


def make_tone_dataset(
    root: Path, per_class: int = 6, folds: int = 2, sr: int = 16_000, seconds: float = 1.0
) -> Path:
    """A CSV dataset ``root/metadata.csv`` (path,classname,fold) of generated tones + noise.

    Clip i of a class goes to fold ``1 + i % folds``; each class has its own frequency, so the
    audio features are class-dependent. Returns the CSV path.
    """
    import numpy as np
    import soundfile as sf

    rows = ["path,classname,fold"]
    for c, (name, freq) in enumerate(TONE_CLASSES.items()):
        for i in range(per_class):
            rng = np.random.default_rng(100 * c + i)
            t = np.arange(round(seconds * sr)) / sr
            f = freq * (1 + 0.03 * rng.standard_normal())
            wave = (
                0.4 * np.sin(2 * np.pi * f * t)
                + 0.2 * np.sin(4 * np.pi * f * t)
                + 0.02 * rng.standard_normal(t.shape)
            )
            rel = f"audio/{name}/{i}.wav"
            (root / "audio" / name).mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, wave.astype(np.float32), sr)
            rows.append(f"{rel},{name},{1 + i % folds}")
    csv = root / "metadata.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv
