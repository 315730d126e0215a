"""Grid YAML: validation with clear errors, expansion into cells, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sept.bench.cells import cell_config, expand
from sept.bench.grid import load_grid, parse_grid
from sept.errors import ConfigError, DataError
from tests.test_methods_support import make_tone_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tone_dataset(tmp_path_factory.mktemp("tones"), per_class=4, folds=2)


def grid(tones: Path, tmp_path: Path, **extra) -> dict:
    return {
        "run_root": str(tmp_path / "runs"),
        "datasets": [{"data": str(tones)}],
        "methods": ["zeroshot", "coop", "kgcoop+sept"],
        "seeds": [0, 1],
        "shots": 2,
        **extra,
    }


def test_expansion_covers_folds_seeds_and_methods(tones, tmp_path):
    plan, cells = expand(parse_grid(grid(tones, tmp_path)))
    assert len(cells) == 2 * 2 * 3  # folds x seeds x methods
    assert cells[0].id == f"base2new/{cells[0].dataset_id}/fold-1/zeroshot/shots-2/seed-0"
    assert cells[0].dataset_id.startswith("metadata-")  # a CSV: its stem and its content's fingerprint
    assert {c.fold for c in cells} == {1, 2} and {c.method for c in cells} == {
        "zeroshot",
        "coop",
        "kgcoop+sept",
    }
    assert plan.backbone == "yamnet-minilm" and plan.threads == 1
    _, one = expand(parse_grid(grid(tones, tmp_path, folds=[2])))
    assert {c.fold for c in one} == {2}
    _, default = expand(
        parse_grid(grid(tones, tmp_path, datasets=[{"data": str(tones), "folds": "default"}]))
    )
    assert {c.fold for c in default} == {1}  # a CSV's default fold is its first


def test_inline_config_applies_to_the_methods_that_have_the_component(tones, tmp_path):
    g = grid(
        tones, tmp_path, config={"optim": {"epochs": 3}, "kg": {"weight": 2.0}}, overrides=["optim.lr=0.01"]
    )
    g["methods"] = ["coop", {"name": "kgcoop+sept", "set": ["sept.weight=0.5"]}]
    plan, cells = expand(parse_grid(g))
    assert Path(plan.config_file).is_file() and Path(plan.config_file).is_relative_to(
        tmp_path / "runs" / "bench"
    )
    coop = cell_config(next(c for c in cells if c.method == "coop"), plan)
    kg = cell_config(next(c for c in cells if c.method == "kgcoop+sept"), plan)
    assert coop.optim.epochs == 3 and coop.optim.lr == 0.01 and "kg" not in coop.regularizers
    assert kg.regularizers["kg"].weight == 2.0 and kg.regularizers["sept"].weight == 0.5
    assert kg.optim.epochs == 3 and kg.seed == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ["coop", "nope"]}, r"methods\[1\].*unknown method 'nope'"),
        ({"protocols": ["base2new", "zeroshot"]}, "'zeroshot' is not one of"),
        ({"seeds": [0, -1]}, "seeds: expected an integer >= 0"),
        ({"shots": 0}, "shots: expected an integer >= 1"),
        ({"datasets": [{"root": "x"}]}, r"datasets\[0\]: give `name`"),
        ({"datasets": [{"name": "us8k-mini", "rooot": "x"}]}, r"datasets\[0\]: unknown key\(s\) rooot"),
        ({"executor": {"kind": "slurm"}}, "executor.kind: 'slurm'"),
        ({"colour": "blue"}, r"top level: unknown key\(s\) colour"),
        ({"on_bad_audio": "ignore"}, "on_bad_audio: expected skip or fail"),
        ({"config": {"optim": {}}, "config_file": "x.yaml"}, "not both"),
        ({"methods": ["coop", "coop"]}, "appears twice"),
    ],
)
def test_invalid_grids_name_the_key(tones, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        expand(parse_grid(grid(tones, tmp_path, **change), "grid.yaml"))


def test_invalid_override_fails_before_any_run(tones, tmp_path):
    with pytest.raises(ConfigError, match=r"optim\.lr"):  # naming the cells' variants resolves the configs
        expand(parse_grid(grid(tones, tmp_path, overrides=["optim.lr=-1"])))


def test_missing_dataset_is_named(tmp_path):
    g = {
        "datasets": [{"data": str(tmp_path / "nowhere.csv")}],
        "methods": ["coop"],
        "run_root": str(tmp_path),
    }
    with pytest.raises(DataError, match=r"nowhere\.csv"):
        expand(parse_grid(g, "grid.yaml"))


def test_xd_targets_default_to_the_other_datasets(tones, tmp_path):
    other = make_tone_dataset(tmp_path / "other", per_class=4, folds=2)
    other = other.rename(other.with_name("other.csv"))
    g = grid(tones, tmp_path, protocols=["xd"], datasets=[{"data": str(tones)}, {"data": str(other)}])
    g["xd"] = {"sources": ["metadata"]}
    plan, cells = expand(parse_grid(g))
    assert {c.dataset_name for c in cells} == {"metadata"}
    assert [t.data for t in plan.targets["metadata"]] == [str(other)]


def test_yaml_file_and_environment_variables(tones, tmp_path, monkeypatch):
    monkeypatch.setenv("TONES_CSV", str(tones))
    path = tmp_path / "g.yaml"
    path.write_text(
        "run_root: $HOME/x\ndatasets: [{data: $TONES_CSV}]\nmethods: [coop]\nexecutor: {kind: ray, num_cpus: 2}\n"
    )
    g = load_grid(path)
    assert g.datasets[0].data == str(tones) and not g.run_root.startswith("$")
    assert g.executor.kind == "ray" and g.executor.num_cpus == 2 and g.name == "g"
    path.write_text("datasets: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_grid(path)


@pytest.mark.parametrize(
    "name", ["demo.yaml", "paper/base2new-clap.yaml", "paper/xd-clap.yaml", "paper/fewshot-clap.yaml"]
)
def test_shipped_configs_are_valid(name):
    g = load_grid(REPO / "configs" / name)
    assert g.methods and g.datasets


def test_paper_configs_cover_the_benchmark():
    from sept.data.registry import BENCHMARK_DATASETS

    b2n = load_grid(REPO / "configs" / "paper" / "base2new-clap.yaml")
    assert sorted(d.name for d in b2n.datasets) == sorted(BENCHMARK_DATASETS)
    assert {"coop", "coop+sept", "cocoop", "cocoop+sept", "kgcoop", "kgcoop+sept"} <= {
        m.name for m in b2n.methods
    }
    assert b2n.backbone == "clap" and b2n.seeds == (0, 1, 2) and b2n.protocols == ("base2new",)
    xd = load_grid(REPO / "configs" / "paper" / "xd-clap.yaml")
    assert xd.xd_sources == ("ESC50",) and xd.protocols == ("xd",)


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "paper").glob("*.yaml")), ids=lambda p: p.name)
def test_paper_configs_run_the_reference_recipes(path):
    """fp32 and SEPT's exact loss in every paper grid; DePT rows in base-to-new and cross-dataset;
    each method's epochs, batch and lr as its reference code (presets, not a grid-wide override)."""
    from sept.training.config import resolve_config

    g = load_grid(path)
    expected = {"precision": "fp32", "sept": {"per_step": 0}}
    if path.name == "fewshot-pengi.yaml":  # PALM prompts with the raw labels
        expected["class_names"] = "raw"
    assert g.config == expected
    names = {m.name for m in g.methods}
    if path.name.startswith(("base2new", "xd")):
        assert {"coop+dept", "coop+dept+sept"} <= names
    protocol = g.protocols[0]
    expected = {"coop": (200, 32, 0.002), "cocoop": (10, 1, 0.002), "kgcoop": (100, 128, 0.002)}
    expected.update({"coop+dept": (10, 4, 0.0035), "coop+dept+sept": (10, 4, 0.0035)})
    for name in names & set(expected) if protocol != "fewshot" else ():
        c = resolve_config(name, protocol, settings={"precision": "fp32"})
        assert (c.optim.epochs, c.optim.batch_size, c.optim.lr) == expected[name], name


def test_demo_config_is_the_demo_grid():
    from sept.demo.run import DEMO_GRID

    shipped = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for key in ("backbone", "protocols", "methods", "shots", "seeds"):
        assert shipped[key] == DEMO_GRID[key], key
