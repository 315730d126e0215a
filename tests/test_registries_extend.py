"""Extending sept from outside: register_backbone, register_method_component, register_dataset, plugins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from sept import plugins
from sept.backbones import create_backbone, list_backbones, register_backbone
from sept.backbones import registry as backbone_registry
from sept.data import DatasetInfo, get_dataset, list_datasets, register_dataset
from sept.data import registry as data_registry
from sept.methods import list_components, parse_method, register_method_component
from sept.methods import registry as method_registry
from sept.methods.base import Regularizer, Step
from sept.methods.options import option
from tests.fake_backbone import BandEnergyBackbone
from tests.test_methods_support import CLASSES, configure, make_method, separable_features, tiny_clap

__all__ = ["tiny_clap"]


@pytest.fixture(autouse=True)
def _clean_registries():
    backbones, datasets = dict(backbone_registry._REGISTRY), dict(data_registry._REGISTRY)
    components = {k: dict(v) for k, v in method_registry._REGISTERED.items()}
    yield
    backbone_registry._REGISTRY.clear()
    backbone_registry._REGISTRY.update(backbones)
    data_registry._REGISTRY.clear()
    data_registry._REGISTRY.update(datasets)
    data_registry._LOADERS.clear()
    for kind, table in components.items():
        method_registry._REGISTERED[kind] = table


def test_register_a_backbone_by_class_or_import_path():
    register_backbone("bands", BandEnergyBackbone, {"bands": 4}, "band energies")
    assert "bands" in list_backbones()
    assert create_backbone("bands").embed_dim == 4
    assert create_backbone("bands", bands=6).embed_dim == 6  # options override the defaults
    register_backbone("bands-lazy", "tests.fake_backbone:BandEnergyBackbone")
    assert isinstance(create_backbone("bands-lazy"), BandEnergyBackbone)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("bands", BandEnergyBackbone)
    with pytest.raises(ValueError, match="module:Class"):
        register_backbone("bad", "no_colon_here")
    with pytest.raises(TypeError, match="Backbone subclass"):
        register_backbone("bad", dict)


@dataclass
class _ShrinkOptions:
    weight: float = option(0.5, "weight of the penalty", ge=0)


class ShrinkContext(Regularizer):
    """A penalty on the learned context vectors' size (an example regulariser)."""

    name = "shrink"
    Options = _ShrinkOptions

    def __init__(self, options: _ShrinkOptions | None = None) -> None:
        super().__init__(options or _ShrinkOptions())
        self._learner: list = []  # a plain list: the learner is not a sub-module of the regulariser

    def setup(self, learner, backbone, train_classnames) -> None:
        super().setup(learner, backbone, train_classnames)
        self._learner[:] = [learner]

    def loss(self, step: Step) -> torch.Tensor:
        params = self._learner[0].learned_parameters()
        return self.options.weight * torch.stack([p.pow(2).mean() for p in params]).sum()


def test_a_registered_regularizer_composes_and_trains(tiny_clap):
    from sept.training.trainer import Trainer

    register_method_component(ShrinkContext)
    assert "shrink" in list_components("regularizer")
    assert parse_method("coop+shrink").regularizers == ("shrink",)
    config = configure("coop+shrink", ["shrink.weight=2.0", "optim.epochs=2"])
    assert config.regularizers["shrink"].weight == 2.0
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    result = Trainer(make_method(config, tiny_clap), config, progress=False).fit(feats, labels)
    assert all("shrink" in h["parts"] for h in result.history)
    with pytest.raises(ValueError, match="built in"):

        class Kg(ShrinkContext):
            name = "kg"

        register_method_component(Kg)
    with pytest.raises(TypeError, match="PromptLearner, Regularizer or Head"):
        register_method_component(int)


def test_register_a_dataset_by_layout_or_loader(tmp_path):
    (tmp_path / "meta.csv").write_text("path,classname,fold\na.wav,x,1\nb.wav,y,1\nc.wav,x,2\nd.wav,y,2\n")
    register_dataset(
        DatasetInfo(
            "my-set",
            "toy",
            ("x", "y"),
            2,
            layout="fold-column",
            options={"table": "meta.csv"},
            benchmark=False,
        )
    )
    assert "my-set" in list_datasets()
    split = get_dataset("my-set", tmp_path).split(2)
    assert [c.relpath for c in split.test] == ["c.wav", "d.wav"]
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetInfo("MY-SET", "toy", ("x",), 0, benchmark=False))

    from sept.data import load_dataset

    seen = []

    def loader(info, folder):
        seen.append((info.name, folder))
        return load_dataset(folder / "meta.csv")

    register_dataset(DatasetInfo("my-loaded", "toy", ("x", "y"), 2, benchmark=False), loader)
    assert list(get_dataset("my-loaded", tmp_path).folds) == [1, 2] and seen == [("my-loaded", tmp_path)]


def test_plugins_register_through_entry_points(monkeypatch):
    class EntryPoint:
        name, value = "demo", "demo_plugin:register"

        def load(self):
            return lambda: register_backbone("from-plugin", BandEnergyBackbone)

    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(
        plugins, "entry_points", lambda group: [EntryPoint()] if group == plugins.GROUP else []
    )
    assert "from-plugin" in list_backbones()

    class Broken(EntryPoint):
        def load(self):
            raise ImportError("no module named demo_plugin")

    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [Broken()])
    from sept.errors import SeptError

    with pytest.raises(
        SeptError, match=r"sept plugin 'demo'.*failed to register: no module named demo_plugin"
    ):
        create_backbone("not-there")
