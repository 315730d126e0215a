"""Cached training step cost of each backbone: clap vs pengi, msclap-2022, msclap-2023 (CPU).

One CoOp training step on cached audio features (what every epoch of sept's training is made of):
the audio side is a tensor index, so the cost is the text tower's forward and backward over the
class prompts (learned context + class name) of 25 ESC50 classes, batch 16, the few-shot
protocol's defaults. The four backbones run the same step, interleaved round by round (one step of
each per round, so background load hits all alike), after two warm-up steps each; the median step
time and its ratio to CLAP's are printed.

Models: full-size, randomly initialised, loaded through ``create_backbone`` exactly as trained
checkpoints are (random weights cost what trained ones cost): "clap" is benchlib's
``ClapModel(ClapConfig())`` (RoBERTa-base text tower); the others are converted folders
(``model.safetensors`` + ``sept_backbone.json``) holding a full-size reference audio encoder built
by the ``msclap`` package (requirements/reference.txt) and a text tower from ``transformers``'
default config of the family's text model (CLIP ViT-B text: 63 M; BERT-base: 110 M; GPT-2: 124 M)
with a tokenizer of that family's kind trained offline on the shipped phrases (so prompts have
realistic lengths). Built once under ``$SEPT_BENCH_DIR``.

No target: this is a cost table (benchmarks/README.md, "Backbones").

    python benchmarks/bench_backbone_step.py [--rounds 20] [--backbones clap,pengi,...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import benchlib

FAMILIES = ("clap", "pengi", "msclap-2022", "msclap-2023")
NUM_CLASSES, BATCH = 25, 16
_MARKER = "sept-bench-full.json"


# ---- tokenizers of each family's kind, trained offline -------------------------------------------
def clip_like_tokenizer():  # -> transformers.CLIPTokenizer
    """Lower-cased byte-level BPE with CLIP's "</w>" word ends and <|startoftext|> / <|endoftext|>."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    words = Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(words, behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=8000,
        min_frequency=2,
        end_of_word_suffix="</w>",
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(benchlib._tokenizer_corpus(), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    for c in alphabet:
        vocab.setdefault(c + "</w>", len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)  # the highest id, as in CLIP's vocabulary
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def gpt2_like_tokenizer():  # -> transformers.GPT2Tokenizer
    """Byte-level BPE in GPT-2's layout: the byte alphabet first ('!' = 0), <|endoftext|> last."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        benchlib._tokenizer_corpus(), vocab_size=8000, min_frequency=2, show_progress=False
    )
    model = json.loads(bpe._tokenizer.to_str())["model"]
    vocab = dict(model["vocab"])
    vocab["<|endoftext|>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=1024)


def bert_like_tokenizer(folder: Path):  # -> transformers.BertTokenizer
    """Uncased WordPiece with BERT's special tokens."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizer

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        benchlib._tokenizer_corpus(), vocab_size=8000, min_frequency=2, show_progress=False
    )
    folder.mkdir(parents=True, exist_ok=True)
    wp.save_model(str(folder))
    return BertTokenizer(str(folder / "vocab.txt"), model_max_length=512)


