"""Use a tuned prompt on new clips: :func:`load_classifier` and :class:`PromptClassifier`.

    from sept.inference import load_classifier

    clf = load_classifier("runs/base2new/mine/fold-none/coop/shots-16/seed-0")
    preds = clf.predict(["a.wav", "b.wav"], ["dog bark", "siren", "church bell"])  # any class names
    preds.top_k(2)         # (names [N][2], probabilities [N, 2])
    clf.evaluate(clips)    # labelled clips: accuracy, macro-F1, per-class accuracy, confusion

A run folder holds ``prompt.safetensors`` (the learned parameters, the config and the class names it
was trained on); the classifier rebuilds the method on the backbone its config names and builds the
class prompts of *any* class names with the learned context, which is how base-to-new evaluates new
classes. Parts that exist only for the training classes do not transfer and every result says so
(:meth:`PromptClassifier.notes`): PALM's per-class vectors (an unseen class uses the frozen
class-name feature) and DePT's linear head (ignored unless every class was a training class).

Scores are softmax probabilities over the given class names of the method's logits (logit scale
times cosine, DePT's fused logits where they apply).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sept.data.clips import AUDIO_EXTENSIONS, Clip
from sept.errors import ConfigError, DataError
from sept.runs.layout import PROMPT_FILE, RESULTS_FILE

if TYPE_CHECKING:
    from sept.backbones.base import Backbone
    from sept.evaluation.metrics import ClassificationMetrics
    from sept.methods.compose import ComposedMethod
    from sept.protocols.common import FeatureOptions
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)

#: sections of a run's results whose ``prompt_names`` map raw class names to the names the prompt saw
_SECTIONS = ("base", "new", "test", "source")


@dataclass
class Predictions:
    """Class probabilities of clips over ``classnames``.

    ``probs`` [N, C] (rows sum to 1) for the N ``clips`` that could be read (input order);
    ``skipped`` the (clip, reason) of undecodable ones; ``notes`` what transfers to these classes
    and what falls back (see :meth:`PromptClassifier.notes`).
    """

    classnames: list[str]
    probs: torch.Tensor
    clips: list[Clip] = field(default_factory=list)
    skipped: list[tuple[Clip, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def top_k(self, k: int = 1) -> tuple[list[list[str]], torch.Tensor]:
        """(class names [N][k], probabilities [N, k]), best first."""
        if not 1 <= k <= len(self.classnames):
            raise ValueError(f"top-k must be between 1 and the {len(self.classnames)} classes, got {k}")
        scores, idx = self.probs.topk(k, dim=1)
        return [[self.classnames[int(i)] for i in row] for row in idx], scores

    @property
    def labels(self) -> list[str]:
        """The predicted class name of each clip [N]."""
        return [self.classnames[int(i)] for i in self.probs.argmax(dim=1)] if len(self.probs) else []


class PromptClassifier:
    """A tuned prompt as a classifier over any class names (see the module doc).

    ``method``: the rebuilt method; ``config``: its run config; ``train_classnames``: the names
    (prompt form) it was trained on; ``classnames``: the raw class names of its run (default
    classes); ``features``: how clips are embedded (feature cache, batch size, bad audio).
    """

    def __init__(
        self,
        method: ComposedMethod,
        config: RunConfig,
        *,
        run_dir: Path | None = None,
        results: dict[str, Any] | None = None,
        features: FeatureOptions | None = None,
    ) -> None:
        from sept.protocols.common import FeatureOptions

        self.method = method
        self.config = config
        self.run_dir = run_dir
        self.results = results or {}
        self.features = features or FeatureOptions()
        self.train_classnames: list[str] = list(method.train_classnames)
        self.prompt_names: dict[str, str] = {}
        for key in _SECTIONS:
            section = self.results.get(key)
            if isinstance(section, dict):
                self.prompt_names.update(section.get("prompt_names") or {})
        self.classnames: list[str] = sorted(self.prompt_names) or list(self.train_classnames)
        self.warnings: list[str] = []
        trained_on = self.results.get("backbone_identity")
        if trained_on and trained_on != self.backbone.identity:
            self.warnings.append(
                f"the prompt was trained on backbone features {trained_on}, these are {self.backbone.identity}: "
                "its predictions are not those of the run"
            )
            log.warning(self.warnings[-1])

    def __repr__(self) -> str:
        where = f"{str(self.run_dir)!r}, " if self.run_dir else ""
        return f"PromptClassifier({where}method={self.config.method!r}, backbone={self.backbone.name!r})"

    @property
    def backbone(self) -> Backbone:
        return self.method.backbone

    # ---- class names -----------------------------------------------------------------------------
    def prompt_name(self, raw: str) -> str:
        """The form of ``raw`` the prompt reads: the run's own mapping ("dog_bark" -> "dog bark"), else
        :func:`sept.data.names.readable_name`."""
        from sept.data.names import readable_name

        return self.prompt_names.get(raw) or readable_name(raw)

    def _names(
        self, classnames: Sequence[str] | None, readable: Sequence[str] | None
    ) -> tuple[list[str], list[str]]:
        names = list(classnames) if classnames is not None else list(self.classnames)
        if not names:
            raise DataError("no class names given")
        if len(set(names)) != len(names):
            raise DataError(f"class names listed twice: {sorted({n for n in names if names.count(n) > 1})}")
        prompts = list(readable) if readable is not None else [self.prompt_name(n) for n in names]
        if len(prompts) != len(names):
            raise ValueError(f"{len(names)} class names but {len(prompts)} readable names")
        shared = sorted({p for p in prompts if prompts.count(p) > 1})
        if shared:
            raise DataError(f"two classes share a prompt name {shared}: give distinct class names")
        return names, prompts

    def unseen(self, classnames: Sequence[str] | None = None) -> list[str]:
        """The classes of ``classnames`` (default: the run's) the prompt was not trained on."""
        names, prompts = self._names(classnames, None)
        trained = set(self.train_classnames)
        return [n for n, p in zip(names, prompts, strict=True) if p not in trained]

    def notes(
        self, classnames: Sequence[str] | None = None, readable: Sequence[str] | None = None
    ) -> list[str]:
        """What a result over ``classnames`` should state: the classes the prompt never saw and
        what falls back for them (PALM's frozen feature, DePT's head left out)."""
        names, prompts = self._names(classnames, readable)
        trained = set(self.train_classnames)
        new = [n for n, p in zip(names, prompts, strict=True) if p not in trained]
        notes = []
        if new:
            notes.append(
                f"{len(new)} of {len(names)} classes were not among the {len(trained)} the prompt was trained on "
                f"(class prompts built from their names with the learned context): {', '.join(new)}"
            )
        return notes + self.method.eval_notes(prompts)

    # ---- prediction ------------------------------------------------------------------------------
    def logits(
        self,
        features: torch.Tensor,
        classnames: Sequence[str] | None = None,
        readable: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Logits [N, C] of audio features [N, D] over ``classnames`` (default: the run's classes)."""
        from sept.training.trainer import predict_logits

        _, prompts = self._names(classnames, readable)
        if features.dim() != 2 or features.shape[1] != self.backbone.embed_dim:
            raise ValueError(
                f"features must be [N, {self.backbone.embed_dim}] for backbone {self.backbone.name}, "
                f"got {list(features.shape)}"
            )
        return predict_logits(
            self.method,
            features,
            prompts,
            batch_size=self.config.eval_batch_size,
            precision=self.config.precision,
        )

    def embed(self, clips: Sequence[Clip | str | os.PathLike[str]]):  # -> FeatureSet
        """The backbone's unnormalised audio features of ``clips`` (paths or :class:`~sept.data.clips.Clip`),
        as training saw them (similarities normalise them; DePT's head takes them as they are), cached;
        undecodable files skipped."""
        return self.features.extract(self.backbone, [as_clip(c) for c in clips])

    def predict(
        self,
        inputs: Sequence[Clip | str | os.PathLike[str]] | torch.Tensor,
        classnames: Sequence[str] | None = None,
        *,
        readable: Sequence[str] | None = None,
    ) -> Predictions:
        """Class probabilities of audio files (paths or clips) or features [N, D] over ``classnames``.

        ``classnames`` default to the run's classes; any names work (new ones use the learned
        context with their own names). ``readable`` gives the prompt form of each name when the
        default (:meth:`prompt_name`) is not wanted.
        """
        names, prompts = self._names(classnames, readable)
        if isinstance(inputs, torch.Tensor):
            feats, clips, skipped = inputs, [], []
        else:
            fs = self.embed(inputs)
            feats, clips, skipped = fs.features, fs.clips, fs.skipped
        logits = self.logits(feats, names, prompts) if len(feats) else torch.zeros(0, len(names))
        return Predictions(names, logits.softmax(dim=1), clips, skipped, self.notes(names, prompts))

    def evaluate(
        self,
        clips: Sequence[Clip],
        classnames: Sequence[str] | None = None,
        *,
        readable: Sequence[str] | None = None,
    ) -> tuple[Predictions, ClassificationMetrics]:
        """Predictions and metrics of labelled ``clips`` over ``classnames`` (default: their labels).

        A clip whose label is not among ``classnames``, or an evaluation in which every file was
        skipped, raises :class:`DataError`.
        """
        import numpy as np

        from sept.data.guards import check_clips, check_evaluated
        from sept.evaluation.metrics import classification_metrics

        check_clips(clips, "the clips to evaluate")
        names = list(classnames) if classnames is not None else sorted({c.classname for c in clips})
        missing = sorted({c.classname for c in clips} - set(names))
        if missing:
            raise DataError(
                f"clip label(s) {', '.join(map(repr, missing))} are not among the classes to predict "
                f"({', '.join(names)}); add them to the classes"
            )
        preds = self.predict(clips, names, readable=readable)
        check_evaluated(len(preds.clips), preds.skipped, "evaluation")
        index = {n: i for i, n in enumerate(names)}
        labels = np.array([index[c.classname] for c in preds.clips], dtype=np.int64)
        metrics = classification_metrics(labels, preds.probs.argmax(dim=1).numpy(), names)
        return preds, metrics


def as_clip(item: Clip | str | os.PathLike[str]) -> Clip:
    """A :class:`Clip` of a path (unlabelled: classname "")."""
    if isinstance(item, Clip):
        return item
    path = Path(item)
    return Clip(path.absolute(), str(item), "")


def find_prompt(run_dir: str | os.PathLike[str]) -> Path:
    """``run_dir/prompt.safetensors`` (or ``run_dir`` itself when it is that file); a folder
    without one raises :class:`ConfigError` naming run folders found under it."""
    path = Path(run_dir)
    if path.is_file():
        return path
    if (path / PROMPT_FILE).is_file():
        return path / PROMPT_FILE
    if not path.exists():
        raise ConfigError(f"run folder {str(path)!r} does not exist")
    found = sorted(p.parent for p in path.rglob(PROMPT_FILE))[:3]
    hint = f"; run folders under it: {', '.join(map(str, found))}" if found else ""
    raise ConfigError(f"{str(path)!r} holds no {PROMPT_FILE} (a finished `sept run` folder){hint}")


def load_classifier(
    run_dir: str | os.PathLike[str],
    *,
    backbone: Backbone | None = None,
    features: FeatureOptions | None = None,
) -> PromptClassifier:
    """The tuned prompt of a run folder (``RUN_ROOT/<protocol>/<dataset>/fold-<k>/<method>/shots-<K>/seed-<s>``,
    or its ``prompt.safetensors``) as a :class:`PromptClassifier`.

    ``backbone``: the frozen model (default: the one the run's config names, created here);
    ``features``: how clips are embedded (:class:`sept.protocols.common.FeatureOptions`).
    """
    from sept.training.checkpoint import load_prompt

    prompt = find_prompt(run_dir)
    method, config = load_prompt(prompt, backbone)
    results_path = prompt.parent / RESULTS_FILE
    results: dict[str, Any] = {}
    if results_path.is_file():
        try:
            results = json.loads(results_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {str(results_path)!r}: {exc}") from exc
    return PromptClassifier(method, config, run_dir=prompt.parent, results=results, features=features)


def prediction_inputs(
    source: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[list[Clip], bool]:
    """(clips, labelled) of what to predict: an audio file, a CSV ``path[,classname]``, a folder of
    audio files (unlabelled, searched recursively), or a folder per class / with train/ and test/
    sub-folders (labelled)."""
    from sept.data.clips import load_clips, read_clip_csv

    source = Path(source)
    if source.is_file():
        if source.suffix.lower() in AUDIO_EXTENSIONS:
            return [as_clip(source)], False
        clips = read_clip_csv(source, root, allow_absolute=True, require_class=False)
        return clips, all(c.classname for c in clips)
    if source.is_dir():
        exts = set(AUDIO_EXTENSIONS)
        if any(p.is_file() and p.suffix.lower() in exts for p in source.iterdir()):
            files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in exts)
            return [Clip(p, p.relative_to(source).as_posix(), "") for p in files], False
        return load_clips(source), True
    raise DataError(f"{str(source)!r} does not exist (an audio file, a CSV or a folder)")
