"""What Pengi and MS-CLAP share: an audio tower + projection and a text tower + projection.

Both families come from the same code base (microsoft/Pengi and microsoft/CLAP): a PANNs-style
audio encoder (HTSAT or CNN14) whose embedding goes through ``Projection`` (Linear, GELU, Linear,
residual, LayerNorm) into the joint space, and a Hugging Face text model whose pooled vector goes
through another ``Projection``. :class:`MsftBackbone` runs their eval-mode forward passes with
sept's own modules (HTSAT through ``transformers``' CLAP audio encoder; see ``htsat.py``,
``cnn14.py``, ``logmel.py``) so the tests can hold them to the reference code.

Text: the learnable context goes at ``context_index`` (after the start token; GPT-2 has none, so
at 0) and the pooled position comes from the attention mask, never from the token ids (once
context enters as embeddings there are no ids to search): the last real token for CLIP (its
end-of-text token) and GPT-2, the first for BERT. Positions are ``0 .. L-1`` as for token ids.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sept.audio.window import AudioWindow
from sept.backbones.attention import match_attention
from sept.backbones.base import Backbone, TokenBatch
from sept.backbones.cnn14 import Cnn14, Cnn14Settings, cnn14_state_dict
from sept.backbones.htsat import Htsat, HtsatSettings, htsat_state_dict
from sept.backbones.logmel import slaney_mel_matrix
from sept.backbones.msft_weights import read_checkpoint, read_folder
from sept.errors import ModelLoadError
from sept.utils.hashing import hash_json
from sept.utils.quiet import quiet_hf_loading

#: "org/name": what the Hugging Face hub accepts as a repo id
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
#: reference text-model tensors that are buffers or heads sept's modules do not have
_TEXT_UNUSED = re.compile(r"(^embeddings\.position_ids$|\.attn\.bias$|\.attn\.masked_bias$|^pooler\.)")


class Projection(nn.Module):
    """The reference ``Projection``: ``LayerNorm(h + Linear(GELU(h)))`` with ``h = Linear(x)`` (eval: no dropout)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        return self.layer_norm(h + self.linear2(F.gelu(h)))


@dataclass(frozen=True)
class Family:
    """One model family's fixed facts (the reference YAML + code)."""

    name: str
    audio_encoder: str  # "htsat" | "cnn14"
    audio: dict[str, Any]  # HtsatSettings / Cnn14Settings fields
    sample_rate: int
    seconds: float
    text_encoder: str  # "clip" | "gpt2" | "bert"
    text_model: str  # hub id of the tokenizer + config
    text_max_length: int
    hub_repo: str | None = None  # where the reference checkpoint is published on the hub
    hub_file: str | None = None
    weights_hint: str = ""

    def config(self) -> dict[str, Any]:
        """The settings a converted folder records (``sept_backbone.json``)."""
        return {
            "family": self.name,
            "audio_encoder": self.audio_encoder,
            "audio": dict(self.audio),
            "sample_rate": self.sample_rate,
            "seconds": self.seconds,
            "text_encoder": self.text_encoder,
            "text_model": self.text_model,
            "text_max_length": self.text_max_length,
        }


