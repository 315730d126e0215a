"""Where cells run: in this process, in a local process pool, or as Ray tasks.

Every executor calls :func:`sept.bench.cells.execute_cell` once per cell and hands each
:class:`~sept.bench.cells.Outcome` to ``on_done`` as soon as the cell ends (in completion order).
A cell that raises is reported as failed by ``execute_cell`` itself; an executor only turns
infrastructure failures (a worker process killed, a Ray node lost) into failed outcomes, and
the sweep goes on with the other cells.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sept.bench.cells import Cell, Outcome, Plan, execute_cell
from sept.errors import ConfigError

if TYPE_CHECKING:
    from sept.bench.grid import ExecutorSettings

log = logging.getLogger(__name__)

OnDone = Callable[[Outcome], None]


def default_workers(settings: ExecutorSettings, backbone_options: dict) -> int:
    """Local worker processes: ``cores // threads`` on the CPU; 1 when the backbone may sit on a GPU
    (``device`` cuda, or unset while CUDA is available: one process then owns the GPU)."""
    device = str(backbone_options.get("device") or "")
    if device.startswith("cuda"):
        return 1
    if device in ("", "auto"):
        import torch

        if torch.cuda.is_available():
            return 1
    return max(1, (os.cpu_count() or 1) // max(1, settings.threads))


def run_serial(cells: Sequence[Cell], plan: Plan, on_done: OnDone) -> None:
    """One cell after the other in this process (the backbone loaded once, here)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        for cell in cells:
            on_done(execute_cell(cell, plan))
    finally:
        torch.set_num_threads(threads)


def _init_worker(threads: int, plan: Plan) -> None:
    """Process-pool initializer: torch threads, then this worker's backbone for ``plan`` (loaded
    while the main process embeds the clips). A backbone that fails to load here is loaded again
    by the first cell, whose log then tells why."""
    import torch

    torch.set_num_threads(threads)
    logging.captureWarnings(True)
    from sept.bench.cells import worker_state

    try:
        worker_state(plan)
    except Exception:  # the first cell retries and reports it
        log.debug("backbone not loaded at worker start", exc_info=True)


def start_local_pool(plan: Plan, workers: int) -> Any:  # -> ProcessPoolExecutor
    """``workers`` spawned processes that start loading the backbone now (one idle task each makes
    the pool spawn them all); :func:`run_local` then runs the cells on them."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(plan.threads, plan),
    )
    for _ in range(workers):
        pool.submit(os.getpid)
    return pool


def run_local(
    cells: Sequence[Cell], plan: Plan, on_done: OnDone, workers: int, pool: Any | None = None
) -> None:
    """``workers`` spawned processes, each loading the backbone once and reading the feature cache
    (``pool``: one from :func:`start_local_pool`, already loading; shut down here).

    If a worker dies (killed, out of memory), the pool breaks: its unfinished cells go to a new
    pool, once; a cell caught in a second break is reported failed.
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    todo = list(cells)
    breaks: dict[str, int] = {}
    broken_starts = 0
    while todo:
        if pool is None:
            pool = start_local_pool(plan, min(workers, len(todo)))
        try:
            futures = {pool.submit(execute_cell, cell, plan): cell for cell in todo}
        except BrokenProcessPool as exc:  # a worker died before any cell (e.g. loading the backbone)
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
            broken_starts += 1
            if broken_starts < 2:
                log.warning("a worker process died at start (%s); starting new workers", exc)
                continue
            for cell in todo:
                on_done(Outcome(cell.id, "failed", error=f"worker processes died twice at start: {exc}"))
            return
        todo = []
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = futures[future]
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:
                        breaks[cell.id] = breaks.get(cell.id, 0) + 1
                        if breaks[cell.id] < 2:
                            todo.append(cell)
                            continue
                        outcome = Outcome(cell.id, "failed", error=f"worker process died twice: {exc}")
                    on_done(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        pool = None
        if todo:
            log.warning("a worker process died; running %d unfinished cell(s) in a new pool", len(todo))


def run_ray(
    cells: Sequence[Cell], plan: Plan, on_done: OnDone, settings: ExecutorSettings, workers: int | None
) -> None:
    """One Ray task per cell (``num_cpus``/``num_gpus`` each), gathered as they finish.

    ``settings.address``: an existing cluster ("auto", "ray://host:10001", ...); None starts a
    local Ray instance (``workers`` CPUs) for this sweep. On a cluster, every node needs sept and
    the data, and the run root must be on storage all nodes share.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the Ray executor needs Ray: pip install 'ray>=2.9'") from exc

    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, **dict(settings.ray_init)}
        if settings.address:
            ray.init(address=settings.address, **kwargs)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
        started = True
    refs: dict = {}
    try:
        task = ray.remote(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, max_retries=0)(execute_cell)
        refs = {task.remote(cell, plan): cell for cell in cells}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                cell = refs.pop(ref)
                try:
                    on_done(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    on_done(Outcome(cell.id, "failed", error=f"Ray task failed: {type(exc).__name__}: {exc}"))
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def runs_in_this_process(settings: ExecutorSettings, plan: Plan, workers: int | None = None) -> bool:
    """Whether :func:`run_cells` will run the cells here (serial, or local with one worker)."""
    if settings.kind == "serial":
        return True
    if settings.kind == "local":
        return local_workers(settings, plan, workers) == 1
    return False


def local_workers(settings: ExecutorSettings, plan: Plan, workers: int | None = None) -> int:
    """How many processes the local executor runs."""
    return workers or settings.workers or default_workers(settings, plan.backbone_options)


def run_cells(
    cells: Sequence[Cell],
    plan: Plan,
    on_done: OnDone,
    settings: ExecutorSettings,
    workers: int | None = None,
    pool: Any | None = None,
) -> None:
    """Dispatch to the executor ``settings.kind`` ("serial", "local" or "ray"); ``pool``: the local
    executor's processes if already started (:func:`start_local_pool`)."""
    if settings.kind not in ("serial", "local", "ray"):
        raise ConfigError(f"unknown executor {settings.kind!r}; executors: serial, local, ray")
    if runs_in_this_process(settings, plan, workers):
        run_serial(cells, plan, on_done)
    elif settings.kind == "local":
        run_local(cells, plan, on_done, local_workers(settings, plan, workers), pool)
    else:
        run_ray(cells, plan, on_done, settings, workers or settings.workers)
