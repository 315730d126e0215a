"""The reference code sept's pengi / msclap backbones are held to, on tiny random configs.

- MS-CLAP: the ``msclap`` package (PyPI 1.3.4, MIT): its ``CLAP`` model (``AudioEncoder``,
  ``TextEncoder``, ``HTSAT_Swin_Transformer``, ``Cnn14``) and, rebuilt below from its
  ``CLAPWrapper`` (which cannot be imported without torchaudio), the text and audio preparation.
  ``msclap.models`` is imported without running ``msclap/__init__.py`` (that imports torchaudio).
- Pengi: microsoft/Pengi is not on PyPI. Its ``models/pengi.py`` classes are rebuilt below
  (MIT; commit 31d5e37); its ``models/htsat.py`` is msclap's ``htsat.py`` line for line apart from
  imports (diffed when these tests were written), so the HTSAT comes from the msclap package.

Tiny configs: the reference HTSAT takes its front end from a config module; here a namespace with
small sizes. CNN14's channels and 64 mel bins are fixed by the reference, so CNN14 runs at full
width on short clips. Text towers are tiny random Hugging Face models saved in folders whose names
steer the reference code ("clip", "gpt", neither = BERT-like), with tiny tokenizers built offline.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TINY_RATE = 16_000
TINY_SECONDS = 1.0
TINY_D_PROJ = 24
TINY_TEXT_DIM = 32
#: the tiny HTSAT: 16 mel bins designed for 12 kHz (as Pengi's are for 32 kHz on 44.1 kHz audio)
TINY_HTSAT = {
    "n_fft": 256, "hop": 64, "mel_bins": 16, "mel_sample_rate": 12_000, "fmin": 50.0, "fmax": 5000.0,
    "spec_size": 64, "patch_size": 4, "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 2],
    "window_size": 4, "mlp_ratio": 4.0,
}  # fmt: skip
#: CNN14 at the reference's fixed widths, tiny front end (64 mel bins are fixed by its bn0)
TINY_CNN14 = {
    "n_fft": 256, "hop": 64, "mel_bins": 64, "mel_sample_rate": TINY_RATE, "fmin": 50.0, "fmax": 7000.0,
    "channels": [64, 128, 256, 512, 1024, 2048], "out_dim": 64,
}  # fmt: skip
_WORDS = [
    "this",
    "is",
    "a",
    "sound",
    "of",
    "the",
    "dog",
    "barking",
    "siren",
    "wailing",
    "engine",
    "idling",
    "children",
    "playing",
    "car",
    "horn",
    "rain",
    "drilling",
    "street",
    "music",
    "an",
    "audio",
    "clip",
    "recording",
]


# ---- the msclap package without its __init__ -------------------------------------------------
def msclap_models() -> types.SimpleNamespace:
    """``msclap.models.{clap, htsat, audio}``; pytest skips the caller when msclap is not installed."""
    import pytest

    if "msclap" not in sys.modules:
        spec = importlib.util.find_spec("msclap")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(
                "the reference package msclap is not installed (make setup installs requirements/reference.txt)"
            )
        pytest.importorskip("torchlibrosa", reason="msclap's audio encoders need torchlibrosa")
        package = types.ModuleType("msclap")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["msclap"] = package
    import msclap.models.audio as audio
    import msclap.models.clap as clap
    import msclap.models.htsat as htsat

    return types.SimpleNamespace(clap=clap, htsat=htsat, audio=audio)


def tiny_htsat(seed: int) -> nn.Module:
    """The reference ``HTSAT_Swin_Transformer`` at tiny size, its front end from a tiny config."""
    ref = msclap_models()
    s = TINY_HTSAT
    config = SimpleNamespace(
        window_size=s["n_fft"], hop_size=s["hop"], sample_rate=s["mel_sample_rate"], mel_bins=s["mel_bins"],
        fmin=s["fmin"], fmax=s["fmax"], enable_tscam=True, htsat_attn_heatmap=False, loss_type="clip_bce",
        enable_repeat_mode=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    return ref.htsat.HTSAT_Swin_Transformer(
        spec_size=s["spec_size"], patch_size=s["patch_size"], patch_stride=(s["patch_size"], s["patch_size"]),
        num_classes=5, embed_dim=s["embed_dim"], depths=s["depths"], num_heads=s["num_heads"],
        window_size=s["window_size"], config=config,
    )  # fmt: skip


class _HtsatWrapper(nn.Module):
    """Pengi's / msclap's ``HTSATWrapper`` around a given HTSAT."""

    def __init__(self, htsat: nn.Module) -> None:
        super().__init__()
        self.htsat = htsat

    def forward(self, x):
        out_dict = self.htsat(x)
        out_dict["embedding"] = out_dict["latent_output"]
        return out_dict


# ---- Pengi's models/pengi.py (rebuilt; MIT, microsoft/Pengi @ 31d5e37) -------------------------
class PengiProjection(nn.Module):
    def __init__(self, d_in: int, d_out: int, p: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed1 = self.linear1(x)
        embed2 = self.drop(self.linear2(F.gelu(embed1)))
        embeds = self.layer_norm(embed1 + embed2)
        return embeds


class PengiAudioEncoder(nn.Module):
    def __init__(self, base: nn.Module, d_in: int, d_out: int) -> None:
        super().__init__()
        self.base = base
        self.projection = PengiProjection(d_in, d_out)

    def forward(self, x):
        out_dict = self.base(x)
        audio_features, audio_classification_output = out_dict["embedding"], out_dict["clipwise_output"]
        projected_vec = self.projection(audio_features)
        return projected_vec, audio_classification_output


class PengiTextEncoder(nn.Module):
    def __init__(self, d_out: int, text_model: str, transformer_embed_dim: int) -> None:
        super().__init__()
        from transformers import AutoModel

        self.text_model = text_model
        self.base = AutoModel.from_pretrained(text_model)
        if "clip" in text_model:
            self.clip_text_projection = self.base.text_projection
            self.base = self.base.text_model
            if "base" in text_model:
                transformer_embed_dim = 512
        self.projection = PengiProjection(transformer_embed_dim, d_out)

    def forward(self, x):
        if "clip" in self.text_model:
            pooled_output = self.base(**x)[1]  # get pooled output
            out = self.clip_text_projection(pooled_output)
        else:
            out = self.base(**x)[0]
            out = out[:, 0, :]
        projected_vec = self.projection(out)
        return projected_vec


class PengiEncoders(nn.Module):
    """The two encoders of Pengi's ``PENGI`` (the caption decoder is not part of the joint space)."""

    def __init__(self, text_dir: Path, seed: int) -> None:
        super().__init__()
        htsat = tiny_htsat(seed)
        self.audio_encoder = PengiAudioEncoder(_HtsatWrapper(htsat), htsat.num_features, TINY_D_PROJ)
        self.caption_encoder = PengiTextEncoder(TINY_D_PROJ, str(text_dir), TINY_TEXT_DIM)
        randomize_(self, seed)
        self.eval()


