"""Train a composed method on cached audio features; evaluate it on any class names.

Deterministic for a seed: parameter init is seeded in :func:`sept.methods.build_method`; the
batch order of epoch ``e`` comes from a generator seeded by ``(seed, e)`` (so a resumed run sees
the same batches), and that generator is handed to the loss terms for any sampling they do.
The backbone stays frozen and in eval mode; only the method's parameters train. On CUDA the
forward runs under autocast (bf16 where supported, else fp16 with a gradient scaler).

On the CPU, training flushes denormal floats to zero (``torch.set_flush_denormal``) while it
runs: once the loss is small, gradients underflow into denormals, and without the flush a
CoCoOp epoch on us8k-mini slowed from 1.5 s to 70 s (with it the results were identical).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from sept.errors import ConfigError
from sept.training.checkpoint import load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from sept.methods.compose import ComposedMethod
    from sept.training.config import OptimConfig, RunConfig

log = logging.getLogger(__name__)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: full fp32)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    dtype = autocast_dtype(precision, device)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def batches_per_epoch(n_clips: int, batch_size: int) -> int:
    """Steps of one epoch over ``n_clips``: as Dassl, the last partial batch is dropped when there is
    at least one full batch."""
    return n_clips // batch_size if n_clips >= batch_size else 1


def learning_rate(epoch: int, optim: OptimConfig) -> tuple[float, bool]:
    """(base learning rate for ``epoch``, whether it is a warm-up epoch).

    Constant ``warmup_lr`` for the first ``warmup_epochs`` (all groups, as Dassl does), then
    ``lr`` (``scheduler: none``) or cosine from ``lr`` over the remaining epochs, per epoch.
    """
    if epoch < optim.warmup_epochs:
        return optim.warmup_lr, True
    if optim.scheduler == "none":
        return optim.lr, False
    span = max(1, optim.epochs - optim.warmup_epochs)
    return 0.5 * optim.lr * (1.0 + math.cos(math.pi * (epoch - optim.warmup_epochs) / span)), False


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: Any = None) -> None:
    """One optimiser step on ``loss``, through the fp16 grad ``scaler`` when there is one."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch: batch order and any sampling in the losses."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)  # any int64 seed


def build_optimizer(method: ComposedMethod, optim: OptimConfig) -> torch.optim.Optimizer:
    groups = method.param_groups(optim.lr)
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    if optim.name == "adam":
        return torch.optim.Adam(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)


@dataclass
class TrainResult:
    """history: one entry per epoch {epoch, loss, parts, lr, seconds}; resumed_from: epochs loaded."""

    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0
    seconds: float = 0.0


