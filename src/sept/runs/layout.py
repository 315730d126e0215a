"""The run-folder layout and the names of the files a run folder holds.

A run folder is ``<run_root>/<protocol>/<dataset id>/fold-<k>/<variant>/shots-<K>/seed-<s>/``
(``fold-none`` for a single train/test split). The dataset id and the variant come from
:mod:`sept.runs.identity`. The folder holds

- ``config.json``: the resolved config (written when the run starts);
- ``checkpoint.safetensors``: the training state while it trains (removed once finished);
- ``prompt.safetensors``: the learned parameters (safetensors, nothing else);
- ``results.json``: the results (:mod:`sept.runs.schema`); its presence marks the run finished;
- the semantic-structure files of :mod:`sept.analysis.structure`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sept.utils.paths import safe_name

RESULTS_FILE = "results.json"
CONFIG_FILE = "config.json"
PROMPT_FILE = "prompt.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
#: folders a run root keeps beside the run folders (never searched for runs)
NOT_RUNS = frozenset({"manifests", "bench", "report", "logs"})


@dataclass(frozen=True)
class RunKey:
    """Where one run sits: protocol, dataset id, fold (None: single split), variant, shots, seed."""

    protocol: str
    dataset: str
    fold: int | None
    variant: str
    shots: int
    seed: int

    @property
    def relpath(self) -> PurePosixPath:
        """The folder relative to the run root, e.g. ``base2new/us8k-mini/fold-2/coop/shots-16/seed-0``."""
        fold_dir = "fold-none" if self.fold is None else f"fold-{self.fold}"
        return PurePosixPath(
            self.protocol,
            safe_name(self.dataset),
            fold_dir,
            _variant_dir(self.variant),
            f"shots-{self.shots}",
            f"seed-{self.seed}",
        )


def _variant_dir(variant: str) -> str:
    """A variant as one path component: ``A-Za-z0-9._+@=,-`` kept, anything else becomes ``_``."""
    import re

    return re.sub(r"[^A-Za-z0-9._+@=,-]+", "_", variant).strip("._") or "_"


def run_dir(run_root: str | os.PathLike[str], key: RunKey) -> Path:
    """The run folder of ``key`` under ``run_root``."""
    return Path(run_root) / key.relpath


def results_path(directory: str | os.PathLike[str]) -> Path:
    """The results file of a run folder."""
    return Path(directory) / RESULTS_FILE


def iter_result_files(run_root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every results file under ``run_root`` (sorted walk), outside the sweep's own folders."""
    for dirpath, dirnames, filenames in os.walk(run_root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in NOT_RUNS)
        if RESULTS_FILE in filenames:
            yield Path(dirpath) / RESULTS_FILE
