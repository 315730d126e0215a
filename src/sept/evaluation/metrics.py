"""Classification metrics from predictions: accuracy, macro-F1, per-class accuracy, confusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ClassificationMetrics:
    """Accuracy and macro-F1 in percent; ``confusion[i][j]`` counts true class i predicted as j."""

    accuracy: float
    macro_f1: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]
    classnames: list[str]
    num_clips: int

    def to_dict(self) -> dict:
        return asdict(self)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] int64 counts: rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def classification_metrics(
    labels: np.ndarray, preds: np.ndarray, classnames: list[str]
) -> ClassificationMetrics:
    """Metrics for integer ``labels`` [N] and ``preds`` [N] over ``classnames`` (index = label).

    Macro-F1 averages the F1 of the classes present in ``labels`` (a class absent from the test
    set would otherwise count as 0); per-class accuracy is recall, reported for present classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} differ in shape")
    cm = confusion_matrix(labels, preds, len(classnames))
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(len(classnames)), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(len(classnames)), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(classnames)), where=denom > 0)
    n = int(labels.size)
    return ClassificationMetrics(
        accuracy=100.0 * float(tp.sum()) / n if n else 0.0,
        macro_f1=100.0 * float(f1[present].mean()) if present.any() else 0.0,
        per_class_accuracy={c: 100.0 * float(recall[i]) for i, c in enumerate(classnames) if present[i]},
        confusion=cm.tolist(),
        classnames=list(classnames),
        num_clips=n,
    )


def harmonic_mean(base: float, new: float) -> float:
    """H = 2 * Base * New / (Base + New) (0 when both are 0)."""
    return 2 * base * new / (base + new) if base + new > 0 else 0.0
