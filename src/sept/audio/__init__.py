"""Audio decoding, resampling and the deterministic crop/pad policy."""

from sept.audio.io import decode_audio, load_audio, resample
from sept.audio.window import AudioWindow

__all__ = ["AudioWindow", "decode_audio", "load_audio", "resample"]
