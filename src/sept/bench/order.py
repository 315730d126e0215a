"""The order a sweep hands its cells to the workers: the most work first.

Workers take cells in the order given, so a long cell handed out last keeps one worker busy while
the others idle. Handing out the longest cells first (Graham's LPT rule, as
:func:`sept.bench.estimate._pack` projects it) leaves only short cells for the end. The work of a
cell is counted, not timed: its training steps times the text-tower tokens of each step (training
classes x (context vectors + a typical prompt's 8 other tokens)), x 1.3 with SEPT's neighbour
phrases; a method that does not train counts as no work.
"""

from __future__ import annotations

from collections.abc import Sequence

from sept.bench.cells import Cell, Plan, cell_config
from sept.errors import SeptError

#: tokens of a prompt besides its context vectors ([CLS], the class name, '.', [SEP])
PROMPT_TOKENS = 8
#: SEPT's neighbour phrases per step, relative to the host's step
SEPT_FACTOR = 1.3


def cell_work(cell: Cell, plan: Plan, n_train: int, n_classes: int) -> float:
    """Relative work of training ``cell`` on ``n_train`` clips of ``n_classes`` classes."""
    from sept.training.trainer import batches_per_epoch

    config = cell_config(cell, plan)
    if not config.spec.trains:
        return 0.0
    steps = config.optim.epochs * batches_per_epoch(n_train, config.optim.batch_size)
    n_ctx = int(getattr(config.learner, "n_ctx", 0) or 0)
    work = float(steps * n_classes * (n_ctx + PROMPT_TOKENS))
    return work * SEPT_FACTOR if "sept" in config.regularizers else work


def longest_first(cells: Sequence[Cell], plan: Plan) -> list[Cell]:
    """``cells`` sorted by :func:`cell_work`, most first (ties keep the grid's order)."""
    from sept.bench.estimate import train_size

    sizes: dict[tuple, tuple[int, int]] = {}

    def size(cell: Cell) -> tuple[int, int]:
        key = (cell.protocol, cell.dataset, cell.fold, cell.shots)
        if key not in sizes:
            try:
                classes, n_train = train_size(cell, plan)
            except SeptError:  # the cell itself fails with the story in its log
                classes, n_train = [], 0
            sizes[key] = (n_train, len(classes))
        return sizes[key]

    work = {cell.id: cell_work(cell, plan, *size(cell)) for cell in cells}
    return sorted(cells, key=lambda c: -work[c.id])
