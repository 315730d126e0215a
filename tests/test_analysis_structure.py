"""Semantic-structure matrices, retention and the Figure 1 heat maps of a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sept.analysis.heatmap import class_block_means, plot_heatmaps
from sept.analysis.structure import (
    FROZEN_TEMPLATE,
    load_matrices,
    save_matrices,
    structure_matrices,
    summarize,
)
from sept.cli.main import main
from tests.test_methods_support import configure, make_method, tiny_clap

__all__ = ["tiny_clap"]

NEIGHBORS = {
    "dog bark": ["puppy yapping", "hound howling"],
    "siren": ["police wail", "ambulance alarm"],
    "car horn": ["vehicle honk", "truck beep"],
}


def test_structure_runs_in_the_runs_precision(tiny_clap) -> None:
    method = make_method(configure("coop", ["learner.ctx_init=null"]), tiny_clap, list(NEIGHBORS))
    full = structure_matrices(method, list(NEIGHBORS), NEIGHBORS)
    low = structure_matrices(method, list(NEIGHBORS), NEIGHBORS, precision="bf16")
    for which in ("frozen", "tuned"):  # both sides in bf16: close to fp32, not equal
        a, b = getattr(full, which), getattr(low, which)
        assert not torch.equal(a, b)
        torch.testing.assert_close(b, a, atol=0.05, rtol=0)
    again = structure_matrices(method, list(NEIGHBORS), NEIGHBORS)  # fp32 again: fp32 features
    assert torch.equal(again.frozen, full.frozen) and torch.equal(again.tuned, full.tuned)


def test_frozen_matrix_is_template_cosines_and_tuned_follows_the_prompt(tiny_clap) -> None:
    method = make_method(configure("coop", ["learner.ctx_init=null"]), tiny_clap, list(NEIGHBORS))
    m = structure_matrices(method, list(NEIGHBORS), NEIGHBORS)
    assert m.frozen.shape == m.tuned.shape == (3, 6)
    assert m.owner.tolist() == [0, 0, 1, 1, 2, 2]
    fc = tiny_clap.embed_text([FROZEN_TEMPLATE.format(c) for c in NEIGHBORS])
    fp = tiny_clap.embed_text([FROZEN_TEMPLATE.format(p) for p in m.phrases])
    torch.testing.assert_close(m.frozen, fc @ fp.T, atol=1e-5, rtol=0)
    tc = method.learner.class_features(list(NEIGHBORS)).detach()
    tp = method.learner.encode_texts(m.phrases).detach()
    torch.testing.assert_close(m.tuned, tc @ tp.T, atol=1e-5, rtol=0)


def test_summary_numbers_on_a_hand_example() -> None:
    from sept.analysis.structure import StructureMatrices

    frozen = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    m = StructureMatrices(["a", "b"], ["a1", "b1"], torch.tensor([0, 1]), frozen, frozen * 2)
    s = summarize(m)
    assert s["retention"] == pytest.approx(1.0)
    assert s["intra_cos_frozen"] == pytest.approx(0.85) and s["inter_cos_frozen"] == pytest.approx(0.15)
    assert s["intra_cos_tuned"] == pytest.approx(1.7)
    flipped = StructureMatrices(["a", "b"], ["a1", "b1"], torch.tensor([0, 1]), frozen, -frozen)
    assert summarize(flipped)["retention"] == pytest.approx(-1.0)
    assert summarize(m, rows=[1])["intra_cos_frozen"] == pytest.approx(0.8)
    assert class_block_means(m, "frozen").flatten().tolist() == pytest.approx([0.9, 0.1, 0.2, 0.8])


def test_matrices_round_trip_and_analyze_cli_writes_pngs(tiny_clap, tmp_path: Path, capsys) -> None:
    method = make_method(configure("coop"), tiny_clap, list(NEIGHBORS))
    run = tmp_path / "runs" / "base2new" / "toy" / "fold-none" / "coop" / "shots-2" / "seed-0"
    m = structure_matrices(method, list(NEIGHBORS), NEIGHBORS)
    save_matrices(run, m)
    back = load_matrices(run)
    assert back.classes == m.classes and back.phrases == m.phrases
    torch.testing.assert_close(back.tuned, m.tuned)
    png = plot_heatmaps(back, tmp_path / "fig.png", "toy")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["analyze", str(tmp_path / "runs")]) == 0
    assert (run / "semantic_structure.png").stat().st_size > 10_000
    assert "retention" in capsys.readouterr().out
    assert main(["analyze", str(tmp_path / "nothing-here")]) == 2


def test_analyze_names_a_run_whose_prompt_is_truncated(tiny_clap, tmp_path: Path, capsys) -> None:
    from safetensors.torch import save_file

    method = make_method(configure("coop"), tiny_clap, list(NEIGHBORS))
    runs = [tmp_path / "runs" / f"seed-{s}" for s in (0, 1)]
    for run in runs:
        save_matrices(run, structure_matrices(method, list(NEIGHBORS), NEIGHBORS))
        save_file({"ctx": torch.zeros(4, 8)}, str(run / "prompt.safetensors"))
    damaged = runs[1] / "prompt.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-9])
    assert main(["analyze", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    assert f"{runs[1]}: skipped, damaged" in out and "retention" in out  # the other run is analysed
