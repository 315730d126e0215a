"""Long files: only the span the window keeps is decoded, and it equals the whole-file result."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import sept.features.extract as extract_module
import sept.utils.hashing as hashing
from sept.audio.io import load_audio, resample
from sept.audio.ranged import load_window, resampled_length
from sept.audio.window import AudioWindow
from sept.data.clips import Clip
from sept.errors import AudioDecodeError
from sept.features import extract_features
from tests.conftest import tone, write_audio
from tests.fake_backbone import BandEnergyBackbone

WINDOW = AudioWindow(max_seconds=2.0, min_seconds=1.0)


def whole(path: Path, target_sr: int, window: AudioWindow = WINDOW) -> np.ndarray:
    return window.fit(load_audio(path, target_sr), target_sr)


@pytest.mark.parametrize(
    ("rate", "target", "channels", "ext", "crop"),
    [
        (44100, 48000, 2, "wav", "center"),
        (22050, 16000, 1, "flac", "center"),
        (8000, 48000, 1, "wav", "start"),
        (16000, 16000, 1, "flac", "center"),
        (48000, 16000, 3, "wav", "start"),
        (11025, 16000, 1, "wav", "center"),
    ],
)
def test_equals_the_whole_file_path(tmp_path: Path, rate, target, channels, ext, crop) -> None:
    seconds = 7.3
    wave = np.stack([tone(300 * (c + 1), seconds, rate, seed=c) for c in range(channels)], axis=1)
    path = write_audio(tmp_path / f"long.{ext}", wave, rate)
    window = AudioWindow(max_seconds=2.0, min_seconds=1.0, crop=crop)
    got, expected = load_window(path, target, window), whole(path, target, window)
    assert got.dtype == np.float32 and got.shape == expected.shape == (2 * target,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_short_files_take_the_whole_file_path_bit_for_bit(tmp_path: Path) -> None:
    for seconds in (0.3, 1.5, 2.0):
        path = write_audio(tmp_path / f"short{seconds}.wav", tone(440, seconds, 22050), 22050)
        np.testing.assert_array_equal(load_window(path, 16000, WINDOW), whole(path, 16000))


def test_samples_outside_the_span_are_not_decoded(tmp_path: Path) -> None:
    """NaN outside the kept span: the whole-file path refuses the file, the ranged one never reads them."""
    rate = 16000
    wave = tone(440, 20.0, rate)
    wave[: 5 * rate] = np.nan
    wave[-5 * rate :] = np.nan
    path = write_audio(tmp_path / "nan_edges.wav", wave, rate, subtype="FLOAT")
    with pytest.raises(AudioDecodeError):
        load_audio(path, rate)
    got = load_window(path, rate, WINDOW)
    np.testing.assert_array_equal(got, wave[9 * rate : 11 * rate])


def test_bad_samples_inside_the_span_name_the_file(tmp_path: Path) -> None:
    wave = tone(440, 20.0, 16000)
    wave[10 * 16000] = np.inf
    path = write_audio(tmp_path / "inf_middle.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"inf_middle\.wav.*NaN or infinite"):
        load_window(path, 16000, WINDOW)


def test_undecodable_and_missing_files_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 100)
    with pytest.raises(AudioDecodeError, match=r"garbage\.wav"):
        load_window(garbage, 16000, WINDOW)
    with pytest.raises(AudioDecodeError, match=r"missing\.wav"):
        load_window(tmp_path / "missing.wav", 16000, WINDOW)


def test_truncated_file_is_cropped_as_the_whole_file_path_does(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "cut.wav", tone(440, 12.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the header still claims 12 s
    np.testing.assert_array_equal(load_window(path, 16000, WINDOW), whole(path, 16000))


def test_resampled_length_is_what_resampling_gives() -> None:
    rng = np.random.default_rng(0)
    for frames in (1, 999, 44099, 44100 * 3 + 13):
        for orig, target in ((44100, 48000), (16000, 48000), (48000, 16000), (22050, 16000), (8000, 8000)):
            x = rng.standard_normal(frames).astype(np.float32)
            assert resampled_length(frames, orig, target) == resample(x, orig, target).shape[0]


def test_hash_file_equals_hash_bytes_over_many_chunks(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(1).bytes(10_000))
    monkeypatch.setattr(hashing, "HASH_CHUNK_BYTES", 777)
    assert hashing.hash_file(path) == hashing.hash_bytes(path.read_bytes())


def test_extraction_of_large_files_matches_and_shares_the_cache(tmp_path: Path, monkeypatch) -> None:
    clips = []
    for i, (rate, seconds) in enumerate(((16000, 9.0), (44100, 6.5), (22050, 1.2))):
        path = write_audio(tmp_path / f"rec{i}.flac", tone(200 + 150 * i, seconds, rate, seed=i), rate)
        clips.append(Clip(path=path, relpath=path.name, classname=f"c{i}"))
    plain = extract_features(BandEnergyBackbone(), clips, tmp_path / "cache", progress=False)
    monkeypatch.setattr(extract_module, "LONG_FILE_BYTES", 1024)  # every file takes the ranged path
    ranged = extract_features(BandEnergyBackbone(), clips, use_cache=False, progress=False)
    np.testing.assert_allclose(ranged.features.numpy(), plain.features.numpy(), atol=1e-5)
    backbone = BandEnergyBackbone()
    again = extract_features(backbone, clips, tmp_path / "cache", progress=False)
    assert again.cache_hits == len(clips) and backbone.clips_embedded == 0  # same content keys


def test_extraction_skips_a_bad_large_file_naming_the_reason(tmp_path: Path, monkeypatch) -> None:
    good = write_audio(tmp_path / "good.wav", tone(440, 5.0, 16000), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00" * 4096)
    monkeypatch.setattr(extract_module, "LONG_FILE_BYTES", 1024)
    clips = [Clip(path=p, relpath=p.name, classname="c") for p in (good, bad)]
    result = extract_features(BandEnergyBackbone(), clips, use_cache=False, progress=False)
    assert [c.path for c in result.clips] == [good]
    assert result.skipped[0][0].path == bad and "libsndfile" in result.skipped[0][1]
    with pytest.raises(AudioDecodeError, match=r"bad\.wav"):
        extract_features(BandEnergyBackbone(), clips, use_cache=False, progress=False, on_bad_audio="fail")


def test_soundfile_reads_only_the_span(tmp_path: Path, monkeypatch) -> None:
    """The frames asked of libsndfile: the kept 2 s plus the margins, not the 30 s file."""
    rate = 16000
    path = write_audio(tmp_path / "thirty.wav", tone(440, 30.0, rate), rate)
    asked: list[int] = []
    real_read = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    load_window(path, rate, WINDOW)
    assert asked == [(2 + 2 * 1) * rate]  # window + 1 s margin on each side


def _cases(tmp_path: Path) -> dict[str, Path]:
    """Good and bad files: each one's verdict from scan_audio must match load_audio's."""
    rate = 8000
    cases = {
        "mono": write_audio(tmp_path / "mono.flac", tone(440, 3.0, rate), rate),
        "stereo": write_audio(tmp_path / "stereo.wav", np.stack([tone(440, 3.0, rate)] * 2, axis=1), rate),
        "zero samples": write_audio(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), rate),
    }
    late_nan = tone(440, 3.0, rate)
    late_nan[-10] = np.nan
    cases["late NaN"] = write_audio(tmp_path / "late_nan.wav", late_nan, rate, subtype="FLOAT")
    huge = np.full((rate, 2), 3e38, dtype=np.float32)
    cases["mix overflows"] = write_audio(tmp_path / "huge.wav", huge, rate, subtype="FLOAT")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty"] = tmp_path / "empty.wav"
    (tmp_path / "garbage.ogg").write_bytes(b"OggS" + bytes(range(256)) * 40)
    cases["garbage"] = tmp_path / "garbage.ogg"
    cut = write_audio(tmp_path / "cut.wav", tone(440, 3.0, rate), rate)
    cut.write_bytes(cut.read_bytes()[:20_000])
    cases["truncated"] = cut
    cases["missing"] = tmp_path / "missing.wav"
    return cases


def test_scan_audio_refuses_what_load_audio_refuses(tmp_path: Path, monkeypatch) -> None:
    import sept.audio.io as io_module

    monkeypatch.setattr(io_module, "SCAN_BLOCK_FRAMES", 1000)  # several blocks per file
    for name, path in _cases(tmp_path).items():
        try:
            rate = sf.info(str(path)).samplerate
        except (sf.LibsndfileError, RuntimeError):
            rate = 8000  # unreadable header: load_audio refuses it at any rate
        try:
            expected = load_audio(path, rate).shape[0]  # at its own rate: no resampling
        except AudioDecodeError:
            expected = None
        if expected is None:
            with pytest.raises(AudioDecodeError, match=re.escape(path.name)):
                io_module.scan_audio(path)
        else:
            assert io_module.scan_audio(path) == expected, name


def test_scan_audio_names_the_block_of_a_late_bad_sample(tmp_path: Path, monkeypatch) -> None:
    import sept.audio.io as io_module

    monkeypatch.setattr(io_module, "SCAN_BLOCK_FRAMES", 1000)
    wave = tone(440, 3.0, 8000)
    wave[20_500] = np.inf
    path = write_audio(tmp_path / "late_inf.wav", wave, 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="from frame 20000 on"):
        io_module.scan_audio(path)


def test_a_file_that_cannot_seek_is_decoded_whole(tmp_path: Path, monkeypatch) -> None:
    path = write_audio(tmp_path / "noseek.flac", tone(440, 12.0, 22050), 22050)

    real_seek = sf.SoundFile.seek

    def refuse(self, *args, **kwargs):  # the span's seek fails (as in some MP3s); soundfile's own work
        if sys._getframe(1).f_code.co_name == "_read_span":
            raise RuntimeError("seek not supported")
        return real_seek(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "seek", refuse)
    np.testing.assert_array_equal(load_window(path, 16000, WINDOW), whole(path, 16000))


def test_a_file_that_says_it_cannot_seek_is_decoded_whole(tmp_path: Path, monkeypatch) -> None:
    path = write_audio(tmp_path / "stream.wav", tone(440, 12.0, 16000), 16000)
    monkeypatch.setattr(sf.SoundFile, "seekable", lambda self: False)
    np.testing.assert_array_equal(load_window(path, 16000, WINDOW), whole(path, 16000))
