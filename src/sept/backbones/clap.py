"""Hugging Face CLAP (``transformers.ClapModel``): HTSAT audio tower, RoBERTa text tower.

``model=`` is a hub id (``laion/clap-htsat-unfused``, ``laion/larger_clap_general``, ...) or a local
folder written by ``save_pretrained`` (model, feature extractor and tokenizer together). A hub id is
looked up in the local Hugging Face cache first and fetched only when missing, so a cached model
loads offline with no network round trip (an uncached id retries the network for ~30 s before it
fails unless HF_HUB_OFFLINE=1 or ``local_files_only=True``).

Audio: every clip is fitted to exactly the feature extractor's ``max_length_s`` (10 s for LAION
CLAP) by :class:`~sept.audio.window.AudioWindow` (repeat-pad, centre crop), so the extractor never
takes one of its random crops. Unfused models get the extractor's ``rand_trunc`` log-mel (slaney
filters); fused models get its ``fusion`` log-mel (HTK filters) with ``is_longer`` all False, i.e.
the global branch only, exactly what LAION CLAP computes for a clip of at most 10 s.

Text: RoBERTa word embeddings -> text encoder -> first-token pooler -> projection, normalised. With
``inputs_embeds`` RoBERTa would number positions 2, 3, 4, ... regardless of padding; this module
passes the position ids that ``input_ids`` would give (``cumsum(mask) * mask + padding_idx``), so the
embeddings path equals ``ClapModel.get_text_features(input_ids=...)``.
"""

from __future__ import annotations

import hashlib
import pickle  # only for its error type: nothing is unpickled here
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sept.audio.window import AudioWindow
from sept.backbones.attention import match_attention
from sept.backbones.base import Backbone, TokenBatch
from sept.errors import ModelLoadError
from sept.utils.hashing import hash_json
from sept.utils.load_errors import UNSAFE_PICKLE, is_unsafe_pickle
from sept.utils.quiet import quiet_hf_loading

