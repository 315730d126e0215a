"""Choose the yamnet-minilm label-bridge sharpening (and label template) on HELD-IN data only.

Held-in = UrbanSound8K-mini fold 1 and the FSDD clips of the first four speakers in sorted order
(the last two speakers and us8k fold 2 are test data and are never read here). For each candidate
bridge, zero-shot accuracy uses the class prompts "the sound of {readable class name}." (underscores
become spaces; FSDD class names are already words: "zero" ... "nine"). The winner maximises the mean
of the two datasets' accuracies; ties go to the earlier candidate in the printed order.

    python scripts/choose_bridge_sharpening.py [--data ../shared/data] [--out results.json]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sept.audio import load_audio
from sept.backbones.yamnet_minilm import Bridge, YamnetMiniLMBackbone
from sept.errors import DataError
from sept.utils.atomic import atomic_write_json

PROMPT = "the sound of {}."
LABEL_TEMPLATES = ("{}", "the sound of {}.")
CANDIDATES = [("power", v) for v in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)] + [
    ("topk", k) for k in (1, 3, 5, 10, 15, 20, 30, 50)
]
FSDD_TEST_SPEAKERS = 2


def readable(name: str) -> str:
    return name.replace("_", " ").strip()


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise DataError(f"metadata file {str(csv_path)!r} does not exist")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def held_in(data: Path) -> dict[str, list[tuple[Path, str]]]:
    """{dataset: [(audio path, class name)]} for us8k-mini fold 1 and FSDD train speakers."""
    us8k = [
        (data / "us8k-mini" / r["path"], r["classname"])
        for r in read_rows(data / "us8k-mini" / "metadata.csv")
        if r["fold"] == "1"
    ]
    fsdd_rows = read_rows(data / "fsdd" / "metadata.csv")
    speakers = sorted({r["speaker"] for r in fsdd_rows})
    train_speakers = set(speakers[: len(speakers) - FSDD_TEST_SPEAKERS])
    fsdd = [(data / "fsdd" / r["path"], r["classname"]) for r in fsdd_rows if r["speaker"] in train_speakers]
    print(
        f"held-in: us8k-mini fold 1 ({len(us8k)} clips); fsdd speakers {sorted(train_speakers)} ({len(fsdd)} clips)"
    )
    return {"us8k-fold1": us8k, "fsdd-train-speakers": fsdd}


def posteriors(backbone: YamnetMiniLMBackbone, clips: list[tuple[Path, str]], batch: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(clips), batch):
        waves = [
            backbone.prepare_audio(load_audio(p, backbone.sample_rate))
            for p, _ in clips[start : start + batch]
        ]
        out.append(backbone.audio_posteriors(waves))
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="folder with us8k-mini/ and fsdd/"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the table and the winner as JSON here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    backbone = YamnetMiniLMBackbone()
    print(f"backbone loaded in {time.perf_counter() - t0:.1f} s")
    sets = held_in(args.data)
    t0 = time.perf_counter()
    post = {name: posteriors(backbone, clips) for name, clips in sets.items()}
    print(
        f"YAMNet posteriors of {sum(len(c) for c in sets.values())} clips in {time.perf_counter() - t0:.1f} s"
    )

    labels_of = {name: [c for _, c in clips] for name, clips in sets.items()}
    class_feats, targets = {}, {}
    for name, labels in labels_of.items():
        classes = sorted(set(labels))
        class_feats[name] = backbone.embed_text([PROMPT.format(readable(c)) for c in classes])
        targets[name] = torch.tensor([classes.index(c) for c in labels])
    label_embeds = {t: backbone.embed_labels(t) for t in LABEL_TEMPLATES}

    rows = []
    for template in LABEL_TEMPLATES:
        for sharpening, value in CANDIDATES:
            bridge = Bridge(sharpening, float(value), template)
            accs = {}
            for name in sets:
                feats = backbone.bridge_features(post[name], bridge, label_embeds[template])
                pred = (feats @ class_feats[name].T).argmax(dim=1)
                accs[name] = float((pred == targets[name]).float().mean())
            rows.append(
                {
                    "sharpening": sharpening,
                    "value": value,
                    "template": template,
                    **accs,
                    "mean": float(np.mean(list(accs.values()))),
                }
            )

    names = list(sets)
    print(
        f"\n{'sharpening':<10} {'value':>6}  {'label template':<18}"
        + "".join(f" {n:>20}" for n in names)
        + f" {'mean':>8}"
    )
    for r in rows:
        print(
            f"{r['sharpening']:<10} {r['value']:>6g}  {r['template']!r:<18}"
            + "".join(f" {100 * r[n]:>19.2f}%" for n in names)
            + f" {100 * r['mean']:>7.2f}%"
        )
    best = max(rows, key=lambda r: r["mean"])  # first maximum wins ties
    print(
        f"\nwinner: sharpening={best['sharpening']!r} value={best['value']:g} template={best['template']!r} "
        f"(mean held-in accuracy {100 * best['mean']:.2f}%; chance us8k 10%, fsdd 10%)"
    )
    if args.out is not None:
        atomic_write_json(args.out, {"prompt": PROMPT, "rows": rows, "winner": best})
    return 0


if __name__ == "__main__":
    sys.exit(main())
