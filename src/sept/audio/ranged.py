"""Decode only the part of a long file that a backbone's window keeps.

A clip longer than the window is centre- (or start-) cropped after decoding and resampling, so an
hour-long recording would otherwise be read, decoded and resampled whole (gigabytes of float32)
to keep ten seconds of it. :func:`load_window` seeks to the kept span plus a margin, decodes and
resamples that, and crops it to the same samples ``window.fit(load_audio(path, rate), rate)``
gives, up to float rounding (the resampling grid is kept aligned with the whole file's, so only
the last bit of a sample can differ). Files no longer than the window take the whole-file path.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from sept.audio.io import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    cannot_read,
    check_samples,
    decode_audio,
    load_audio,
    mix_to_mono,
    resample,
    too_large,
    unreadable,
)
from sept.audio.window import AudioWindow
from sept.errors import AudioDecodeError

#: source audio decoded on each side of the kept span, so the resampling filter sees real
#: neighbours at the span's edges as it does in the whole file (soxr HQ needs a few ms)
MARGIN_SECONDS = 1.0


def resampled_length(frames: int, orig_sr: int, target_sr: int) -> int:
    """Length of :func:`sept.audio.io.resample` of ``frames`` samples: round half up of frames * target / orig."""
    return (2 * frames * target_sr + orig_sr) // (2 * orig_sr)


def load_window(
    path: str | os.PathLike[str], target_sr: int, window: AudioWindow, data: bytes | None = None
) -> np.ndarray:
    """``window.fit(load_audio(path, target_sr), target_sr)`` [S'] float32, decoding only what it keeps.

    ``data``: the file's bytes when already read (``path`` then only names it). Raises
    :class:`AudioDecodeError` naming ``path`` as :func:`~sept.audio.io.load_audio` does; samples
    outside the decoded span are not checked. A file that is not longer than the window (by the
    decoded length its header gives), cannot seek, or holds fewer frames than its header says is
    decoded whole (as before).
    """
    p = Path(path)
    samples = None
    if data is not None and len(data) == 0:
        raise AudioDecodeError(p, "the file is empty (0 bytes)")
    try:
        with sf.SoundFile(p if data is None else io.BytesIO(data)) as f:
            frames, rate = int(f.frames), int(f.samplerate)
            span = _span(frames, rate, target_sr, window)
            if span is not None:
                first, last, keep_from, keep = span
                samples = _read_span(f, first, last)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise unreadable(p, exc) from exc
    except OSError as exc:
        raise cannot_read(p, exc) from exc
    if samples is None:  # kept whole, not seekable, or truncated: the whole-file path decides
        wave = load_audio(p, target_sr) if data is None else decode_audio(data, target_sr, p)
        return window.fit(wave, target_sr)
    check_samples(p, samples)
    with np.errstate(over="ignore", invalid="ignore"):
        out = resample(mix_to_mono(samples), rate, target_sr)[keep_from : keep_from + keep]
    if out.shape[0] != keep or not np.isfinite(out).all():
        raise too_large(p, samples)
    return out.copy()  # not a view of the margins


def _read_span(f: sf.SoundFile, first: int, last: int) -> np.ndarray | None:
    """Frames [first, last) as float32 [last - first, C]; None when the file cannot seek there or
    holds fewer frames than its header says (a truncated file)."""
    if not f.seekable():
        return None
    try:
        f.seek(first)
        samples = f.read(last - first, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        return None
    return samples if samples.shape[0] == last - first else None


def _span(frames: int, rate: int, target_sr: int, window: AudioWindow) -> tuple[int, int, int, int] | None:
    """Source frames [first, last) to decode and, in their resampled output, the kept samples
    [keep_from, keep_from + keep); None when the whole file is kept (or the header is implausible,
    which the whole-file path reports)."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE or frames <= 0:
        return None
    total = resampled_length(frames, rate, target_sr)
    keep = round(window.max_seconds * target_sr)
    if total <= keep:
        return None
    start = (total - keep) // 2 if window.crop == "center" else 0  # as AudioWindow.fit crops
    # decode from a frame on the resampling grid: first * target / rate is then an integer, so
    # the span's output samples fall where the whole file's do
    grid = rate // math.gcd(rate, target_sr)
    margin = math.ceil(MARGIN_SECONDS * rate / grid) * grid
    first = max(0, (start * rate // target_sr) // grid * grid - margin)
    last = min(frames, math.ceil((start + keep) * rate / target_sr) + margin)
    return first, last, start - first * target_sr // rate, keep
