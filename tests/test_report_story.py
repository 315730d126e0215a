"""The report's story on hand-made results: side-by-side New, paired seed differences, the generated sentence."""

from __future__ import annotations

import statistics

import pytest

from sept.report.aggregate import group_runs
from sept.report.build import build_report
from sept.report.collect import collect_run_root
from sept.report.story import paired, pretty, tell
from tests.test_report_tables import h, write_result

#: (dataset, method, seed) -> (base, new); dataset T has a tradeoff, dataset U has none
RUNS = {
    ("T", "zeroshot", 0): (40.0, 30.0),
    ("T", "zeroshot", 1): (40.0, 30.0),
    ("T", "zeroshot", 2): (40.0, 30.0),
    ("T", "coop", 0): (70.0, 24.0),
    ("T", "coop", 1): (72.0, 25.0),
    ("T", "coop", 2): (68.0, 23.0),
    ("T", "coop+sept", 0): (69.0, 28.0),
    ("T", "coop+sept", 1): (71.0, 27.0),
    ("T", "coop+sept", 2): (68.0, 29.0),
    ("T", "kgcoop", 0): (60.0, 31.0),
    ("T", "kgcoop", 1): (61.0, 29.0),
    ("T", "kgcoop", 2): (62.0, 30.5),
    ("T", "kgcoop+sept", 0): (60.0, 31.0),
    ("T", "kgcoop+sept", 1): (61.0, 29.0),
    ("T", "kgcoop+sept", 2): (62.0, 30.5),
    ("U", "zeroshot", 0): (50.0, 60.0),
    ("U", "zeroshot", 1): (50.0, 60.0),
    ("U", "coop", 0): (70.0, 65.0),
    ("U", "coop", 1): (72.0, 66.0),
    ("U", "coop+sept", 0): (71.0, 64.0),
    ("U", "coop+sept", 1): (70.0, 67.0),
}


@pytest.fixture
def root(tmp_path):
    for (dataset, method, seed), (b, n) in RUNS.items():
        write_result(tmp_path, "base2new", dataset, 2, method, seed, {"base": b, "new": n, "h": h(b, n)})
    return tmp_path


def diffs(dataset: str, a: str, b: str, metric: int | str) -> list[float]:
    seeds = sorted({s for (d, m, s) in RUNS if d == dataset and m == a})
    value = (lambda bn: h(*bn)) if metric == "h" else (lambda bn: bn[metric])
    return [value(RUNS[(dataset, b, s)]) - value(RUNS[(dataset, a, s)]) for s in seeds]


def test_pretty_names():
    assert pretty("coop+dept+sept") == "CoOp+DePT+SEPT" and pretty("kgcoop") == "KgCoOp"
    assert pretty("coop@optim.epochs=50") == "CoOp (optim.epochs=50)"


def test_differences_are_paired_by_seed(root):
    groups = {(g.key.dataset, g.key.method): g for g in group_runs(collect_run_root(root))}
    d = paired(groups[("T", "coop")], groups[("T", "coop+sept")], "new")
    expected = diffs("T", "coop", "coop+sept", 1)
    assert d.mean == pytest.approx(statistics.fmean(expected)) and d.std == pytest.approx(
        statistics.stdev(expected)
    )
    assert d.n == 3


def test_sentence_reports_the_tradeoff_and_what_sept_changes(root):
    story = tell(group_runs(collect_run_root(root)))
    assert [s.dataset for s in story.datasets] == ["T", "U"]
    t, u = story.sentences
    # T: CoOp drops New by 6 points (std 1) below zero-shot's 30% and gains Base; KgCoOp does not
    drop = diffs("T", "zeroshot", "coop", 1)
    assert "a Base-New tradeoff is present" in t
    assert (
        f"CoOp gains Base but loses New (−{-statistics.fmean(drop):.1f} ± {statistics.stdev(drop):.1f} points)"
        in t
    )
    assert "against zero-shot (Base 40.0%, New 30.0%)" in t and "KgCoOp +0.2 ± 1.0 is not below" in t
    gain = diffs("T", "coop", "coop+sept", 1)
    share = 100 * statistics.fmean(gain) / -statistics.fmean(drop)
    assert (
        f"{statistics.fmean(gain):+.1f} ± {statistics.stdev(gain):.1f} (CoOp, {share:.0f}% of its drop)" in t
    )
    dh = diffs("T", "coop", "coop+sept", "h")
    assert f"H by {statistics.fmean(dh):+.1f} ± {statistics.stdev(dh):.1f} (CoOp)" in t
    assert "+0.0 ± 0.0 (KgCoOp)" in t and "1 of 2 hosts gains New beyond the seed spread" in t
    assert t.startswith("On T (16 shots, 3 seeds)")
    # U: CoOp is above zero-shot on New: no tradeoff, and the sentence says so with the numbers
    assert "no Base-New tradeoff appears" in u and "CoOp +5.5 ± 0.7" in u and "2 seeds" in u
    assert "no host's New changes beyond the seed spread" in u and "% of its drop" not in u


def test_side_by_side_table_and_report(root):
    groups = group_runs(collect_run_root(root))
    table = tell(groups).table()
    assert table.columns[:7] == [
        "Dataset",
        "Host",
        "New zero-shot",
        "New host",
        "New +SEPT",
        "ΔNew host − zero-shot",
        "ΔNew SEPT",
    ]
    row = next(r for r in table.rows if r[:2] == ["T", "CoOp"])
    assert [row[2].mean, row[3].mean, row[4].mean] == pytest.approx([30.0, 24.0, 28.0])
    assert row[5].value == pytest.approx(-6.0) and row[5].std == pytest.approx(1.0)
    assert row[6].value == pytest.approx(statistics.fmean(diffs("T", "coop", "coop+sept", 1)))
    report = build_report(root, root / "out", plots=False, echo=lambda s: None)
    assert report.story.sentences == tell(groups).sentences
    md = (root / "out" / "report.md").read_text()
    assert md.index("the tradeoff and SEPT, side by side") < md.index("Base-to-new: per dataset")
    assert report.story.sentences[0] in md and "| T | CoOp | 30.00 ± 0.00 | 24.00 ± 1.00 |" in md
    csv_text = (root / "out" / "tables" / "story-base2new.csv").read_text()
    assert "ΔNew host − zero-shot,ΔNew host − zero-shot std" in csv_text.splitlines()[0]
    page = report.html.read_text()
    assert page.index("The Base-New Tradeoff at a glance") < page.index("Base-to-new: per dataset")


def test_no_story_without_zero_shot_or_sept_pairs(tmp_path):
    write_result(tmp_path, "base2new", "A", 2, "coop", 0, {"base": 1.0, "new": 2.0, "h": h(1.0, 2.0)})
    write_result(tmp_path, "base2new", "A", 2, "zeroshot", 0, {"base": 1.0, "new": 2.0, "h": h(1.0, 2.0)})
    story = tell(group_runs(collect_run_root(tmp_path)))
    assert story.datasets == [] and story.table() is None and story.section() is None
