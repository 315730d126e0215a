"""End-to-end on the real sets of ../shared/data (skipped when absent, e.g. on a fresh clone)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from sept.cli.main import main
from sept.data import few_shot_manifest, get_dataset, manifest_clips
from sept.data.check import check_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED / "us8k-mini" / "metadata.csv").is_file(), reason="../shared/data not present"
    ),
]


def _metadata(name: str) -> list[dict[str, str]]:
    with open(SHARED / name / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_us8k_mini_check_table(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _metadata("us8k-mini")
    per_fold = Counter((r["fold"], r["classname"]) for r in rows)
    assert main(["data", "check", "us8k-mini", "--root", str(SHARED / "us8k-mini"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} files checked" in out
    for fold, other in (("1", "2"), ("2", "1")):
        block = out.split(f"fold {fold}:", 1)[1]
        for classname in {r["classname"] for r in rows}:
            m = re.search(rf"{classname}\s*│[^│]*│\s*(\d+)\s*│\s*(\d+)\s*│", block)
            assert m and (int(m.group(1)), int(m.group(2))) == (
                per_fold[other, classname],
                per_fold[fold, classname],
            )


def test_fsdd_speaker_disjoint_and_clean() -> None:
    rows = _metadata("fsdd")
    ds = get_dataset("fsdd", SHARED / "fsdd")
    split = ds.split()
    speakers = sorted({r["speaker"] for r in rows})
    assert {c.fold for c in split.test} == set(speakers[-2:])
    assert len(split.test) == sum(r["speaker"] in speakers[-2:] for r in rows)
    assert split.classnames == tuple(str(d) for d in range(10)) and split.readable[0] == "zero"
    assert check_dataset(ds).ok


def test_us8k_mini_manifest(tmp_path: Path) -> None:
    split = get_dataset("us8k-mini", SHARED / "us8k-mini").split()
    m, _ = few_shot_manifest(split, shots=16, seed=0, run_root=tmp_path)
    clips = manifest_clips(m, split)
    assert len(clips) == 160 and all(c.fold == "1" and c.path.is_file() for c in clips)
