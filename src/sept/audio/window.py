"""The deterministic crop/pad/repeat policy that fits a clip of any length to a backbone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class AudioWindow:
    """How a clip of any length is fitted before the audio tower sees it.

    - longer than ``max_seconds``: crop a window of ``max_seconds`` at the ``crop`` position
      ("center" or "start"); never random, so evaluation and caching are deterministic;
    - shorter than ``min_seconds``: ``pad`` = "repeat" tiles the clip (CLAP's repeatpad) and
      zero-fills the remainder; "tile" repeats it and cuts the last copy short (Pengi's and
      MS-CLAP's ``load_audio_into_tensor``: no zeros); "zeros" zero-pads.

    Fixed-length backbones (CLAP) use ``min_seconds == max_seconds``.
    """

    max_seconds: float = 10.0
    min_seconds: float = 10.0
    crop: Literal["center", "start"] = "center"
    pad: Literal["repeat", "tile", "zeros"] = "repeat"

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ValueError(
                f"AudioWindow needs 0 < min_seconds <= max_seconds, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.crop not in ("center", "start"):
            raise ValueError(f"AudioWindow.crop must be 'center' or 'start', got {self.crop!r}")
        if self.pad not in ("repeat", "tile", "zeros"):
            raise ValueError(f"AudioWindow.pad must be 'repeat', 'tile' or 'zeros', got {self.pad!r}")

    def settings(self) -> dict[str, object]:
        """A JSON-able description (part of the feature-cache key)."""
        return asdict(self)

    def fit(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """Crop or pad ``wave`` [S] to between min and max seconds; returns float32 [S']."""
        max_n = round(self.max_seconds * sample_rate)
        min_n = round(self.min_seconds * sample_rate)
        wave = np.asarray(wave, dtype=np.float32)
        n = wave.shape[0]
        if n > max_n:
            start = (n - max_n) // 2 if self.crop == "center" else 0
            # a copy, not a view: a view would keep the whole (maybe hour-long) decoded file alive
            return wave[start : start + max_n].copy()
        if n >= min_n:
            return wave
        if self.pad == "tile" and n > 0:
            return np.resize(wave, min_n)  # the clip repeated, the last copy cut at min_n
        out = np.zeros(min_n, dtype=np.float32)
        if self.pad == "repeat" and n > 0:
            reps = min_n // n
            out[: reps * n] = np.tile(wave, reps)
        else:
            out[:n] = wave
        return out
