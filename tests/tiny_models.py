"""Tiny random checkpoints for unit tests, saved the way a hub checkpoint is laid out.

``save_tiny_clap(path)`` writes a randomly initialised ``transformers.ClapModel`` (a few hundred
thousand parameters), its ``ClapFeatureExtractor`` and a small RoBERTa-style BPE tokenizer into
``path`` with ``save_pretrained``, so ``create_backbone("clap", model=str(path))`` loads it through
the same code path as a hub id. Nothing is downloaded; a build takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

#: words the tiny tokenizer learns merges from: templates and a few class names
_CORPUS = (
    "the sound of a dog barking",
    "a recording of a siren wailing",
    "this is the sound of children playing",
    "an audio clip of an engine idling",
    "street music can be heard",
    "air conditioner, car horn, drilling, gun shot, jackhammer.",
    "zero one two three four five six seven eight nine",
    "a photo of a bird singing in the rain",
)
#: RoBERTa's special tokens, in RoBERTa's id order (<s>=0, <pad>=1, </s>=2), as ClapTextConfig expects
_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

#: the tiny model's sizes (kept small so a forward pass costs milliseconds)
TINY_SAMPLE_RATE = 16_000
TINY_MAX_SECONDS = 1
TINY_EMBED_DIM = 32
TINY_TOKEN_DIM = 64
TINY_MAX_POSITIONS = 64


def tiny_clap_config(fused: bool = False):  # -> transformers.ClapConfig
    """The tiny ``ClapConfig`` suggested by the project's environment notes (``fused`` turns on feature fusion)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig

    text = ClapTextConfig(
        vocab_size=1000,
        hidden_size=TINY_TOKEN_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=TINY_MAX_POSITIONS,
        projection_dim=TINY_EMBED_DIM,
    )
    audio = ClapAudioConfig(
        spec_size=64,
        num_mel_bins=64,
        window_size=4,
        patch_size=4,
        patch_stride=(4, 4),
        hidden_size=64,
        patch_embeds_hidden_size=32,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=TINY_EMBED_DIM,
        enable_fusion=fused,
        fusion_type="aff_2d" if fused else None,
    )
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=TINY_EMBED_DIM)


def tiny_roberta_tokenizer():  # -> transformers.RobertaTokenizer
    """A byte-level BPE tokenizer (< 400 tokens) trained on a fixed corpus: deterministic, offline."""
    import json

    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(_CORPUS) * 3,
        vocab_size=400,
        min_frequency=1,
        special_tokens=list(_SPECIAL_TOKENS),
        show_progress=False,
    )
    model = json.loads(bpe._tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    # LAION's tokenizer declares model_max_length = 512 = max_position_embeddings - 2; do the same
    return RobertaTokenizer(vocab=model["vocab"], merges=merges, model_max_length=TINY_MAX_POSITIONS - 2)


def tiny_clap_feature_extractor():  # -> transformers.ClapFeatureExtractor
    """64 mel bins at 16 kHz, 1 s clips (51 frames, the tiny model's spec_size is 64).

    The saved truncation stays the library default ("fusion"), as in some hub checkpoints, so the
    backbone must choose the right mode for the model itself.
    """
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=TINY_SAMPLE_RATE,
        hop_length=320,
        max_length_s=TINY_MAX_SECONDS,
        fft_window_size=512,
        frequency_min=50,
        frequency_max=8000,
    )


def save_tiny_clap(path: Path, seed: int = 0, fused: bool = False) -> Path:
    """Save a tiny random CLAP (model, feature extractor, tokenizer) into ``path``; returns ``path``.

    The weights depend only on ``seed`` (the global RNG state is left untouched).
    """
    import torch
    from transformers import ClapModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = tiny_clap_config(fused=fused)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config)
    model.save_pretrained(path)
    tiny_clap_feature_extractor().save_pretrained(path)
    tiny_roberta_tokenizer().save_pretrained(path)
    return path
