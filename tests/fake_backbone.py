"""A minimal Backbone for cache and pipeline tests: features = normalised spectral band energies.

It counts audio-tower calls, so tests can tell cache hits from recomputation. Method tests use
the tiny random CLAP instead (tests/tiny_models.py), which takes the real code path.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sept.audio.window import AudioWindow
from sept.backbones.base import Backbone, TokenBatch


class BandEnergyBackbone(Backbone):
    name = "band-energy"
    sample_rate = 16000
    embed_dim = 8
    token_dim = 8

    def __init__(self, bands: int = 8, max_seconds: float = 2.0) -> None:
        super().__init__()
        self.embed_dim = self.token_dim = bands
        self.window = AudioWindow(max_seconds=max_seconds, min_seconds=0.25)
        self.embedding = torch.nn.Embedding(64, bands)
        self.clips_embedded = 0
        self.freeze()

    def identity_settings(self) -> dict[str, object]:
        return {"bands": self.embed_dim}

    def embed_audio(self, waves: list[np.ndarray]) -> torch.Tensor:
        self.clips_embedded += len(waves)
        feats = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w))
            feats.append([b.sum() + 1e-3 for b in np.array_split(spec, self.embed_dim)])
        return F.normalize(torch.tensor(np.log(np.array(feats)), dtype=torch.float32), dim=-1)

    def tokenize(self, texts: list[str]) -> TokenBatch:
        ids = [[1, *[2 + ord(ch) % 60 for ch in t][:30], 63] for t in texts]
        width = max(len(i) for i in ids)
        input_ids = torch.tensor([i + [0] * (width - len(i)) for i in ids])
        return TokenBatch(input_ids, (input_ids != 0).long())

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(input_ids)

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(inputs_embeds.dtype)
        return F.normalize((inputs_embeds * mask).sum(1) / mask.sum(1), dim=-1)
