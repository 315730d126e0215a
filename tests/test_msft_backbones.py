"""pengi, msclap-2022 and msclap-2023 against their reference code (tests/msft_reference.py).

One set of random weights goes into the reference model and, through a saved ``.pth`` and
``sept backbones convert``, into sept's backbone; audio features, plain text features and the
prompted text path (learned context) must then agree. Tiny random configs; CNN14 runs at the
reference's fixed width on 1-s clips.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sept.backbones import create_backbone
from sept.backbones.convert import convert_checkpoint
from sept.backbones.msft import MsftBackbone
from sept.cli.main import main as sept_main
from sept.errors import ModelLoadError, UnknownNameError
from sept.methods.base import TextRequest
from sept.methods.learners.coop import CoOpLearner, CoOpOptions
from tests import msft_reference as ref

FAMILIES = ["pengi", "msclap-2022", "msclap-2023"]
TEMPLATE = "this is a sound of"
CLASSES = ["dog barking", "siren", "children playing", "car horn", "rain"]
TEXTS = ["this is a sound of dog barking.", "siren", "an audio clip of an engine idling", "car horn!"]
ATOL = 1e-5


class Pair:
    """sept's backbone and the reference model holding the same weights."""

    def __init__(self, family: str, root: Path, seed: int = 0) -> None:
        from transformers import AutoTokenizer

        self.family = family
        if family == "pengi":
            self.text_dir = ref.save_tiny_clip(root / "tiny-clip", seed)
            self.model = ref.PengiEncoders(self.text_dir, seed)
        elif family == "msclap-2023":
            self.text_dir = ref.save_tiny_gpt2(root / "tiny-gpt2", seed)
            self.model = ref.msclap_model(family, self.text_dir, seed)
        else:
            self.text_dir = ref.save_tiny_bert(root / "tiny-wordpiece", seed)
            self.model = ref.msclap_model(family, self.text_dir, seed)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.text_dir))
        if family == "msclap-2023":
            self.tokenizer.add_special_tokens({"pad_token": "!"})  # CLAPWrapper.load_clap
        self.checkpoint = root / "reference.pth"
        torch.save({"model": self.model.state_dict(), "epoch": 7, "lr": 1e-4}, self.checkpoint)
        self.folder = save_converted(family, self.checkpoint, root / "converted", self.text_dir)
        self.backbone: MsftBackbone = create_backbone(family, model=str(self.folder), device="cpu")

    def audio(self, waves: list[np.ndarray]) -> torch.Tensor:
        x = torch.stack([ref.reference_window(w, ref.TINY_SECONDS, ref.TINY_RATE) for w in waves])
        with torch.no_grad():
            return F.normalize(self.model.audio_encoder(x)[0], dim=-1)

    def text(self, texts: list[str]) -> torch.Tensor:
        batch = ref.reference_text_batch(self.tokenizer, texts, self.family)
        with torch.no_grad():
            return F.normalize(self.model.caption_encoder(batch), dim=-1)


def save_converted(family: str, checkpoint: Path, out: Path, text_dir: Path) -> Path:
    """``convert_checkpoint`` then the tiny sizes written over the family's full-size settings."""
    folder = convert_checkpoint(family, checkpoint, out, text_model=str(text_dir))
    config_path = folder / "sept_backbone.json"
    config = json.loads(config_path.read_text())
    config.update(ref.tiny_settings(family))
    config_path.write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    ref.msclap_models()  # skips the module's tests when the reference code is not installed
    return Pair(request.param, tmp_path_factory.mktemp(request.param.replace("-", "")))


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * ref.TINY_RATE))).astype(np.float32)


# ---- audio ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [0.37, ref.TINY_SECONDS, 2.6], ids=["shorter", "equal", "longer"])
def test_audio_equals_reference(pair: Pair, seconds: float) -> None:
    clip = _noise(seconds, 3)
    ours = pair.backbone.embed_audio([clip])
    torch.testing.assert_close(ours, pair.audio([clip]), atol=ATOL, rtol=0)
    assert ours.shape == (1, ref.TINY_D_PROJ)


def test_audio_batch_equals_one_at_a_time(pair: Pair) -> None:
    clips = [_noise(0.37, 1), _noise(1.0, 2), _noise(2.6, 3)]
    batch = pair.backbone.embed_audio(clips)
    alone = torch.cat([pair.backbone.embed_audio([c]) for c in clips])
    torch.testing.assert_close(batch, alone, atol=ATOL, rtol=0)
    inputs = [pair.backbone.audio_inputs(c) for c in clips]
    torch.testing.assert_close(pair.backbone.embed_audio_inputs(inputs), batch, atol=0, rtol=0)


