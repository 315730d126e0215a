"""Sweeps hand out the most work first (sept.bench.order); workers that die at start are replaced."""

from __future__ import annotations

from sept.bench.cells import expand
from sept.bench.order import cell_work, longest_first
from tests.test_bench_support import bench_env, make_grid

__all__ = ["bench_env"]


def test_longest_first_orders_by_counted_work(bench_env, tmp_path) -> None:
    grid = make_grid(
        bench_env,
        tmp_path / "runs",
        folds=[2],
        methods=["zeroshot", "coop", "coop+sept", {"name": "coop", "set": ["optim.epochs=6"]}, "coop+dept"],
    )
    plan, cells = expand(grid)
    ordered = longest_first(cells, plan)
    assert sorted(c.id for c in ordered) == sorted(c.id for c in cells)
    variants = [c.variant for c in ordered]
    # same steps per epoch for all (FAST: batch 4); work = epochs x (context vectors + 8) [x 1.3]:
    # coop@epochs=6 6 x 12, coop+dept 2 x 24, coop+sept 2 x 12 x 1.3, coop 2 x 12, zero-shot 0
    order = [v.split("@")[0] + ("@6" if "epochs=6" in v else "") for v in dict.fromkeys(variants)]
    assert order == ["coop@6", "coop+dept", "coop+sept", "coop", "zeroshot"]
    # equal work keeps the grid's order: seed 0 before seed 1 of the same variant
    for variant in set(variants):
        seeds = [c.seed for c in ordered if c.variant == variant]
        assert seeds == sorted(seeds)
    work = {c.id: cell_work(c, plan, 8, 4) for c in cells}
    assert all(work[c.id] == 0 for c in cells if c.method == "zeroshot")


class _BrokenPool:
    """A pool whose workers died before any cell: every submit raises."""

    def submit(self, *args, **kwargs):
        from concurrent.futures.process import BrokenProcessPool

        raise BrokenProcessPool("a worker died while loading the backbone")

    def shutdown(self, *args, **kwargs) -> None:
        pass


def test_workers_that_die_at_start_are_replaced_once_then_their_cells_fail(bench_env, tmp_path, monkeypatch):
    import sept.bench.executors as executors

    grid = make_grid(bench_env, tmp_path / "runs", folds=[2], seeds=[0], methods=["zeroshot", "coop"])
    plan, cells = expand(grid)
    monkeypatch.setattr(executors, "start_local_pool", lambda plan, workers: _BrokenPool())
    outcomes = []
    executors.run_local(cells, plan, outcomes.append, 2, pool=_BrokenPool())
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all("died twice at start" in o.error for o in outcomes)

    monkeypatch.undo()  # the replacement pool is a real one
    outcomes.clear()
    executors.run_local(cells, plan, outcomes.append, 2, pool=_BrokenPool())
    assert sorted(o.status for o in outcomes) == ["ok", "ok"]
