"""SEPT's semantic expansion loss: hand computations, margins, gradients, ablations, composition."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sept.errors import SeptError
from sept.methods.base import Step
from sept.methods.regularizers.sept import SeptOptions, SeptRegularizer, semantic_distances
from sept.methods.sept_margins import compute_margins
from sept.neighbors.schema import NeighborSet, Provenance, write_neighbor_file
from tests.test_methods_support import CLASSES, configure, make_method, separable_features, tiny_clap

__all__ = ["tiny_clap"]

NEIGHBORS = {
    "dog_bark": ["puppy yapping", "hound howling", "canine woof"],
    "siren": ["police wail", "ambulance alarm", "emergency horn"],
    "car_horn": ["vehicle honk", "truck beep", "auto klaxon"],
    "engine_idling": ["motor humming", "idle rumble", "running car engine"],
}


@pytest.fixture(scope="module")
def neighbor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ns = NeighborSet(classes=NEIGHBORS, provenance=Provenance(source="authored"), dataset="toy")
    return write_neighbor_file(ns, tmp_path_factory.mktemp("nb") / "toy.json")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEPT_CACHE_DIR", str(tmp_path / "cache"))


def _hand_reg(margin: torch.Tensor, **options) -> SeptRegularizer:
    """A 2-class regularizer with one phrase per class and the given margins [2, 2]."""
    reg = SeptRegularizer(SeptOptions(per_step=0, **options))
    reg.conditional = False
    reg.classnames = ["a", "b"]
    reg.phrases = ["a1", "b1"]
    reg.owner = torch.tensor([0, 1])
    reg.margin = margin
    return reg


def _step(z: torch.Tensor, q: torch.Tensor, labels: list[int] | None = None) -> Step:
    labels_t = torch.tensor(labels or [0, 1])
    return Step(
        audio=torch.zeros(len(labels_t), z.shape[-1]),
        labels=labels_t,
        class_feats=z,
        logits=torch.zeros(len(labels_t), z.shape[-2]),
        logit_scale=100.0,
        classnames=["a", "b"],
        extras={"sept": q},
    )


def _loss(reg: SeptRegularizer, z: torch.Tensor, q: torch.Tensor, labels: list[int] | None = None) -> float:
    reg.extra_texts(reg.classnames, torch.Generator().manual_seed(0))
    return float(reg.loss(_step(z, q, labels)))


def _unit(deg: float) -> torch.Tensor:
    return torch.tensor([math.cos(math.radians(deg)), math.sin(math.radians(deg))])


# z_a at 0 deg, z_b at 90 deg; a's neighbour at 60 deg, b's neighbour at 100 deg
Z = torch.stack([_unit(0), _unit(90)])
Q = torch.stack([_unit(60), _unit(100)])


def _d(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(x - y))


def test_loss_equals_a_hand_computation_on_two_classes() -> None:
    margin = torch.tensor([[0.5, 1.2], [0.9, 0.1]])
    reg = _hand_reg(margin, weight=2.0)
    intra = (max(_d(Z[0], Q[0]) - 0.5, 0) + max(_d(Z[1], Q[1]) - 0.1, 0)) / 2
    inter = (max(1.2 - _d(Z[0], Q[1]), 0) + max(0.9 - _d(Z[1], Q[0]), 0)) / 2
    assert intra > 0 and inter > 0
    assert _loss(reg, Z, Q) == pytest.approx(2.0 * (intra + inter), abs=1e-5)


def test_loss_is_zero_when_every_margin_holds_and_positive_otherwise() -> None:
    d = semantic_distances(Z, Q)
    respected = torch.where(torch.eye(2, dtype=torch.bool), d + 0.05, d - 0.05)
    assert _loss(_hand_reg(respected), Z, Q) == 0.0
    for i, j in [(0, 0), (1, 1), (0, 1), (1, 0)]:
        broken = respected.clone()
        broken[i, j] = d[i, j] - 0.1 if i == j else d[i, j] + 0.1
        assert _loss(_hand_reg(broken), Z, Q) > 0.0


def test_ablation_switches() -> None:
    margin = torch.tensor([[0.5, 1.2], [0.9, 0.1]])
    d = {(i, j): _d(Z[i], Q[j]) for i in range(2) for j in range(2)}
    intra = (max(d[0, 0] - 0.5, 0) + max(d[1, 1] - 0.1, 0)) / 2
    inter = (max(1.2 - d[0, 1], 0) + max(0.9 - d[1, 0], 0)) / 2
    assert _loss(_hand_reg(margin, inter=False), Z, Q) == pytest.approx(intra, abs=1e-5)
    assert _loss(_hand_reg(margin, intra=False), Z, Q) == pytest.approx(inter, abs=1e-5)
    squared = ((max(d[0, 0] - 0.5, 0) ** 2 + max(d[1, 1] - 0.1, 0) ** 2) / 2) + (
        (max(1.2 - d[0, 1], 0) ** 2 + max(0.9 - d[1, 0], 0) ** 2) / 2
    )
    assert _loss(_hand_reg(margin, hinge="squared"), Z, Q) == pytest.approx(squared, abs=1e-5)
    # only class b in the batch: anchors are b's row (its own neighbour and a's)
    only_b = max(d[1, 1] - 0.1, 0) + max(0.9 - d[1, 0], 0)
    assert _loss(_hand_reg(margin, classes="batch"), Z, Q, labels=[1, 1]) == pytest.approx(only_b, abs=1e-5)
    with pytest.raises(SeptError, match="both off"):
        SeptOptions(intra=False, inter=False).validate("sept")


def test_no_margins_ablation_uses_zero_intra_and_mean_inter(tiny_clap, neighbor_file: Path) -> None:
    method = make_method(
        configure("coop+sept", [f"sept.neighbors={neighbor_file}", "sept.margins=none"]), tiny_clap
    )
    frozen = make_method(configure("coop+sept", [f"sept.neighbors={neighbor_file}"]), tiny_clap)
    reg, ref = method.regularizers["sept"], frozen.regularizers["sept"]
    own = reg.owner.unsqueeze(0) == torch.arange(len(CLASSES)).unsqueeze(1)
    assert torch.all(reg.margin[own] == 0)
    assert torch.allclose(reg.margin[~own], ref.margin[~own].mean().expand(int((~own).sum())))


def test_margins_come_from_the_frozen_text_tower_without_the_prompt(tiny_clap, neighbor_file: Path) -> None:
    method = make_method(configure("coop+sept", [f"sept.neighbors={neighbor_file}"]), tiny_clap)
    reg = method.regularizers["sept"]
    templates = reg.options.templates
    classes = [c.replace("_", " ") for c in CLASSES]
    phrases = [p for c in CLASSES for p in NEIGHBORS[c]]
    assert reg.phrases == phrases and reg.owner.tolist() == [i for i in range(4) for _ in range(3)]
    expected = torch.zeros(len(classes), len(phrases))
    for t in templates:
        f_c = tiny_clap.embed_text([t.replace("{}", c) for c in classes])
        f_p = tiny_clap.embed_text([t.replace("{}", p) for p in phrases])
        expected += torch.cdist(f_c, f_p)
    torch.testing.assert_close(reg.margin, expected / len(templates), atol=1e-5, rtol=0)
    # another prompt (random init instead of the template) leaves the margins unchanged
    other = make_method(
        configure("coop+sept", [f"sept.neighbors={neighbor_file}", "learner.ctx_init=null"]), tiny_clap
    )
    torch.testing.assert_close(other.regularizers["sept"].margin, reg.margin)
    torch.testing.assert_close(
        compute_margins(tiny_clap, classes, phrases, templates), reg.margin, atol=1e-5, rtol=0
    )


def test_gradients_reach_only_the_prompt(tiny_clap, neighbor_file: Path) -> None:
    method = make_method(
        configure("coop+sept", [f"sept.neighbors={neighbor_file}", "sept.weight=5", "learner.ctx_init=null"]),
        tiny_clap,
    )
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), 2)
    _, parts = method.training_loss(feats, labels, generator=torch.Generator().manual_seed(0))
    assert parts["sept"] > 0
    parts["sept"].backward()
    assert method.learner.ctx.grad is not None and method.learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_clap.parameters())
    assert not list(method.regularizers["sept"].parameters())


def test_coop_sept_has_exactly_coops_parameters_and_inference(tiny_clap, neighbor_file: Path) -> None:
    coop = make_method(configure("coop"), tiny_clap)
    sept = make_method(configure("coop+sept", [f"sept.neighbors={neighbor_file}"]), tiny_clap)
    a, b = coop.learned_state(), sept.learned_state()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    with torch.no_grad():
        sept.learner.ctx.add_(0.01 * torch.randn_like(sept.learner.ctx))
    coop.load_learned_state(sept.learned_state())
    feats, _ = separable_features(tiny_clap.embed_dim, 3, 2)
    names = ["jackhammer", "siren", "dog_bark"]
    with torch.no_grad():
        torch.testing.assert_close(sept.logits(feats, names), coop.logits(feats, names), rtol=0, atol=0)


def test_sampling_per_step_and_per_class(tiny_clap, neighbor_file: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    default = make_method(configure("coop+sept", [f"sept.neighbors={neighbor_file}"]), tiny_clap)
    reg = default.regularizers["sept"]
    assert reg.pairs_per_step == max(4, math.ceil(len(CLASSES) / 8))
    req = reg.extra_texts(CLASSES, gen)
    assert len(req.texts) == 4 and set(req.texts) <= set(reg.phrases)
    every = make_method(
        configure("coop+sept", [f"sept.neighbors={neighbor_file}", "sept.per_step=0"]), tiny_clap
    )
    assert len(every.regularizers["sept"].extra_texts(CLASSES, gen).texts) == 12
    per_class = make_method(
        configure("coop+sept", [f"sept.neighbors={neighbor_file}", "sept.per_class=2"]), tiny_clap
    )
    reg2 = per_class.regularizers["sept"]
    reg2.extra_texts(CLASSES, gen)
    assert sorted(reg2.owner[reg2._step_index].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    # the same generator state draws the same neighbours (runs are reproducible)
    r1 = reg.extra_texts(CLASSES, torch.Generator().manual_seed(9)).texts
    assert r1 == reg.extra_texts(CLASSES, torch.Generator().manual_seed(9)).texts


def test_sampled_loss_estimates_the_full_loss(tiny_clap, neighbor_file: Path) -> None:
    full = make_method(
        configure(
            "coop+sept", [f"sept.neighbors={neighbor_file}", "sept.per_step=0", "learner.ctx_init=null"]
        ),
        tiny_clap,
    )
    sampled = make_method(
        configure(
            "coop+sept", [f"sept.neighbors={neighbor_file}", "sept.per_step=6", "learner.ctx_init=null"]
        ),
        tiny_clap,
    )
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), 2)
    with torch.no_grad():
        exact = float(full.training_loss(feats, labels)[1]["sept"])
        gen = torch.Generator().manual_seed(0)
        draws = [float(sampled.training_loss(feats, labels, generator=gen)[1]["sept"]) for _ in range(150)]
    assert exact > 0
    assert sum(draws) / len(draws) == pytest.approx(exact, rel=0.1)


def test_cocoop_shift_option(tiny_clap, neighbor_file: Path) -> None:
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), 2)
    # default: the neighbours go through each clip's shifted prompt (docs/METHOD.md, "CoCoOp and SEPT")
    default = make_method(configure("cocoop+sept", [f"sept.neighbors={neighbor_file}"]), tiny_clap)
    assert default.regularizers["sept"].extra_texts(CLASSES, torch.Generator().manual_seed(0)).shift is True
    for shift, ndim in ((False, 2), (True, 3)):
        method = make_method(
            configure("cocoop+sept", [f"sept.neighbors={neighbor_file}", f"sept.shift={str(shift).lower()}"]),
            tiny_clap,
        )
        reg = method.regularizers["sept"]
        req = reg.extra_texts(CLASSES, torch.Generator().manual_seed(0))
        assert req.shift is shift
        # without the shift, SEPT compares the unshifted class features: it encodes the class names too
        assert len(req.texts) == reg.pairs_per_step + (0 if shift else len(CLASSES))
        _, parts = method.training_loss(feats, labels, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(parts["sept"])
        assert method.learner.encode_texts(["x"], feats, shift=shift).dim() == ndim


def test_missing_neighbours_are_a_clear_error(tiny_clap, neighbor_file: Path) -> None:
    with pytest.raises(SeptError, match="jackhammer"):
        make_method(
            configure("coop+sept", [f"sept.neighbors={neighbor_file}"]), tiny_clap, ["jackhammer", "siren"]
        )


def test_training_with_sept_lowers_the_loss(tiny_clap, neighbor_file: Path) -> None:
    from sept.training.trainer import Trainer

    config = configure("coop+sept", [f"sept.neighbors={neighbor_file}", "sept.weight=10", "optim.epochs=15"])
    method = make_method(config, tiny_clap)
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), 8)
    history = Trainer(method, config).fit(feats, labels).history
    assert all(h["parts"].keys() == {"ce", "sept"} for h in history)
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("method_name", ["coop+sept", "cocoop+sept"])
def test_a_capitalised_phrase_reaches_margins_and_prompt_as_the_same_words(
    tiny_clap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method_name: str
) -> None:
    """The hinge compares distances of one string: the margin's phrase is the prompted pass's phrase."""
    import sept.methods.regularizers.sept as sept_module

    neighbors = {c: list(v) for c, v in NEIGHBORS.items()}
    neighbors["siren"] = ["Police Car wailing", "NYPD siren", "ambulance alarm"]
    ns = NeighborSet(classes=neighbors, provenance=Provenance(source="authored"), dataset="toy")
    path = write_neighbor_file(ns, tmp_path / "caps.json")
    seen_margin: list[str] = []
    real = sept_module.frozen_margins

    def spy_margins(backbone, classes, phrases, templates):  # type: ignore[no-untyped-def]
        seen_margin.extend(phrases)
        return real(backbone, classes, phrases, templates)

    monkeypatch.setattr(sept_module, "frozen_margins", spy_margins)
    method = make_method(configure(method_name, [f"sept.neighbors={path}", "sept.per_step=0"]), tiny_clap)
    assert "Police Car wailing" in seen_margin and "NYPD siren" in seen_margin
    prompted: list[str] = []
    real_tokenize = tiny_clap.tokenize
    monkeypatch.setattr(tiny_clap, "tokenize", lambda texts: prompted.extend(texts) or real_tokenize(texts))
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), 2)
    method.training_loss(feats, labels, generator=torch.Generator().manual_seed(0))
    words = {t.strip().removesuffix(".") for t in prompted}
    for phrase in seen_margin:
        assert phrase in words, f"{phrase!r} was prompted as something else: {sorted(words)}"


def test_margins_are_fp32_even_under_autocast(tiny_clap) -> None:
    classes, phrases, templates = (
        ["dog bark", "siren"],
        ["puppy yapping", "police wail"],
        ["the sound of {}."],
    )
    full = compute_margins(tiny_clap, classes, phrases, templates)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = compute_margins(tiny_clap, classes, phrases, templates)
    assert under.dtype == torch.float32 and torch.equal(under, full)
