"""Decode only the part of a long file that a backbone's window keeps.

A clip longer than the window is centre- (or start-) cropped after decoding and resampling, so an
hour-long recording would otherwise be read, decoded and resampled whole (gigabytes of float32)
to keep ten seconds of it. :func:`load_window` seeks to the kept span plus a margin, decodes and
resamples that, and crops it to the same samples ``window.fit(load_audio(path, rate), rate)``
gives, up to float rounding (the resampling grid is kept aligned with the whole file's, so only
the last bit of a sample can differ). Files no longer than the window take the whole-file path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from sept.audio.io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, load_audio, resample
from sept.audio.window import AudioWindow
from sept.errors import AudioDecodeError

#: source audio decoded on each side of the kept span, so the resampling filter sees real
#: neighbours at the span's edges as it does in the whole file (soxr HQ needs a few ms)
MARGIN_SECONDS = 1.0


def resampled_length(frames: int, orig_sr: int, target_sr: int) -> int:
    """Length of :func:`sept.audio.io.resample` of ``frames`` samples: round half up of frames * target / orig."""
    return (2 * frames * target_sr + orig_sr) // (2 * orig_sr)


def load_window(path: str | os.PathLike[str], target_sr: int, window: AudioWindow) -> np.ndarray:
    """``window.fit(load_audio(path, target_sr), target_sr)`` [S'] float32, decoding only what it keeps.

    Raises :class:`AudioDecodeError` naming ``path`` as :func:`~sept.audio.io.load_audio` does;
    samples outside the decoded span are not checked. A file that is not longer than the window,
    cannot seek, or holds fewer frames than its header says is decoded whole (as before).
    """
    p = Path(path)
    try:
        with sf.SoundFile(p) as f:
            frames, rate = int(f.frames), int(f.samplerate)
            span = _span(frames, rate, target_sr, window)
            first, last, keep_from, keep = span if span is not None else (0, 0, 0, 0)
            samples = _read_span(f, first, last) if span is not None else None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioDecodeError(
            p, f"libsndfile could not read it ({getattr(exc, 'error_string', exc)})"
        ) from exc
    except OSError as exc:
        raise AudioDecodeError(p, f"cannot read the file ({exc.strerror or exc})") from exc
    if samples is None:  # kept whole, not seekable, or truncated: the whole-file path decides
        return window.fit(load_audio(p, target_sr), target_sr)
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioDecodeError(p, f"{bad} samples are NaN or infinite")
    with np.errstate(over="ignore", invalid="ignore"):
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
        out = resample(np.ascontiguousarray(mono), rate, target_sr)[keep_from : keep_from + keep]
    if out.shape[0] != keep or not np.isfinite(out).all():
        peak = float(np.abs(samples).max())
        raise AudioDecodeError(p, f"its samples are too large to process (peak |x| = {peak:.3g})")
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
