"""HTSAT (Chen et al. 2022) as Pengi and MS-CLAP 2023 use it: log-mel -> Swin -> latent vector.

The Swin part is ``transformers``' ``ClapAudioEncoder`` (the same HTSAT code LAION CLAP ships, with
feature fusion off); its ``pooler_output`` is HTSAT's ``latent_output``, the vector both
reference models project into the joint space. :func:`htsat_state_dict` renames a reference
checkpoint's HTSAT tensors (``attn.qkv``, ``norm1``, ``mlp.fc1``, ``bn0``, ...) to that module's
names; tensors the embedding never uses (the classification head, ``tscam_conv``, cached masks and
indices, the STFT kernels) are dropped.

Eval mode only: a clip longer than the window never reaches the tower (the backbone's window
crops it first), so HTSAT's sliding-crop and random-crop branches are not needed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from sept.backbones.logmel import LogMel


@dataclass(frozen=True)
class HtsatSettings:
    """HTSAT's sizes and front end (reference defaults: ``HTSAT_Swin_Transformer()`` + ``config.py``)."""

    n_fft: int = 1024
    hop: int = 320
    mel_bins: int = 64
    #: the rate and band the mel filterbank was designed for (HTSAT's config.py, not the YAML)
    mel_sample_rate: int = 32000
    fmin: float = 50.0
    fmax: float = 14000.0
    spec_size: int = 256
    patch_size: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 8
    mlp_ratio: float = 4.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def out_dim(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["depths"], d["num_heads"] = list(self.depths), list(self.num_heads)
        d.pop("extra")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> HtsatSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "extra"}
        for key in ("depths", "num_heads"):
            if key in known:
                known[key] = tuple(int(x) for x in known[key])  # type: ignore[union-attr]
        return cls(**known)  # type: ignore[arg-type]


def _clap_audio_config(s: HtsatSettings):  # -> transformers.ClapAudioConfig
    from transformers import ClapAudioConfig

    return ClapAudioConfig(
        spec_size=s.spec_size,
        num_mel_bins=s.mel_bins,
        patch_size=s.patch_size,
        patch_stride=(s.patch_size, s.patch_size),
        patch_embeds_hidden_size=s.embed_dim,
        hidden_size=s.out_dim,
        depths=list(s.depths),
        num_attention_heads=list(s.num_heads),
        window_size=s.window_size,
        mlp_ratio=s.mlp_ratio,
        qkv_bias=True,
        hidden_act="gelu",
        enable_fusion=False,
        enable_patch_layer_norm=True,
        flatten_patch_embeds=True,
        patch_embed_input_channels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.0,
        layer_norm_eps=1e-5,
    )


class Htsat(nn.Module):
    """Log-mel [B, 1, T, M] -> latent [B, out_dim]; :meth:`mel` makes the log-mel from waves [B, S]."""

    def __init__(self, settings: HtsatSettings, mel_matrix: torch.Tensor) -> None:
        super().__init__()
        from transformers.models.clap.modeling_clap import ClapAudioEncoder

        self.settings = settings
        self.front_end = LogMel(settings.n_fft, settings.hop, mel_matrix)
        self.encoder = ClapAudioEncoder(_clap_audio_config(settings))

    @property
    def out_dim(self) -> int:
        return self.settings.out_dim

    def mel(self, waves: torch.Tensor) -> torch.Tensor:
        return self.front_end(waves)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        frames = mel.shape[2]
        limit = self.settings.spec_size * (self.settings.spec_size // self.settings.mel_bins)
        if frames > limit:
            raise ValueError(f"htsat: {frames} frames; the tower takes at most {limit} (crop the clip first)")
        return self.encoder(input_features=mel).pooler_output


# reference name (after "htsat.") -> ClapAudioEncoder name
_RENAMES = (
    (r"^bn0\.", "batch_norm."),
    (r"\.norm1\.", ".layernorm_before."),
    (r"\.norm2\.", ".layernorm_after."),
    (r"\.attn\.proj\.", ".attention.output.dense."),
    (r"\.attn\.relative_position_bias_table$", ".attention.self.relative_position_bias_table"),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
)
#: reference tensors the latent vector never uses
_UNUSED = re.compile(
    r"^(spectrogram_extractor\.|logmel_extractor\.|tscam_conv\.|head\.)|"
    r"(\.attn_mask|\.relative_position_index)$"
)


def htsat_state_dict(
    reference: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(ClapAudioEncoder state dict, the checkpoint's mel matrix or None) from HTSAT tensors.

    ``reference`` holds the names below ``...htsat.`` (``patch_embed.proj.weight``, ``layers.0.blocks.0.attn.qkv.weight``, ...).
    """
    out: dict[str, torch.Tensor] = {}
    mel = reference.get("logmel_extractor.melW")
    for name, tensor in reference.items():
        if _UNUSED.search(name):
            continue
        qkv = re.match(r"^(.*)\.attn\.qkv\.(weight|bias)$", name)
        if qkv:
            for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True):
                out[f"{qkv.group(1)}.attention.self.{part}.{qkv.group(2)}"] = chunk.clone()
            continue
        new = name
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        out[new] = tensor
    return out, mel
