from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.audio import AudioWindow, decode_audio, load_audio, resample
from sept.errors import AudioDecodeError
from tests.conftest import tone, write_audio

_MP3 = pytest.param(
    "mp3",
    "MPEG_LAYER_III",
    marks=pytest.mark.skipif(
        "MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 support"
    ),
)


@pytest.mark.parametrize(
    ("ext", "subtype"), [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_24"), ("ogg", "VORBIS"), _MP3]
)
@pytest.mark.parametrize("sr", [8000, 22050, 48000])
def test_formats_and_rates_decode_to_target_rate(tmp_path: Path, ext: str, subtype: str, sr: int) -> None:
    wave = tone(440.0, 1.25, sr)
    path = write_audio(tmp_path / f"x.{ext}", wave, sr, subtype=subtype)
    out = load_audio(path, 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - round(1.25 * 16000)) <= 2
    # the 440 Hz tone survives resampling: its spectral peak stays at 440 Hz
    spectrum = np.abs(np.fft.rfft(out))
    peak_hz = np.argmax(spectrum) * 16000 / len(out)
    assert abs(peak_hz - 440.0) < 5.0


def test_multichannel_is_mixed_to_mono(tmp_path: Path) -> None:
    left = tone(300.0, 0.5, 16000)
    stereo = np.stack([left, -left], axis=1)  # cancels out when averaged
    path = write_audio(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    assert np.abs(load_audio(path, 16000)).max() < 1e-6
    eight = np.repeat(left[:, None], 8, axis=1)
    path8 = write_audio(tmp_path / "e.wav", eight, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path8, 16000), left, atol=1e-6)


def test_resample_is_band_limited() -> None:
    # a 7 kHz tone at 44.1 kHz must not alias into the 8 kHz-rate output
    x = tone(7000.0, 1.0, 44100, seed=1)
    y = resample(x, 44100, 8000)
    assert len(y) == 8000
    assert np.sqrt(np.mean(y**2)) < 0.05 * np.sqrt(np.mean(x**2))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "libsndfile"),
        (b"this is not audio at all" * 10, "libsndfile"),
    ],
)
def test_undecodable_bytes_name_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad file é.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_missing_file_and_zero_samples_and_nan(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="cannot read"):
        load_audio(tmp_path / "nope.wav", 16000)
    empty = write_audio(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioDecodeError, match="zero samples"):
        load_audio(empty, 16000)
    bad = tone(100.0, 0.1, 16000)
    bad[5] = np.nan
    nan_path = write_audio(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(nan_path, 16000)


def test_decode_audio_from_bytes_matches_file(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.flac", tone(500.0, 0.3, 22050), 22050)
    np.testing.assert_array_equal(decode_audio(path.read_bytes(), 16000, path), load_audio(path, 16000))
    assert sf.info(path).samplerate == 22050


class TestAudioWindow:
    def test_long_clip_is_center_cropped_deterministically(self) -> None:
        w = AudioWindow(max_seconds=1.0, min_seconds=1.0)
        x = np.arange(30, dtype=np.float32)
        out = w.fit(x, 10)
        np.testing.assert_array_equal(out, np.arange(10, 20))
        np.testing.assert_array_equal(out, w.fit(x, 10))
        np.testing.assert_array_equal(AudioWindow(1.0, 1.0, crop="start").fit(x, 10), np.arange(10))

    def test_short_clip_is_repeat_padded(self) -> None:
        out = AudioWindow(max_seconds=1.0, min_seconds=1.0).fit(np.array([1, 2, 3], np.float32), 10)
        np.testing.assert_array_equal(out, [1, 2, 3, 1, 2, 3, 1, 2, 3, 0])
        out = AudioWindow(max_seconds=1.0, min_seconds=1.0, pad="zeros").fit(np.array([1, 2], np.float32), 5)
        np.testing.assert_array_equal(out, [1, 2, 0, 0, 0])

    def test_variable_window_keeps_lengths_in_range(self) -> None:
        w = AudioWindow(max_seconds=2.0, min_seconds=0.5)
        assert len(w.fit(np.ones(13, np.float32), 10)) == 13
        assert len(w.fit(np.ones(3, np.float32), 10)) == 5
        assert len(w.fit(np.ones(30, np.float32), 10)) == 20

    def test_invalid_window_is_refused(self) -> None:
        with pytest.raises(ValueError, match="min_seconds"):
            AudioWindow(max_seconds=1.0, min_seconds=2.0)
        with pytest.raises(ValueError, match="crop"):
            AudioWindow(crop="random")  # type: ignore[arg-type]
