"""Run configs: reference defaults, layering, validation before compute, JSON round trip."""

from __future__ import annotations

import json

import pytest

from sept.errors import ConfigError, UnknownNameError
from sept.methods import list_components, list_methods, parse_method
from sept.training.config import RunConfig, resolve_config


def test_method_names_and_composition():
    assert {"zeroshot", "coop", "cocoop", "kgcoop", "palm"} <= set(list_methods())
    assert "kg" in list_components("regularizer") and "dept" in list_components("head")
    spec = parse_method("KgCoOp+DePT")
    assert (spec.name, spec.learner, spec.regularizers, spec.head) == ("kgcoop+dept", "coop", ("kg",), "dept")
    assert parse_method("cocoop+kg").regularizers == ("kg",)


@pytest.mark.parametrize(
    ("method", "match"),
    [
        ("copo", "valid methods: cocoop, coop"),
        ("coop+foo", "valid components: kg, sept, dept"),
        ("", "unknown method"),
    ],
)
def test_unknown_names_list_the_valid_ones(method, match):
    with pytest.raises(UnknownNameError, match=match):
        parse_method(method)


@pytest.mark.parametrize("method", ["coop+dept+dept", "kgcoop+kg"])
def test_duplicate_components_are_refused(method):
    with pytest.raises(UnknownNameError):
        parse_method(method)


def test_base_to_new_defaults_follow_the_reference_code():
    coop = resolve_config("coop")
    assert (coop.learner.n_ctx, coop.learner.ctx_init) == (4, "the sound of a")
    assert (coop.optim.name, coop.optim.lr, coop.optim.momentum, coop.optim.scheduler) == (
        "sgd",
        0.002,
        0.9,
        "cosine",
    )
    assert (coop.optim.warmup_epochs, coop.optim.warmup_lr, coop.optim.batch_size) == (1, 1e-5, 32)
    assert (coop.optim.epochs, coop.optim.weight_decay) == (200, 5e-4)  # CoOp's vit_b16_ep200
    assert coop.logit_scale is None  # the backbone's (100 by default)
    cocoop = resolve_config("cocoop")
    assert (cocoop.optim.batch_size, cocoop.optim.epochs, cocoop.learner.meta_reduction) == (1, 10, 16)
    kg = resolve_config("kgcoop")
    assert (kg.optim.batch_size, kg.optim.epochs, kg.optim.lr, kg.regularizers["kg"].weight) == (
        128,
        100,
        0.002,
        8.0,
    )
    # DePT's recipe on KgCoOp (DePT's configs/trainers/KgCoOp/vit_b16_ep10_ctxv1_bs4_lr35.yaml)
    kgd = resolve_config("kgcoop+dept")
    assert (kgd.optim.batch_size, kgd.optim.epochs, kgd.optim.lr) == (4, 10, 0.0035)
    assert (kgd.regularizers["kg"].weight, kgd.head["dept"].weight, kgd.head["dept"].lr_mult) == (
        2.0,
        0.7,
        6.5,
    )
    palm = resolve_config("palm")
    assert (palm.optim.lr, palm.optim.scheduler, palm.optim.epochs, palm.optim.batch_size) == (
        0.05,
        "none",
        50,
        16,
    )
    assert palm.optim.weight_decay == 0.0  # PALM's main.py: SGD without weight decay
    assert resolve_config("coop", "fewshot").optim.weight_decay == 0.0


def test_few_shot_defaults_are_palms_code():
    for method in ("coop", "cocoop", "kgcoop"):
        cfg = resolve_config(method, "fewshot")
        assert (cfg.learner.n_ctx, cfg.learner.ctx_init) == (16, None)
        assert (cfg.optim.lr, cfg.optim.scheduler, cfg.optim.epochs, cfg.optim.batch_size) == (
            0.05,
            "none",
            50,
            16,
        )
        assert cfg.optim.warmup_epochs == 0


def test_layers_file_then_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "seed: 4\noptim: {lr: 0.01, epochs: 7}\nlearner: {n_ctx: 8}\nkg: {weight: 2.0}\n"
        "dept: {lr_mult: 3.0}\n"  # a section of a component this method lacks is ignored
    )
    cfg = resolve_config("kgcoop", config_file=path, overrides=["optim.lr=0.02", "coop.ctx_init=null"])
    assert (cfg.seed, cfg.optim.lr, cfg.optim.epochs, cfg.optim.batch_size) == (4, 0.02, 7, 128)
    assert (cfg.learner.n_ctx, cfg.learner.ctx_init, cfg.regularizers["kg"].weight) == (8, None, 2.0)
    assert cfg.head == {}
    cfg = resolve_config(
        "coop", settings={"seed": 5, "backbone": "clap"}, overrides=["backbone_options.model=/m", "seed=6"]
    )
    assert cfg.backbone_options == {"model": "/m"} and cfg.seed == 6


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["optim.lr=-0.1"], r"optim.lr must be > 0, got -0.1"),
        (["optim.epochs=0"], r"optim.epochs must be >= 1, got 0"),
        (["optim.lr=fast"], r"optim.lr: expected a number, got 'fast'"),
        (["optim.name=rmsprop"], r"optim.name: 'rmsprop' is not one of"),
        (["optim.epochs=2", "optim.warmup_epochs=2"], r"warmup_epochs \(2\) must be < optim.epochs \(2\)"),
        (["learner.n_ctx=0"], r"learner.n_ctx must be >= 1"),
        (["learner.depth=2"], r"unknown option 'learner.depth'.*ctx_init"),
        (["kg.weight=1"], r"has no component for key 'kg.weight'"),
        (["bogus=1"], r"unknown key 'bogus'"),
        (["method=palm"], r"name it on the command line"),
        (["optim.lr"], r"expected key=value"),
        (["logit_scale=0"], r"logit_scale must be > 0"),
    ],
)
def test_invalid_values_are_named(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config("coop", overrides=overrides)


def test_bad_config_file_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        resolve_config("coop", config_file=path)
    path.write_text("optim: {lr: 0.1, epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*unknown option 'optim.epoch'"):
        resolve_config("coop", config_file=path)


def test_json_round_trip():
    cfg = resolve_config("cocoop+kg+dept", "xd", overrides=["seed=2", "logit_scale=50"])
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["learner"]["name"] == "cocoop" and data["regularizers"]["kg"]["weight"] == 8.0
    again = RunConfig.from_dict(data)
    assert again == cfg and again.training_hash() == cfg.training_hash()
    assert resolve_config("cocoop+kg+dept", "xd").training_hash() != cfg.training_hash()
    with pytest.raises(ConfigError, match="unknown key"):
        RunConfig.from_dict({**data, "extra": 1})
