"""Report tables on hand-made results.json files: means, spreads, averages and deltas by hand."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sept.errors import DataError
from sept.report.aggregate import group_runs, sept_host
from sept.report.build import build_report
from sept.report.collect import collect_run_root, find_results
from sept.report.tables import build_tables


def write_result(
    root: Path, protocol: str, dataset: str, fold, method: str, seed: int, summary: dict, shots: int = 16
):
    folder = (
        root
        / protocol
        / dataset
        / ("fold-none" if fold is None else f"fold-{fold}")
        / method
        / f"shots-{shots}"
        / f"seed-{seed}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "format": "sept-results/2",
        "protocol": protocol,
        "dataset": dataset,
        "dataset_id": dataset,
        "fold": fold,
        "method": method,
        "variant": {"name": method, "label": None, "options": {}},
        "shots": shots,
        "seed": seed,
        "backbone": "yamnet-minilm",
        "config": {"method": method},
        "train": {},
        "summary": summary,
    }
    if protocol == "base2new":
        data.update(base_classes=[], new_classes=[])
        data.update({k: {"accuracy": summary[k]} for k in ("base", "new") if k in summary})
    elif protocol == "fewshot":
        data["test"] = {"accuracy": summary.get("accuracy")}
    else:
        data["source"] = {"accuracy": summary.get("source")}
        data["targets"] = {t: {"accuracy": v} for t, v in summary.get("targets", {}).items()}
    (folder / "results.json").write_text(json.dumps(data))
    save_file({"ctx": torch.zeros(2)}, str(folder / "prompt.safetensors"))
    return folder


def h(b: float, n: float) -> float:
    return 2 * b * n / (b + n)


#: (dataset, fold, method, seed) -> (base, new)
B2N = {
    ("A", 1, "coop", 0): (80.0, 40.0),
    ("A", 2, "coop", 0): (70.0, 50.0),
    ("A", 1, "coop", 1): (60.0, 30.0),
    ("A", 2, "coop", 1): (90.0, 20.0),
    ("A", 1, "coop+sept", 0): (78.0, 60.0),
    ("A", 2, "coop+sept", 0): (72.0, 50.0),
    ("A", 1, "coop+sept", 1): (66.0, 40.0),
    ("A", 2, "coop+sept", 1): (80.0, 44.0),
    ("B", None, "coop", 0): (50.0, 25.0),
    ("B", None, "coop", 1): (54.0, 35.0),
    ("B", None, "coop+sept", 0): (52.0, 45.0),
    ("B", None, "coop+sept", 1): (50.0, 41.0),
}


@pytest.fixture
def b2n_root(tmp_path: Path) -> Path:
    for (dataset, fold, method, seed), (b, n) in B2N.items():
        write_result(tmp_path, "base2new", dataset, fold, method, seed, {"base": b, "new": n, "h": h(b, n)})
    (tmp_path / "manifests" / "A").mkdir(parents=True)
    (tmp_path / "manifests" / "A" / "results.json").write_text("{}")  # not a run: never collected
    return tmp_path


def per_seed(dataset: str, method: str, metric: int | str) -> list[float]:
    """Hand computation: per seed, the mean over folds of base (0), new (1) or 'h'."""
    out = []
    for seed in (0, 1):
        vals = [v for (d, _, m, s), v in B2N.items() if (d, m, s) == (dataset, method, seed)]
        out.append(statistics.fmean(h(*v) if metric == "h" else v[metric] for v in vals))
    return out


def test_only_run_folders_are_collected(b2n_root):
    assert len(find_results(b2n_root)) == len(B2N)
    assert {r.protocol for r in collect_run_root(b2n_root)} == {"base2new"}


def test_dataset_means_average_folds_per_seed_then_seeds(b2n_root):
    groups = {(g.key.dataset, g.key.method): g for g in group_runs(collect_run_root(b2n_root))}
    a = groups[("A", "coop")]
    assert a.per_seed["base"] == {0: 75.0, 1: 75.0}
    assert a.stats["base"].mean == pytest.approx(75.0) and a.stats["base"].std == pytest.approx(0.0)
    assert a.per_seed["new"] == {0: 45.0, 1: 25.0}
    assert a.stats["new"].mean == pytest.approx(35.0)
    assert a.stats["new"].std == pytest.approx(statistics.stdev([45.0, 25.0]))
    # H: the mean of the runs' own H values, not H of the mean Base and New
    assert a.stats["h"].mean == pytest.approx(statistics.fmean(per_seed("A", "coop", "h")))
    assert a.stats["h"].mean != pytest.approx(h(75.0, 35.0))
    assert a.folds == ("1", "2") and a.seeds == (0, 1)
    assert groups[("B", "coop+sept")].folds == ("none",)


def test_average_row_is_the_mean_of_per_dataset_means(b2n_root):
    tables = {t.key: t for t in build_tables(group_runs(collect_run_root(b2n_root)))}
    avg = tables["base2new-average"]
    assert avg.columns == ["Method", "Base", "New", "H", "Datasets"]
    rows = {r[0]: r for r in avg.rows}
    for method in ("coop", "coop+sept"):
        for col, metric in ((1, 0), (2, 1), (3, "h")):
            a, b = per_seed("A", method, metric), per_seed("B", method, metric)
            assert rows[method][col].mean == pytest.approx((statistics.fmean(a) + statistics.fmean(b)) / 2)
            per_seed_avg = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
            assert rows[method][col].std == pytest.approx(statistics.stdev(per_seed_avg))
        assert rows[method][4] == 2


def test_sept_table_pairs_hosts_with_deltas(b2n_root):
    tables = {t.key: t for t in build_tables(group_runs(collect_run_root(b2n_root)))}
    sept = tables["base2new-sept"]
    assert sept.columns[:5] == ["Dataset", "Host", "Base host", "Base +SEPT", "ΔBase"]
    rows = {r[0]: r for r in sept.rows}
    assert set(rows) == {"A", "B", "Average (2)"}
    new_host, new_sept = (
        statistics.fmean(per_seed("B", "coop", 1)),
        statistics.fmean(per_seed("B", "coop+sept", 1)),
    )
    assert rows["B"][5].mean == pytest.approx(new_host) and rows["B"][6].mean == pytest.approx(new_sept)
    assert rows["B"][7].value == pytest.approx(new_sept - new_host)
    avg_delta_h = statistics.fmean(
        statistics.fmean(per_seed(d, "coop+sept", "h")) - statistics.fmean(per_seed(d, "coop", "h"))
        for d in "AB"
    )
    assert rows["Average (2)"][10].value == pytest.approx(avg_delta_h)


def test_written_formats_agree(b2n_root, tmp_path):
    out = tmp_path / "out"
    report = build_report(b2n_root, out, plots=False, echo=lambda s: None)
    assert report.runs == len(B2N)
    table = next(t for t in report.tables if t.key == "base2new")
    rows = list(csv.reader(io.StringIO((out / "tables" / "base2new.csv").read_text())))
    assert rows[0][:4] == ["Dataset", "Method", "Base", "Base std"]
    a_coop = next(r for r in rows if r[:2] == ["A", "coop"])
    assert float(a_coop[4]) == pytest.approx(35.0) and float(a_coop[5]) == pytest.approx(
        statistics.stdev([45, 25])
    )
    md = (out / "report.md").read_text()
    assert "| A | coop | 75.00 ± 0.00 | 35.00 ± 14.14 |" in md
    tex = (out / "tables" / "base2new.tex").read_text()
    assert "\\begin{tabular}{llrrrrrl}" in tex and "coop+sept" in tex and "$\\pm$" in tex
    assert "$\\Delta$Base" in (out / "tables" / "base2new-sept.tex").read_text()
    page = report.html.read_text()
    assert page.count("<table") == len(report.tables) and "75.00 ± 0.00" in page
    assert table.rows[0][0] == "A"


def test_fewshot_and_xd_tables(tmp_path):
    for seed, (acc, f1) in enumerate([(60.0, 50.0), (70.0, 66.0)]):
        write_result(tmp_path, "fewshot", "A", None, "palm", seed, {"accuracy": acc, "macro_f1": f1}, shots=4)
        write_result(
            tmp_path, "fewshot", "A", None, "palm", seed, {"accuracy": acc + 10, "macro_f1": f1}, shots=8
        )
    write_result(
        tmp_path,
        "xd",
        "ESC50",
        1,
        "coop",
        0,
        {"source": 90.0, "targets": {"B": 40.0, "C": 20.0}, "mean_target": 30.0},
    )
    tables = {t.key: t for t in build_tables(group_runs(collect_run_root(tmp_path)))}
    few = tables["fewshot"]
    assert few.columns[:3] == ["Dataset", "Method", "K"]  # two shot counts: a K column
    by_k = {r[2]: r for r in few.rows}
    assert by_k[4][3].mean == pytest.approx(65.0) and by_k[8][3].mean == pytest.approx(75.0)
    assert by_k[4][4].std == pytest.approx(statistics.stdev([50.0, 66.0]))
    xd = tables["xd"]
    assert xd.columns[:6] == ["Source", "Method", "Source", "B", "C", "Mean target"]
    assert [v.mean for v in xd.rows[0][2:6]] == [90.0, 40.0, 20.0, 30.0]


def test_unreadable_results_are_left_out_with_a_warning(b2n_root, caplog):
    bad = write_result(b2n_root, "base2new", "C", None, "coop", 0, {"base": 1.0})  # no new, no h
    assert any(bad.name in str(p.parent) for p in find_results(b2n_root))
    records = collect_run_root(b2n_root)
    assert len(records) == len(B2N)
    assert "summary.new is not a finite number" in caplog.text and "results.json" in caplog.text


def test_empty_run_root_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no finished run"):
        build_report(tmp_path, plots=False)


def test_sept_host_names():
    assert sept_host("coop+sept") == "coop"
    assert sept_host("kgcoop+sept+dept") == "kgcoop+dept"
    assert sept_host("coop") is None and sept_host("sept") is None


def test_retention_is_reported_when_runs_record_it(tmp_path):
    for seed, retention in enumerate([0.5, 0.7]):
        folder = write_result(
            tmp_path, "base2new", "A", None, "coop", seed, {"base": 60.0, "new": 40.0, "h": 48.0}
        )
        data = json.loads((folder / "results.json").read_text())
        data["semantic_structure"] = {"all": {"retention": retention}, "neighbor_set": "A"}
        (folder / "results.json").write_text(json.dumps(data))
    write_result(tmp_path, "base2new", "A", None, "zeroshot", 0, {"base": 50.0, "new": 50.0, "h": 50.0})
    tables = {t.key: t for t in build_tables(group_runs(collect_run_root(tmp_path)))}
    per_dataset = tables["base2new"]
    assert per_dataset.columns[-4:] == ["Retention", "Seeds", "Folds", "Time/run"]
    rows = {r[1]: r for r in per_dataset.rows}
    assert rows["coop"][5].mean == pytest.approx(0.6) and rows["coop"][5].std == pytest.approx(
        statistics.stdev([0.5, 0.7])
    )
    assert rows["zeroshot"][5] is None and "| – |" in per_dataset.to_markdown()


def test_files_left_out_are_summed_and_listed(b2n_root, tmp_path):
    folder = write_result(
        b2n_root, "base2new", "C", None, "coop", 0, {"base": 50.0, "new": 40.0, "h": h(50, 40)}
    )
    data = json.loads((folder / "results.json").read_text())
    data["train"] = {"num_skipped": 2}
    data["base"]["num_skipped"] = 0
    data["new"]["num_skipped"] = 3
    (folder / "results.json").write_text(json.dumps(data))
    xd = write_result(
        b2n_root, "xd", "A", 1, "coop", 0, {"source": 90.0, "targets": {"B": 40.0}, "mean_target": 40.0}
    )
    data = json.loads((xd / "results.json").read_text())
    data["targets"]["B"]["num_skipped"] = 4
    (xd / "results.json").write_text(json.dumps(data))

    records = {r.path.parent: r for r in collect_run_root(b2n_root)}
    assert records[folder].skipped == {"train": 2, "new": 3} and records[folder].num_skipped == 5
    assert records[xd].skipped == {"target:B": 4}
    assert sum(r.num_skipped for r in records.values()) == 9  # the other runs left nothing out

    said: list[str] = []
    report = build_report(b2n_root, tmp_path / "out", plots=False, echo=said.append)
    assert any("2 run(s) left 9 undecodable audio file(s)" in s for s in said)
    md = report.markdown.read_text()
    assert "| base2new/C/fold-none/coop/shots-16/seed-0 | train 2, new 3 | 5 |" in md
    assert "| xd/A/fold-1/coop/shots-16/seed-0 | target:B 4 | 4 |" in md
    assert "Files left out" in report.html.read_text()


def test_report_without_skipped_files_has_no_such_section(b2n_root, tmp_path):
    report = build_report(b2n_root, tmp_path / "out", plots=False, echo=lambda s: None)
    assert "left out" not in report.markdown.read_text() and "Files left out" not in report.html.read_text()


def test_folds_are_counted_time_per_run_shown_and_palm_fallback_noted(tmp_path):
    """Folds is a count (not "1,2"), Time/run is the mean train.seconds, PALM's fallback is stated."""
    note = "palm: 2 of 2 classes were not trained on and use the frozen class-name feature g(c)"
    for fold, seconds in ((1, 10.0), (2, 14.0)):
        folder = write_result(
            tmp_path, "base2new", "A", fold, "palm", 0, {"base": 60.0, "new": 40.0, "h": 48.0}
        )
        data = json.loads((folder / "results.json").read_text())
        data["train"] = {"seconds": seconds}
        data["new"]["notes"] = [f"{note}: x, y"]
        (folder / "results.json").write_text(json.dumps(data))
    write_result(tmp_path, "base2new", "A", 1, "zeroshot", 0, {"base": 50.0, "new": 50.0, "h": 50.0})
    tables = {t.key: t for t in build_tables(group_runs(collect_run_root(tmp_path)))}
    per_dataset = tables["base2new"]
    rows = {r[1]: dict(zip(per_dataset.columns, r, strict=True)) for r in per_dataset.rows}
    assert rows["palm"]["Folds"] == 2 and rows["zeroshot"]["Folds"] == 1
    assert rows["palm"]["Time/run"] == "12.0 s" and rows["zeroshot"]["Time/run"] is None
    for table in (per_dataset, tables["base2new-average"]):
        text = table.to_markdown()
        assert f"Note, palm (A): {note}: x, y." in text
