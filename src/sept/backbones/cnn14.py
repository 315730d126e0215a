"""CNN14 (PANNs, Kong et al. 2020) as MS-CLAP 2022 uses it: log-mel -> 6 conv blocks -> embedding.

Eval-mode forward of msclap's ``Cnn14`` up to its ``embedding`` output (``relu(fc1(max_t + mean_t))``);
tensor names are the reference's, so its checkpoint loads as is. Unlike HTSAT, CNN14 builds its
mel filterbank from the model's YAML (44.1 kHz, 50-14000 Hz in MS-CLAP 2022).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sept.backbones.logmel import LogMel


@dataclass(frozen=True)
class Cnn14Settings:
    n_fft: int = 1024
    hop: int = 320
    mel_bins: int = 64
    mel_sample_rate: int = 44100
    fmin: float = 50.0
    fmax: float = 14000.0
    #: channels of the six conv blocks (CNN14: 64 ... 2048)
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    out_dim: int = 2048

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Cnn14Settings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "channels" in known:
            known["channels"] = tuple(int(x) for x in known["channels"])  # type: ignore[union-attr]
        return cls(**known)  # type: ignore[arg-type]


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """Log-mel [B, 1, T, M] -> embedding [B, out_dim]; :meth:`mel` makes the log-mel from waves [B, S]."""

    def __init__(self, settings: Cnn14Settings, mel_matrix: torch.Tensor) -> None:
        super().__init__()
        if len(settings.channels) != 6:
            raise ValueError(f"cnn14 has 6 conv blocks, got channels={list(settings.channels)}")
        self.settings = settings
        self.front_end = LogMel(settings.n_fft, settings.hop, mel_matrix)
        self.bn0 = nn.BatchNorm2d(settings.mel_bins)
        c_in = 1
        for i, c_out in enumerate(settings.channels, start=1):
            setattr(self, f"conv_block{i}", _ConvBlock(c_in, c_out))
            c_in = c_out
        self.fc1 = nn.Linear(c_in, settings.out_dim, bias=True)

    @property
    def out_dim(self) -> int:
        return self.settings.out_dim

    def mel(self, waves: torch.Tensor) -> torch.Tensor:
        return self.front_end(waves)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.bn0(mel.transpose(1, 3)).transpose(1, 3)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)
        x = x.mean(dim=3)  # over mel bins
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        return F.relu(self.fc1(x))


#: reference tensors the embedding never uses (the AudioSet head, the STFT kernels)
_UNUSED = re.compile(r"^(spectrogram_extractor\.|logmel_extractor\.|fc_audioset\.)")


def cnn14_state_dict(
    reference: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(Cnn14 state dict, the checkpoint's mel matrix or None) from msclap ``Cnn14`` tensors."""
    kept = {k: v for k, v in reference.items() if not _UNUSED.search(k)}
    return kept, reference.get("logmel_extractor.melW")
