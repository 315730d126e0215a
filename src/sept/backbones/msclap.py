"""MS-CLAP (Elizalde et al. 2023; microsoft/CLAP, MIT): the 2022 and 2023 checkpoints.

- ``msclap-2022``: CNN14 on 5-s clips at 44.1 kHz (mel 64 bins, 50-14000 Hz), BERT
  (``bert-base-uncased``, 100 tokens) pooled at [CLS]; learned context goes after [CLS].
- ``msclap-2023``: HTSAT on 7-s clips at 44.1 kHz, GPT-2 (``gpt2``, 77 tokens). As msclap's
  ``CLAPWrapper`` does, every text gets ``" <|endoftext|>"`` appended and is pooled at its last
  real token (the <|endoftext|>); GPT-2 has no start token, so learned context goes first
  (``context_index`` 0) and the text's two end tokens (a space, <|endoftext|>) stay last.
  sept finds the last real token from the attention mask; msclap counts tokens that are not the
  pad token '!', which differs only for texts that contain '!' themselves.

Both project into a 1024-d joint space. Weights: the hub repo ``microsoft/msclap``
(``CLAP_weights_2022.pth`` / ``CLAP_weights_2023.pth``), fetched cache-first and read with
``torch.load(weights_only=True)``; or ``model=`` a local copy of that file, or a folder written
by ``sept backbones convert msclap-2023 FILE --out DIR``. The text tokenizer and config come from
``text_model`` (the hub id, or a local folder offline).

sept runs its own modules rather than the ``msclap`` package: importing ``msclap`` imports
torchaudio (a second torch build on CPU machines) and its classes download the text model in
their constructors and unpickle checkpoints without ``weights_only``. The tests hold these modules
to msclap's classes (tests/test_msft_backbones.py).
"""

from __future__ import annotations

from sept.backbones.cnn14 import Cnn14Settings
from sept.backbones.htsat import HtsatSettings
from sept.backbones.msft import Family, MsftBackbone

_HINT = "MS-CLAP's weights are in the hub repo microsoft/msclap (`hf download microsoft/msclap {file}`)."

MSCLAP_2022 = Family(
    name="msclap-2022",
    audio_encoder="cnn14",
    audio=Cnn14Settings().to_dict(),
    sample_rate=44100,
    seconds=5.0,
    text_encoder="bert",
    text_model="bert-base-uncased",
    text_max_length=100,
    hub_repo="microsoft/msclap",
    hub_file="CLAP_weights_2022.pth",
    weights_hint=_HINT.format(file="CLAP_weights_2022.pth"),
)

MSCLAP_2023 = Family(
    name="msclap-2023",
    audio_encoder="htsat",
    audio=HtsatSettings().to_dict(),
    sample_rate=44100,
    seconds=7.0,
    text_encoder="gpt2",
    text_model="gpt2",
    text_max_length=77,
    hub_repo="microsoft/msclap",
    hub_file="CLAP_weights_2023.pth",
    weights_hint=_HINT.format(file="CLAP_weights_2023.pth"),
)


class MsClap2022Backbone(MsftBackbone):
    """MS-CLAP 2022: CNN14 + BERT; see the module docstring."""

    name = "msclap-2022"
    family = MSCLAP_2022


class MsClap2023Backbone(MsftBackbone):
    """MS-CLAP 2023: HTSAT + GPT-2; see the module docstring."""

    name = "msclap-2023"
    family = MSCLAP_2023


FAMILIES = {"msclap-2022": MSCLAP_2022, "msclap-2023": MSCLAP_2023}
