"""sept: generalizable prompt tuning of audio-language models.

Importing ``sept`` loads nothing heavy: backbones, datasets and methods are created on demand
through their factories (``sept.backbones.create_backbone`` ...).
"""

__version__ = "0.1.0"
