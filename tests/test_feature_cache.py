from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from sept.data.clips import load_clips
from sept.errors import AudioDecodeError
from sept.features import FeatureCache, extract_features
from tests.conftest import tone, write_audio
from tests.fake_backbone import BandEnergyBackbone


def test_first_run_computes_second_run_hits(tone_dataset: Path, tmp_path: Path) -> None:
    clips = load_clips(tone_dataset / "meta.csv")
    bb = BandEnergyBackbone()
    first = extract_features(bb, clips, tmp_path / "cache", batch_size=5, workers=2, progress=False)
    assert first.computed == len(clips) and first.cache_hits == 0
    assert bb.clips_embedded == len(clips)
    second = extract_features(bb, clips, tmp_path / "cache", batch_size=5, progress=False)
    assert second.cache_hits == len(clips) and second.computed == 0
    assert bb.clips_embedded == len(clips)  # the audio tower did not run again
    np.testing.assert_array_equal(first.features.numpy(), second.features.numpy())
    assert first.features.shape == (len(clips), bb.embed_dim)
    np.testing.assert_allclose(first.features.norm(dim=-1).numpy(), 1.0, atol=1e-5)


def test_features_do_not_depend_on_batch_size_or_workers(tone_dataset: Path) -> None:
    clips = load_clips(tone_dataset)
    a = extract_features(
        BandEnergyBackbone(), clips, use_cache=False, batch_size=1, workers=1, progress=False
    )
    b = extract_features(
        BandEnergyBackbone(), clips, use_cache=False, batch_size=7, workers=3, progress=False
    )
    assert [c.path for c in a.clips] == [c.path for c in clips]
    np.testing.assert_allclose(a.features.numpy(), b.features.numpy(), atol=1e-6)


def test_changed_file_or_settings_are_recomputed(tone_dataset: Path, tmp_path: Path) -> None:
    clips = load_clips(tone_dataset)
    cache = tmp_path / "cache"
    extract_features(BandEnergyBackbone(), clips, cache, progress=False)
    write_audio(clips[0].path, tone(123.0, 1.0, 16000), 16000)  # edit one file in place
    again = extract_features(BandEnergyBackbone(), clips, cache, progress=False)
    assert again.computed == 1 and again.cache_hits == len(clips) - 1
    other = BandEnergyBackbone(max_seconds=1.0)  # other preprocessing -> other identity
    assert other.identity != BandEnergyBackbone().identity
    assert extract_features(other, clips, cache, progress=False).computed == len(clips)


def test_renamed_file_is_a_hit(tone_dataset: Path, tmp_path: Path) -> None:
    clips = load_clips(tone_dataset)
    extract_features(BandEnergyBackbone(), clips, tmp_path / "c", progress=False)
    moved = tone_dataset / "low_hum" / "renamed.wav"
    os.rename(clips[0].path, moved)
    after = extract_features(BandEnergyBackbone(), load_clips(tone_dataset), tmp_path / "c", progress=False)
    assert after.computed == 0


def test_interrupted_or_corrupt_entries_are_recomputed(tone_dataset: Path, tmp_path: Path) -> None:
    clips = load_clips(tone_dataset)
    bb = BandEnergyBackbone()
    extract_features(bb, clips, tmp_path / "c", progress=False)
    entries = sorted((tmp_path / "c" / bb.identity).glob("*/*.npy"))
    assert len(entries) == len(clips)
    entries[0].write_bytes(entries[0].read_bytes()[:20])  # a torn write from a crashed older tool
    entries[1].unlink()  # never written: the run was killed before it
    (entries[2].parent / f".{entries[2].name}.abc.tmp").write_bytes(b"partial")  # leftover temp file
    again = extract_features(bb, clips, tmp_path / "c", progress=False)
    assert again.computed == 2 and again.cache_hits == len(clips) - 2
    ref = extract_features(BandEnergyBackbone(), clips, use_cache=False, progress=False)
    np.testing.assert_allclose(again.features.numpy(), ref.features.numpy(), atol=1e-6)


def test_entries_that_fail_the_read_checks_are_misses(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "ident")
    unit = np.full(300, 1 / np.sqrt(300), dtype=np.float32)  # 1.2 KB of data after the header
    for key in ("a0", "a1", "a2", "a3", "a4"):
        cache.put(key * 16, unit)
    np.testing.assert_array_equal(cache.get("a0" * 16), unit)
    path = lambda key: tmp_path / "ident" / key / f"{key * 16}.npy"  # noqa: E731
    torn = bytearray(path("a1").read_bytes())
    torn[-600:] = bytes(600)  # the tail never reached the disk (operating-system crash)
    path("a1").write_bytes(bytes(torn))
    path("a2").write_bytes(b"")  # the rename reached the disk, the data did not
    np.save(path("a3"), unit.astype(np.float64))  # not what sept writes
    np.save(path("a4"), unit * 2)  # not a unit vector
    for key in ("a1", "a2", "a3", "a4"):
        assert cache.get(key * 16) is None, key
    assert not list(tmp_path.glob("ident/*/.*.tmp"))  # no temporary file left behind


