"""Secrets and unsafe files (issue 8, item 6).

- API keys come only from the environment and never reach a file, a log line or an exception: a
  neighbour generation against a server that echoes the key everywhere it can, then a ``sept run``
  on the generated set, with every output file and all captured output grepped for the key;
- nothing is ever unpickled: the code has no unsafe loader, a feature-cache entry or a model
  folder carrying a pickle payload is refused without running it;
- a checkpoint or saved prompt whose keys, shapes or metadata do not match is refused with a
  message naming the file and what differs, in Python and on the command line.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sept.backbones import create_backbone
from sept.cli.main import main
from sept.data.clips import Clip
from sept.errors import ConfigError, ModelLoadError
from sept.features import FeatureCache, extract_features
from sept.training.checkpoint import load_prompt, save_prompt
from sept.training.trainer import Trainer
from sept.utils.hashing import hash_bytes
from tests.test_methods_support import (
    CLASSES,
    TONE_CLASSES,
    configure,
    make_method,
    make_tone_dataset,
    separable_features,
    tiny_clap,
)
from tests.tiny_models import save_tiny_clap

__all__ = ["tiny_clap"]

KEY = "sk-test-SECRET123-Zq8dH2kP9xLm4Vw"
SRC = Path(__file__).resolve().parents[1] / "src" / "sept"


# ---- 1. the key never leaks ----------------------------------------------------------------------


def _grep(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_api_key_never_reaches_files_logs_or_errors(tmp_path, monkeypatch, caplog, capsys, tiny_clap):
    pytest.importorskip("openai")
    pytest.importorskip("tenacity")
    from tests.test_neighbors_llm import ChatServer, Reply, Seen, good

    # the default variable: nothing on the command line names the key
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SEPT_CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.DEBUG)

    def leaky(seen: Seen, index: int) -> Reply:
        """A careless server: echoes the Authorization header in errors, then in answers."""
        if index % 3 == 0:
            return Reply(500, body=json.dumps({"error": {"message": f"upstream refused {seen.auth}"}}))
        if index % 3 == 1:
            return Reply(content=f"I cannot, {seen.auth} is not allowed")
        phrases = json.loads(good(seen).content)["phrases"]
        return Reply(content=json.dumps({"phrases": [seen.auth.removeprefix("Bearer "), *phrases]}))

    data = make_tone_dataset(tmp_path / "data", per_class=4, folds=2)
    neighbours = tmp_path / "out" / "tones.json"
    with ChatServer(leaky) as server:
        argv = [
            "neighbors", "generate", "--source", "llm", "--classes", ",".join(TONE_CLASSES), "--n", "4",
            "--out", str(neighbours), "--base-url", server.url, "--model", "m", "--backoff", "0.01",
            "--attempts", "3",
        ]  # fmt: skip
        assert main(argv) == 0
        assert all(s.auth == f"Bearer {KEY}" for s in server.seen)  # the key was really sent
    run_root = tmp_path / "out" / "runs"
    argv = ["run", "--protocol", "fewshot", "--method", "coop+sept", "--dataset", str(data), "--fold", "2"]
    argv += ["--seeds", "0", "--shots", "2", "--run-root", str(run_root), "--no-progress"]
    argv += ["--backbone", "clap", "--backbone-opt", f"model={tiny_clap.model_id}"]
    argv += ["--set", f"sept.neighbors={neighbours}", "--set", "optim.epochs=1"]
    assert main(["-vv", *argv]) == 0  # -vv: debug logging, the most a log can say
    captured = capsys.readouterr()
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert any(p.name == "results.json" for p in written) and any(
        p.parent.name == "neighbors" for p in written
    )
    assert _grep(tmp_path, KEY) == [], "the key was written to a file"
    assert KEY not in captured.out + captured.err and KEY not in caplog.text
    assert "***" in caplog.text  # the echoed key was met and redacted, not just absent
    config = json.loads(next(run_root.rglob("config.json")).read_text())
    assert "OPENAI" not in json.dumps(config) and "key" not in json.dumps(config["backbone_options"]).lower()


def test_keys_are_read_only_from_the_environment(monkeypatch, capsys):
    """There is no option that takes a key's value; a key pasted as the variable name is refused
    without being echoed."""
    pytest.importorskip("openai")
    with pytest.raises(SystemExit):
        main(["neighbors", "generate", "--help"])
    help_text = capsys.readouterr().out
    assert "--api-key-env" in help_text and not re.search(r"--api-key(?!-env)", help_text)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    argv = ["neighbors", "generate", "--source", "llm", "--classes", "siren", "--out", "/nonexistent/x.json"]
    assert main([*argv, "--api-key-env", KEY, "--base-url", "http://127.0.0.1:9/v1", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "NAME of an environment variable" in err and KEY not in err


# ---- 2. nothing is unpickled --------------------------------------------------------------------

_UNSAFE = [
    (
        r"\bpickle\.loads?\(|\bcPickle\b|\bdill\b|\bjoblib\.load\(|\bmarshal\.loads?\(|\bshelve\.open\(",
        "unpickling",
    ),
    (r"\byaml\.(?:load|unsafe_load|full_load)\(", "unsafe YAML loader"),
    (r"weights_only\s*=\s*False", "torch.load without weights_only"),
    (r"trust_remote_code\s*=\s*True", "remote code"),
    (r"allow_pickle\s*=\s*True", "numpy pickles"),
    (r"(?<![\w.])(?:eval|exec)\(", "eval/exec"),
]


def test_the_code_has_no_unsafe_loader():
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, what in _UNSAFE:
            for m in re.finditer(pattern, text):
                problems.append(f"{path.relative_to(SRC)}:{text[: m.start()].count(chr(10)) + 1}: {what}")
        for m in re.finditer(r"\btorch\.load\(", text):  # only with weights_only=True
            call = text[m.start() : text.find(")", m.start()) + 1]
            if "weights_only=True" not in call:
                problems.append(f"{path.relative_to(SRC)}: torch.load without weights_only=True")
        for m in re.finditer(r"\b(?:np|numpy)\.load\(", text):  # only with allow_pickle=False
            call = text[m.start() : text.find(")", m.start()) + 1]
            if "allow_pickle=False" not in call:
                problems.append(f"{path.relative_to(SRC)}: np.load without allow_pickle=False")
    assert problems == []


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_feature_cache_entry_is_ignored_not_run(tiny_clap, tmp_path):
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, (0.3 * np.sin(np.arange(16_000) / 7)).astype(np.float32), 16_000)
    clip = Clip(wav, "a.wav", "x")
    cache_dir = tmp_path / "cache"
    cache = FeatureCache(cache_dir, tiny_clap.identity)
    entry = cache._path(hash_bytes(wav.read_bytes()))
    entry.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "PWNED"
    np.save(entry, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    fs = extract_features(tiny_clap, [clip], cache_dir, progress=False)
    assert not marker.exists(), "the cache entry was unpickled"
    assert fs.computed == 1 and fs.cache_hits == 0
    assert np.load(entry, allow_pickle=False).dtype == np.float32  # rewritten as a plain array


def test_a_model_folder_with_pickled_weights_is_refused_not_run(tmp_path, capsys):
    folder = save_tiny_clap(tmp_path / "clap")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    import pickle

    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"logit_scale_a": _Payload(marker)}, handle, protocol=2)  # torch.load's own
    with pytest.raises(ModelLoadError, match=r"refused the weights .* never unpickles"):
        create_backbone("clap", model=str(folder))
    assert not marker.exists()
    data = make_tone_dataset(tmp_path / "data", per_class=1, folds=1)
    assert (
        main(["embed", "--data", str(data), "--backbone", "clap", "--backbone-opt", f"model={folder}"]) == 2
    )
    assert "refused the weights" in capsys.readouterr().err and not marker.exists()


# ---- 3. checkpoints that do not match are refused --------------------------------------------


def _tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())  # noqa: SIM118


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda t, m: ({**t, "learner.extra": torch.zeros(3)}, m), r"unexpected \['learner.extra'\]"),
        (lambda t, m: ({k: v for k, v in t.items() if k != "head.linear.weight"}, m), r"missing \['head.linear.weight'\]"),
        (lambda t, m: ({**t, "learner.ctx": torch.zeros(9, 64)}, m), r"learner.ctx has shape \(9, 64\), expected \(16, 64\)"),
        (lambda t, m: (t, {**m, "config": "{not json"}), "metadata 'config' is not valid JSON"),
        (lambda t, m: (t, {k: v for k, v in m.items() if k != "train_classnames"}), "'train_classnames' is missing"),
        (lambda t, m: (t, {**m, "format": "something-else"}), "is not a sept prompt"),
    ],
)  # fmt: skip
def test_a_prompt_that_does_not_match_is_refused(tiny_clap, tmp_path, tamper, message):
    config = configure("coop+dept")
    method = make_method(config, tiny_clap)
    path = save_prompt(tmp_path / "prompt.safetensors", method, config)
    tensors, meta = tamper(*_tensors(path))
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ConfigError, match=message) as info:
        load_prompt(path, tiny_clap)
    assert "prompt.safetensors" in str(info.value)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda t, m: ({**t, "param/learner.extra": torch.zeros(3)}, m), r"unexpected \['learner.extra'\]"),
        (lambda t, m: ({**t, "param/learner.ctx": torch.zeros(2, 2)}, m), r"learner.ctx has shape \(2, 2\)"),
        (lambda t, m: ({**t, "optim/0/momentum_buffer": torch.zeros(7)}, m), r"optimiser state 'optim/0/momentum_buffer' has shape \(7,\)"),
        (lambda t, m: ({**t, "optim/99/momentum_buffer": torch.zeros(1)}, m), r"unexpected tensor 'optim/99/momentum_buffer'"),
        (lambda t, m: ({**t, "backdoor": torch.zeros(1)}, m), "unexpected tensor 'backdoor'"),
        (lambda t, m: (t, {**m, "history": "[{"}), "metadata 'history' is not valid JSON"),
        (lambda t, m: (t, {k: v for k, v in m.items() if k != "epochs_done"}), "'epochs_done' is missing"),
        (lambda t, m: (t, {**m, "optim_groups": "[]"}), "optimiser state does not match"),
    ],
)  # fmt: skip
def test_a_training_checkpoint_that_does_not_match_is_refused(tiny_clap, tmp_path, tamper, message):
    config = configure("coop+dept", ["optim.epochs=2"])
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    path = tmp_path / "checkpoint.safetensors"
    Trainer(make_method(config, tiny_clap), config, path).fit(feats, labels)
    tensors, meta = tamper(*_tensors(path))
    save_file(tensors, str(path), metadata=meta)
    fresh = make_method(config, tiny_clap)
    before = {k: v.clone() for k, v in fresh.learned_state().items()}
    with pytest.raises(ConfigError, match=message) as info:
        Trainer(fresh, config, path).fit(feats, labels)
    assert str(path) in str(info.value)
    if "metadata" not in message and "optimiser state does not match" not in message:
        assert all(torch.equal(v, fresh.learned_state()[k]) for k, v in before.items())  # nothing loaded


def test_sept_run_refuses_a_tampered_checkpoint_with_a_clear_message(
    tiny_clap, tmp_path, capsys, monkeypatch
):
    data = make_tone_dataset(tmp_path / "data", per_class=4, folds=2)
    run_root = tmp_path / "runs"
    argv = ["run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(data), "--fold", "2"]
    argv += ["--seeds", "0", "--shots", "2", "--run-root", str(run_root), "--no-progress"]
    argv += ["--backbone", "clap", "--backbone-opt", f"model={tiny_clap.model_id}"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--set", "optim.epochs=3"]
    from sept.training import trainer as trainer_module

    real_save = trainer_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # as if the run were stopped after its first epoch

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_stop)
    assert main(argv) == 130
    monkeypatch.undo()
    (checkpoint,) = run_root.rglob("checkpoint.safetensors")
    tensors, meta = _tensors(checkpoint)
    tensors["param/learner.ctx"] = torch.zeros(3, 3)
    save_file(tensors, str(checkpoint), metadata=meta)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(checkpoint) in err and "learner.ctx has shape (3, 3)" in err and "Traceback" not in err
    assert not list(run_root.rglob("results.json"))


def test_repo_source_has_no_checked_in_pickles():
    """No .pkl / .pt / .bin / .npz shipped in the package (resources are JSON)."""
    shipped = [
        p for p in SRC.rglob("*") if p.suffix in {".pkl", ".pickle", ".pt", ".pth", ".bin", ".npz", ".joblib"}
    ]
    assert shipped == []
