"""Decode any file libsndfile reads to mono float32 at a target rate.

Whatever the file holds, the result is a finite waveform of at least one sample, or an
:class:`AudioDecodeError` naming the file and the reason: empty or truncated files, zero samples,
NaN/inf samples or absurd amplitudes, a header whose sample rate is implausible (a corrupt header claiming 1 Hz would
otherwise be "resampled" into gigabytes), or samples so large that mixing or resampling overflows.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sept.errors import AudioDecodeError

#: sample rates accepted from a file header (Hz); outside them the header is taken as corrupt
MIN_SAMPLE_RATE = 500
MAX_SAMPLE_RATE = 1_000_000
#: largest |sample| accepted (full scale is 1; float files may go over, 60 dB over is not sound)
MAX_AMPLITUDE = 1000.0


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling with soxr (high quality). ``wave``: [S] float32 -> [S'] float32."""
    if orig_sr == target_sr or wave.size == 0:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def cannot_read(name: str | os.PathLike[str], exc: OSError) -> AudioDecodeError:
    """The error for a file the operating system would not read (missing, a folder, no permission)."""
    return AudioDecodeError(name, f"cannot read the file ({exc.strerror or exc})")


def unreadable(name: str | os.PathLike[str], exc: BaseException) -> AudioDecodeError:
    """The error for an exception from libsndfile (its reason, without "Error opening <...>")."""
    return AudioDecodeError(name, f"libsndfile could not read it ({getattr(exc, 'error_string', exc)})")


def check_sample_rate(name: str | os.PathLike[str], rate: int) -> None:
    """Raise :class:`AudioDecodeError` when a header's sample rate is implausible (a corrupt header)."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            name,
            f"its header gives a sample rate of {rate} Hz (accepted: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE})",
        )


def check_samples(name: str | os.PathLike[str], samples: np.ndarray, where: str = "") -> None:
    """Raise :class:`AudioDecodeError` when decoded ``samples`` [S, C] hold NaN, inf, or a peak
    beyond :data:`MAX_AMPLITUDE` (a float file of garbage values, not sound)."""
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioDecodeError(name, f"{bad} samples are NaN or infinite{where}")
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > MAX_AMPLITUDE:
        raise AudioDecodeError(
            name,
            f"its samples are too large: peak |x| = {peak:.3g}{where} (full scale is 1; accepted up to "
            f"{MAX_AMPLITUDE:g})",
        )


def mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """The channel mean [S] of finite samples [S, C]; inf where the mix overflows (check it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono)


def too_large(name: str | os.PathLike[str], samples: np.ndarray) -> AudioDecodeError:
    """The error for finite samples whose mix or resampling overflows."""
    return AudioDecodeError(
        name, f"its samples are too large to process (peak |x| = {float(np.abs(samples).max()):.3g})"
    )


def decode_audio(data: bytes, target_sr: int, name: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Decode the bytes of an audio file to a mono float32 waveform [S] at ``target_sr``.

    Multichannel audio is mixed down by averaging channels. Raises :class:`AudioDecodeError`
    naming ``name`` when libsndfile cannot read the data, the file holds no samples, its sample
    rate is implausible, or the samples are not finite (before or after mixing and resampling).
    """
    if len(data) == 0:
        raise AudioDecodeError(name, "the file is empty (0 bytes)")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise unreadable(name, exc) from exc
    except MemoryError as exc:
        raise AudioDecodeError(name, "its decoded samples do not fit in memory") from exc
    if samples.shape[0] == 0:
        raise AudioDecodeError(name, "the file holds zero samples")
    check_sample_rate(name, rate)
    check_samples(name, samples)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught below, naming the file
        out = resample(mix_to_mono(samples), int(rate), target_sr)
    if out.size == 0:
        raise AudioDecodeError(
            name, f"no sample is left after resampling {samples.shape[0]} sample(s) to {target_sr} Hz"
        )
    if not np.isfinite(out).all():
        raise too_large(name, samples)
    return out


def load_audio(path: str | os.PathLike[str], target_sr: int) -> np.ndarray:
    """Read ``path`` and decode it (see :func:`decode_audio`). Missing files name the path."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise cannot_read(p, exc) from exc
    return decode_audio(data, target_sr, p)


#: frames decoded at a time by :func:`scan_audio`
SCAN_BLOCK_FRAMES = 1 << 18


def scan_audio(path: str | os.PathLike[str]) -> int:
    """Decode every sample of ``path`` block by block and return the number of frames.

    Memory stays at one block whatever the file's length. Raises :class:`AudioDecodeError`
    naming ``path`` for what :func:`load_audio` (at the file's own rate) refuses: an unreadable or
    empty file, zero samples, an implausible sample rate, NaN/inf samples, or channels whose mix
    overflows.
    """
    p = Path(path)
    frames = 0
    try:
        if p.stat().st_size == 0:
            raise AudioDecodeError(p, "the file is empty (0 bytes)")
        with sf.SoundFile(p) as f:
            check_sample_rate(p, int(f.samplerate))
            for block in f.blocks(blocksize=SCAN_BLOCK_FRAMES, dtype="float32", always_2d=True):
                check_samples(p, block, f" (from frame {frames} on)")
                if not np.isfinite(mix_to_mono(block)).all():
                    raise too_large(p, block)
                frames += block.shape[0]
    except OSError as exc:
        raise cannot_read(p, exc) from exc
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise unreadable(p, exc) from exc
    if frames == 0:
        raise AudioDecodeError(p, "the file holds zero samples")
    return frames