def test_cache_entries_are_plain_npy_without_pickle(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, "ident")
    cache.put("ab" * 16, np.arange(4, dtype=np.float32))
    path = next(tmp_path.glob("ident/*/*.npy"))
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), np.arange(4))
    assert len(cache) == 1 and cache.get("cd" * 16) is None


def test_bad_files_are_skipped_or_fail(tone_dataset: Path, tmp_path: Path) -> None:
    (tone_dataset / "mid_beep" / "broken.wav").write_bytes(b"not a wav file at all")
    clips = load_clips(tone_dataset)
    fs = extract_features(BandEnergyBackbone(), clips, tmp_path / "c", progress=False)
    assert len(fs.skipped) == 1 and fs.skipped[0][0].path.name == "broken.wav"
    assert len(fs.clips) == len(clips) - 1 and fs.features.shape[0] == len(clips) - 1
    with pytest.raises(AudioDecodeError, match=r"broken\.wav"):
        extract_features(BandEnergyBackbone(), clips, tmp_path / "c", on_bad_audio="fail", progress=False)


def test_skipped_clips_keep_the_order_of_the_rest(tone_dataset: Path, tmp_path: Path) -> None:
    (tone_dataset / "mid_beep" / "broken.wav").write_bytes(b"not a wav file at all")
    clips = load_clips(tone_dataset)
    fs = extract_features(BandEnergyBackbone(), clips, tmp_path / "c", batch_size=3, progress=False)
    good = [c for c in clips if c.path.name != "broken.wav"]
    assert fs.clips == good
    one_by_one = [extract_features(BandEnergyBackbone(), [c], use_cache=False, progress=False) for c in good]
    expected = np.concatenate([f.features.numpy() for f in one_by_one])
    np.testing.assert_allclose(fs.features.numpy(), expected, atol=1e-6)


class _ThreadRecordingBackbone(BandEnergyBackbone):
    """Computes its per-clip input (the spectrum) in ``audio_inputs`` and records the threads."""

    def __init__(self) -> None:
        super().__init__()
        self.input_threads: set[str] = set()

    def audio_inputs(self, wave: np.ndarray) -> np.ndarray:
        self.input_threads.add(threading.current_thread().name)
        return wave.copy()


def test_audio_inputs_run_in_the_decoding_threads(tone_dataset: Path, tmp_path: Path) -> None:
    clips = load_clips(tone_dataset / "meta.csv")
    bb = _ThreadRecordingBackbone()
    fs = extract_features(bb, clips, tmp_path / "c", batch_size=3, workers=2, progress=False)
    assert bb.input_threads and all(name.startswith("sept-decode") for name in bb.input_threads)
    ref = extract_features(BandEnergyBackbone(), clips, use_cache=False, progress=False)
    np.testing.assert_allclose(fs.features.numpy(), ref.features.numpy(), atol=1e-6)


def test_keep_features_false_only_fills_the_cache(tone_dataset: Path, tmp_path: Path) -> None:
    clips = load_clips(tone_dataset / "meta.csv")
    bb = BandEnergyBackbone()
    lean = extract_features(bb, clips, tmp_path / "cache", batch_size=4, keep_features=False, progress=False)
    assert lean.features.shape == (0, bb.embed_dim)
    assert lean.computed == len(clips) and lean.clips == clips
    full = extract_features(bb, clips, tmp_path / "cache", progress=False)
    assert full.cache_hits == len(clips) and full.features.shape == (len(clips), bb.embed_dim)
    np.testing.assert_allclose(
        full.features.numpy(), extract_features(bb, clips, use_cache=False, progress=False).features.numpy()
    )


def test_extraction_keeps_the_unnormalised_features(tone_dataset: Path, tmp_path: Path) -> None:
    """The cache holds unit vector and norm, so ``raw=True`` gives the backbone's unnormalised
    features back from a hit exactly as computed, and the default stays normalised."""

    class Scaled(BandEnergyBackbone):
        exposes_raw_features = True

        def embed_audio_inputs_raw(self, inputs):  # type: ignore[no-untyped-def]
            return 3.0 * self.embed_audio_inputs(inputs)

    clips = load_clips(tone_dataset)
    bb = Scaled()
    first = extract_features(bb, clips, tmp_path / "c", raw=True, progress=False)
    np.testing.assert_allclose(first.features.norm(dim=-1).numpy(), 3.0, rtol=1e-5)
    hit = extract_features(bb, clips, tmp_path / "c", raw=True, progress=False)
    assert hit.cache_hits == len(clips)
    np.testing.assert_allclose(hit.features.numpy(), first.features.numpy(), rtol=1e-6)
    unit = extract_features(bb, clips, tmp_path / "c", progress=False)
    np.testing.assert_allclose(unit.features.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    # an entry whose stored norm is not positive fails the read check
    entry = next((tmp_path / "c" / bb.identity).glob("*/*.npy"))
    vec = np.load(entry)
    vec[-1] = 0.0
    np.save(entry, vec)
    assert extract_features(bb, clips, tmp_path / "c", raw=True, progress=False).computed == 1
