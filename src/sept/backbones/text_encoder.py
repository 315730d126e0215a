"""A Hugging Face sentence encoder (BERT-like) as a prompt-learnable text tower.

Loads ``AutoModel`` + ``AutoTokenizer`` from a local folder or a hub id and pools the way the
sentence-transformers configuration of that folder says (``modules.json`` and ``1_Pooling/config.json``;
mean pooling when there is none), then L2-normalises. Text goes in as token *embeddings*
(``inputs_embeds``) so prompt learners can put learnable vectors in the sequence; position and
token-type embeddings are added inside the model, exactly as for token ids.
"""

from __future__ import annotations

import json
import os
import pickle  # only for its error type: nothing is unpickled here
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sept.backbones.attention import match_attention
from sept.backbones.base import TokenBatch
from sept.errors import SeptError
from sept.utils.hashing import hash_json
from sept.utils.load_errors import load_failure
from sept.utils.quiet import quiet_hf_loading

POOLING_MODES = ("mean", "cls", "max")


class TextModelError(SeptError):
    """A text model folder or hub id could not be loaded; the message names it."""


def _resolve_file(source: str, filename: str) -> Path | None:
    """``filename`` inside a local folder or a hub repo (from the local hub cache or the hub), or None."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    from transformers.utils import cached_file

    try:
        found = cached_file(
            source,
            filename,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):
        return None
    return Path(found) if found else None


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TextModelError(f"cannot read {str(path)!r}: {exc}") from exc


def sentence_transformers_layout(source: str) -> tuple[str, str, int | None]:
    """(transformer subfolder, pooling mode, max sequence length) from a sentence-transformers layout.

    Folders without ``modules.json`` are plain HF models: subfolder "", mean pooling, no length cap.
    """
    modules = _read_json(_resolve_file(source, "modules.json"))
    subfolder, pooling_dir = "", None
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", ""))
        if kind.endswith("models.Transformer"):
            subfolder = module.get("path", "") or ""
        elif kind.endswith("models.Pooling"):
            pooling_dir = module.get("path", "") or ""
    pooling = "mean"
    if pooling_dir is not None:
        cfg = _read_json(
            _resolve_file(source, f"{pooling_dir}/config.json" if pooling_dir else "config.json")
        )
        if cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif cfg.get("pooling_mode_max_tokens"):
            pooling = "max"
        elif cfg and not cfg.get("pooling_mode_mean_tokens", True):
            raise TextModelError(f"text model {source!r}: unsupported pooling configuration {cfg}")
    bert_cfg = _read_json(_resolve_file(source, "sentence_bert_config.json"))
    max_len = bert_cfg.get("max_seq_length")
    return subfolder, pooling, int(max_len) if max_len else None


class SentenceTextEncoder(nn.Module):
    """Frozen sentence encoder: texts -> tokens -> token embeddings -> normalised features [N, D].

    ``source``: a local folder or a hub id. ``pooling`` overrides the folder's pooling ("mean",
    "cls" or "max"); ``max_length`` overrides its maximum sequence length.
    """

    def __init__(
        self, source: str | os.PathLike[str], pooling: str | None = None, max_length: int | None = None
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.source = str(source)
        looks_like_path = (
            isinstance(source, Path)
            or self.source.startswith((".", "~", os.sep))
            or os.path.isabs(self.source)
        )
        if looks_like_path and not Path(self.source).expanduser().is_dir():
            raise TextModelError(
                f"text model folder {self.source!r} does not exist (give a folder or a hub id)"
            )
        self.source = str(Path(self.source).expanduser()) if looks_like_path else self.source
        subfolder, folder_pooling, folder_max = sentence_transformers_layout(self.source)
        self.pooling = pooling or folder_pooling
        if self.pooling not in POOLING_MODES:
            raise TextModelError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        self.subfolder = subfolder
        kwargs = {"subfolder": subfolder} if subfolder else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source, **kwargs)
            with quiet_hf_loading():
                self.model = AutoModel.from_pretrained(self.source, **kwargs)
        except (OSError, ValueError, pickle.UnpicklingError) as exc:  # a .bin holding more than tensors
            raise TextModelError(f"cannot load text model {self.source!r}: {load_failure(exc)}") from None
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_length = int(max_length or folder_max or min(limit, self.tokenizer.model_max_length))
        self.hidden_size = int(self.model.config.hidden_size)

    @property
    def token_dim(self) -> int:
        return int(self.model.get_input_embeddings().embedding_dim)

    def tokenize(self, texts: list[str]) -> TokenBatch:
        """Token ids and mask [N, L], with [CLS]/[SEP], padded to the longest text, cut at ``max_length``."""
        enc = self.tokenizer(
            list(texts), padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return TokenBatch(enc["input_ids"], enc["attention_mask"])

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings [N, L, E] for ids [N, L] (positions are added inside the model)."""
        return self.model.get_input_embeddings()(input_ids)

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True
    ) -> torch.Tensor:
        """Pooled features [N, D] (L2-normalised unless ``normalize`` is False) from token embeddings
        [N, L, E] and mask [N, L]."""
        mask = attention_mask.to(inputs_embeds.device)
        match_attention(self.model, inputs_embeds.device)
        hidden = self.model(inputs_embeds=inputs_embeds, attention_mask=mask).last_hidden_state  # [N, L, D]
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(~mask.bool()[..., None], torch.finfo(hidden.dtype).min).amax(dim=1)
        else:
            m = mask[..., None].to(hidden.dtype)
            pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if normalize else pooled

    def identity(self) -> dict[str, object]:
        """Model name, a hash of its config and the sizes of its weight files (cache identity)."""
        config = self.model.config.to_dict()
        for key in ("_name_or_path", "transformers_version", "torch_dtype", "dtype"):
            config.pop(key, None)
        prefix = f"{self.subfolder}/" if self.subfolder else ""
        weights = {}
        for filename in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"):
            path = _resolve_file(self.source, prefix + filename)
            if path is not None:
                weights[filename] = path.stat().st_size
        return {
            # a folder by its last two path parts (stable across machines), a hub id as given
            "name": "/".join(Path(self.source).parts[-2:]) if Path(self.source).is_dir() else self.source,
            "config": hash_json(config),
            "weights": weights,
            "pooling": self.pooling,
            "max_length": self.max_length,
        }
