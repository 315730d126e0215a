"""Saved prompts and training checkpoints: safetensors tensors plus JSON metadata, no pickle.

- ``prompt.safetensors``: only the learned parameters (``learner.ctx``, ``head.linear.weight``
  ...), with the resolved config, the training class names and the logit scale as metadata.
  :func:`load_prompt` rebuilds the method from it, so a saved prompt can be evaluated on any class
  names.
- ``checkpoint.safetensors``: the same parameters plus the optimiser state (tensors under
  ``optim/<param>/<key>``, scalars and param groups as JSON), the number of finished epochs, the
  loss history and the config's training hash. One file, written atomically, so an interrupted
  run resumes from the last finished epoch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sept.errors import ConfigError
from sept.utils.atomic import atomic_write

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.methods.compose import ComposedMethod
    from sept.training.config import RunConfig

PROMPT_FORMAT = "sept-prompt/1"
CHECKPOINT_FORMAT = "sept-checkpoint/1"


def _save(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _load(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - not a dict
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from exc
    return tensors, metadata


# ---- prompts ---------------------------------------------------------------------------------
def save_prompt(path: str | os.PathLike[str], method: ComposedMethod, config: RunConfig) -> Path:
    """Write the learned parameters of ``method`` with ``config`` as metadata (atomic)."""
    metadata = {
        "format": PROMPT_FORMAT,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "train_classnames": json.dumps(method.train_classnames),
        "logit_scale": repr(method.logit_scale),
    }
    return _save(path, method.learned_state(), metadata)


def read_prompt(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], RunConfig, list[str]]:
    """(learned tensors, config, training class names) of a saved prompt."""
    from sept.training.config import RunConfig

    tensors, meta = _load(path)
    if meta.get("format") != PROMPT_FORMAT:
        raise ConfigError(f"{str(path)!r} is not a sept prompt (format {meta.get('format')!r})")
    config = RunConfig.from_dict(json.loads(meta["config"]), source=str(path))
    return tensors, config, list(json.loads(meta["train_classnames"]))


def load_prompt(
    path: str | os.PathLike[str], backbone: Backbone | None = None
) -> tuple[ComposedMethod, RunConfig]:
    """Rebuild the method saved at ``path`` (on ``backbone``, or the one its config names)."""
    tensors, config, train_classnames = read_prompt(path)
    if backbone is None:
        from sept.backbones.registry import create_backbone

        backbone = create_backbone(config.backbone, **config.backbone_options)
    method = config.build_method(backbone, train_classnames)
    method.load_learned_state(tensors, source=str(path))
    return method, config


# ---- training checkpoints --------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike[str],
    method: ComposedMethod,
    optimizer: torch.optim.Optimizer,
    *,
    epochs_done: int,
    history: list[dict[str, Any]],
    config_hash: str,
) -> Path:
    """Parameters, optimiser state, finished epochs and history in one atomic file."""
    tensors = {f"param/{k}": v for k, v in method.learned_state().items()}
    state = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "epochs_done": str(epochs_done),
        "history": json.dumps(history),
        "config_hash": config_hash,
        "optim_groups": json.dumps(state["param_groups"]),
        "optim_scalars": json.dumps(scalars),
    }
    return _save(path, tensors, metadata)


def load_checkpoint(
    path: str | os.PathLike[str], method: ComposedMethod, optimizer: torch.optim.Optimizer, config_hash: str
) -> tuple[int, list[dict[str, Any]]]:
    """Restore parameters and optimiser from ``path``; returns (epochs done, history).

    Raises :class:`ConfigError` if the checkpoint was made with a different configuration.
    """
    tensors, meta = _load(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{str(path)!r} is not a sept checkpoint (format {meta.get('format')!r})")
    if meta.get("config_hash") != config_hash:
        raise ConfigError(
            f"checkpoint {str(path)!r} was made with a different configuration; "
            "delete it (or use another run directory) to start over"
        )
    method.load_learned_state(
        {k.removeprefix("param/"): v for k, v in tensors.items() if k.startswith("param/")}, source=str(path)
    )
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, idx, name = key.split("/", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, entries in json.loads(meta["optim_scalars"]).items():
        state.setdefault(int(idx), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["optim_groups"])})
    return int(meta["epochs_done"]), list(json.loads(meta["history"]))
