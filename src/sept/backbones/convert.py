"""``sept backbones convert``: a reference checkpoint -> a folder ``create_backbone`` loads.

Reads the pickled ``.pth`` with ``torch.load(weights_only=True)`` (refusing anything that needs
more), keeps the audio- and text-encoder tensors under their reference names, checks that the
family's essential tensors are there, and writes ``model.safetensors`` + ``sept_backbone.json``.
"""

from __future__ import annotations

from pathlib import Path

from sept.backbones.msft import Family
from sept.backbones.msft_weights import read_checkpoint, weights_fingerprint, write_folder
from sept.errors import ModelLoadError, UnknownNameError

#: tensors each part of a family must have (a checkpoint of another family lacks some)
_ESSENTIAL = {
    "htsat": "audio_encoder.base.htsat.patch_embed.proj.weight",
    "cnn14": "audio_encoder.base.conv_block1.conv1.weight",
    "clip": "caption_encoder.clip_text_projection.weight",
    "gpt2": "caption_encoder.base.wte.weight",
    "bert": "caption_encoder.base.embeddings.word_embeddings.weight",
}


def convertible_families() -> dict[str, Family]:
    from sept.backbones.msclap import FAMILIES
    from sept.backbones.pengi import PENGI

    return {PENGI.name: PENGI, **FAMILIES}


def convert_checkpoint(
    family: str, checkpoint: str | Path, out: str | Path, text_model: str | None = None
) -> Path:
    """Convert ``checkpoint`` of ``family`` into the folder ``out``; returns ``out``."""
    families = convertible_families()
    if family not in families:
        raise UnknownNameError("convertible backbone", family, sorted(families))
    fam = families[family]
    checkpoint = Path(checkpoint)
    tensors = read_checkpoint(checkpoint)
    needed = [
        _ESSENTIAL[fam.audio_encoder],
        _ESSENTIAL[fam.text_encoder],
        "audio_encoder.projection.linear1.weight",
        "caption_encoder.projection.linear1.weight",
    ]
    missing = [k for k in needed if k not in tensors]
    if missing:
        raise ModelLoadError(
            f"checkpoint {str(checkpoint)!r} is not a {family} checkpoint: it has no {', '.join(missing)}"
        )
    config = fam.config()
    if text_model:
        config["text_model"] = str(text_model)
    config["source"] = {"file": checkpoint.name, "blake2b": weights_fingerprint(checkpoint)}
    return write_folder(out, tensors, config)
