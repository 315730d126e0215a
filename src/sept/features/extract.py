"""Embed a list of clips with a frozen audio tower, through the feature cache.

Decoding, resampling and the backbone's front end (``Backbone.audio_inputs``: mel spectrograms,
patches) run in a thread pool (soundfile, soxr, numpy and torch release the GIL) and overlap with
the model; only a bounded number of batches is decoded ahead, so memory does not grow with
the dataset. Cache entries are written by a background thread, also overlapped with
the model; features are cached batch by batch, so an interrupted run resumes where it stopped.
A cache miss is claimed before it is computed (:mod:`sept.features.claims`); a clip whose entry
another process (or thread) has claimed is set aside and, once this call holds no claim of its own,
waited for and read from the cache, so two processes sharing a cache never compute an entry twice.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from sept.audio.io import cannot_read
from sept.audio.ranged import load_window
from sept.backbones.base import Backbone
from sept.data.clips import Clip
from sept.errors import AudioDecodeError
from sept.features.cache import FeatureCache, as_stored, default_cache_dir
from sept.features.claims import Claim
from sept.utils.hashing import hash_bytes, hash_file
from sept.utils.verbosity import progress_bar

log = logging.getLogger(__name__)

OnBadAudio = Literal["skip", "fail"]
#: files larger than this are hashed in chunks instead of being read into memory (any file longer
#: than the window, whatever its size, is decoded only where the window keeps it)
LONG_FILE_BYTES = 32 << 20


@dataclass
class FeatureSet:
    """Features of the clips that could be embedded.

    features: [N, D] float32, L2-normalised, or the backbone's unnormalised features when extracted
    with ``raw=True`` ([0, D] when extracted with ``keep_features=False``);
    clips: the N clips in the same order (input order, minus skipped ones); skipped: (clip, reason)
    for each file that could not be decoded or gave non-finite features, in input order.
    """

    features: torch.Tensor
    clips: list[Clip]
    skipped: list[tuple[Clip, str]] = field(default_factory=list)
    cache_hits: int = 0
    computed: int = 0


@dataclass
class _Loaded:
    index: int
    key: str
    cached: np.ndarray | None = None
    inputs: Any = None  # the audio tower's input (Backbone.audio_inputs)
    error: str | None = None
    claim: Claim | None = None  # held while this clip's entry is computed and written
    deferred: bool = False  # another holder claimed the entry: wait for it once we hold no claim


def _load_one(
    index: int, clip: Clip, backbone: Backbone, cache: FeatureCache | None, wait: bool = False
) -> _Loaded:
    """Read, hash, look up the cache; on a miss claim the entry, decode, fit and compute the
    tower's input. A miss claimed by another holder comes back ``deferred`` (with ``wait``: the
    claim is waited for, then the cache read again).

    A file over :data:`LONG_FILE_BYTES` is hashed in chunks (not held in memory), and any file
    longer than the backbone's window is decoded only where the window keeps it
    (:func:`~sept.audio.ranged.load_window`), so memory does not grow with the length of a recording.
    """
    path = Path(clip.path)
    try:
        data = None if path.stat().st_size > LONG_FILE_BYTES else path.read_bytes()
        key = hash_file(path) if data is None else hash_bytes(data)
    except OSError as exc:
        return _Loaded(index, "", error=cannot_read(path, exc).reason)
    claim = None
    if cache is not None:
        vec = cache.get(key)
        if vec is None:
            claim = cache.claim(key, wait)
            if claim is None:
                return _Loaded(index, key, deferred=True)
            vec = cache.get(key)  # written by the holder we may have waited for
        if vec is not None:
            if claim is not None:
                claim.release()
            return _Loaded(index, key, cached=vec)
    try:
        # only the span the window keeps is decoded when the file (by bytes or by decoded
        # length: a 2-hour silent FLAC is a megabyte) is longer than the window
        wave = load_window(path, backbone.sample_rate, backbone.window, data=data)
        inputs = backbone.audio_inputs(backbone.prepare_audio(wave))
    except AudioDecodeError as exc:
        if claim is not None:
            claim.release()
        return _Loaded(index, key, error=exc.reason)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    return _Loaded(index, key, inputs=inputs, claim=claim)


def _release(items: Sequence[_Loaded]) -> None:
    """Release the claims ``items`` still hold (work abandoned by an error)."""
    for item in items:
        if item.claim is not None:
            item.claim.release()
            item.claim = None


def _load_chunk(
    indices: range, clips: Sequence[Clip], backbone: Backbone, cache: FeatureCache | None
) -> list[_Loaded]:
    loaded: list[_Loaded] = []
    try:
        for i in indices:
            loaded.append(_load_one(i, clips[i], backbone, cache))
    except BaseException:
        _release(loaded)
        raise
    return loaded


def _prefetch(
    clips: Sequence[Clip], backbone: Backbone, cache: FeatureCache | None, workers: int, chunk: int
) -> Iterator[list[_Loaded]]:
    """Yield chunks of loaded clips in order, keeping at most ``2 * workers`` chunks in flight.

    Chunks loaded but never yielded (the caller stopped on an error) have their claims released.
    """
    pending: deque[Future[list[_Loaded]]] = deque()
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sept-decode") as pool:
            starts = iter(range(0, len(clips), chunk))

            def submit_next() -> None:
                start = next(starts, None)
                if start is not None:
                    part = range(start, min(start + chunk, len(clips)))
                    pending.append(pool.submit(_load_chunk, part, clips, backbone, cache))

            for _ in range(2 * workers):
                submit_next()
            while pending:
                done = pending.popleft().result()
                submit_next()
                yield done
    finally:  # the pool has shut down: every pending future is finished or cancelled
        for future in pending:
            if not future.cancelled() and future.exception() is None:
                _release(future.result())


def _put_all(cache: FeatureCache, entries: list[tuple[str, np.ndarray]], claims: list[Claim]) -> None:
    """Write the entries, then release their claims (a waiting process then finds them)."""
    try:
        for key, vec in entries:
            cache.put(key, vec)
    finally:
        for held in claims:
            held.release()


def default_workers() -> int:
    """Decoding threads: one per core, at least 1, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def extract_features(
    backbone: Backbone,
    clips: Sequence[Clip],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    use_cache: bool = True,
    batch_size: int = 32,
    workers: int | None = None,
    on_bad_audio: OnBadAudio = "skip",
    progress: bool = True,
    keep_features: bool = True,
    raw: bool = False,
) -> FeatureSet:
    """Normalised audio features [N, D] for ``clips``, computed once and cached.

    The cache keeps the backbone's unnormalised features (:meth:`Backbone.embed_audio_inputs_raw`)
    as unit vector and norm; ``raw=True`` returns them unnormalised (DePT's head acts on those).

    ``on_bad_audio="skip"`` leaves undecodable files out (listed in ``skipped`` with the reason);
    ``"fail"`` raises :class:`AudioDecodeError` naming the first bad file.
    ``keep_features=False`` only fills the cache (as ``sept embed`` needs): memory then stays flat
    however many clips there are, and the result's ``features`` is empty ([0, D]) while ``clips``,
    ``skipped`` and the counts are reported as usual.
    """
    if on_bad_audio not in ("skip", "fail"):
        raise ValueError(f"on_bad_audio must be 'skip' or 'fail', got {on_bad_audio!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cache = None
    if use_cache:
        settings = {"backbone": backbone.name, **backbone.identity_settings()}
        cache = FeatureCache(
            cache_dir or default_cache_dir(), backbone.identity, settings, backbone.embed_dim, with_norm=True
        )
    # rows are written in place as batches finish: memory holds the features once, never a list
    # of per-clip arrays plus a stacked copy
    out = np.empty((len(clips) if keep_features else 0, backbone.embed_dim), dtype=np.float32)
    filled = np.zeros(len(clips), dtype=bool)
    bad: dict[int, str] = {}  # input index -> reason
    hits = computed = 0
    todo: list[_Loaded] = []
    writes: deque[Future[None]] = deque()  # one cache-writing task per batch, at most a few in flight

    def skip(index: int, reason: str) -> None:
        if on_bad_audio == "fail":
            raise AudioDecodeError(clips[index].path, reason)
        log.warning("skipping %s: %s", clips[index].path, reason)
        bad[index] = reason

    def flush() -> None:
        nonlocal computed
        if not todo:
            return
        claims = [item.claim for item in todo if item.claim is not None]
        for item in todo:
            item.claim = None  # handed to the writer, which releases them after writing
        try:
            with torch.inference_mode():
                feats = backbone.embed_audio_inputs_raw([item.inputs for item in todo]).float().cpu().numpy()
            entries: list[tuple[str, np.ndarray]] = []
            for item, vec in zip(todo, feats, strict=True):
                if not np.isfinite(vec).all():  # the audio tower overflowed on this clip
                    skip(item.index, "the audio tower gave non-finite features (NaN or inf) for it")
                    continue
                if not float(vec @ vec) > 0:
                    skip(item.index, "the audio tower gave an all-zero feature for it")
                    continue
                vec = as_stored(vec)  # bit-identical to what a later cache hit returns
                filled[item.index] = True
                if keep_features:
                    out[item.index] = vec
                entries.append((item.key, vec))
                computed += 1
        except BaseException:
            for held in claims:
                held.release()
            raise
        todo.clear()
        if cache is not None and (entries or claims):
            writes.append(writer.submit(_put_all, cache, entries, claims))
        while writes and (writes[0].done() or len(writes) > 4):
            writes.popleft().result()  # re-raises a failed write (e.g. a full disk)

    def take(item: _Loaded) -> None:
        nonlocal hits
        if item.error is not None:
            skip(item.index, item.error)
        elif item.cached is not None:
            filled[item.index] = True
            if keep_features:
                out[item.index] = item.cached
            item.cached = None
            hits += 1
        elif item.deferred:
            deferred.append(item.index)
        else:
            todo.append(item)
            if len(todo) >= batch_size:
                flush()

    def drain() -> None:
        flush()
        while writes:
            writes.popleft().result()

    deferred: list[int] = []  # clips whose entries other holders were computing
    current: list[_Loaded] = []  # the items being taken (their claims are released on an error)
    bar = progress_bar(len(clips), f"embed [{backbone.name}]", "clip", enabled=progress)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sept-cache-write") as writer:
        try:
            for chunk in _prefetch(clips, backbone, cache, workers or default_workers(), batch_size):
                current = chunk
                for item in chunk:
                    take(item)
                bar.update(len(chunk))
            drain()
            # every claim of ours is released now, so waiting cannot deadlock with another process
            # waiting for ours; an entry its holder did not write (it died) is computed here, one
            # at a time so that no claim is held while waiting for the next
            for index in deferred:
                current = [_load_one(index, clips[index], backbone, cache, wait=True)]
                take(current[0])
                drain()
        finally:
            _release([*todo, *current])  # an error before their batch was embedded
    bar.close()
    kept = np.flatnonzero(filled).tolist()
    if not keep_features:
        feats = torch.from_numpy(out)  # [0, D]
    else:
        feats = torch.from_numpy(out if len(kept) == len(clips) else out[filled])
        if not raw:
            feats = torch.nn.functional.normalize(feats, dim=-1)
    skipped = [(clips[i], reason) for i, reason in sorted(bad.items())]
    return FeatureSet(feats, [clips[i] for i in kept], skipped, hits, computed)