def msclap_model(family: str, text_dir: Path, seed: int) -> nn.Module:
    """msclap's ``CLAP`` with a tiny HTSAT (2023) or its CNN14 on a tiny front end (2022)."""
    ref = msclap_models()
    torch.manual_seed(seed)
    if family == "msclap-2023":
        clap = ref.clap.CLAP(
            "HTSAT", TINY_RATE, 256, 64, 16, 50, 5000, 5, 768, str(text_dir), TINY_TEXT_DIM, TINY_D_PROJ
        )
        htsat = tiny_htsat(seed)
        clap.audio_encoder.base = _HtsatWrapper(htsat)
        clap.audio_encoder.projection = ref.clap.Projection(htsat.num_features, TINY_D_PROJ)
    else:
        c = TINY_CNN14
        clap = ref.clap.CLAP(
            "Cnn14", c["mel_sample_rate"], c["n_fft"], c["hop"], c["mel_bins"], c["fmin"], c["fmax"], 5,
            c["out_dim"], str(text_dir), TINY_TEXT_DIM, TINY_D_PROJ,
        )  # fmt: skip
    randomize_(clap, seed)
    return clap.eval()


def randomize_(model: nn.Module, seed: int) -> None:
    """Move every weight and BatchNorm statistic off its initial value (LayerNorm 1/0, BN 0/1 would
    hide a missing or swapped tensor); the fixed STFT kernels and mel matrix stay as built."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "extractor" in name:
                continue
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 3.0 - 20.0 * ("bn0" in name))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) * 2.0 + (40.0 if "bn0" in name else 0.5))


# ---- what the reference wrappers do to audio and text -------------------------------------------
def reference_window(wave: np.ndarray, seconds: float, rate: int) -> torch.Tensor:
    """``load_audio_into_tensor`` of PengiWrapper / CLAPWrapper, with the random crop of a long clip
    replaced by the centre crop sept takes (the only deterministic choice)."""
    n = int(seconds * rate)
    x = torch.from_numpy(np.asarray(wave, dtype=np.float32))
    if n >= x.shape[0]:
        repeat_factor = int(np.ceil(n / x.shape[0]))
        return x.repeat(repeat_factor)[0:n]
    start = (x.shape[0] - n) // 2
    return x[start : start + n]


def reference_text_batch(tokenizer, texts: list[str], family: str) -> dict[str, torch.Tensor]:
    """``preprocess_text`` of PengiWrapper (40 tokens) / CLAPWrapper (GPT-2: 77, BERT: 100)."""
    max_len = {"pengi": 40, "msclap-2023": 77, "msclap-2022": 100}[family]
    keys = (
        ["input_ids", "token_type_ids", "attention_mask"]
        if family == "msclap-2022"
        else ["input_ids", "attention_mask"]
    )
    rows = []
    for text in texts:
        if family == "msclap-2023":
            text = text + " <|endoftext|>"
        tok = tokenizer(
            text, add_special_tokens=True, max_length=max_len, padding="max_length", return_tensors="pt"
        )
        rows.append({k: tok[k].reshape(-1) for k in keys})
    return {k: torch.stack([r[k] for r in rows]) for k in keys}


# ---- tiny text towers and tokenizers ---------------------------------------------------------
def save_tiny_clip(path: Path, seed: int) -> Path:
    """A tiny random ``CLIPModel`` + a CLIP tokenizer without merges (words split into characters);
    <|endoftext|> has the highest id, and eos_token_id=2 as in openai's configs, so CLIP pools at
    argmax(ids) exactly as for the real model."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=77)
    text = {
        "vocab_size": len(vocab), "hidden_size": TINY_TEXT_DIM, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": len(vocab) - 2, "eos_token_id": 2,
        "pad_token_id": 1, "projection_dim": TINY_TEXT_DIM,
    }  # fmt: skip
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 16,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=TINY_TEXT_DIM))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_gpt2(path: Path, seed: int) -> Path:
    """A tiny random ``GPT2Model`` + a byte-level BPE tokenizer with <|endoftext|> (GPT-2's layout)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, GPT2Tokenizer

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(_WORDS)] * 3, vocab_size=400, min_frequency=1, show_progress=False)
    bpe.save_model(str(path))
    # GPT-2's layout: the byte alphabet first ('!' = 0, the id msclap's pooling counts as padding),
    # <|endoftext|> last
    vocab = json.loads((path / "vocab.json").read_text())
    vocab["<|endoftext|>"] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = GPT2Tokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=1024)
    assert tokenizer.convert_tokens_to_ids("!") == 0, "GPT-2's pad token '!' must have id 0"
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=TINY_TEXT_DIM, n_layer=2, n_head=2, n_positions=96)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2Model(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_bert(path: Path, seed: int) -> Path:
    """A tiny random ``BertModel`` + a WordPiece tokenizer over a fixed word list."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", *sorted(set(_WORDS))]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(path / "vocab.txt"), model_max_length=512)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=TINY_TEXT_DIM, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_settings(family: str) -> dict[str, object]:
    """The settings a tiny converted folder records instead of the family's full-size ones."""
    audio = TINY_CNN14 if family == "msclap-2022" else TINY_HTSAT
    return {"audio": dict(audio), "sample_rate": TINY_RATE, "seconds": TINY_SECONDS}


def window_samples() -> int:
    return math.floor(TINY_SECONDS * TINY_RATE)
