"""Bad audio (issue 8, item 1): every odd or broken file is decoded correctly or refused with a
reason naming it; ``--on-bad-audio skip`` (default) skips and counts, ``fail`` stops at the first.

The corpus is generated here (tests/reliability_support.py): empty, zero samples, truncated
header and data, random bytes named .wav, text named .flac, NaN / inf samples, corrupt headers (0 Hz,
1 Hz, 2 GHz, 0 channels, 4 GB of data), clipping, samples far out of range, 8 channels, 1 kHz and
192 kHz, silence, a single sample, non-ASCII names with spaces and commas, a missing file, a
one-hour file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.audio import AudioWindow, load_audio
from sept.cli.main import main
from sept.data.clips import Clip, load_clips
from sept.errors import AudioDecodeError
from sept.features import extract_features
from tests.reliability_support import bad_audio_corpus, validate_tree, write_csv
from tests.test_methods_support import make_tone_dataset, tiny_clap

__all__ = ["tiny_clap"]

FAST = ["optim.epochs=2", "optim.batch_size=4", "optim.warmup_epochs=0", "optim.lr=0.01"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, bad_audio_corpus(folder)


def test_every_input_is_decoded_or_refused_with_file_and_reason(corpus) -> None:
    folder, cases = corpus
    assert len(cases) >= 25
    problems = []
    for case in cases:
        path = folder / case.name
        try:
            wave = load_audio(path, 16_000)
        except AudioDecodeError as exc:
            if case.error is None:
                problems.append(f"{case.name} ({case.what}) should decode, got: {exc}")
            elif str(path) not in str(exc) or case.error not in exc.reason:
                problems.append(f"{case.name}: error should name the file and say {case.error!r}: {exc}")
            continue
        if case.error is not None:
            problems.append(f"{case.name} ({case.what}) decoded; expected an error with {case.error!r}")
        elif not (wave.dtype == np.float32 and wave.ndim == 1 and wave.size and np.isfinite(wave).all()):
            problems.append(f"{case.name}: decoded to a bad waveform {wave.dtype} {wave.shape}")
    assert not problems, "\n".join(problems)
    # odd rates and channel counts are handled correctly, not just without error
    assert len(load_audio(folder / "rate_1khz.wav", 16_000)) == 32_000  # 2 s
    assert len(load_audio(folder / "rate_192khz.flac", 16_000)) == 16_000  # 1 s
    mono = load_audio(folder / "bruit de fond é ü 日本.wav", 16_000)
    np.testing.assert_allclose(load_audio(folder / "eight_channels.wav", 16_000), mono, atol=1e-4)
    assert np.abs(load_audio(folder / "silence.wav", 16_000)).max() == 0.0
    rate1k = load_audio(folder / "rate_1khz.wav", 16_000)
    peak_hz = np.argmax(np.abs(np.fft.rfft(rate1k))) * 16_000 / len(rate1k)
    assert abs(peak_hz - 100.0) < 2.0  # the 100 Hz tone of the 1 kHz file survives


def test_extract_skips_each_bad_file_names_it_and_embeds_the_rest(tiny_clap, corpus, tmp_path) -> None:
    folder, cases = corpus
    clips = [Clip(folder / c.name, c.name, "x") for c in cases]
    cache = tmp_path / "cache"
    fs = extract_features(tiny_clap, clips, cache, batch_size=4, progress=False)
    expected_ok = [c.name for c in cases if c.error is None]
    assert [c.relpath for c in fs.clips] == expected_ok
    assert fs.features.shape == (len(expected_ok), tiny_clap.embed_dim)
    assert bool(np.isfinite(fs.features.numpy()).all())
    reasons = {clip.relpath: reason for clip, reason in fs.skipped}
    assert list(reasons) == [c.name for c in cases if c.error is not None]  # input order
    for case in cases:
        if case.error is not None:
            assert case.error in reasons[case.name], (case.name, reasons[case.name])
    tree = validate_tree(cache)
    assert tree.corrupt == [] and tree.leftovers == [] and tree.checked == len(expected_ok) + 1
    # a rerun reads the good files back and skips the same files for the same reasons
    again = extract_features(tiny_clap, clips, cache, batch_size=3, progress=False)
    assert again.cache_hits == len(expected_ok) and again.computed == 0
    assert [(c.relpath, r) for c, r in again.skipped] == [(c.relpath, r) for c, r in fs.skipped]
    np.testing.assert_array_equal(again.features.numpy(), fs.features.numpy())
    # --on-bad-audio fail: stops at the first bad file in input order, naming it and why
    with pytest.raises(AudioDecodeError) as info:
        extract_features(tiny_clap, clips, cache, on_bad_audio="fail", progress=False)
    first = next(c for c in cases if c.error is not None)
    assert info.value.path == str(folder / first.name) and first.error in info.value.reason


@pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning"
)
def test_samples_at_the_float32_limit_are_skipped_and_never_cached(tiny_clap, tmp_path) -> None:
    """Finite samples at the float32 limit (which would overflow CLAP's mel filter bank) are refused
    like NaN (issue 17, item 6): the clip is skipped with a reason, not cached and not trained on."""
    t = np.arange(16_000) / 16_000
    loud = tmp_path / "loud.wav"
    sf.write(loud, (3.4e38 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000, subtype="FLOAT")
    fine = tmp_path / "fine.wav"
    sf.write(fine, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000)
    clips = [Clip(loud, "loud.wav", "x"), Clip(fine, "fine.wav", "x")]
    fs = extract_features(tiny_clap, clips, tmp_path / "c", progress=False)
    assert [c.relpath for c in fs.clips] == ["fine.wav"]
    assert len(fs.skipped) == 1 and fs.skipped[0][0] == clips[0]
    assert "too large: peak |x| = 3.4e+38" in fs.skipped[0][1]
    assert len(list((tmp_path / "c").rglob("*.npy"))) == 1
    with pytest.raises(AudioDecodeError, match=r"loud\.wav.*too large"):
        extract_features(tiny_clap, clips, tmp_path / "c", on_bad_audio="fail", progress=False)


def test_one_hour_file_is_centre_cropped_like_a_short_one(tiny_clap, tmp_path) -> None:
    """1 h at 8 kHz int16 (57.6 MB): silence with a tone in the middle second. Its feature equals
    that of a 3 s file holding the same middle (the window crops the centre; no crash, no NaN)."""
    sr, minute = 8000, 60 * 8000
    hour = tmp_path / "one hour.wav"
    middle = np.sin(2 * np.pi * 500 * np.arange(sr) / sr).astype(np.float32) * 0.5
    with sf.SoundFile(hour, "w", sr, 1, "PCM_16") as f:
        for _ in range(30):
            f.write(np.zeros(minute, np.float32))
        f.write(middle[: sr // 2])  # the centre of the hour is the centre of the tone
        f.write(middle[sr // 2 :])
        for _ in range(30):
            f.write(np.zeros(minute, np.float32))
    assert hour.stat().st_size > 57_000_000
    short = tmp_path / "short.wav"
    sf.write(
        short, np.concatenate([np.zeros(sr, np.float32), middle, np.zeros(sr, np.float32)]), sr, "PCM_16"
    )
    fs = extract_features(
        tiny_clap,
        [Clip(hour, "one hour.wav", "x"), Clip(short, "short.wav", "x")],
        use_cache=False,
        progress=False,
    )
    assert fs.skipped == [] and bool(np.isfinite(fs.features.numpy()).all())
    np.testing.assert_allclose(fs.features[0].numpy(), fs.features[1].numpy(), atol=1e-5)


def test_window_crop_does_not_keep_the_whole_file_alive() -> None:
    """A crop is a copy: a view would pin a decoded hour-long file in memory until its batch runs."""
    wave = np.zeros(16_000 * 600, np.float32)
    cropped = AudioWindow(10.0, 10.0).fit(wave, 16_000)
    assert len(cropped) == 160_000 and not np.shares_memory(cropped, wave)


def test_cli_embed_lists_every_skipped_file_and_fail_stops(tiny_clap, corpus, tmp_path, capsys) -> None:
    folder, cases = corpus
    data = write_csv(tmp_path / "corpus.csv", [(str(folder / c.name), "x") for c in cases])
    argv = ["embed", "--data", str(data), "--root", "/", "--backbone", "clap"]
    argv += [
        "--backbone-opt",
        f"model={tiny_clap.model_id}",
        "--cache-dir",
        str(tmp_path / "c"),
        "--no-progress",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    n_bad = sum(c.error is not None for c in cases)
    assert f"{len(cases) - n_bad} computed, {n_bad} skipped" in out
    for case in cases:
        line = f"skipped {folder / case.name}: "
        assert (line in out) == (case.error is not None), case.name
    assert main([*argv, "--on-bad-audio", "fail"]) == 2
    err = capsys.readouterr().err
    assert str(folder / "empty.wav") in err and "empty" in err


def _corrupt(root: Path, rel: str, how: str) -> None:
    path = root / rel
    if how == "text":
        path.write_text("not audio")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "nan":
        wave = np.full(16_000, np.nan, np.float32)
        sf.write(path, wave, 16_000, subtype="FLOAT")
    else:
        path.unlink()


def test_sept_run_skips_bad_files_counts_them_in_results_and_fail_stops(tiny_clap, tmp_path, capsys) -> None:
    csv = make_tone_dataset(tmp_path / "data", per_class=6, folds=2)
    root = csv.parent
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    train = [r[0] for r in rows if r[2] == "1"]  # fold 2 tests on fold 2, trains on fold 1
    test = [r[0] for r in rows if r[2] == "2"]
    bad_train = {train[0]: "text", train[4]: "empty"}
    bad_test = {test[1]: "nan", test[5]: "missing", test[9]: "text"}
    for rel, how in {**bad_train, **bad_test}.items():
        _corrupt(root, rel, how)
    run_root = tmp_path / "runs"
    argv = ["run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(csv), "--fold", "2"]
    argv += ["--seeds", "0", "1", "--shots", "3", "--run-root", str(run_root), "--no-progress"]
    argv += ["--backbone", "clap", "--backbone-opt", f"model={tiny_clap.model_id}"]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    for item in FAST:
        argv += ["--set", item]
    assert main(argv) == 0  # bad files never stop the sweep: both seeds finish
    out = capsys.readouterr().out
    assert out.count("5 undecodable file(s) skipped") == 2
    results = sorted(run_root.rglob("results.json"))
    assert len(results) == 2
    for path in results:
        r = json.loads(path.read_text())
        assert r["train"]["num_skipped"] == 2 and r["test"]["num_skipped"] == 3
        assert {Path(s["path"]).relative_to(root).as_posix() for s in r["train"]["skipped"]} == set(bad_train)
        assert {Path(s["path"]).relative_to(root).as_posix() for s in r["test"]["skipped_files"]} == set(
            bad_test
        )
        assert all(s["reason"] for s in r["test"]["skipped_files"])
        assert r["train"]["clips"] == 3 * 5 - 2 and r["test"]["num_clips"] == 15 - 3
    assert validate_tree(run_root, tmp_path / "cache").corrupt == []
    # --on-bad-audio fail: stops, naming the file and the reason
    assert main([*argv, "--on-bad-audio", "fail", "--force", "--run-root", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    named = [rel for rel in {**bad_train, **bad_test} if str(root / rel) in err]
    assert len(named) == 1 and "cannot decode audio file" in err
    assert not list((tmp_path / "r2").rglob("results.json"))


def test_clips_with_odd_names_round_trip_through_a_csv(corpus, tmp_path) -> None:
    folder, cases = corpus
    names = [c.name for c in cases if c.error is None]
    csv = write_csv(tmp_path / "odd.csv", [(str(folder / n), "x") for n in names])
    assert [c.path.name for c in load_clips(csv, "/")] == names
