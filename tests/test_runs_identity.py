"""Issue 14: a run's identity (data name and content, variant options), aimed options, variants
and ablation tables, the recorded neighbour set, damaged run files, and one home per rule."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sept.bench.sweep import run_sweep
from sept.cli.main import main
from sept.data.dataset import load_dataset
from sept.errors import ConfigError
from sept.protocols import FeatureOptions, FeatureStore, ProtocolSettings, run_protocol
from sept.runs.schema import read_results
from tests.test_bench_support import FAST, bench_env, make_grid, table_numbers, write_grid
from tests.test_methods_support import make_tone_dataset, tiny_clap

__all__ = ["bench_env", "tiny_clap"]

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "sept"


@pytest.fixture(scope="module")
def store(tiny_clap, tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return FeatureStore(tiny_clap, FeatureOptions(cache_dir=tmp_path_factory.mktemp("cache"), progress=False))


def _settings(root: Path, **kw) -> ProtocolSettings:
    return ProtocolSettings(run_root=root, shots=2, **{"seeds": [0], "folds": [2], "overrides": FAST, **kw})


# ---- run identity ------------------------------------------------------------------------------
def test_two_csv_datasets_with_the_same_stem_get_their_own_runs(tiny_clap, store, tmp_path):
    a = make_tone_dataset(tmp_path / "a", per_class=4, folds=2)
    b = make_tone_dataset(tmp_path / "b", per_class=6, folds=2)  # another data.csv: more clips
    assert a.name == b.name == "metadata.csv"
    runs = tmp_path / "runs"
    (ra,) = run_protocol("fewshot", tiny_clap, load_dataset(a), "zeroshot", _settings(runs), store=store)
    (rb,) = run_protocol("fewshot", tiny_clap, load_dataset(b), "zeroshot", _settings(runs), store=store)
    assert ra["dataset"] == rb["dataset"] == "metadata"
    assert ra["dataset_id"] != rb["dataset_id"]
    assert ra["test"]["num_clips"] == 10 and rb["test"]["num_clips"] == 15  # b's own numbers, not a's
    assert len(list(runs.rglob("results.json"))) == 2


def test_an_option_that_differs_from_the_defaults_names_its_own_folder(tiny_clap, store, tmp_path):
    ds = load_dataset(make_tone_dataset(tmp_path / "d", per_class=4, folds=2))
    runs = tmp_path / "runs"
    one = run_protocol("fewshot", tiny_clap, ds, "coop+sept", _settings(runs), store=store)
    two = run_protocol(
        "fewshot",
        tiny_clap,
        ds,
        "coop+sept",
        _settings(runs, overrides=[*FAST, "sept.weight=2"]),
        store=store,
    )
    names = [one[0]["variant"]["name"], two[0]["variant"]["name"]]
    assert names[0] != names[1] and "sept.weight=2" in names[1]
    assert two[0]["variant"]["options"]["sept.weight"] == 2.0
    assert len({p.parent for p in runs.rglob("results.json")}) == 2


def test_options_are_aimed_at_the_methods_that_have_them(tones_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sept.backbones.registry.create_backbone", lambda *a, **k: pytest.fail("loaded"))
    argv = ["run", "--protocol", "base2new", "--method", "coop", "coop+sept", "--dataset", str(tones_csv)]
    argv += ["--run-root", str(tmp_path), "--show-config", "--set", "sept.weight=3"]
    assert main(argv) == 0
    shown = [json.loads(part) for part in re.split(r"\n(?=\{)", capsys.readouterr().out.strip())]
    assert "sept" not in shown[0]["regularizers"] and shown[1]["regularizers"]["sept"]["weight"] == 3.0
    assert main([*argv[:-1], "kg.weight=3"]) == 2  # no method of the run has it
    assert "none of the methods coop, coop+sept has an option 'kg.weight'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tones_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tone_dataset(tmp_path_factory.mktemp("tones"), per_class=4, folds=2)


# ---- the neighbour set used is recorded -------------------------------------------------------
def test_the_resolved_neighbour_set_is_recorded_in_config_and_results(tiny_clap, store, tmp_path):
    ds = load_dataset(make_tone_dataset(tmp_path / "d", per_class=4, folds=2))
    (r,) = run_protocol("base2new", tiny_clap, ds, "coop+sept", _settings(tmp_path / "runs"), store=store)
    folder = next((tmp_path / "runs").rglob("results.json")).parent
    config = json.loads((folder / "config.json").read_text())
    assert r["neighbor_set"]["origin"] == "covering"  # a CSV of UrbanSound8K class names
    assert r["config"]["regularizers"]["sept"]["neighbors"] == r["neighbor_set"]["name"]
    assert config["neighbor_set"] == r["neighbor_set"] and len(r["neighbor_set"]["hash"]) == 16
    assert r["semantic_structure"]["all"]["retention"] is not None  # custom data gets retention too


# ---- variants, ablations, kills --------------------------------------------------------------
ABLATION = {
    "methods": [
        "coop+sept",
        "coop+sept@lam0.5",
        "coop+sept@lam2",
        "coop+sept@lam5",
        "coop+sept@intra",
        "coop+sept@inter",
        "coop+sept@nomargin",
    ],
    "variants": {
        "coop+sept@lam0.5": {"set": ["sept.weight=0.5"], "family": "lambda"},
        "coop+sept@lam2": {"set": ["sept.weight=2"], "family": "lambda"},
        "coop+sept@lam5": {"set": ["sept.weight=5"], "family": "lambda"},
        "coop+sept@intra": {"set": ["sept.inter=false"], "family": "parts"},
        "coop+sept@inter": {"set": ["sept.intra=false"], "family": "parts"},
        "coop+sept@nomargin": {"set": ["sept.margins=none"], "family": "parts"},
    },
    "seeds": [0],
    "folds": [2],
    "overrides": [*FAST, "optim.epochs=6"],
}


def _tables(run_root: Path) -> list[str]:
    return table_numbers(run_root)  # without the measured Time/run


def test_an_ablation_grid_resumes_after_a_kill_and_reports_one_table_per_family(bench_env, tmp_path):
    killed = tmp_path / "killed"
    config = write_grid(bench_env, killed, tmp_path / "g.yaml", **ABLATION)
    cmd = [sys.executable, "-m", "sept", "bench", str(config), "--executor", "serial"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env
    )
    deadline = time.monotonic() + 120
    try:  # kill once 2 cells are finished and a 3rd is between two epochs
        while len(list(killed.rglob("results.json"))) < 2 or not list(killed.rglob("checkpoint.safetensors")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the sweep did not reach the 3rd cell in time"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert 2 <= len(list(killed.rglob("results.json"))) < 7
    resumed = run_sweep(make_grid(bench_env, killed, **ABLATION), echo=lambda s: None)
    assert not resumed.failed and len(list(killed.rglob("results.json"))) == 7
    straight = tmp_path / "straight"
    run_sweep(make_grid(bench_env, straight, **ABLATION), echo=lambda s: None)
    tables = _tables(killed)
    assert tables == _tables(straight)  # identical numbers after the kill
    ablations = [t for t in tables if "ablation" in t]
    assert len(ablations) == 2
    lam = next(t for t in ablations if "ablation lambda" in t)
    assert "coop+sept@lam0.5" in lam and "coop+sept@lam5" in lam and "sept.weight=2" in lam
    assert "reference coop+sept" in lam and "Δ" in lam
    parts = next(t for t in ablations if "ablation parts" in t)
    assert "sept.margins=none" in parts and "sept.intra=False" in parts


def test_a_grid_names_csv_datasets_and_aims_options_per_dataset(bench_env, tmp_path):
    other = make_tone_dataset(tmp_path / "other", per_class=4, folds=2)
    datasets = [
        {"data": str(bench_env["tones"]), "name": "tones"},
        {"data": str(other), "name": "fewer", "set": ["sept.weight=3"]},
    ]
    grid = make_grid(
        bench_env, tmp_path / "runs", datasets=datasets, methods=["coop", "coop+sept"], seeds=[0]
    )
    from sept.bench.cells import cell_config, expand

    plan, cells = expand(grid)
    assert {c.dataset_name for c in cells} == {"tones", "fewer"}
    sept_cells = {c.dataset_name: c for c in cells if c.method == "coop+sept" and c.fold == 1}
    assert cell_config(sept_cells["fewer"], plan).regularizers["sept"].weight == 3.0
    assert cell_config(sept_cells["tones"], plan).regularizers["sept"].weight == 1.0
    assert "sept.weight=3" in sept_cells["fewer"].id and "sept.weight" not in sept_cells["tones"].id


def test_the_same_variant_twice_is_refused(bench_env, tmp_path):
    grid = dict(ABLATION, methods=["coop+sept@lam2", {"name": "coop+sept", "set": ["sept.weight=2"]}])
    grid["variants"] = {"coop+sept@lam2": {"set": ["sept.weight=2"]}}
    from sept.bench.cells import expand

    plan_ok = expand(make_grid(bench_env, tmp_path, **grid))  # a named variant and an unnamed one differ
    assert len({c.id for c in plan_ok[1]}) == 2
    with pytest.raises(ConfigError, match="not declared under `variants`"):
        make_grid(bench_env, tmp_path, methods=["coop+sept@lam9"])


# ---- damaged run files --------------------------------------------------------------------------
DAMAGES = {
    "truncated results": ("results.json", lambda b: b[: len(b) // 2]),
    "empty results": ("results.json", lambda b: b""),
    "non-UTF-8 results": ("results.json", lambda b: b"\xff\xfe" + b[2:]),
    "results without config": ("results.json", lambda b: _drop_key(b, "config")),
    "truncated config": ("config.json", lambda b: b[:10]),
    "truncated prompt": ("prompt.safetensors", lambda b: b[: len(b) - 7]),
}


def _drop_key(data: bytes, key: str) -> bytes:
    obj = json.loads(data)
    obj.pop(key)
    return json.dumps(obj).encode()


def test_a_damaged_cell_is_run_again_and_the_others_are_unchanged(bench_env, tmp_path):
    grid = {"methods": ["coop"], "seeds": [0, 1, 2], "folds": [1, 2]}
    root = tmp_path / "runs"
    first = run_sweep(make_grid(bench_env, root, **grid), echo=lambda s: None)
    assert not first.failed
    folders = sorted(p.parent for p in root.rglob("results.json"))
    assert len(folders) == 6
    before = {f: read_results(f / "results.json").summary for f in folders}
    for (file, damage), folder in zip(DAMAGES.values(), folders, strict=True):
        path = folder / file
        path.write_bytes(damage(path.read_bytes()))
    again = run_sweep(make_grid(bench_env, root, **grid), echo=lambda s: None)
    assert not again.failed
    reran = {o.cell for o in again.ran}
    damaged = {f for f, (file, _) in zip(folders, DAMAGES.values(), strict=True) if file != "config.json"}
    assert {
        str(f.relative_to(root)) for f in damaged
    } == reran  # a damaged config.json of a finished run is harmless
    for folder in folders:
        assert read_results(folder / "results.json").summary == before[folder]  # same numbers
    assert len(list(root.rglob("results.json.damaged"))) == 5  # kept aside for inspection
    assert len(list(root.rglob("prompt.safetensors.damaged"))) == 1


# ---- one home per rule ------------------------------------------------------------------------
def _sources() -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")}


def test_results_file_name_and_neighbour_rule_have_one_home():
    sources = _sources()
    naming = [p.relative_to(SRC).as_posix() for p, text in sources.items() if "results.json" in text]
    assert naming == ["runs/layout.py"]
    rule = [  # matching a dataset's name against the shipped sets, or classes against each shipped set
        p.relative_to(SRC).as_posix()
        for p, text in sources.items()
        if re.search(r"for \w+ in (list_shipped\(\)|shipped)\b|\w+\.lower\(\) == dataset\.lower\(\)", text)
    ]
    assert rule == ["neighbors/resolve.py"]
    protocols = [p for p, text in sources.items() if re.search(r'\("fewshot", "base2new", "xd"\)', text)]
    assert [p.relative_to(SRC).as_posix() for p in protocols] == ["runs/schema.py"]


def test_the_report_imports_no_backbone_and_no_training():
    for path in (SRC / "report").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "sept.backbones" not in text and "sept.training" not in text, path.name


def test_no_absolute_machine_path_in_the_repository():
    # the folder this checkout sits in and the user's home: absolute paths of the machine running the test
    roots = {str(Path.home())} | ({str(REPO.parent)} if REPO.parent != Path(tempfile.gettempdir()) else set())
    pattern = re.compile("|".join(re.escape(r.rstrip("/") + "/") for r in roots if r not in ("", "/")))
    hits = []
    for path in [
        *REPO.glob("src/**/*.py"),
        *REPO.glob("tests/**/*.py"),
        *REPO.glob("configs/**/*.yaml"),
        *REPO.glob("scripts/*"),
        *REPO.glob("*.md"),
        *REPO.glob("docs/*.md"),
        *REPO.glob("benchmarks/*"),
    ]:
        if (
            path.is_file()
            and path.name != Path(__file__).name
            and pattern.search(path.read_text(errors="ignore"))
        ):
            hits.append(str(path.relative_to(REPO)))
    assert hits == []


def test_docs_cited_by_the_code_exist():
    for name in ("METHOD.md", "BENCHMARK.md"):
        assert (REPO / "docs" / name).is_file()
    cited = {
        m for text in _sources().values() for m in re.findall(r"(?<![\w/])(METHOD\.md|BENCHMARK\.md)", text)
    }
    assert cited == set(), f"cite docs/{cited} with its folder"


def test_raw_class_names_reach_the_prompts_and_name_the_variant(tiny_clap, store, tmp_path):
    ds = load_dataset(make_tone_dataset(tmp_path / "d", per_class=4, folds=2))
    settings = _settings(tmp_path / "runs", settings={"class_names": "raw"})
    (raw,) = run_protocol("fewshot", tiny_clap, ds, "zeroshot", settings, store=store)
    (readable,) = run_protocol(
        "fewshot", tiny_clap, ds, "zeroshot", _settings(tmp_path / "runs"), store=store
    )
    assert raw["test"]["prompt_names"]["dog_bark"] == "dog_bark"
    assert readable["test"]["prompt_names"]["dog_bark"] == "dog bark"
    assert raw["variant"]["name"] == "zeroshot@class_names=raw" and readable["variant"]["name"] == "zeroshot"


def test_precision_is_config_not_variant_name() -> None:
    """bf16 and fp32 runs of one method share its name; their configs differ (a run root holds one)."""
    from sept.runs.identity import options_diff
    from sept.training.config import resolve_config

    fp32 = resolve_config("coop", "base2new")
    bf16 = resolve_config("coop", "base2new", overrides=["precision=bf16", "optim.epochs=50"])
    assert options_diff(bf16, fp32) == {"optim.epochs": 50}
    assert bf16.to_dict()["precision"] == "bf16" != fp32.to_dict()["precision"]
