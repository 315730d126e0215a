"""Decode any file libsndfile reads to mono float32 at a target rate."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sept.errors import AudioDecodeError


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with soxr (high quality). ``wave``: [S] float32 -> [S'] float32."""
    if orig_sr == target_sr or wave.size == 0:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def decode_audio(data: bytes, target_sr: int, name: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Decode the bytes of an audio file to a mono float32 waveform [S] at ``target_sr``.

    Multichannel audio is mixed down by averaging channels. Raises :class:`AudioDecodeError`
    naming ``name`` when libsndfile cannot read the data, the file holds no samples, or the
    samples are not finite.
    """
    if len(data) == 0:
        raise AudioDecodeError(name, "the file is empty (0 bytes)")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioDecodeError(name, f"libsndfile could not read it ({exc})") from exc
    if samples.shape[0] == 0:
        raise AudioDecodeError(name, "the file holds zero samples")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        bad = int((~np.isfinite(mono)).sum())
        raise AudioDecodeError(name, f"{bad} samples are NaN or infinite")
    return resample(np.ascontiguousarray(mono), int(rate), target_sr)


def load_audio(path: str | os.PathLike[str], target_sr: int) -> np.ndarray:
    """Read ``path`` and decode it (see :func:`decode_audio`). Missing files name the path."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AudioDecodeError(p, f"cannot read the file ({exc.strerror or exc})") from exc
    return decode_audio(data, target_sr, p)