# ---- full-size random converted folders ---------------------------------------------------------------
def full_folder(family: str) -> Path:
    """``$SEPT_BENCH_DIR/<family>-full``: built once (a minute, about 1 GB), reused afterwards."""
    folder = benchlib.WORK / f"{family}-full"
    if (folder / _MARKER).exists():
        return folder
    import torch
    from transformers import BertConfig, BertModel, CLIPTextConfig, CLIPTextModel, GPT2Config, GPT2Model

    sys.path.insert(0, str(benchlib.REPO))
    from tests.msft_reference import msclap_models

    from sept.backbones.convert import convertible_families
    from sept.backbones.msft import Projection
    from sept.backbones.msft_weights import write_folder

    fam = convertible_families()[family]
    text_dir = folder / "text"
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = msclap_models()
        if fam.audio_encoder == "htsat":
            audio = ref.clap.AudioEncoder("HTSAT", 768, 1024, 44100, 1024, 320, 64, 50, 8000, 527)
        else:
            audio = ref.clap.AudioEncoder("Cnn14", 2048, 1024, 44100, 1024, 320, 64, 50, 14000, 527)
        if fam.text_encoder == "clip":
            text, tokenizer = CLIPTextModel(CLIPTextConfig()), clip_like_tokenizer()
        elif fam.text_encoder == "gpt2":
            text, tokenizer = GPT2Model(GPT2Config()), gpt2_like_tokenizer()
        else:
            text, tokenizer = BertModel(BertConfig(), add_pooling_layer=False), bert_like_tokenizer(text_dir)
        hidden = text.config.hidden_size
        tensors = {f"audio_encoder.{k}": v for k, v in audio.state_dict().items()}
        tensors.update({f"caption_encoder.base.{k}": v for k, v in text.state_dict().items()})
        tensors.update(
            {f"caption_encoder.projection.{k}": v for k, v in Projection(hidden, 1024).state_dict().items()}
        )
        if fam.text_encoder == "clip":
            tensors["caption_encoder.clip_text_projection.weight"] = torch.nn.Linear(
                hidden, hidden, bias=False
            ).weight
    text.config.save_pretrained(text_dir)
    tokenizer.save_pretrained(text_dir)
    write_folder(folder, tensors, {**fam.config(), "text_model": str(text_dir)})
    params = sum(v.numel() for v in tensors.values() if v.is_floating_point())
    (folder / _MARKER).write_text(json.dumps({"parameters": params}))
    print(
        f"built a full-size random {family} ({params / 1e6:.0f} M parameters) in {folder} ({time.perf_counter() - t0:.0f} s)"
    )
    return folder


def load(family: str):  # -> Backbone
    from sept.backbones.registry import create_backbone

    if family == "clap":
        return benchlib.clap_backbone(device="cpu")
    return create_backbone(family, model=str(full_folder(family)), device="cpu")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per backbone (default 20)")
    parser.add_argument(
        "--backbones", default=",".join(FAMILIES), help="comma-separated, from " + ", ".join(FAMILIES)
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(FAMILIES)):
        raise SystemExit(f"unknown backbones {unknown}; choose from {', '.join(FAMILIES)}")

    import torch

    from bench_sept_cost import esc50_classes
    from sept.training.config import resolve_config
    from sept.training.trainer import build_optimizer, epoch_generator

    print(benchlib.machine())
    classnames, _ = esc50_classes()
    config = resolve_config("coop", "fewshot", overrides=[f"optim.batch_size={BATCH}"])
    rigs = {}
    for name in names:
        backbone = load(name)
        method = config.build_method(backbone, classnames)
        method.train()
        gen = torch.Generator().manual_seed(0)
        audio = torch.nn.functional.normalize(torch.randn(BATCH, backbone.embed_dim, generator=gen), dim=-1)
        labels = torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen)
        tokens = backbone.tokenize([method.learner.class_text(c) for c in classnames])
        length = float(tokens.attention_mask.sum(1).float().mean()) + method.learner.n_ctx
        text_params = (
            sum(p.numel() for p in backbone.text_tower.parameters())
            if hasattr(backbone, "text_tower")
            else sum(p.numel() for p in backbone.model.text_model.parameters())
        )
        rigs[name] = (method, build_optimizer(method, config.optim), audio, labels, length, text_params)

    def step(name: str) -> float:
        method, opt, audio, labels, _, _ = rigs[name]
        t0 = time.perf_counter()
        loss, _ = method.training_loss(audio, labels, classnames, generator=epoch_generator(0, 0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for name in names:  # warm-up
        step(name)
        step(name)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(step(name))
    print("load average at end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(
        f"\nCoOp step on cached features: {NUM_CLASSES} classes, batch {BATCH}, "
        f"{rigs[names[0]][0].learner.n_ctx} context vectors, median of {args.rounds} interleaved steps"
    )
    base = benchlib.median(times["clap"]) if "clap" in times else None
    print(f"{'backbone':14s} {'text params':>11s} {'prompt tokens':>13s} {'step (s)':>9s} {'vs clap':>8s}")
    for name in names:
        med = benchlib.median(times[name])
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{name:14s} {rigs[name][5] / 1e6:10.0f}M {rigs[name][4]:13.1f} {med:9.3f} {ratio:>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