# ---- text -----------------------------------------------------------------------------------
def test_plain_text_equals_reference(pair: Pair) -> None:
    texts = [t for t in TEXTS if not (pair.family == "msclap-2023" and "!" in t)]  # see below
    torch.testing.assert_close(pair.backbone.embed_text(texts), pair.text(texts), atol=ATOL, rtol=0)


def test_gpt2_pools_at_the_last_real_token_even_after_an_exclamation_mark(pair: Pair) -> None:
    """msclap counts tokens that are not '!' (its pad token) to find the last one; sept reads the
    mask, so a text with '!' pools at its <|endoftext|> like any other."""
    if pair.family != "msclap-2023":
        pytest.skip("GPT-2 only")
    batch = pair.backbone.tokenize(["car horn!"])
    n = int(batch.attention_mask.sum())
    assert batch.input_ids[0, n - 1] == pair.backbone.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    emb = pair.backbone.token_embeddings(batch.input_ids)
    padded = torch.cat([emb, emb[:, :3]], dim=1)
    mask = torch.cat([batch.attention_mask, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(
            pair.backbone.encode_text_embeds(padded, mask),
            pair.backbone.encode_text_embeds(emb, batch.attention_mask),
            atol=ATOL,
            rtol=0,
        )


def _coop(pair: Pair, **options) -> CoOpLearner:
    learner = CoOpLearner(CoOpOptions(**options))
    learner.setup(pair.backbone, CLASSES)
    return learner


def test_template_context_gives_the_plain_feature(pair: Pair) -> None:
    """Context = the template's token embeddings -> exactly the feature of the whole sentence."""
    learner = _coop(pair, ctx_init=TEMPLATE)
    assert learner.n_ctx == len(pair.tokenizer(TEMPLATE, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        prompted = learner.encode([TextRequest(tuple(CLASSES), kind="classes")])[0]
    sentences = [f"{TEMPLATE} {c}." for c in CLASSES]
    torch.testing.assert_close(prompted, pair.backbone.embed_text(sentences), atol=ATOL, rtol=0)
    torch.testing.assert_close(prompted, pair.text(sentences), atol=ATOL, rtol=0)


def test_padded_batch_equals_one_text_at_a_time(pair: Pair) -> None:
    learner = _coop(pair, ctx_init=None, n_ctx=3)
    with torch.no_grad():
        batch = learner.encode([TextRequest(tuple(CLASSES), kind="classes")])[0]
        alone = torch.cat([learner.encode([TextRequest((c,), kind="classes")])[0] for c in CLASSES])
    assert pair.backbone.tokenize([f" {c}." for c in CLASSES]).attention_mask.eq(0).any()  # really padded
    torch.testing.assert_close(batch, alone, atol=ATOL, rtol=0)


def test_context_slot_and_suffix_follow_the_text_tower(pair: Pair) -> None:
    bb = pair.backbone
    assert bb.context_index == (0 if pair.family == "msclap-2023" else 1)
    assert bb.end_tokens == (2 if pair.family == "msclap-2023" else 1)
    batch = bb.tokenize(["siren", "dog barking"])
    assert (batch.input_ids[:, 0] != bb.tokenizer.pad_token_id).all()
    assert batch.attention_mask[:, 0].all() and batch.attention_mask[1].all()


def test_gradient_reaches_the_context_not_the_weights(pair: Pair) -> None:
    learner = _coop(pair, ctx_init=None, n_ctx=2)
    feats = learner.encode([TextRequest(tuple(CLASSES[:2]), kind="classes")])[0]
    (feats * torch.randn_like(feats)).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in pair.backbone.parameters())
    pair.backbone.train()
    assert not any(m.training for m in pair.backbone.modules())


def test_text_longer_than_the_tower_is_cut_keeping_its_end_token(pair: Pair) -> None:
    bb = pair.backbone
    batch = bb.tokenize(["dog " * 200])
    assert batch.input_ids.shape[1] == bb.max_text_length
    assert bb.encode_text_embeds(bb.token_embeddings(batch.input_ids), batch.attention_mask).shape == (
        1,
        ref.TINY_D_PROJ,
    )
    with pytest.raises(ValueError, match="at most"):
        n = bb.max_text_length + 1
        bb.encode_text_embeds(torch.zeros(1, n, bb.token_dim), torch.ones(1, n, dtype=torch.long))


# ---- weights: conversion, identity, errors --------------------------------------------------
def test_identity_follows_the_audio_weights(pair: Pair, tmp_path: Path) -> None:
    if pair.family == "msclap-2022":
        pytest.skip("shared code; CNN14's full width makes a second copy slow")
    again = create_backbone(pair.family, model=str(pair.folder), device="cpu")
    assert again.identity == pair.backbone.identity
    state = {k: v.clone() for k, v in pair.model.state_dict().items()}
    key = next(k for k in state if k.startswith("audio_encoder.projection.linear1"))
    state[key] += 1.0
    torch.save({"model": state}, tmp_path / "other.pth")
    other = create_backbone(
        pair.family,
        model=str(save_converted(pair.family, tmp_path / "other.pth", tmp_path / "o", pair.text_dir)),
        device="cpu",
    )
    assert other.identity != pair.backbone.identity


def test_convert_refuses_a_checkpoint_that_needs_more_than_tensors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"audio_encoder.x": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, bad)
    with pytest.raises(ModelLoadError, match=r"weights_only=True.*argparse\.Namespace"):
        convert_checkpoint("pengi", bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_convert_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        convert_checkpoint("pengi", tmp_path / "missing.pth", tmp_path / "out")
    torch.save(
        {"model": {"audio_encoder.projection.linear1.weight": torch.zeros(2, 2)}}, tmp_path / "part.pth"
    )
    with pytest.raises(ModelLoadError, match="not a msclap-2022 checkpoint"):
        convert_checkpoint("msclap-2022", tmp_path / "part.pth", tmp_path / "out")
    with pytest.raises(UnknownNameError):
        convert_checkpoint("clap", tmp_path / "part.pth", tmp_path / "out")
    with pytest.raises(ModelLoadError, match="not a converted checkpoint"):
        create_backbone("pengi", model=str(tmp_path))


def test_a_folder_of_another_family_is_refused(pair: Pair) -> None:
    other = "msclap-2023" if pair.family == "pengi" else "pengi"
    with pytest.raises(ModelLoadError, match=f"not '{other}'"):
        create_backbone(other, model=str(pair.folder), device="cpu")


def test_cli_convert_writes_a_loadable_folder(
    pair: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if pair.family == "msclap-2022":
        pytest.skip("shared code; CNN14's full width makes a second copy slow")
    out = tmp_path / "cli"
    code = sept_main(
        [
            "backbones",
            "convert",
            pair.family,
            str(pair.checkpoint),
            "--out",
            str(out),
            "--text-model",
            str(pair.text_dir),
        ]
    )
    assert code == 0 and f"model={out}" in capsys.readouterr().out
    config = json.loads((out / "sept_backbone.json").read_text())
    assert config["family"] == pair.family and config["source"]["file"] == "reference.pth"
    assert (
        sept_main(["backbones", "convert", pair.family, str(tmp_path / "nope.pth"), "--out", str(out)]) == 2
    )


def test_pengi_needs_a_model_folder() -> None:
    with pytest.raises(ModelLoadError, match="Zenodo"):
        create_backbone("pengi")


def test_uncached_msclap_hub_weights_offline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"CLAP_weights_2023\.pth.*microsoft/msclap"):
        create_backbone("msclap-2023", local_files_only=True, cache_dir=str(tmp_path))


# ---- the front end at full size --------------------------------------------------------------
@pytest.mark.parametrize("rate,fmax", [(32_000, 14_000), (44_100, 14_000)], ids=["htsat", "cnn14"])
def test_mel_matrix_equals_librosa(rate: int, fmax: int) -> None:
    torchlibrosa = pytest.importorskip("torchlibrosa.stft")
    from sept.backbones.logmel import slaney_mel_matrix

    theirs = torchlibrosa.LogmelFilterBank(
        sr=rate, n_fft=1024, n_mels=64, fmin=50, fmax=fmax, top_db=None
    ).melW
    torch.testing.assert_close(
        slaney_mel_matrix(rate, 1024, 64, 50, fmax), theirs.detach(), atol=1e-7, rtol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pengi", "msclap-2022"])
def test_full_size_audio_tower_equals_reference(family: str, tmp_path: Path) -> None:
    """The real sizes and front ends (HTSAT: 32-kHz filterbank on 44.1-kHz audio, 7 s; CNN14: 5 s)."""
    models = ref.msclap_models()
    from sept.backbones.msclap import MSCLAP_2022
    from sept.backbones.msft import Family
    from sept.backbones.msft_weights import write_folder
    from sept.backbones.pengi import PENGI

    fam: Family = PENGI if family == "pengi" else MSCLAP_2022
    torch.manual_seed(0)
    if family == "pengi":
        audio = models.clap.AudioEncoder("HTSAT", 768, 1024, 44100, 1024, 320, 64, 50, 8000, 527)
    else:
        audio = models.clap.AudioEncoder("Cnn14", 2048, 1024, 44100, 1024, 320, 64, 50, 14000, 527)
    ref.randomize_(audio, 0)
    audio.eval()
    text_dir = (
        ref.save_tiny_clip(tmp_path / "tiny-clip", 0)
        if family == "pengi"
        else ref.save_tiny_bert(tmp_path / "tiny-wordpiece", 0)
    )
    text = ref.PengiTextEncoder(ref.TINY_D_PROJ, str(text_dir), ref.TINY_TEXT_DIM)
    text.projection = ref.PengiProjection(ref.TINY_TEXT_DIM, 1024)
    tensors = {f"audio_encoder.{k}": v for k, v in audio.state_dict().items()}
    tensors.update({f"caption_encoder.{k}": v for k, v in text.state_dict().items()})
    folder = write_folder(tmp_path / "full", tensors, {**fam.config(), "text_model": str(text_dir)})
    backbone = create_backbone(family, model=str(folder), device="cpu")
    clips = [_noise(s * ref.TINY_RATE / 44100, i) for i, s in enumerate((2.0, fam.seconds, 9.0))]
    clips = [np.resize(c, round(len(c) * 44100 / ref.TINY_RATE)) for c in clips]
    x = torch.stack([ref.reference_window(c, int(fam.seconds), 44100) for c in clips])
    with torch.no_grad():
        theirs = F.normalize(audio(x)[0], dim=-1)
    torch.testing.assert_close(backbone.embed_audio(clips), theirs, atol=ATOL, rtol=0)


# ---- the reproduction configs ------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["fewshot-pengi", "base2new-pengi", "xd-pengi"])
def test_pengi_paper_configs_resolve_every_method(name: str) -> None:
    from sept.bench.grid import load_grid
    from sept.data.registry import BENCHMARK_DATASETS
    from sept.training.config import resolve_config

    grid = load_grid(REPO / "configs" / "paper" / f"{name}.yaml")
    assert grid.backbone == "pengi" and sorted(d.name for d in grid.datasets) == sorted(BENCHMARK_DATASETS)
    header = (REPO / "configs" / "paper" / f"{name}.yaml").read_text().split("\nname:")[0]
    assert "reproduce" in header and "sept backbones convert pengi" in header
    for method in grid.methods:
        config = resolve_config(
            method.name, grid.protocols[0], overrides=[*grid.overrides, *method.overrides]
        )
        if name == "fewshot-pengi" and method.name == "zeroshot":
            assert config.learner.templates == ["The is a recording of  {}."]  # PALM's prompt_prefix
        if name == "fewshot-pengi":
            assert (config.optim.lr, config.optim.batch_size, config.optim.scheduler) == (0.05, 16, "none")
            if method.name.startswith(("coop", "cocoop")):
                assert config.learner.n_ctx == 16 and config.learner.ctx_init is None


def test_cli_lists_the_new_backbones_and_documents_convert(capsys: pytest.CaptureFixture[str]) -> None:
    assert sept_main(["backbones"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"pengi", "msclap-2022", "msclap-2023", "clap"} <= listed
    with pytest.raises(SystemExit) as info:
        sept_main(["backbones", "convert", "--help"])
    assert info.value.code == 0 and "weights_only=True" in capsys.readouterr().out


def test_tile_window_repeats_and_cuts_like_the_reference_wrappers() -> None:
    from sept.audio.window import AudioWindow

    window = AudioWindow(max_seconds=1.0, min_seconds=1.0, pad="tile")
    for n in (1, 7, 3000, 16_000, 40_000):
        wave = np.arange(n, dtype=np.float32)
        want = ref.reference_window(wave, 1.0, ref.TINY_RATE).numpy()
        np.testing.assert_array_equal(window.fit(wave, ref.TINY_RATE), want)
