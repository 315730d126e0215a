"""The log-mel front end of PANNs-style audio towers (Pengi's and MS-CLAP's HTSAT and CNN14).

Equal to torchlibrosa's ``Spectrogram`` + ``LogmelFilterBank`` as those models configure them:
periodic Hann window, centred frames with reflect padding, power spectrogram, a Slaney mel
filterbank (librosa's default), ``10 * log10(max(mel, 1e-10))`` with ``ref = 1`` and no ``top_db``.
torchlibrosa computes the STFT with two convolutions; here it is ``torch.stft``.

The filterbank is a weight of the reference models (``logmel_extractor.melW``), so a checkpoint's
own matrix is used when it has one. Note that HTSAT (in Pengi and MS-CLAP 2023) builds it from its
own config module, not from the model's YAML: 32 kHz, 50-14000 Hz, applied to 44.1 kHz audio.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: power_to_db's floor, as torchlibrosa's LogmelFilterBank(amin=1e-10, ref=1.0, top_db=None)
_AMIN = 1e-10


def slaney_mel_matrix(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """librosa's ``filters.mel`` (Slaney scale and norm) as float32 [n_fft // 2 + 1, n_mels]."""
    from transformers.audio_utils import mel_filter_bank

    mel = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=float(fmin),
        max_frequency=float(fmax),
        sampling_rate=int(sample_rate),
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.asarray(mel, dtype=np.float32))


class LogMel(nn.Module):
    """Waves [B, S] -> log-mel [B, 1, T, n_mels] with T = S // hop + 1 (float32)."""

    def __init__(self, n_fft: int, hop: int, mel_matrix: torch.Tensor) -> None:
        super().__init__()
        if mel_matrix.shape[0] != n_fft // 2 + 1:
            raise ValueError(
                f"mel matrix has {mel_matrix.shape[0]} rows, n_fft={n_fft} needs {n_fft // 2 + 1}"
            )
        self.n_fft, self.hop = int(n_fft), int(hop)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel_matrix", mel_matrix.detach().float().clone(), persistent=False)

    @property
    def n_mels(self) -> int:
        return int(self.mel_matrix.shape[1])

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            waves.float(),
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.n_fft,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # [B, F, T]
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power.transpose(1, 2), self.mel_matrix)  # [B, T, M]
        return (10.0 * torch.log10(mel.clamp(min=_AMIN))).unsqueeze(1)
