"""A run's identity: what the data is and which variant of a method ran.

- **Dataset id.** A registered dataset is its name. A user's dataset (a CSV or a folder) is its
  display name (the grid's ``name``, else the file's stem) plus a fingerprint of its content: the
  listed clips of every fold (relative path, class, fold), so two ``data.csv`` files never share
  a run folder and an edited list is a new dataset.
- **Variant.** The method name, then ``@label`` for a named variant (a grid's ``coop+sept@lam2``),
  else ``@key=value,...`` listing every option that differs from the method's defaults under the
  protocol (a hash when that is long). Seeds, the backbone and evaluation-only settings are not
  options of a variant (the seed has its own folder; the same-config check guards the rest).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sept.utils.hashing import hash_json

if TYPE_CHECKING:
    from sept.data.dataset import Dataset
    from sept.training.config import RunConfig

#: config keys that are not part of a variant: what is computed on (backbone, its options, the
#: numeric precision) is part of the config (a run root holds one choice; another is a conflict),
#: not of the method's name
NOT_VARIANT = frozenset(
    {"seed", "backbone", "backbone_options", "eval_batch_size", "precision", "method", "protocol"}
)
#: longest readable ``key=value`` suffix before a hash is used instead
_MAX_READABLE = 96


def dataset_fingerprint(dataset: Dataset) -> str:
    """Hash of the clips a dataset lists in every fold: (relative path, class) of train and test."""
    cached = getattr(dataset, "_sept_fingerprint", None)
    if cached is not None:
        return cached
    listing = []
    for fold in list(dataset.folds) or [None]:
        split = dataset.split(fold)
        listing.append(
            [
                fold,
                sorted((c.relpath, c.classname) for c in split.train),
                sorted((c.relpath, c.classname) for c in split.test),
            ]
        )
    digest = hash_json(listing)
    dataset._sept_fingerprint = digest  # type: ignore[attr-defined]
    return digest


def dataset_id(dataset: Dataset) -> str:
    """The dataset's part of a run's identity (see the module doc)."""
    if getattr(dataset, "info", None) is not None:
        return dataset.name
    return f"{dataset.name}-{dataset_fingerprint(dataset)[:10]}"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _short_key(key: str) -> str:
    """``regularizers.sept.weight`` -> ``sept.weight``; ``learner.n_ctx`` stays."""
    for prefix in ("regularizers.", "head."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def options_diff(config: RunConfig, reference: RunConfig) -> dict[str, Any]:
    """Every option of ``config`` that differs from ``reference`` (dotted short keys, sorted)."""
    mine = _flatten({k: v for k, v in config.to_dict().items() if k not in NOT_VARIANT})
    ref = _flatten({k: v for k, v in reference.to_dict().items() if k not in NOT_VARIANT})
    keys = sorted(set(mine) | set(ref))
    if not config.spec.trains:  # a method that does not train has no use for the optimiser
        keys = [k for k in keys if not k.startswith("optim.")]
    return {_short_key(k): mine.get(k) for k in keys if mine.get(k) != ref.get(k)}


def variant_name(method: str, diff: Mapping[str, Any], label: str | None = None) -> str:
    """``method`` for its defaults, ``method@label`` for a named variant, else ``method@k=v,...``."""
    if label:
        return f"{method}@{label}"
    if not diff:
        return method
    parts = [
        f"{k}={json.dumps(v, separators=(',', ':')) if not isinstance(v, str) else v}"
        for k, v in diff.items()
    ]
    readable = ",".join(parts)
    if len(readable) <= _MAX_READABLE and all(c.isalnum() or c in "._+=,-" for c in readable):
        return f"{method}@{readable}"
    return f"{method}@cfg-{hash_json(dict(diff))[:10]}"


@dataclass(frozen=True)
class VariantSpec:
    """A named variant of a method (a grid's ``coop+sept@lam2``): its ``label`` (after ``@``), the
    ablation ``family`` it belongs to and the ``reference`` variant the report compares it with."""

    label: str | None = None
    family: str | None = None
    reference: str | None = None


def describe_variant(
    config: RunConfig, reference: RunConfig, spec: VariantSpec | None = None
) -> dict[str, Any]:
    """The variant record of a run: {name, label, options, family, reference}."""
    spec = spec or VariantSpec()
    diff = options_diff(config, reference)
    return {
        "name": variant_name(config.method, diff, spec.label),
        "label": spec.label,
        "options": diff,
        "family": spec.family,
        "reference": spec.reference or (config.method if spec.family else None),
    }
