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


def _meta_json(meta: dict[str, str], key: str, path: str | os.PathLike[str]) -> Any:
    """The JSON value stored under metadata ``key``; missing or malformed raises :class:`ConfigError`."""
    if key not in meta:
        raise ConfigError(f"{str(path)!r}: metadata {key!r} is missing (a damaged or foreign file)")
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{str(path)!r}: metadata {key!r} is not valid JSON ({exc.msg})") from None


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
    config_data = _meta_json(meta, "config", path)
    if not isinstance(config_data, dict):
        raise ConfigError(f"{str(path)!r}: metadata 'config' is not a JSON object")
    config = RunConfig.from_dict(config_data, source=str(path))
    classnames = _meta_json(meta, "train_classnames", path)
    if not isinstance(classnames, list) or not all(isinstance(c, str) for c in classnames):
        raise ConfigError(f"{str(path)!r}: metadata 'train_classnames' is not a list of names")
    return tensors, config, classnames


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
    epochs_done, history = _meta_json(meta, "epochs_done", path), _meta_json(meta, "history", path)
    groups, scalars = _meta_json(meta, "optim_groups", path), _meta_json(meta, "optim_scalars", path)
    if not isinstance(epochs_done, int) or epochs_done < 0 or not isinstance(history, list):
        raise ConfigError(f"{str(path)!r}: metadata 'epochs_done' / 'history' are malformed")
    if not isinstance(scalars, dict) or not isinstance(groups, list):
        raise ConfigError(f"{str(path)!r}: metadata 'optim_scalars' / 'optim_groups' are malformed")
    params = [p for group in optimizer.param_groups for p in group["params"]]  # the state's indices
    state: dict[int, dict[str, Any]] = {}
    learned: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        kind, _, rest = key.partition("/")
        idx, _, name = rest.partition("/")
        if kind == "param" and rest:
            learned[rest] = value
        elif kind == "optim" and idx.isdigit() and name and int(idx) < len(params):
            if name != "step" and value.shape != params[int(idx)].shape:
                raise ConfigError(
                    f"{str(path)!r}: optimiser state {key!r} has shape {tuple(value.shape)}, "
                    f"expected {tuple(params[int(idx)].shape)}"
                )
            state.setdefault(int(idx), {})[name] = value
        else:
            raise ConfigError(f"{str(path)!r}: unexpected tensor {key!r} (a damaged or foreign checkpoint)")
    method.load_learned_state(learned, source=str(path))
    for idx, entries in scalars.items():
        if not (str(idx).isdigit() and int(idx) < len(params) and isinstance(entries, dict)):
            raise ConfigError(f"{str(path)!r}: unexpected optimiser state entry {idx!r}")
        state.setdefault(int(idx), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{str(path)!r}: the optimiser state does not match this method ({exc})") from None
    return epochs_done, history