#: "org/name" or "name": what the Hugging Face hub accepts as a model id
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
#: config keys that name where or how a checkpoint was loaded, not what it computes
_VOLATILE_CONFIG_KEYS = frozenset({"transformers_version", "dtype", "torch_dtype", "architectures"})
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ClapBackbone(Backbone):
    """Frozen ``transformers.ClapModel`` behind the :class:`Backbone` interface.

    Options: ``model`` (hub id or local folder), ``revision`` (hub branch, tag or commit),
    ``device`` (default: CUDA when available, else CPU), ``dtype`` ("float32", "float16",
    "bfloat16"), ``local_files_only`` (never contact the hub), ``cache_dir`` (Hugging Face cache).
    Features and token embeddings are returned as float32 whatever the weights' dtype.
    """

    name = "clap"
    context_index = 1  # after RoBERTa's <s>
    exposes_raw_features = True  # the projections' outputs, before ClapModel's normalisation
    default_logit_scale = 100.0  # docs/METHOD.md; the checkpoint's own scale is `learned_logit_scale`

    def __init__(
        self,
        model: str = "laion/clap-htsat-unfused",
        revision: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype = "float32",
        local_files_only: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.model_id = str(model)
        self.revision = revision
        self._dtype = _parse_dtype(dtype)
        self._source = _resolve_source(self.model_id)
        self._cache_dir = None if cache_dir is None else str(cache_dir)
        clap, extractor, tokenizer = _load(
            self._source, self.model_id, revision, self._dtype, local_files_only, self._cache_dir
        )
        self.model = clap
        self.feature_extractor = extractor
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"  # the pooler reads position 0, which must be <s>
        self._commit = (
            None if self._source is not None else _cached_commit(self.model_id, revision, self._cache_dir)
        )
        self._identity_cache: dict[str, object] | None = None

        text_cfg = clap.config.text_config
        self._fused = bool(clap.config.audio_config.enable_fusion)
        self._padding_idx = int(text_cfg.pad_token_id)
        # RoBERTa numbers positions from padding_idx + 1, so the table holds max_positions - padding_idx - 1
        self.max_text_length = min(
            int(tokenizer.model_max_length), int(text_cfg.max_position_embeddings) - self._padding_idx - 1
        )
        self.sample_rate = int(extractor.sampling_rate)
        self.embed_dim = int(clap.config.projection_dim)
        self.token_dim = int(text_cfg.hidden_size)
        seconds = float(extractor.max_length_s)
        self.window = AudioWindow(max_seconds=seconds, min_seconds=seconds, crop="center", pad="repeat")

        self.model.to(_pick_device(device))
        self.freeze()

    # ---- identity --------------------------------------------------------------------------
    def identity_settings(self) -> dict[str, object]:
        """Checkpoint (hub id + commit, or a hash of the local weights), config, extractor and dtype."""
        if self._identity_cache is None:
            settings: dict[str, object] = {
                "config": hash_json(_stable_config(self.model.config.to_dict())),
                "feature_extractor": _extractor_settings(self.feature_extractor),
                "truncation": self._truncation,
                "dtype": str(self._dtype).removeprefix("torch."),
            }
            if self._source is None:
                settings.update(model=self.model_id, revision=self.revision, commit=self._commit)
                if self._commit is None:  # no immutable commit known: fall back to the weights themselves
                    settings["weights"] = _weights_hash(self._snapshot_dir())
            else:
                settings["weights"] = _weights_hash(self._source)
            self._identity_cache = settings
        return dict(self._identity_cache)

    @property
    def learned_logit_scale(self) -> float:
        """The checkpoint's own audio-to-text logit scale, ``exp(logit_scale_a)`` (not used by default)."""
        return float(self.model.logit_scale_a.detach().float().exp())

    # ---- audio tower -----------------------------------------------------------------------
    @property
    def _truncation(self) -> str:
        return "fusion" if self._fused else "rand_trunc"

    def embed_audio(self, waves: list[np.ndarray]) -> torch.Tensor:
        """Normalised audio features [B, D] (float32) for mono waves [S_b] at ``sample_rate``.

        Each wave is fitted to the window first (a no-op for prepared waves), so every clip is
        exactly ``max_length_s`` long and the result is deterministic and batch-independent.
        """
        return self.embed_audio_inputs([self.audio_inputs(w) for w in waves])

    def audio_inputs(self, wave: np.ndarray) -> np.ndarray:
        """The feature extractor's mel input [C, T, M] (float32; C = 4 when fused, else 1) for one wave [S]."""
        fitted = self.window.fit(wave, self.sample_rate)
        mel = self.feature_extractor(
            [fitted],
            sampling_rate=self.sample_rate,
            truncation=self._truncation,
            padding="repeatpad",
            max_length=fitted.shape[0],
            return_tensors="np",
        )["input_features"]
        return np.asarray(mel[0], dtype=np.float32)

    def embed_audio_inputs(self, inputs: list[np.ndarray]) -> torch.Tensor:
        """Normalised audio features [B, D] (float32) from per-clip mel inputs (:meth:`audio_inputs`)."""
        return F.normalize(self.embed_audio_inputs_raw(inputs), dim=-1)

    def embed_audio_inputs_raw(self, inputs: list[np.ndarray]) -> torch.Tensor:
        """``audio_projection(pooler_output)`` [B, D] (float32), before normalisation."""
        device = self.device
        if len(inputs) == 0:
            return torch.zeros(0, self.embed_dim, device=device)
        mel = torch.from_numpy(np.stack(inputs)).to(device=device, dtype=self._dtype)  # [B, C, T, M]
        # never "longer": the extractor's own flag is random for fused models when no clip is longer
        is_longer = torch.zeros(len(inputs), 1, dtype=torch.bool, device=device)
        with torch.no_grad():
            pooled = self.model.audio_model(input_features=mel, is_longer=is_longer).pooler_output
            feats = self.model.audio_projection(pooled)
        return feats.float()

    # ---- text tower ------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> TokenBatch:
        """``<s> text </s>`` ids [N, L], right-padded with <pad> to the longest, cut at ``max_text_length``."""
        if len(texts) == 0:
            empty = torch.zeros(0, 0, dtype=torch.long)
            return TokenBatch(empty, empty.clone())
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_length, return_tensors="pt"
        )
        return TokenBatch(enc["input_ids"].long(), enc["attention_mask"].long())

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """RoBERTa word embeddings [N, L, E] (float32) for ids [N, L]; no positions, no LayerNorm."""
        table = self.model.text_model.embeddings.word_embeddings
        return table(input_ids.to(table.weight.device)).float()

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised text features [N, D] (float32) from embeddings [N, L, E] and mask [N, L].

        Equals ``ClapModel.get_text_features(input_ids, attention_mask)`` for embeddings of
        ``input_ids``. Gradients flow to ``inputs_embeds``; the weights are frozen.
        """
        return F.normalize(self.encode_text_embeds_raw(inputs_embeds, attention_mask), dim=-1)

    def encode_text_embeds_raw(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """``text_projection(pooler_output)`` [N, D] (float32), before normalisation."""
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.token_dim:
            raise ValueError(
                f"{self.name}: inputs_embeds must be [N, L, {self.token_dim}], got {list(inputs_embeds.shape)}"
            )
        if tuple(attention_mask.shape) != tuple(inputs_embeds.shape[:2]):
            raise ValueError(
                f"{self.name}: attention_mask {list(attention_mask.shape)} does not match "
                f"inputs_embeds {list(inputs_embeds.shape[:2])}"
            )
        if inputs_embeds.shape[1] > self.max_text_length:
            raise ValueError(
                f"{self.name}: {inputs_embeds.shape[1]} tokens but the text tower of {self.model_id!r} "
                f"takes at most {self.max_text_length} (context vectors included)"
            )
        device = self.device
        mask = attention_mask.to(device=device, dtype=torch.long)
        match_attention(self.model.text_model, device)
        # the ids RoBERTa derives from input_ids: 2, 3, ... on real tokens, padding_idx on pads
        position_ids = torch.cumsum(mask, dim=1) * mask + self._padding_idx
        out = self.model.text_model(
            inputs_embeds=inputs_embeds.to(device=device, dtype=self._dtype),
            attention_mask=mask,
            position_ids=position_ids,
        )
        return self.model.text_projection(out.pooler_output).float()

    # ---- helpers ---------------------------------------------------------------------------
    def _snapshot_dir(self) -> Path:
        """The cached folder a hub id was loaded from (its config.json's folder)."""
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            self.model_id, "config.json", cache_dir=self._cache_dir, revision=self.revision
        )
        if not isinstance(found, str):
            raise ModelLoadError(f"cannot find the cached files of {self.model_id!r} to fingerprint them")
        return Path(found).parent