class MsftBackbone(Backbone):
    """A frozen Pengi / MS-CLAP model behind the :class:`Backbone` interface.

    Options: ``model`` (a folder written by ``sept backbones convert``, a reference ``.pth``, or a
    hub repo id holding the family's checkpoint), ``text_model`` (hub id or local folder of the
    text tower's tokenizer and config; default the family's), ``revision`` and ``cache_dir`` (hub),
    ``local_files_only`` (never contact the hub), ``device``.
    """

    family: Family
    default_logit_scale = 100.0  # PALM's code (Pengi) and docs/METHOD.md

    def __init__(
        self,
        model: str | Path | None = None,
        text_model: str | Path | None = None,
        revision: str | None = None,
        device: str | torch.device | None = None,
        local_files_only: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        fam = self.family
        self._cache_dir = None if cache_dir is None else str(cache_dir)
        self._local_only = bool(local_files_only)
        config, tensors = self._load_weights(model, revision)
        if config.get("family", fam.name) != fam.name:
            raise ModelLoadError(
                f"{self.name}: model={str(model)!r} holds a {config.get('family')!r} checkpoint, "
                f"not {fam.name!r} (use create_backbone({config.get('family')!r}, ...))"
            )
        self.config = config
        self.sample_rate = int(config["sample_rate"])
        seconds = float(config["seconds"])
        self.window = AudioWindow(max_seconds=seconds, min_seconds=seconds, crop="center", pad="tile")
        self.audio_tower, self.audio_projection = self._build_audio(config, tensors)
        # audio_inputs runs in decoding threads on the CPU: a CPU copy of the front end, kept out of
        # the module tree so that .to(device) leaves it there
        self._cpu_front_end = [copy.deepcopy(self.audio_tower.front_end)]
        self.text_model_id = str(text_model) if text_model is not None else str(config["text_model"])
        self.tokenizer, self.text_tower, self.text_head, self.text_projection = self._build_text(
            config, tensors
        )
        self.max_text_length = int(config["text_max_length"])
        self.embed_dim = int(self.audio_projection.linear1.weight.shape[0])
        self.token_dim = int(self.text_tower.get_input_embeddings().embedding_dim)
        self._audio_hash = _tensors_hash({k: v for k, v in tensors.items() if k.startswith("audio_encoder.")})
        self._suffix_ids = self._gpt2_suffix() if config["text_encoder"] == "gpt2" else []
        self.to(_pick_device(device))
        self.freeze()

    @property
    def context_index(self) -> int:  # type: ignore[override]
        """After CLIP's <|startoftext|> and BERT's [CLS]; at 0 for GPT-2 (no start token)."""
        return 0 if self.config["text_encoder"] == "gpt2" else 1

    @property
    def end_tokens(self) -> int:  # type: ignore[override]
        """Tokens after the text itself: the end token, and for GPT-2 the space msclap puts before it."""
        return len(self._suffix_ids) if self._suffix_ids else 1

    # ---- loading ---------------------------------------------------------------------------
    def _load_weights(
        self, model: str | Path | None, revision: str | None
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        fam = self.family
        if model is None or str(model) == "":
            if fam.hub_repo is None:
                raise ModelLoadError(
                    f"{self.name}: give model=DIR, a folder written by `sept backbones convert {fam.name} ...`. {fam.weights_hint}"
                )
            model = fam.hub_repo
        path = Path(str(model)).expanduser()
        if path.is_dir():
            config, tensors = read_folder(path)
            return {**fam.config(), **config}, tensors
        if path.is_file():
            return fam.config(), read_checkpoint(path)
        if (
            fam.hub_repo is not None
            and _HUB_ID.match(str(model))
            and not str(model).startswith((".", "/", "~"))
        ):
            return fam.config(), read_checkpoint(self._hub_file(str(model), revision))
        raise ModelLoadError(
            f"{self.name}: model={str(model)!r} is neither a folder, a checkpoint file nor a hub repo id. {fam.weights_hint}"
        )

    def _hub_file(self, repo: str, revision: str | None) -> Path:
        from huggingface_hub import hf_hub_download

        fam = self.family
        assert fam.hub_file is not None
        last: Exception | None = None
        for local_only in (True, False) if not self._local_only else (True,):
            try:
                found = Path(
                    hf_hub_download(
                        repo,
                        fam.hub_file,
                        revision=revision,
                        cache_dir=self._cache_dir,
                        local_files_only=local_only,
                    )
                )
            except Exception as exc:  # hub errors: offline, missing file, no such repo
                last = exc
                continue
            return found
        raise ModelLoadError(
            f"{self.name}: cannot get {fam.hub_file!r} from hub repo {repo!r}: it is not in the local Hugging Face cache"
            f"{' (local_files_only=True)' if self._local_only else ' and the hub could not be reached'}. Download it where "
            f"there is internet (`hf download {repo} {fam.hub_file}`) and pass model=FILE or a converted folder. Cause: {last}"
        ) from last

    def _build_audio(
        self, config: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> tuple[nn.Module, Projection]:
        kind = config["audio_encoder"]
        base = _strip(tensors, "audio_encoder.base.")
        if kind == "htsat":
            settings: HtsatSettings | Cnn14Settings = HtsatSettings.from_dict(config["audio"])
            state, mel = htsat_state_dict(_strip(base, "htsat."))
        elif kind == "cnn14":
            settings = Cnn14Settings.from_dict(config["audio"])
            state, mel = cnn14_state_dict(base)
        else:
            raise ModelLoadError(f"{self.name}: unknown audio_encoder {kind!r} (htsat or cnn14)")
        if mel is None:  # the reference builds it at construction: the same matrix
            mel = slaney_mel_matrix(
                settings.mel_sample_rate, settings.n_fft, settings.mel_bins, settings.fmin, settings.fmax
            )
        tower: nn.Module = Htsat(settings, mel) if kind == "htsat" else Cnn14(settings, mel)  # type: ignore[arg-type]
        target = tower.encoder if kind == "htsat" else tower
        _load_strict(
            target,
            state,
            f"{self.name} audio encoder",
            ignore=re.compile(r"relative_position_index$|^front_end\."),
        )
        proj = _projection(tensors, "audio_encoder.projection.", self.name)
        return tower, proj

    def _build_text(
        self, config: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> tuple[Any, nn.Module, nn.Module | None, Projection]:
        kind = config["text_encoder"]
        tokenizer, hf_config = _text_config(
            self.text_model_id, kind, self._local_only, self._cache_dir, self.name
        )
        from transformers import BertModel, CLIPTextModel, GPT2Model

        if kind == "clip":
            tower: nn.Module = CLIPTextModel(hf_config)
        elif kind == "gpt2":
            tower = GPT2Model(hf_config)
        elif kind == "bert":
            tower = BertModel(hf_config, add_pooling_layer=False)
        else:
            raise ModelLoadError(f"{self.name}: unknown text_encoder {kind!r} (clip, gpt2 or bert)")
        state = {
            k: v for k, v in _strip(tensors, "caption_encoder.base.").items() if not _TEXT_UNUSED.search(k)
        }
        _load_strict(tower, state, f"{self.name} text encoder ({self.text_model_id})")
        tower.eval()
        head = None
        if kind == "clip":
            w = tensors.get("caption_encoder.clip_text_projection.weight")
            if w is None:
                raise ModelLoadError(
                    f"{self.name}: the checkpoint has no caption_encoder.clip_text_projection.weight"
                )
            head = nn.Linear(w.shape[1], w.shape[0], bias=False)
            head.weight.data.copy_(w)
        tokenizer.padding_side = "right"
        if kind == "gpt2":
            tokenizer.add_special_tokens({"pad_token": "!"})  # as msclap's CLAPWrapper
        return tokenizer, tower, head, _projection(tensors, "caption_encoder.projection.", self.name)

    def _gpt2_suffix(self) -> list[int]:
        """Ids msclap appends to every text (``text + ' <|endoftext|>'``): a space token and <|endoftext|>."""
        with_suffix = self.tokenizer("a <|endoftext|>")["input_ids"]
        bare = self.tokenizer("a")["input_ids"]
        return list(with_suffix[len(bare) :])

    # ---- identity --------------------------------------------------------------------------
    def identity_settings(self) -> dict[str, object]:
        """The family, its audio settings and a hash of the audio tensors (mel matrix included):
        what the audio features depend on, wherever the weights were loaded from."""
        return {
            "family": self.family.name,
            "audio_encoder": self.config["audio_encoder"],
            "audio": hash_json(self.config["audio"]),
            "audio_weights": self._audio_hash,
        }

    # ---- audio tower -----------------------------------------------------------------------
    def audio_inputs(self, wave: np.ndarray) -> np.ndarray:
        """Log-mel [1, T, M] (float32) of one wave [S] fitted to the window."""
        fitted = self.window.fit(wave, self.sample_rate)
        with torch.no_grad():
            mel = self._cpu_front_end[0](torch.from_numpy(np.ascontiguousarray(fitted))[None])
        return mel[0].numpy()

    def embed_audio(self, waves: list[np.ndarray]) -> torch.Tensor:
        return self.embed_audio_inputs([self.audio_inputs(w) for w in waves])

    def embed_audio_inputs(self, inputs: list[np.ndarray]) -> torch.Tensor:
        """Normalised audio features [B, D] from per-clip log-mels [1, T, M]."""
        if len(inputs) == 0:
            return torch.zeros(0, self.embed_dim, device=self.device)
        mel = torch.from_numpy(np.stack(inputs)).to(self.device)
        with torch.no_grad():
            feats = self.audio_projection(self.audio_tower(mel))
        return F.normalize(feats.float(), dim=-1)

    # ---- text tower ------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> TokenBatch:
        """Ids and mask [N, L] as the reference tokenises, right-padded to the longest, cut at ``max_text_length``."""
        if len(texts) == 0:
            empty = torch.zeros(0, 0, dtype=torch.long)
            return TokenBatch(empty, empty.clone())
        if not self._suffix_ids:
            enc = self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.max_text_length,
                return_tensors="pt",
            )
            return TokenBatch(enc["input_ids"].long(), enc["attention_mask"].long())
        # GPT-2 (msclap): text + " <|endoftext|>"; a long text is cut before that suffix, which stays
        keep = self.max_text_length - len(self._suffix_ids)
        rows = [self.tokenizer(t)["input_ids"][:keep] + self._suffix_ids for t in texts]
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
        return TokenBatch(ids, mask)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        table = self.text_tower.get_input_embeddings()
        return table(input_ids.to(table.weight.device)).float()

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised text features [N, D] from embeddings [N, L, E] and mask [N, L] (right padding)."""
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.token_dim:
            raise ValueError(
                f"{self.name}: inputs_embeds must be [N, L, {self.token_dim}], got {list(inputs_embeds.shape)}"
            )
        if tuple(attention_mask.shape) != tuple(inputs_embeds.shape[:2]):
            raise ValueError(
                f"{self.name}: attention_mask {list(attention_mask.shape)} does not match inputs_embeds {list(inputs_embeds.shape[:2])}"
            )
        n, length = attention_mask.shape
        if length > self.max_text_length:
            raise ValueError(
                f"{self.name}: {length} tokens but the text tower takes at most {self.max_text_length} (context vectors included)"
            )
        device = self.device
        embeds = inputs_embeds.to(device=device, dtype=torch.float32)
        mask = attention_mask.to(device=device, dtype=torch.long)
        match_attention(self.text_tower, device)
        positions = torch.arange(length, device=device).unsqueeze(0).expand(n, -1)
        kind = self.config["text_encoder"]
        if kind == "clip":
            hidden = self._clip_hidden(embeds, mask, positions)
        elif kind == "gpt2":
            hidden = self.text_tower(
                inputs_embeds=embeds, attention_mask=mask, position_ids=positions
            ).last_hidden_state
        else:
            token_types = torch.zeros_like(mask)
            hidden = self.text_tower(
                inputs_embeds=embeds, attention_mask=mask, token_type_ids=token_types, position_ids=positions
            ).last_hidden_state
        if kind == "bert":
            pooled = hidden[:, 0]
        else:  # the last real token: CLIP's <|endoftext|>, msclap GPT-2's <|endoftext|>
            last = (positions * mask).argmax(dim=1)
            pooled = hidden[torch.arange(n, device=device), last]
        if self.text_head is not None:
            pooled = self.text_head(pooled)
        return F.normalize(self.text_projection(pooled).float(), dim=-1)

    def _clip_hidden(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """CLIPTextModel's forward from token embeddings: positions, causal + padding mask, final norm."""
        from transformers.masking_utils import create_causal_mask

        tower = self.text_tower
        hidden = tower.embeddings(inputs_embeds=embeds, position_ids=positions)
        mask4 = create_causal_mask(config=tower.config, inputs_embeds=hidden, attention_mask=mask, cache=None)
        out = tower.encoder(inputs_embeds=hidden, attention_mask=mask4, is_causal=True)
        return tower.final_layer_norm(out.last_hidden_state)


# ---- helpers -------------------------------------------------------------------------------
def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _projection(tensors: dict[str, torch.Tensor], prefix: str, who: str) -> Projection:
    w = tensors.get(prefix + "linear1.weight")
    if w is None:
        raise ModelLoadError(f"{who}: the checkpoint has no {prefix}linear1.weight")
    proj = Projection(int(w.shape[1]), int(w.shape[0]))
    _load_strict(proj, _strip(tensors, prefix), f"{who} {prefix.rstrip('.')}")
    return proj


def _load_strict(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    what: str,
    ignore: re.Pattern[str] | None = None,
) -> None:
    """Load ``state`` into ``module``; a clear error naming missing, unexpected or mis-shaped tensors."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelLoadError(f"{what}: the checkpoint does not fit the model: {exc}") from exc
    missing = [k for k in missing if not (ignore and ignore.search(k))]
    if missing or unexpected:
        raise ModelLoadError(
            f"{what}: checkpoint and model disagree; missing {len(missing)} tensors "
            f"({', '.join(missing[:4])}), unexpected {len(unexpected)} ({', '.join(unexpected[:4])})"
        )


def _text_config(
    source: str, kind: str, local_only: bool, cache_dir: str | None, who: str
) -> tuple[Any, Any]:
    """(tokenizer, text config) from a folder or hub id, cache first; the CLIP text config of a CLIPConfig."""
    from transformers import AutoConfig, AutoTokenizer

    path = Path(source).expanduser()
    looks_local = path.is_dir() or source.startswith((".", "/", "~"))
    if looks_local and not path.is_dir():
        raise ModelLoadError(f"{who}: text_model folder {source!r} does not exist")
    attempts = (True,) if (looks_local or local_only) else (True, False)
    last: Exception | None = None
    for only in attempts:
        try:
            with quiet_hf_loading():
                config = AutoConfig.from_pretrained(
                    str(path) if looks_local else source, local_files_only=only, cache_dir=cache_dir
                )
                tokenizer = AutoTokenizer.from_pretrained(
                    str(path) if looks_local else source, local_files_only=only, cache_dir=cache_dir
                )
        except (OSError, ValueError) as exc:
            last = exc
            continue
        if kind == "clip" and hasattr(config, "text_config"):
            config = config.text_config
        return tokenizer, config
    raise ModelLoadError(
        f"{who}: cannot load the tokenizer and config of text model {source!r}"
        f"{'' if looks_local else ' (not in the local Hugging Face cache, and the hub could not be reached)'}; "
        f"pass text_model=DIR, a folder with its config.json and tokenizer files. Cause: {last}"
    ) from last


def _tensors_hash(tensors: dict[str, torch.Tensor]) -> str:
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(name.encode("utf-8") + b"\0" + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
