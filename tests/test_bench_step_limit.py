"""benchmarks/bench_step_limit.py's recorder and reference: every text-tower call a step makes
with gradients is recorded once and replayed through the same entry point, and a host that trains
through the text tower but records nothing fails the run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from tests.fake_backbone import BandEnergyBackbone
from tests.test_methods_support import tiny_clap

__all__ = ["tiny_clap"]

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (the benchmarks folder is not a package)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("bench_step_limit")


def quiet_check(bench):
    return bench.benchlib.Check("test")


@pytest.mark.parametrize("entry", ["encode_text_embeds", "encode_text_embeds_raw"])
@pytest.mark.parametrize("kind", ["clap", "band"])
def test_each_entry_point_is_recorded_once(bench, tiny_clap, kind, entry):
    # tiny CLAP: the normalised entry point calls the raw one; BandEnergyBackbone: the base
    # class's raw default calls the normalised one. Either way one call is one record.
    backbone = tiny_clap if kind == "clap" else BandEnergyBackbone()
    embeds = torch.randn(3, 5, backbone.token_dim)
    mask = torch.ones(3, 5, dtype=torch.long)
    with bench.TextTowerRecorder(backbone) as recorder:
        getattr(backbone, entry)(embeds, mask)
        with torch.inference_mode():  # frozen features are not the step's
            backbone.encode_text_embeds(embeds, mask)
    assert [c.entry for c in recorder.calls] == [entry]
    assert torch.equal(recorder.calls[0].embeds, embeds) and torch.equal(recorder.calls[0].mask, mask)
    assert not set(bench.TEXT_TOWER_ENTRY_POINTS) & set(vars(backbone))  # the methods are back


def test_a_coop_step_is_recorded_and_replayed_through_the_same_entry_point(bench, tiny_clap, monkeypatch):
    step, _ = bench.build_step(tiny_clap, "coop", "fp32")
    with bench.TextTowerRecorder(tiny_clap) as recorder:
        step()
    # the learner's one prompted forward of the 25 class prompts (the old recorder saw nothing)
    assert [c.entry for c in recorder.calls] == ["encode_text_embeds_raw"]
    assert recorder.calls[0].embeds.shape[0] == bench.NUM_CLASSES

    outer = {"encode_text_embeds": 0, "encode_text_embeds_raw": 0}
    for entry in outer:
        inner = getattr(type(tiny_clap), entry)

        def counting(self, embeds, mask, _inner=inner, _entry=entry):
            outer[_entry] += 1
            return _inner(self, embeds, mask)

        monkeypatch.setattr(type(tiny_clap), entry, counting)
    bench.bare_fn(tiny_clap, recorder.calls, "fp32")()
    # replayed through the raw entry point only (the normalised one is never the outer call)
    assert outer == {"encode_text_embeds": 0, "encode_text_embeds_raw": 1}


def test_measure_gives_a_ratio_on_the_same_work(bench, tiny_clap):
    check = quiet_check(bench)
    row = bench.measure(tiny_clap, "coop", "fp32", rounds=1, steps=1, check=check, always_profile=False)
    assert row["ratio"] is not None and row["ratio"] > 0
    assert row["entries"] == ["encode_text_embeds_raw"]
    assert row["bare_flops"] == pytest.approx(row["flops"], rel=0.05)  # the step is the tower's work
    assert "coop: text-tower calls recorded" not in check.failed


def test_a_text_host_without_a_recorded_call_fails_the_run(bench, tiny_clap, monkeypatch, capsys):
    # a recorder that misses the entry point the learners use (the old one wrapped only this)
    monkeypatch.setattr(bench, "TEXT_TOWER_ENTRY_POINTS", ("encode_text_embeds",))
    check = quiet_check(bench)
    row = bench.measure(tiny_clap, "coop", "fp32", rounds=1, steps=1, check=check, always_profile=False)
    assert row["ratio"] is None
    assert check.failed == ["coop: text-tower calls recorded"] and check.exit_code() == 1
    assert "coop trains through the text tower" in capsys.readouterr().out


def test_palm_has_no_text_pass_and_does_not_fail(bench, tiny_clap):
    assert not bench.trains_through_text_tower("palm")
    assert (
        bench.trains_through_text_tower("coop+dept+sept") and bench.host_of("coop+dept+sept") == "coop+dept"
    )
    check = quiet_check(bench)
    row = bench.measure(tiny_clap, "palm", "fp32", rounds=1, steps=1, check=check, always_profile=False)
    assert row["ratio"] is None and row["step"] > 0
    assert check.failed == []