def _parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"clap: dtype must be one of {sorted(_DTYPES)}, got {dtype}")
        return dtype
    key = str(dtype).removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"clap: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[key]


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_source(model: str) -> Path | None:
    """The local folder ``model`` names, or None for a hub id; a clear error for a missing folder."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ModelLoadError(f"clap: model={model!r} is a file; expected a folder written by save_pretrained")
    if not _HUB_ID.match(model):
        raise ModelLoadError(
            f"clap: model folder {model!r} does not exist (model= takes a Hugging Face hub id such as "
            f"'laion/clap-htsat-unfused' or a local folder written by save_pretrained)"
        )
    return None


def _load(
    source: Path | None,
    model_id: str,
    revision: str | None,
    dtype: torch.dtype,
    local_files_only: bool,
    cache_dir: str | None,
) -> tuple[Any, Any, Any]:
    """(ClapModel, ClapFeatureExtractor, tokenizer) from a folder, or from a hub id cache-first."""
    if source is not None:
        try:
            return _from_pretrained(str(source), None, dtype, True, None)
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            if is_unsafe_pickle(exc):
                raise ModelLoadError(
                    f"clap: refused the weights in folder {str(source)!r}: {UNSAFE_PICKLE}"
                ) from None
            raise ModelLoadError(
                f"clap: cannot load a CLAP model from folder {str(source)!r} (it needs config.json, the "
                f"weights, preprocessor_config.json and the tokenizer files): {exc}"
            ) from exc
    try:
        return _from_pretrained(model_id, revision, dtype, True, cache_dir)
    except (OSError, ValueError, pickle.UnpicklingError) as cached_exc:
        exc: Exception = cached_exc
        if not local_files_only:
            try:
                return _from_pretrained(model_id, revision, dtype, False, cache_dir)
            except (OSError, ValueError, pickle.UnpicklingError) as hub_exc:
                exc = hub_exc
    at = f" at revision {revision!r}" if revision else ""
    if is_unsafe_pickle(exc):
        raise ModelLoadError(
            f"clap: refused the weights of hub model {model_id!r}{at}: {UNSAFE_PICKLE}"
        ) from None
    raise ModelLoadError(
        f"clap: cannot load hub model {model_id!r}{at}: it is not in the local Hugging Face cache"
        f"{' (local_files_only=True)' if local_files_only else ' and the hub could not be reached'}. "
        f"Download it on a machine with internet access (e.g. `hf download {model_id} --local-dir DIR`) "
        f"and pass model=DIR, a local folder (set HF_HUB_OFFLINE=1 to skip the hub's network retries). "
        f"Cause: {exc}"
    ) from exc


def _from_pretrained(
    source: str, revision: str | None, dtype: torch.dtype, local_only: bool, cache_dir: str | None
) -> tuple[Any, Any, Any]:
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    common: dict[str, Any] = {"revision": revision, "local_files_only": local_only, "cache_dir": cache_dir}
    with quiet_hf_loading():
        model = ClapModel.from_pretrained(source, dtype=dtype, **common)
    extractor = ClapFeatureExtractor.from_pretrained(source, **common)
    tokenizer = AutoTokenizer.from_pretrained(source, **common)
    return model, extractor, tokenizer


def _cached_commit(model_id: str, revision: str | None, cache_dir: str | None) -> str | None:
    """The commit hash of the cached snapshot a hub id was loaded from, if the cache records it."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json", cache_dir=cache_dir, revision=revision)
    if isinstance(found, str) and Path(found).parent.parent.name == "snapshots":
        return Path(found).parent.name
    return None


def _stable_config(obj: Any) -> Any:
    """A config dict without the keys that record where or how it was loaded."""
    if isinstance(obj, dict):
        return {
            k: _stable_config(v)
            for k, v in obj.items()
            if not str(k).startswith("_") and k not in _VOLATILE_CONFIG_KEYS
        }
    if isinstance(obj, (list, tuple)):
        return [_stable_config(v) for v in obj]
    return obj


def _extractor_settings(extractor: Any) -> dict[str, object]:
    """The feature extractor fields that change the log-mel input."""
    keys = (
        "sampling_rate", "feature_size", "hop_length", "fft_window_size", "max_length_s",
        "frequency_min", "frequency_max", "top_db", "padding_value",
    )  # fmt: skip
    return {k: getattr(extractor, k, None) for k in keys}


def _weights_hash(folder: Path) -> str:
    """blake2b of the weight files from_pretrained reads (safetensors, else PyTorch .bin), by name."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise ModelLoadError(f"clap: no *.safetensors or *.bin weights in {str(folder)!r} to fingerprint")
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        digest.update(file.name.encode("utf-8") + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()
