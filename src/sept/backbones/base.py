"""The one interface every frozen audio-language model implements.

Two stages, as in the paper: the audio tower maps clips to normalised features (computed once and
cached, see :mod:`sept.features`); the text tower maps token-embedding sequences to normalised
features, so prompt learners can put learnable context vectors in front of class-name tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sept.audio.window import AudioWindow
from sept.utils.hashing import hash_json

#: frozen text-feature lists kept per backbone (:meth:`Backbone.embed_text`)
FROZEN_TEXT_MEMO = 64
#: what a cached audio feature holds (part of every backbone identity): the unit vector and the norm
#: of the backbone's unnormalised feature (:meth:`Backbone.embed_audio_inputs_raw`)
FEATURE_FORMAT = "unit+norm"


@dataclass
class TokenBatch:
    """Tokenised texts, dynamically padded to the longest in the batch.

    input_ids: [N, L] long; attention_mask: [N, L] long (1 = real token).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device))


class Backbone(nn.Module, ABC):
    """A frozen audio-language model.

    Subclasses set ``name``, ``sample_rate``, ``embed_dim``, ``token_dim``, ``window`` and
    ``default_logit_scale`` and implement the abstract methods. Every parameter is frozen
    (``requires_grad=False``) and the towers stay in eval mode: ``train()`` is a no-op, so a
    prompt learner that calls ``model.train()`` never switches on dropout or BatchNorm updates.
    """

    name: str
    sample_rate: int
    embed_dim: int
    token_dim: int
    window: AudioWindow
    default_logit_scale: float = 100.0
    #: index in the token sequence where learnable context vectors go (after the start token)
    context_index: int = 1
    #: tokens after a text's own tokens: the end token (MS-CLAP's GPT-2 also has a space before it)
    end_tokens: int = 1
    #: whether the ``*_raw`` methods give the towers' outputs before the final L2 normalisation
    #: (False: they fall back to the normalised features)
    exposes_raw_features: bool = False

    def freeze(self) -> None:
        """Freeze every parameter and put every submodule in eval mode."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        """Backbones are frozen: stay in eval mode whatever the caller asks."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ---- identity --------------------------------------------------------------------------
    @abstractmethod
    def identity_settings(self) -> dict[str, object]:
        """Everything that changes the audio features: weights id/hash, rate, window, options."""

    @property
    def identity(self) -> str:
        """``"<name>-<hash>"``: a stable string naming this backbone's audio features (cache key)."""
        settings = {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "window": self.window.settings(),
            "features": FEATURE_FORMAT,
        }
        settings.update(self.identity_settings())
        return f"{self.name}-{hash_json(settings)[:16]}"

    # ---- audio tower -----------------------------------------------------------------------
    def prepare_audio(self, wave: np.ndarray) -> np.ndarray:
        """Fit a mono waveform [S] at ``sample_rate`` to the backbone's window (deterministic)."""
        return self.window.fit(wave, self.sample_rate)

    @abstractmethod
    def embed_audio(self, waves: list[np.ndarray]) -> torch.Tensor:
        """Normalised audio features [B, D] for prepared mono waveforms (each [S_b] at ``sample_rate``)."""

    def audio_inputs(self, wave: np.ndarray) -> Any:
        """The audio tower's input for one prepared waveform [S], computed on the CPU (thread-safe).

        Feature extraction calls it in its decoding threads, so a backbone whose front end
        (a mel spectrogram, patches, quantisation) is costly overlaps it with the model.
        ``embed_audio_inputs([audio_inputs(w) for w in waves])`` equals ``embed_audio(waves)``.
        Default: the waveform itself.
        """
        return wave

    def embed_audio_inputs(self, inputs: list[Any]) -> torch.Tensor:
        """Normalised audio features [B, D] from per-clip :meth:`audio_inputs` results."""
        return self.embed_audio(inputs)

    def embed_audio_inputs_raw(self, inputs: list[Any]) -> torch.Tensor:
        """Audio features [B, D] before the final L2 normalisation (the audio encoder's output, on
        which DePT's head acts in its reference code). Default: the normalised features, for a
        backbone that does not expose its unnormalised ones (``exposes_raw_features`` False)."""
        return self.embed_audio_inputs(inputs)

    # ---- text tower ------------------------------------------------------------------------
    @abstractmethod
    def tokenize(self, texts: list[str]) -> TokenBatch:
        """Tokenise with start/end tokens, padded to the longest text in the batch."""

    @abstractmethod
    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Input token embeddings [N, L, E] (E = ``token_dim``) for ids [N, L], before positions."""

    @abstractmethod
    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised text features [N, D] from token embeddings [N, L, E] and mask [N, L].

        Pooling (first token, end token or mean) is the backbone's business. Gradients flow to
        ``inputs_embeds`` (prompt learners need them); the weights stay frozen.
        """

    def encode_text_embeds_raw(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Text features [N, D] before the final L2 normalisation (see :meth:`embed_audio_inputs_raw`);
        gradients flow to ``inputs_embeds``. Default: :meth:`encode_text_embeds` (normalised)."""
        return self.encode_text_embeds(inputs_embeds, attention_mask)

    def embed_text(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Normalised text features [N, D] for plain texts (no learnable context), no gradient.

        The frozen text tower's features of a list depend only on the list (and the batch size),
        so they are kept per backbone (the last ``FROZEN_TEXT_MEMO`` lists, by exact content and the
        autocast dtype in force, so a bf16 run never gets fp32 features or the reverse): the
        zero-shot prompts, KgCoOp's hand-crafted targets, SEPT's margin texts and the structure
        analysis's frozen side are computed once per (backbone, classes) and shared by every run
        a process makes, bit for bit what a fresh computation gives. A copy is returned.
        """
        kind = self.device.type
        autocast = str(torch.get_autocast_dtype(kind)) if torch.is_autocast_enabled(kind) else "off"
        key = (tuple(texts), int(batch_size), str(self.device), autocast)
        memo: OrderedDict[tuple, torch.Tensor] = self.__dict__.setdefault("_frozen_text_memo", OrderedDict())
        if key in memo:
            memo.move_to_end(key)
            return memo[key].clone()
        feats = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenize(texts[start : start + batch_size]).to(self.device)
                embeds = self.token_embeddings(tokens.input_ids)
                feats.append(self.encode_text_embeds(embeds, tokens.attention_mask))
        out = torch.cat(feats) if feats else torch.zeros(0, self.embed_dim)
        memo[key] = out
        while len(memo) > FROZEN_TEXT_MEMO:
            memo.popitem(last=False)
        return out.clone()
