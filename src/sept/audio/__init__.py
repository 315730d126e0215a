"""Audio decoding, resampling, the deterministic crop/pad policy and ranged decoding of long files."""

from sept.audio.io import decode_audio, load_audio, resample
from sept.audio.ranged import load_window
from sept.audio.window import AudioWindow

__all__ = ["AudioWindow", "decode_audio", "load_audio", "load_window", "resample"]
