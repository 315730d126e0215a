"""Pengi (Deshmukh et al. 2023; microsoft/Pengi, MIT): the audio-language model PALM's code runs on.

Audio: HTSAT on 7-s clips at 44.1 kHz (``configs/base.yml``), its latent vector projected to the
1024-d joint space. Text: the path PALM uses, Pengi's caption encoder: the CLIP text transformer of
``openai/clip-vit-base-patch16`` (40 tokens), pooled at the end-of-text token, CLIP's text
projection, then Pengi's projection. Logit scale 100 (PALM's code).

Weights: Pengi's ``base.pth`` (Zenodo record 8387083, linked from Pengi's README) is a pickled
training checkpoint; ``sept backbones convert pengi base.pth --out DIR`` reads it with
``torch.load(weights_only=True)`` and writes DIR (safetensors + config), and
``create_backbone("pengi", model=DIR)`` loads that folder. The CLIP tokenizer and text config
come from ``text_model`` (the hub id, or a local folder offline).

Exactness (tests/test_msft_backbones.py): audio features equal Pengi's ``AudioEncoder`` within 1e-5;
with the context set to a template's token embeddings the prompted text path gives Pengi's
``TextEncoder`` feature of the full sentence. Note that HTSAT ignores the YAML's mel settings
(its ``HTSATWrapper`` passes its own config module): the filterbank is 64 bins over 50-14000 Hz
designed for 32 kHz, applied to 44.1 kHz audio, exactly as the reference computes it.
"""

from __future__ import annotations

from sept.backbones.htsat import HtsatSettings
from sept.backbones.msft import Family, MsftBackbone

PENGI = Family(
    name="pengi",
    audio_encoder="htsat",
    audio=HtsatSettings().to_dict(),
    sample_rate=44100,
    seconds=7.0,
    text_encoder="clip",
    text_model="openai/clip-vit-base-patch16",
    text_max_length=40,
    weights_hint=(
        "Pengi's weights: download base.pth from Zenodo record 8387083 (linked from microsoft/Pengi's README), "
        "then `sept backbones convert pengi base.pth --out DIR`."
    ),
)


class PengiBackbone(MsftBackbone):
    """Pengi's audio encoder and caption (text) encoder; see the module docstring."""

    name = "pengi"
    family = PENGI
