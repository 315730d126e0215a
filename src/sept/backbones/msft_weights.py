"""Checkpoints of Microsoft's audio-language models (Pengi, MS-CLAP): read safely, convert, load.

The reference checkpoints are pickled training checkpoints (``{"model": state_dict, ...}``).
sept reads them with ``torch.load(weights_only=True)`` only, which unpickles tensors and plain
containers and refuses anything else (a class, a function), and keeps only the tensors of the audio
and text encoders (``audio_encoder.*``, ``caption_encoder.*``; Pengi's GPT-2 caption decoder and
any optimiser state are left out).

A converted folder holds ``model.safetensors`` (those tensors under their reference names) and
``sept_backbone.json`` (the family, its settings and where the weights came from): everything
:class:`~sept.backbones.msft.MsftBackbone` needs besides the text tower's tokenizer and config.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from sept.errors import ModelLoadError
from sept.utils.atomic import atomic_path, atomic_write_bytes
from sept.utils.hashing import hash_file

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "sept_backbone.json"
FORMAT = "sept-backbone/1"
#: the reference modules whose tensors a backbone needs
KEPT_PREFIXES = ("audio_encoder.", "caption_encoder.")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The audio- and text-encoder tensors of a reference ``.pth`` checkpoint (weights_only load).

    Accepts ``{"model": state_dict, ...}`` or a bare state dict; strips DataParallel's ``module.``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"refused checkpoint {str(path)!r}: it holds more than tensors and plain containers, and sept "
            f"reads checkpoints with torch.load(weights_only=True) only, never running code from a pickle. "
            f"What it needs: {_first_line(exc)}"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ModelLoadError(f"cannot read checkpoint {str(path)!r} as a PyTorch file: {exc}") from exc
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise ModelLoadError(
            f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a state dict or {{'model': state_dict}}"
        )
    kept: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        name = str(name).removeprefix("module.")
        if name.startswith(KEPT_PREFIXES) and isinstance(value, torch.Tensor):
            kept[name] = value
    if not kept:
        raise ModelLoadError(
            f"checkpoint {str(path)!r} has no audio_encoder.* or caption_encoder.* tensors "
            f"(first names: {', '.join(list(map(str, state))[:5]) or 'none'})"
        )
    return kept


def write_folder(out: str | Path, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` + ``sept_backbone.json`` into ``out`` (each file atomically)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().contiguous().clone() for k, v in tensors.items()}  # no shared storage
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(plain, str(tmp), metadata={"format": "pt"})
    text = json.dumps({"format": FORMAT, **config}, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(out / CONFIG_FILE, text.encode("utf-8"))
    return out


def read_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, tensors) of a converted folder; a clear error for anything else."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise ModelLoadError(
            f"folder {str(folder)!r} is not a converted checkpoint: it needs {CONFIG_FILE} and {WEIGHTS_FILE} "
            f"(write them with `sept backbones convert FAMILY CHECKPOINT --out {folder}`)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {str(config_path)!r}: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelLoadError(
            f"{str(config_path)!r}: 'format' must be {FORMAT!r}, got {config.get('format')!r}"
        )
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelLoadError(f"cannot read {str(weights_path)!r} as safetensors: {exc}") from exc
    return config, tensors


def weights_fingerprint(path: Path) -> str:
    """A content hash of a weights file (the feature-cache identity of a local checkpoint)."""
    return hash_file(path)


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    for line in text.splitlines():
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__
