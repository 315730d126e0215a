"""CoOp: M shared learnable context vectors in the text tower's token-embedding space.

``t_c = g([BOS, V_1..V_M, tokens("{readable c}."), EOS])``; the vectors go at
``backbone.context_index`` (right after the start token). Only ``V`` trains.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sept.errors import ConfigError
from sept.methods.base import PromptLearner, TextRequest, prompt_form
from sept.methods.options import option

if TYPE_CHECKING:
    from sept.backbones.base import Backbone, TokenBatch

#: tokenised text lists kept per learner (class prompts repeat every step)
_TOKEN_CACHE_SIZE = 16
#: encode requests in separate forwards when that pads this fraction of the tokens less (a forward's
#: cost grows with rows x padded length; measured in benchmarks/bench_sept_cost.py)
_SPLIT_SAVING = 0.15


@dataclass
class CoOpOptions:
    """CoOp's prompt. Defaults: CoOp's base-to-new variant (4 vectors from a template)."""

    n_ctx: int = option(4, "number of context vectors (ignored with ctx_init: its token count is used)", ge=1)
    ctx_init: str | None = option(
        "the sound of a",
        "initialise the vectors from this text's token embeddings; null: random N(0, init_std)",
    )
    init_std: float = option(0.02, "std of the random initialisation", gt=0)

    def validate(self, section: str) -> None:
        if self.ctx_init is not None and not self.ctx_init.strip():
            raise ConfigError(f"{section}.ctx_init must be null or a non-empty text, got {self.ctx_init!r}")


class CoOpLearner(PromptLearner):
    """Shared context ``ctx`` [M, E] prepended to every text."""

    name = "coop"
    Options = CoOpOptions
    #: CoOp's code (configs/trainers/CoOp/vit_b16_ep200.yaml): 200 epochs at 16 shots; SGD lr 0.002,
    #: cosine, 1 warm-up epoch at 1e-5, batch 32 are the OptimConfig defaults
    PRESETS = {  # noqa: RUF012 - class-level data
        "base2new": {"optim.epochs": 200},
        "xd": {"optim.epochs": 200},
    }

    def __init__(self, options: CoOpOptions | None = None) -> None:
        super().__init__(options or CoOpOptions())
        self._token_cache: OrderedDict[tuple[str, ...], TokenBatch] = OrderedDict()

    def setup(self, backbone: Backbone, train_classnames: Sequence[str]) -> None:
        super().setup(backbone, train_classnames)
        opts: CoOpOptions = self.options
        if opts.ctx_init:
            self.ctx = nn.Parameter(self._init_from_text(opts.ctx_init.strip()))
        else:
            ctx = torch.empty(opts.n_ctx, backbone.token_dim)
            nn.init.normal_(ctx, std=opts.init_std)
            self.ctx = nn.Parameter(ctx)

    def _init_from_text(self, text: str) -> torch.Tensor:
        """Token embeddings [M, E] of ``text`` without its start and end tokens."""
        backbone = self.backbone
        tokens = backbone.tokenize([text])
        start = backbone.context_index
        n = int(tokens.attention_mask[0].sum()) - start - backbone.end_tokens
        if n < 1:
            raise ConfigError(f"learner.ctx_init {text!r} has no tokens between the start and end tokens")
        with torch.no_grad():
            emb = backbone.token_embeddings(tokens.input_ids.to(backbone.device))[0, start : start + n]
        return emb.detach().float().cpu().clone()

    def class_text(self, name: str, kind: str = "classes") -> str:
        """``" {prompt_form(name, kind)}."``: the leading space makes byte-level BPE tokenizers (CLAP's RoBERTa)
        split the name as it is split mid-sentence, after the context (WordPiece ignores it), so a
        context initialised from "the sound of a" reproduces the prompt "the sound of a dog bark."."""
        return f" {prompt_form(name, kind)}."

    @property
    def n_ctx(self) -> int:
        return int(self.ctx.shape[0])

    # ---- prompt construction ---------------------------------------------------------------
    def _tokens(self, texts: tuple[str, ...], device: torch.device) -> TokenBatch:
        cached = self._token_cache.get(texts)
        if cached is None or cached.input_ids.device != device:
            cached = self.backbone.tokenize(list(texts)).to(device)
            self._token_cache[texts] = cached
            while len(self._token_cache) > _TOKEN_CACHE_SIZE:
                self._token_cache.popitem(last=False)
        else:
            self._token_cache.move_to_end(texts)
        return cached

    def shifted_context(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-clip context [B, M, E]; CoOp has no shift (CoCoOp overrides this)."""
        return self.ctx.unsqueeze(0).expand(audio.shape[0], -1, -1)

    def encode_with_context(
        self, embeds: torch.Tensor, mask: torch.Tensor, ctx: torch.Tensor
    ) -> torch.Tensor:
        """Insert ``ctx`` [R, M, E] into token embeddings [R, L, E] (mask [R, L]); the text tower's
        unnormalised features [R, D] (:meth:`Backbone.encode_text_embeds_raw`)."""
        start = self.backbone.context_index
        full = torch.cat([embeds[:, :start], ctx.to(embeds.dtype), embeds[:, start:]], dim=1)
        ones = torch.ones(mask.shape[0], ctx.shape[1], dtype=mask.dtype, device=mask.device)
        full_mask = torch.cat([mask[:, :start], ones, mask[:, start:]], dim=1)
        return self.backbone.encode_text_embeds_raw(full, full_mask)

    def _encode_parts(
        self, embeds: list[torch.Tensor], masks: list[torch.Tensor], ctxs: list[torch.Tensor]
    ) -> torch.Tensor:
        """Features [sum R_i, D] of parts (embeds [R_i, L, E], masks [R_i, L], contexts [R_i, M, E]).

        One forward padded to the longest text of all parts, unless padding each part only to its
        own longest text saves over ``_SPLIT_SAVING`` of the tokens (e.g. short class names next to
        longer neighbour phrases): then one forward per part, trimmed of its trailing padding columns.
        """
        ends = [int(m.any(0).nonzero().max()) + 1 if m.any() else 0 for m in masks]
        rows = [int(m.shape[0]) for m in masks]
        joint, split = sum(rows) * max(ends), sum(r * n for r, n in zip(rows, ends, strict=True))
        if len(masks) == 1 or split > (1.0 - _SPLIT_SAVING) * joint:
            return self.encode_with_context(torch.cat(embeds), torch.cat(masks), torch.cat(ctxs))
        return torch.cat(
            [
                self.encode_with_context(e[:, :n], m[:, :n], c)
                for e, m, c, n in zip(embeds, masks, ctxs, ends, strict=True)
                if m.shape[0]
            ]
        )

    def encode(
        self, requests: Sequence[TextRequest], audio: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Normalised features of every request (see :meth:`encode_raw`)."""
        return [F.normalize(f, dim=-1) for f in self.encode_raw(requests, audio)]

    def encode_raw(
        self, requests: Sequence[TextRequest], audio: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Unnormalised features of every request ([N, D] or [B, N, D]), in one text-tower forward,
        or one per request when that pads much less."""
        device = self.ctx.device
        dim = self.backbone.embed_dim
        texts = tuple(self.class_text(t, r.kind) for r in requests for t in r.texts)
        if not texts:
            return [torch.zeros(0, dim, device=device) for _ in requests]
        tokens = self._tokens(texts, device)
        with torch.no_grad():
            embeds = self.backbone.token_embeddings(tokens.input_ids)
        needs_shift = self.conditional and any(r.shift and r.texts for r in requests)
        if needs_shift and audio is None:
            raise ValueError(f"{type(self).__name__}: a shifted request needs audio features [B, D]")
        shifted = self.shifted_context(audio) if needs_shift else None
        m, e = self.ctx.shape
        parts_e, parts_m, parts_c, layout = [], [], [], []
        start = 0
        for req in requests:
            n = len(req.texts)
            emb, mask = embeds[start : start + n], tokens.attention_mask[start : start + n]
            start += n
            if shifted is not None and req.shift:
                b = shifted.shape[0]
                parts_e.append(emb.unsqueeze(0).expand(b, -1, -1, -1).reshape(b * n, *emb.shape[1:]))
                parts_m.append(mask.repeat(b, 1))
                parts_c.append(shifted.unsqueeze(1).expand(b, n, m, e).reshape(b * n, m, e))
                layout.append((b, n))
            else:
                parts_e.append(emb)
                parts_m.append(mask)
                parts_c.append(self.ctx.unsqueeze(0).expand(n, m, e))
                layout.append((None, n))
        feats = self._encode_parts(parts_e, parts_m, parts_c)
        out, row = [], 0
        for b, n in layout:
            rows = n * (b or 1)
            chunk = feats[row : row + rows]
            row += rows
            out.append(chunk.reshape(b, n, -1) if b is not None else chunk)
        return out
