"""ClapBackbone on tiny random checkpoints saved like hub checkpoints (no download, no GPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sept.backbones import create_backbone
from sept.backbones.clap import ClapBackbone
from sept.errors import ModelLoadError, SeptError
from tests.tiny_models import (
    TINY_EMBED_DIM,
    TINY_MAX_POSITIONS,
    TINY_SAMPLE_RATE,
    TINY_TOKEN_DIM,
    save_tiny_clap,
)

TEXTS = ["the sound of a dog barking", "siren", "an audio clip of an engine idling on a cold morning"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clap(tmp_path_factory.mktemp("tiny_clap"), seed=0)


@pytest.fixture(scope="module")
def backbone(tiny_dir: Path) -> ClapBackbone:
    return create_backbone("clap", model=str(tiny_dir), device="cpu")


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * TINY_SAMPLE_RATE))).astype(np.float32)


# ---- loading and shapes ---------------------------------------------------------------------
def test_loads_through_registry_with_model_facts(backbone: ClapBackbone) -> None:
    assert isinstance(backbone, ClapBackbone)
    assert backbone.sample_rate == TINY_SAMPLE_RATE
    assert (backbone.embed_dim, backbone.token_dim) == (TINY_EMBED_DIM, TINY_TOKEN_DIM)
    assert backbone.window.max_seconds == backbone.window.min_seconds == 1.0
    assert (backbone.window.pad, backbone.window.crop) == ("repeat", "center")
    assert backbone.context_index == 1
    assert backbone.default_logit_scale == 100.0
    assert backbone.learned_logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # ClapConfig's initial value


def test_audio_features_are_normalised(backbone: ClapBackbone) -> None:
    feats = backbone.embed_audio([_noise(0.3, 0), _noise(1.0, 1), _noise(2.5, 2)])
    assert feats.shape == (3, TINY_EMBED_DIM) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(3))
    assert backbone.embed_audio([]).shape == (0, TINY_EMBED_DIM)


def test_text_features_are_normalised(backbone: ClapBackbone) -> None:
    feats = backbone.embed_text(TEXTS)
    assert feats.shape == (len(TEXTS), TINY_EMBED_DIM)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(len(TEXTS)))
    assert not torch.allclose(feats[0], feats[1])


# ---- text tower -----------------------------------------------------------------------------
def test_tokenize_uses_roberta_specials_and_right_padding(backbone: ClapBackbone) -> None:
    tok = backbone.tokenizer
    batch = backbone.tokenize(TEXTS)
    lengths = batch.attention_mask.sum(dim=1)
    assert batch.input_ids.shape[1] == int(lengths.max())  # dynamic padding
    assert (batch.input_ids[:, 0] == tok.bos_token_id).all()
    for row, n in zip(batch.input_ids, lengths.tolist(), strict=True):
        assert row[n - 1] == tok.eos_token_id
        assert (row[n:] == tok.pad_token_id).all()


def test_tokenize_truncates_at_the_model_length(backbone: ClapBackbone) -> None:
    batch = backbone.tokenize(["dog " * 200])
    assert batch.input_ids.shape[1] == backbone.max_text_length == TINY_MAX_POSITIONS - 2
    assert batch.input_ids[0, -1] == backbone.tokenizer.eos_token_id
    feats = backbone.encode_text_embeds(backbone.token_embeddings(batch.input_ids), batch.attention_mask)
    assert feats.shape == (1, TINY_EMBED_DIM)
    too_long = torch.zeros(1, backbone.max_text_length + 1, backbone.token_dim)
    with pytest.raises(ValueError, match="at most"):
        backbone.encode_text_embeds(too_long, torch.ones(1, backbone.max_text_length + 1, dtype=torch.long))


def test_embeds_path_equals_get_text_features_with_padding(backbone: ClapBackbone) -> None:
    batch = backbone.tokenize(TEXTS)
    assert (batch.attention_mask == 0).any()  # the batch really is padded
    with torch.no_grad():
        ours = backbone.encode_text_embeds(backbone.token_embeddings(batch.input_ids), batch.attention_mask)
        ref = backbone.model.get_text_features(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    torch.testing.assert_close(ours, ref.pooler_output, atol=1e-6, rtol=1e-5)
    # and padding does not change a text's feature: each text alone, unpadded
    for i, text in enumerate(TEXTS):
        alone = backbone.tokenize([text])
        with torch.no_grad():
            single = backbone.encode_text_embeds(
                backbone.token_embeddings(alone.input_ids), alone.attention_mask
            )
        torch.testing.assert_close(single[0], ours[i], atol=1e-5, rtol=1e-5)


def test_gradient_reaches_inputs_embeds_but_not_weights(backbone: ClapBackbone) -> None:
    batch = backbone.tokenize(TEXTS[:2])
    embeds = backbone.token_embeddings(batch.input_ids).detach().requires_grad_(True)
    feats = backbone.encode_text_embeds(embeds, batch.attention_mask)
    (feats * torch.randn_like(feats)).sum().backward()
    assert embeds.grad is not None and embeds.grad[:, 1].abs().sum() > 0  # the context slot
    assert all(p.grad is None and not p.requires_grad for p in backbone.parameters())


# ---- audio tower ----------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.7])
def test_embed_audio_is_deterministic_and_batch_independent(backbone: ClapBackbone, seconds: float) -> None:
    clip = _noise(seconds, 7)
    others = [_noise(0.5, 8), _noise(3.0, 9)]
    np.random.seed(0)
    first = backbone.embed_audio([clip])
    np.random.seed(123)  # the feature extractor's random crops would follow this state
    again = backbone.embed_audio([clip])
    in_batch = backbone.embed_audio([others[0], clip, others[1]])
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    torch.testing.assert_close(in_batch[1], first[0], atol=1e-5, rtol=1e-5)


def test_audio_inputs_then_embed_equals_embed_audio(backbone: ClapBackbone) -> None:
    clips = [_noise(0.3, 1), _noise(1.0, 2), _noise(2.7, 3)]
    inputs = [backbone.audio_inputs(c) for c in clips]
    assert all(x.dtype == np.float32 and x.ndim == 3 and x.shape[0] == 1 for x in inputs)  # [1, T, mels]
    torch.testing.assert_close(
        backbone.embed_audio_inputs(inputs), backbone.embed_audio(clips), atol=0, rtol=0
    )
    assert backbone.embed_audio_inputs([]).shape == (0, TINY_EMBED_DIM)


def test_long_clip_is_center_cropped_and_short_clip_repeated(backbone: ClapBackbone) -> None:
    n = TINY_SAMPLE_RATE
    long_clip = _noise(2.5, 3)
    start = (long_clip.shape[0] - n) // 2
    short = _noise(0.4, 4)
    tiled = np.zeros(n, dtype=np.float32)
    reps = n // short.shape[0]
    tiled[: reps * short.shape[0]] = np.tile(short, reps)
    got = backbone.embed_audio([long_clip, short])
    want = backbone.embed_audio([long_clip[start : start + n], tiled])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    other_crop = backbone.embed_audio([long_clip[:n]])
    assert not torch.allclose(got[0], other_crop[0], atol=1e-4)


def test_fused_model_path_is_deterministic(tmp_path: Path) -> None:
    fused = create_backbone("clap", model=str(save_tiny_clap(tmp_path / "fused", fused=True)), device="cpu")
    clips = [_noise(0.5, 1), _noise(1.0, 2), _noise(2.0, 3)]
    batch = fused.embed_audio(clips)
    alone = torch.cat([fused.embed_audio([c]) for c in clips])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.norm(dim=-1), torch.ones(3))
    assert fused.identity_settings()["truncation"] == "fusion"
    inputs = [fused.audio_inputs(c) for c in clips]
    assert all(x.shape[0] == 4 for x in inputs)  # the fused extractor's four mel views
    torch.testing.assert_close(fused.embed_audio_inputs(inputs), batch, atol=0, rtol=0)


# ---- frozen, eval mode ----------------------------------------------------------------------
def test_stays_frozen_and_in_eval_mode_after_train(backbone: ClapBackbone) -> None:
    backbone.train()
    assert not any(m.training for m in backbone.modules())
    assert not any(p.requires_grad for p in backbone.parameters())
    batch = backbone.tokenize(TEXTS)
    embeds = backbone.token_embeddings(batch.input_ids)
    with torch.no_grad():  # dropout off: two passes agree exactly
        a = backbone.encode_text_embeds(embeds, batch.attention_mask)
        b = backbone.encode_text_embeds(embeds, batch.attention_mask)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


# ---- identity -------------------------------------------------------------------------------
def test_identity_follows_the_checkpoint_not_the_folder(tmp_path: Path, backbone: ClapBackbone) -> None:
    same = create_backbone("clap", model=str(save_tiny_clap(tmp_path / "same", seed=0)), device="cpu")
    other = create_backbone("clap", model=str(save_tiny_clap(tmp_path / "other", seed=1)), device="cpu")
    assert same.identity == backbone.identity
    assert other.identity != backbone.identity
    assert backbone.identity_settings()["truncation"] == "rand_trunc"


def test_identity_changes_with_dtype(tiny_dir: Path, backbone: ClapBackbone) -> None:
    half = create_backbone("clap", model=str(tiny_dir), device="cpu", dtype="bfloat16")
    assert half.identity != backbone.identity
    feats = half.embed_audio([_noise(1.0, 0)])
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(1))


def test_hub_id_loads_from_the_local_cache_with_its_commit(tmp_path: Path, tiny_dir: Path) -> None:
    repo = tmp_path / "hub" / "models--sept-test--tiny-clap"
    commits = ["a" * 40, "b" * 40]
    shutil.copytree(tiny_dir, repo / "snapshots" / commits[0])
    save_tiny_clap(repo / "snapshots" / commits[1], seed=1)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commits[0])
    opts = {"model": "sept-test/tiny-clap", "cache_dir": str(tmp_path / "hub"), "local_files_only": True}
    main = create_backbone("clap", device="cpu", **opts)
    pinned = create_backbone("clap", device="cpu", revision=commits[1], **opts)
    assert main.identity_settings()["commit"] == commits[0]
    assert pinned.identity_settings()["commit"] == commits[1]
    assert main.identity != pinned.identity
    assert not torch.allclose(main.embed_text(TEXTS), pinned.embed_text(TEXTS))


# ---- errors ---------------------------------------------------------------------------------
def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such_model"
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        create_backbone("clap", model=str(missing))
    assert str(missing) in str(info.value)


def test_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeptError, match="cannot load a CLAP model from folder"):
        create_backbone("clap", model=str(tmp_path))


def test_uncached_hub_id_offline_names_the_id_and_suggests_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        create_backbone(
            "clap", model="laion/clap-htsat-unfused", local_files_only=True, cache_dir=str(tmp_path)
        )
    message = str(info.value)
    assert "'laion/clap-htsat-unfused'" in message and "local folder" in message


def test_bad_dtype_is_rejected(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        create_backbone("clap", model=str(tiny_dir), dtype="int8")


def test_raw_features_are_the_projections_before_normalisation(backbone: ClapBackbone) -> None:
    """DePT's head takes ``audio_projection`` / ``text_projection`` outputs as they are."""
    assert backbone.exposes_raw_features
    inputs = [backbone.audio_inputs(_noise(1.0, 3)), backbone.audio_inputs(_noise(2.0, 4))]
    raw = backbone.embed_audio_inputs_raw(inputs)
    torch.testing.assert_close(
        torch.nn.functional.normalize(raw, dim=-1), backbone.embed_audio_inputs(inputs)
    )
    batch = backbone.tokenize(TEXTS)
    with torch.no_grad():
        embeds = backbone.token_embeddings(batch.input_ids)
        text_raw = backbone.encode_text_embeds_raw(embeds, batch.attention_mask)
        ref = backbone.model.get_text_features(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    ref = getattr(ref, "pooler_output", ref)  # transformers returns the projected features
    torch.testing.assert_close(
        torch.nn.functional.normalize(text_raw, dim=-1),
        torch.nn.functional.normalize(ref, dim=-1),
        atol=1e-6,
        rtol=1e-5,
    )
    assert (text_raw.norm(dim=-1) - 1).abs().max() > 1e-3