def _check_data(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(f"labels must be [N] with N = {features.shape[0]}, got shape {tuple(labels.shape)}")
    if features.shape[0] == 0:
        raise ValueError("no training clips")
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ValueError(
            f"labels must be in [0, {n_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )


class Trainer:
    """Fits ``method`` with ``config.optim``; checkpoints to ``checkpoint_path`` after every epoch.

    Each epoch is logged at INFO (``sept -v``) and advances a progress bar (epoch, loss) when
    ``progress`` is on and bars are shown (:mod:`sept.utils.verbosity`).
    """

    def __init__(
        self,
        method: ComposedMethod,
        config: RunConfig,
        checkpoint_path: str | os.PathLike[str] | None = None,
        *,
        progress: bool = True,
    ) -> None:
        self.method = method
        self.config = config
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.progress = progress

    @property
    def device(self) -> torch.device:
        return self.method.backbone.device

    def fit(
        self, features: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str] | None = None
    ) -> TrainResult:
        """Train on features [N, D] with labels [N] indexing ``classnames`` (default: training classes)."""
        method, cfg = self.method, self.config
        classnames = list(classnames if classnames is not None else method.train_classnames)
        _check_data(features, labels, len(classnames))
        if not method.trainable:
            log.info("method %s has no learnable parameters: nothing to train", method.spec.name)
            return TrainResult()
        device = self.device
        feats, labels = features.to(device, torch.float32), labels.to(device, torch.long)
        optimizer = build_optimizer(method, cfg.optim)
        amp_dtype = autocast_dtype(cfg.precision, device)
        scaler = (
            torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 and device.type == "cuda" else None
        )
        config_hash = cfg.training_hash()
        start, history = 0, []
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            try:
                start, history = load_checkpoint(self.checkpoint_path, method, optimizer, config_hash)
                log.info("resuming from %s after epoch %d", self.checkpoint_path, start)
            except ConfigError as exc:
                if not isinstance(exc.__cause__, FileNotFoundError):
                    raise
                # another process running the same folder finished and removed it after our check;
                # opening the file failed, so nothing was loaded: start over
                log.info(
                    "%s disappeared before it could be read; training from the start", self.checkpoint_path
                )
        result = TrainResult(history=history, resumed_from=start)
        t_start = time.perf_counter()
        method.train()
        flushing = torch.set_flush_denormal(True)
        try:
            self._epochs(optimizer, scaler, feats, labels, classnames, start, history, config_hash)
        finally:
            if flushing:
                torch.set_flush_denormal(False)
            method.eval()
        result.seconds = time.perf_counter() - t_start
        return result

    def _epochs(
        self,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        feats: torch.Tensor,
        labels: torch.Tensor,
        classnames: list[str],
        start: int,
        history: list[dict[str, Any]],
        config_hash: str,
    ) -> None:
        """Epochs ``start`` .. ``epochs - 1``; appends to ``history`` and checkpoints after each.

        As Dassl: the last partial batch is dropped when there is at least one full batch.
        """
        from sept.utils.verbosity import progress_bar

        method, cfg, optim_cfg = self.method, self.config, self.config.optim
        n, bs = feats.shape[0], optim_cfg.batch_size
        with progress_bar(
            optim_cfg.epochs,
            f"train {cfg.method} seed {cfg.seed}",
            "epoch",
            enabled=self.progress,
            initial=start,
            leave=False,
        ) as bar:
            for epoch in range(start, optim_cfg.epochs):
                entry = self._epoch(
                    epoch, optimizer, scaler, feats, labels, classnames, batches_per_epoch(n, bs)
                )
                history.append(entry)
                bar.set_postfix(loss=f"{entry['loss']:.4f}", refresh=False)
                bar.update(1)
                if self.checkpoint_path is not None:
                    save_checkpoint(
                        self.checkpoint_path,
                        method,
                        optimizer,
                        epochs_done=epoch + 1,
                        history=history,
                        config_hash=config_hash,
                    )

    def _epoch(
        self,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        feats: torch.Tensor,
        labels: torch.Tensor,
        classnames: list[str],
        n_batches: int,
    ) -> dict[str, Any]:
        """One epoch over ``n_batches`` batches; returns its history entry (and logs it at INFO)."""
        method, cfg, optim_cfg = self.method, self.config, self.config.optim
        device = feats.device
        n, bs = feats.shape[0], optim_cfg.batch_size
        t0 = time.perf_counter()
        lr, warm = learning_rate(epoch, optim_cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr if warm else lr * group.get("lr_mult", 1.0)
        gen = epoch_generator(cfg.seed, epoch)
        order = torch.randperm(n, generator=gen).to(device)
        totals: dict[str, float] = {}
        total_loss = 0.0
        seen = 0
        for b in range(n_batches):
            idx = order[b * bs : (b + 1) * bs]
            with autocast(cfg.precision, device):
                loss, parts = method.training_loss(
                    feats[idx], labels[idx], classnames, epoch=epoch, generator=gen
                )
            backward_and_step(loss, optimizer, scaler)
            k = int(idx.shape[0])
            seen += k
            total_loss += float(loss.detach()) * k
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) * k
        if not math.isfinite(total_loss):
            raise FloatingPointError(f"loss is {total_loss} in epoch {epoch + 1}; lower optim.lr?")
        entry = {
            "epoch": epoch + 1,
            "loss": total_loss / seen,
            "parts": {k: v / seen for k, v in totals.items()},
            "lr": lr,
            "seconds": time.perf_counter() - t0,
        }
        parts_text = ", ".join(f"{k} {v:.4f}" for k, v in entry["parts"].items())
        log.info(
            "epoch %d/%d loss %.4f (%s) lr %.3g %.1fs",
            epoch + 1,
            optim_cfg.epochs,
            entry["loss"],
            parts_text,
            lr,
            entry["seconds"],
        )
        return entry


def predict_logits(
    method: ComposedMethod,
    features: torch.Tensor,
    classnames: Sequence[str],
    *,
    batch_size: int = 256,
    precision: str = "auto",
) -> torch.Tensor:
    """Logits [N, C] (float32, CPU) of features [N, D] over ``classnames``, without gradients."""
    device = method.backbone.device
    method.eval()
    out = []
    with torch.inference_mode(), autocast(precision, device):
        class_feats = None if method.learner.conditional else method.class_features(classnames)
        for start in range(0, features.shape[0], batch_size):
            audio = features[start : start + batch_size].to(device, torch.float32)
            out.append(method.logits(audio, classnames, class_feats).float().cpu())
    if not out:
        return torch.zeros(0, len(classnames))
    return torch.cat(out)
