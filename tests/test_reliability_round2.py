"""Reliability, second round (issue 17, items 2-7; the damaged run files of items 1-2 are tested with
the run/results code): edited or damaged state is detected and redone, memory and YAML expansion
are bounded, secrets stay out of third-party logs, the last raw tracebacks are one-line errors,
typed values refuse look-alikes, and two processes sharing a cache never compute an entry twice.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sept.cli.main import main
from sept.data.clips import Clip, load_clips
from sept.data.manifest import few_shot_manifest, read_manifest
from sept.errors import AudioDecodeError, ConfigError, DataError
from sept.features import FeatureCache, extract_features
from tests.fake_backbone import BandEnergyBackbone
from tests.reliability_support import REPO, sept_env
from tests.test_methods_support import make_tone_dataset

# ---- item 2: edited or damaged state is detected and redone ----------------------------------


def _toy_split(root: Path):
    from tests.test_data_sampling import make_dataset

    return make_dataset(root, {"x": 20, "y": 20}).split()


def _cut(data: dict) -> dict:
    data["items"] = data["items"][:1]  # 2 classes x 4 shots -> 1 clip
    return data


def _duplicated(data: dict) -> dict:
    data["items"] = [data["items"][0]] * len(data["items"])
    return data


def _cut_with_hash(data: dict) -> dict:
    """An edit that also rewrites the hash: caught by the K-per-class check."""
    from sept.data.manifest import content_hash

    data = _cut(data)
    data["hash"] = content_hash(data)
    return data


@pytest.mark.parametrize(
    "damage", [_cut, _duplicated, _cut_with_hash, None], ids=["cut", "dup", "rehashed", "torn"]
)
def test_an_edited_or_damaged_manifest_is_never_used_and_is_drawn_again(tmp_path, caplog, damage):
    split = _toy_split(tmp_path / "data")
    run = tmp_path / "run"
    original, path = few_shot_manifest(split, shots=4, seed=0, run_root=run)
    if damage is None:
        path.write_bytes(path.read_bytes()[:50])
    else:
        path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    with pytest.raises(DataError, match="k4-seed0"):
        read_manifest(path)
    with caplog.at_level(logging.WARNING, logger="sept.data.manifest"):
        again, _ = few_shot_manifest(split, shots=4, seed=0, run_root=run)
    assert again == original and len(again.items) == 8  # the same shots: the sampler is deterministic
    assert read_manifest(path) == original  # rewritten
    assert "drawing it again" in caplog.text


def _entry(cache: Path, clip: Clip) -> Path:
    from sept.utils.hashing import hash_bytes

    (ident,) = [p for p in cache.iterdir() if p.is_dir()]
    key = hash_bytes(Path(clip.path).read_bytes())
    return ident / key[:2] / f"{key}.npy"


def _npy(vec: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, vec.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _rewrite_npy(path: Path, vec: np.ndarray) -> None:
    """Replace an entry's vector, keeping whatever follows its ``.npy`` bytes (a checksum trailer)."""
    raw = path.read_bytes()
    path.write_bytes(_npy(vec) + raw[len(_npy(np.load(path, allow_pickle=False))) :])


def test_damaged_cache_entries_are_recomputed_not_used(tmp_path):
    """Flipped signs and rotated values are unit vectors like the real one (only a checksum tells);
    a wrong feature dimension used to raise a broadcast error instead of being recomputed."""
    clips = load_clips(make_tone_dataset(tmp_path / "data", per_class=2, folds=2))
    cache = tmp_path / "cache"
    ref = extract_features(BandEnergyBackbone(), clips, cache, progress=False)
    damages = {
        0: lambda v: -v,
        1: lambda v: np.roll(v, 1),
        2: lambda v: np.ones(len(v) + 3, np.float32) / np.sqrt(len(v) + 3),
    }
    for i, change in damages.items():
        path = _entry(cache, clips[i])
        _rewrite_npy(path, change(np.load(path, allow_pickle=False)))
    again = extract_features(BandEnergyBackbone(), clips, cache, progress=False)
    assert again.computed == len(damages) and again.cache_hits == len(clips) - len(damages)
    np.testing.assert_array_equal(again.features.numpy(), ref.features.numpy())
    third = extract_features(BandEnergyBackbone(), clips, cache, progress=False)
    assert third.computed == 0  # rewritten


def test_an_entry_of_another_dimension_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path, "ident", dim=8)
    cache.put("ab" * 16, np.ones(5, np.float32) / np.sqrt(5))
    assert cache.get("ab" * 16) is None
    cache.put("ab" * 16, np.ones(8, np.float32) / np.sqrt(8))
    assert cache.get("ab" * 16) is not None


