"""SEPT's step cost with all neighbours (``sept.per_step=0``, the exact loss) vs sampled, on many classes.

A cost measurement, so the classes need not be real: C random two-word class names (default 50,
from a fixed word list and a seed) and a generated neighbour JSON with N phrases each (default 10:
"<name> sound k" variants of different lengths), written to a temporary folder and passed as
``sept.neighbors``. Steps of coop, coop+sept (default sampling: ``max(4, ceil(C / 8))`` phrases)
and coop+sept with ``per_step=0`` (all C x N phrases through the text tower every step) alternate
round by round; the ratios to coop are medians over rounds. No target: the figures say what the
exact loss costs against the sampled one (docs/METHOD.md; the paper-experiments issue's
sampled-vs-exact item).

    python benchmarks/bench_sept_exact.py [--backbone offline|clap|NAME] [--classes 50] [--neighbors 10]
        [--device cuda] [--precision bf16] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib

WORDS = [
    "metal",
    "wooden",
    "glass",
    "rubber",
    "paper",
    "plastic",
    "stone",
    "water",
    "electric",
    "distant",
    "heavy",
    "light",
    "rapid",
    "slow",
    "loud",
    "soft",
    "hollow",
    "sharp",
    "low",
    "high",
    "bright",
    "dull",
    "rattling",
    "buzzing",
    "humming",
    "clicking",
    "tapping",
    "rolling",
    "dripping",
    "whistling",
    "ringing",
    "scraping",
    "engine",
    "door",
    "bell",
    "drum",
    "motor",
    "fan",
    "pump",
    "chain",
    "wheel",
    "spring",
    "hammer",
    "saw",
    "brush",
    "horn",
    "siren",
    "bird",
    "insect",
    "machine",
    "train",
    "truck",
    "boat",
    "wind",
    "rain",
    "fire",
    "crowd",
    "voice",
]


def random_classes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        names.add(f"{rng.choice(WORDS)} {rng.choice(WORDS)}")
    return sorted(names)


PHRASE_WORDS = [
    "faint",
    "noise",
    "tone",
    "burst",
    "echo",
    "thud",
    "crackle",
    "murmur",
    "chime",
    "drone",
    "whir",
    "clatter",
    "rumble",
    "hiss",
    "squeak",
    "pulse",
    "beat",
    "texture",
    "swell",
    "fade",
    "tremor",
    "ripple",
    "flutter",
    "patter",
    "jingle",
    "twang",
    "boom",
    "click",
]


def neighbour_json(classes: list[str], per_class: int, seed: int, folder: Path) -> Path:
    """A neighbour set in the shipped schema: ``per_class`` distinct phrases of 2 to 6 words per
    class, from words that no class name uses (the set's rules refuse a class's own name)."""
    rng = random.Random(seed + 1)
    seen: set[str] = set()
    classes_out: dict[str, list[str]] = {}
    for c in classes:
        phrases: list[str] = []
        while len(phrases) < per_class:
            phrase = " ".join(rng.sample(PHRASE_WORDS, rng.randint(2, 6)))
            if phrase not in seen:
                seen.add(phrase)
                phrases.append(phrase)
        classes_out[c] = phrases
    data = {
        "schema_version": 1,
        "dataset": "random-classes",
        "provenance": {"source": "authored", "model": "random phrases for a cost measurement"},
        "classes": classes_out,
    }
    path = folder / "random-neighbors.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="offline")
    parser.add_argument("--classes", type=int, default=50, help="training classes (>= 30 for this check)")
    parser.add_argument("--neighbors", type=int, default=10, help="phrases per class")
    parser.add_argument("--rounds", type=int, default=None, help="default 5, quick 3")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    benchlib.add_device_args(parser)
    args = parser.parse_args()
    check = benchlib.Check(
        f"SEPT exact vs sampled ({args.backbone}, {args.classes} classes x {args.neighbors} phrases, "
        f"precision {args.precision})"
    )
    import bench_sept_cost as cost  # the step closure of the SEPT-cost benchmark
    from sept.training.config import resolve_config

    backbone = benchlib.backbone_by_name(args.backbone, args.device)
    classes = random_classes(args.classes, args.seed)
    rounds = args.rounds or (3 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="sept-bench-exact-") as tmp:
        path = neighbour_json(classes, args.neighbors, args.seed, Path(tmp))
        variants = {
            "coop": ("coop", []),
            "coop+sept (sampled)": ("coop+sept", [f"sept.neighbors={path}"]),
            "coop+sept (exact, per_step=0)": ("coop+sept", [f"sept.neighbors={path}", "sept.per_step=0"]),
        }
        fns = {}
        for name, (method, overrides) in variants.items():
            config = resolve_config(method, "base2new", overrides=overrides)
            built = config.build_method(backbone, classes)
            if "sept" in method:
                reg = built.regularizers["sept"]
                print(f"{name}: {len(reg.phrases)} phrases, {reg.pairs_per_step} per step")
            fns[name] = cost.step_fn(built, config, backbone.embed_dim, len(classes), args.precision)
            fns[name]()  # warm-up
    times: dict[str, list[float]] = {n: [] for n in fns}
    ratios: dict[str, list[float]] = {n: [] for n in fns if n != "coop"}
    for _ in range(rounds):
        got = {n: benchlib.timed(fn, repeat=2) for n, fn in fns.items()}
        for n, ts in got.items():
            times[n] += ts
        for n in ratios:
            ratios[n].append(statistics.median(got[n]) / statistics.median(got["coop"]))
    for n, ts in times.items():
        line = f"{n:32s} step median {statistics.median(ts) * 1e3:9.1f} ms over {len(ts)}"
        if n in ratios:
            line += f"; / coop {statistics.median(ratios[n]):.2f}x (rounds {', '.join(f'{r:.2f}' for r in ratios[n])})"
        print(line)
    exact = statistics.median(times["coop+sept (exact, per_step=0)"])
    sampled = statistics.median(times["coop+sept (sampled)"])
    print(f"RESULT exact / sampled step: {exact / sampled:.2f}x (no target)")
    return check.exit_code()


if __name__ == "__main__":
    sys.exit(main())