@pytest.mark.slow
def test_fault_injection_damaged_manifest_and_cache_entry_are_redone_results_unchanged(tmp_path):
    """A run root whose manifest was cut and one of whose cache entries was sign-flipped: the
    rerun (same shots, same features) gives exactly the reference's numbers."""
    from tests.reliability_support import comparable, differences, run_sept
    from tests.tiny_models import save_tiny_clap

    save_tiny_clap(tmp_path / "clap")
    data = make_tone_dataset(tmp_path / "data", per_class=6, folds=2)

    def args(root: Path) -> list[str]:
        return [
            "run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(data), "--fold", "2",
            "--seeds", "0", "1", "--shots", "2", "--run-root", str(root / "runs"), "--cache-dir",
            str(root / "cache"), "--backbone", "clap", "--backbone-opt", f"model={tmp_path / 'clap'}",
            "--no-progress", "--set", "optim.epochs=3",
        ]  # fmt: skip

    import sept

    env = sept_env(PYTHONPATH=str(Path(sept.__file__).parents[1]))  # the sept under test
    ref = tmp_path / "ref"
    assert run_sept(args(ref), env).returncode == 0
    damaged = tmp_path / "damaged"
    import shutil

    shutil.copytree(ref / "cache", damaged / "cache")
    shutil.copytree(ref / "runs" / "manifests", damaged / "runs" / "manifests")
    manifest = sorted((damaged / "runs" / "manifests").rglob("*.json"))[0]
    manifest.write_text(json.dumps(_cut(json.loads(manifest.read_text()))))
    entry = sorted((damaged / "cache").rglob("*.npy"))[0]
    _rewrite_npy(entry, -np.load(entry, allow_pickle=False))
    done = run_sept(args(damaged), env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "drawing it again" in done.stderr and "checksum does not match" in done.stderr
    for path in sorted((ref / "runs").rglob("results.json")):
        mine = damaged / "runs" / path.relative_to(ref / "runs")
        a = comparable(json.loads(path.read_text()), ref / "runs")
        b = comparable(json.loads(mine.read_text()), damaged / "runs")
        assert differences(a, b) == [], path  # recomputed features: equal up to batch rounding


# ---- item 3: memory bounded by decoded length; YAML alias expansion bounded --------------------


def _silent_flac(path: Path, seconds: int, sr: int = 8000) -> Path:
    block = np.zeros(sr * 60, dtype=np.int16)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds // 60):
            f.write(block)
    return path


def test_a_long_silent_flac_is_decoded_only_where_the_window_keeps_it(tmp_path):
    """2 hours at 8 kHz is ~100 kB of FLAC but 230 MB of float32 decoded: memory must follow the
    window (2 s here), not the decoded length."""
    path = _silent_flac(tmp_path / "two_hours.flac", 2 * 3600)
    assert path.stat().st_size < 2 << 20
    clip = Clip(path, "two_hours.flac", "x")
    tracemalloc.start()
    try:
        fs = extract_features(BandEnergyBackbone(), [clip], use_cache=False, workers=1, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fs.features.shape == (1, 8)
    assert peak < 20 << 20, f"peak traced memory {peak / 2**20:.0f} MiB"


def _laughs(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_nested_yaml_aliases_are_refused_at_once(tmp_path):
    from sept.bench.grid import load_grid
    from sept.training.config import load_config_file
    from sept.utils.yaml_load import safe_load

    text = _laughs()
    assert len(text) < 1024
    grid = tmp_path / "grid.yaml"
    grid.write_text("datasets: [x]\nmethods: [coop]\n" + text)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"grid\.yaml.*aliases expand"):
        load_grid(grid)
    with pytest.raises(ConfigError, match=r"grid\.yaml.*aliases expand"):
        load_config_file(grid)
    assert time.monotonic() - start < 5
    with pytest.raises(ConfigError, match="nested too deeply"):
        grid.write_text("a: " + "[" * 20000 + "]" * 20000)
        load_grid(grid)
    # a few ordinary aliases still load
    assert safe_load("base: &b {lr: 0.1}\nrun: *b\n") == {"base": {"lr": 0.1}, "run": {"lr": 0.1}}


# ---- item 4: secrets in the base URL never reach third-party request logs ----------------------


def test_secrets_in_the_base_url_are_redacted_from_http_client_logs(tmp_path, monkeypatch, caplog):
    pytest.importorskip("openai")
    pytest.importorskip("tenacity")
    from sept.neighbors import NeighborGenerationError
    from sept.neighbors.generate import generate_neighbors
    from tests.test_neighbors_llm import KEY_ENV, SECRET, ChatServer, good, source

    monkeypatch.setenv(KEY_ENV, SECRET)
    caplog.set_level(logging.DEBUG)
    with ChatServer(lambda s, i: good(s)) as server:
        host = server.url.split("//")[1]
        src = source(server, tmp_path, base_url=f"http://alice:PW-hunter2-pass@{host}")
        ns, _ = generate_neighbors(["siren"], src, n=3)
        assert len(ns.classes["siren"]) == 3
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://bob:ENV-hunter2-pass@{host}")
        generate_neighbors(["dog_bark"], source(server, tmp_path / "env", base_url=None), n=3)
        # the openai client appends its path after a query string: the request fails, but is logged
        with pytest.raises(NeighborGenerationError):
            src = source(
                server, tmp_path / "q", base_url=f"http://{host}?api_key=QS-token-778899", max_retries=0
            )
            generate_neighbors(["siren"], src, n=3)
    assert "HTTP Request" in caplog.text  # the client did log its request lines
    for secret in ("PW-hunter2-pass", "ENV-hunter2-pass", "QS-token-778899", SECRET):
        assert secret not in caplog.text


# ---- item 5: one-line errors instead of raw tracebacks -----------------------------------------


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    """Run ``sept ARGV``: exit status 2 and, last on stderr, one error line holding ``needles``
    (argparse prints its usage above its error line)."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    line = err.splitlines()[-1]
    for needle in needles:
        assert needle in line, err
    return line


def test_eval_on_a_registered_dataset_with_a_test_class_absent_from_train(tmp_path, capsys, monkeypatch):
    from tests.test_data_layouts import make_us8k_like

    root = make_us8k_like(tmp_path / "us8k-mini")
    table = root / "metadata.csv"
    (root / "audio/fold2/unicorn-0.wav").write_bytes((root / "audio/fold2/siren-0.wav").read_bytes())
    table.write_text(table.read_text() + "audio/fold2/unicorn-0.wav,2,0,unicorn\n")
    monkeypatch.setattr(
        "sept.backbones.registry.create_backbone", lambda *a, **k: pytest.fail("backbone built")
    )
    _one_line_error(
        capsys, ["eval", "--dataset", "us8k-mini", "--root", str(root), "--fold", "2"], "'unicorn'"
    )


@pytest.mark.parametrize(
    "content, needle",
    [
        (b'{"schema_version": 1, "classes": {"a\xff": []}}', "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
    ],
    ids=["latin1", "deep"],
)
def test_a_non_utf8_or_deeply_nested_neighbour_file(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    _one_line_error(capsys, ["neighbors", "validate", str(bad)], "bad.json", needle)


def test_a_deeply_nested_llm_answer_is_a_parse_error():
    from sept.neighbors.prompting import AnswerParseError, parse_json_answer

    for text in ("[" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000):
        with pytest.raises(AnswerParseError, match="nested too deeply"):
            parse_json_answer(text, "siren")


def test_seeds_beyond_int64_are_refused_and_int64_seeds_train(tmp_path, capsys):
    from sept.bench.grid import parse_grid
    from sept.training.config import resolve_config
    from sept.training.trainer import epoch_generator

    data = make_tone_dataset(tmp_path / "data", per_class=2, folds=2)
    big = str(2**64)
    _one_line_error(
        capsys,
        ["run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(data), "--seeds", big],
        big,
    )
    with pytest.raises(ConfigError, match="seeds"):
        parse_grid({"datasets": ["x"], "methods": ["coop"], "seeds": [2**63]})
    with pytest.raises(ConfigError, match="seed"):
        resolve_config("coop", "fewshot", settings={"seed": 2**63})
    epoch_generator(2**63 - 1, 5)  # the largest seed still seeds every epoch


def test_a_run_root_that_is_a_file(tmp_path, capsys):
    data = make_tone_dataset(tmp_path / "data", per_class=2, folds=2)
    (tmp_path / "afile").write_text("x")
    from tests.tiny_models import save_tiny_clap

    save_tiny_clap(tmp_path / "clap")
    argv = ["run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(data), "--fold", "2"]
    argv += ["--seeds", "0", "--shots", "1", "--run-root", str(tmp_path / "afile"), "--no-progress"]
    argv += ["--backbone", "clap", "--backbone-opt", f"model={tmp_path / 'clap'}", "--set", "optim.epochs=1"]
    _one_line_error(capsys, argv, "afile", "is a file")


def test_a_yaml_tag_or_an_unknown_key_in_backbone_opt(tmp_path, capsys):
    data = str(make_tone_dataset(tmp_path / "data", per_class=2, folds=2))
    base = ["embed", "--data", data, "--backbone", "clap", "--no-progress"]
    _one_line_error(
        capsys, [*base, "--backbone-opt", "model=!!python/name:os.system"], "--backbone-opt", "tag"
    )
    err = _one_line_error(capsys, [*base, "--backbone-opt", "modle=x"], "'modle'", "model, revision")
    run = ["run", "--protocol", "fewshot", "--method", "coop", "--dataset", data, "--backbone", "clap"]
    assert (
        err.split("error: ")[1]
        == _one_line_error(capsys, [*run, "--backbone-opt", "modle=x"]).split("error: ")[1]
    )


def test_a_pickled_text_model_is_refused_without_torch_s_unsafe_hint(tmp_path):
    import torch
    from transformers import BertConfig, BertModel

    from sept.backbones.text_encoder import SentenceTextEncoder, TextModelError
    from tests.tiny_models import tiny_roberta_tokenizer

    folder = tmp_path / "text"
    config = BertConfig(
        vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    BertModel(config).save_pretrained(folder)
    tiny_roberta_tokenizer().save_pretrained(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"weight": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(TextModelError) as info:
        SentenceTextEncoder(str(folder))
    text = str(info.value)
    assert "weights_only" not in text.replace("weights_only=True", "") and "safetensors" in text
    assert info.value.__cause__ is None


# ---- item 6: typed values refuse look-alikes ---------------------------------------------------


def test_typed_booleans_refuse_strings_and_backbone_options_are_checked():
    from sept.bench.grid import parse_grid
    from sept.training.config import resolve_config

    with pytest.raises(ConfigError, match=r"with_replacement.*'false'"):
        parse_grid({"datasets": ["x"], "methods": ["coop"], "with_replacement": "false"})
    with pytest.raises(ConfigError, match=r"backbone.options.*'modle'.*model, revision"):
        parse_grid(
            {"datasets": ["x"], "methods": ["coop"], "backbone": {"name": "clap", "options": {"modle": 1}}}
        )
    with pytest.raises(ConfigError, match=r"--set 'backbone_options.bogus=1'.*'bogus'.*model"):
        resolve_config(
            "coop", "fewshot", settings={"backbone": "clap"}, overrides=["backbone_options.bogus=1"]
        )
    cfg = resolve_config(
        "coop", "fewshot", settings={"backbone": "clap"}, overrides=["backbone_options.model=x"]
    )
    assert cfg.backbone_options == {"model": "x"}


def test_absurd_amplitudes_are_refused_like_nan(tmp_path):
    from sept.audio.io import load_audio

    t = np.arange(16_000) / 16_000
    path = tmp_path / "huge.wav"
    sf.write(path, (1e38 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="too large: peak"):
        load_audio(path, 16_000)


# ---- item 7: two processes never compute one entry twice -----------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from sept.data.clips import load_clips
    from sept.features import extract_features
    from tests.fake_backbone import BandEnergyBackbone

    class Slow(BandEnergyBackbone):
        def embed_audio(self, waves):
            time.sleep(0.05 * len(waves))  # a slow audio tower, so the two processes overlap
            return super().embed_audio(waves)

    backbone, clips, go = Slow(), load_clips(sys.argv[1]), Path(sys.argv[3])
    Path(sys.argv[4]).write_text("ready")  # imports done: start both at the same moment
    while not go.exists():
        time.sleep(0.002)
    fs = extract_features(backbone, clips, sys.argv[2], batch_size=2, workers=1, progress=False)
    print(json.dumps({"computed": fs.computed, "hits": fs.cache_hits, "n": len(fs.clips)}))
    """
)


def test_two_processes_sharing_a_cache_compute_each_entry_once(tmp_path):
    csv = make_tone_dataset(tmp_path / "data", per_class=6, folds=2)
    n = len(load_clips(csv))
    go = tmp_path / "go"
    cmd = [sys.executable, "-c", _WORKER, str(csv), str(tmp_path / "cache"), str(go)]
    import sept

    env = sept_env(PYTHONPATH=f"{Path(sept.__file__).parents[1]}:{REPO}")  # the sept under test
    procs = [
        subprocess.Popen(
            [*cmd, str(tmp_path / f"ready-{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.01)
    go.write_text("go")
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert all(o["n"] == n and o["computed"] + o["hits"] == n for o in outs)
    assert sum(o["computed"] for o in outs) == n, outs  # each entry computed by one process only
    assert min(o["computed"] for o in outs) > 0, outs  # and the work was shared, not serialised
    assert not list((tmp_path / "cache").rglob("claims/*"))  # no claim left behind
