"""Library manners: the ``sept`` logger only, -v/-q on the CLI, progress bars, quiet third parties."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sept.bench.logs import cell_log
from sept.cli.main import main
from sept.training.trainer import Trainer
from sept.utils import verbosity
from sept.utils.verbosity import (
    LOGGER_NAME,
    configure_cli,
    level_for,
    progress_bar,
    progress_bars_disabled,
    set_progress_bars,
)
from tests.test_bench_support import bench_env, make_grid
from tests.test_methods_support import CLASSES, configure, make_method, separable_features, tiny_clap

__all__ = ["bench_env", "tiny_clap"]

SRC = str(Path(__file__).resolve().parents[1] / "src")


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so tqdm draws its bars into it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging():
    """Leave the ``sept`` logger and the progress switch as the test found them."""
    logger = logging.getLogger(LOGGER_NAME)
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    set_progress_bars(True)


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _redraw_every_update(make):
    """``progress_bar`` without tqdm's 0.1 s redraw throttle (tiny runs finish faster)."""
    return lambda *args, **kwargs: make(*args, mininterval=0, **kwargs)


def test_levels_of_the_cli_flags():
    assert [level_for(v) for v in (-2, -1, 0, 1, 2, 3)] == [
        logging.ERROR,
        logging.ERROR,
        logging.WARNING,
        logging.INFO,
        logging.DEBUG,
        logging.DEBUG,
    ]


def test_the_cli_leaves_the_root_logger_alone_and_keeps_request_logs_quiet():
    """``sept -v`` shows sept's INFO lines; the root logger gets no handler, httpx stays quiet."""
    code = (
        "import logging, sys\n"
        "from sept.cli.main import main\n"
        "main(sys.argv[1:])\n"
        "logging.getLogger('httpx').info('HTTP Request: POST http://x/v1/chat')\n"
        "logging.getLogger('sept.features.extract').info('a sept info line')\n"
        "print('root handlers', len(logging.getLogger().handlers), logging.getLogger().level)\n"
    )
    proc = _python(code, "-v", "backbones")
    assert proc.returncode == 0, proc.stderr
    assert "a sept info line" in proc.stderr
    assert "HTTP Request" not in proc.stderr
    assert f"root handlers 0 {logging.WARNING}" in proc.stdout
    quiet = _python(code, "backbones")
    assert "a sept info line" not in quiet.stderr  # default: warnings and errors only


def test_configure_cli_twice_keeps_one_handler(capsys):
    configure_cli(0)
    configure_cli(1)
    logger = logging.getLogger(LOGGER_NAME)
    assert sum(type(h).__name__ == "_CliHandler" for h in logger.handlers) == 1
    logging.getLogger("sept.x").info("once")
    assert capsys.readouterr().err.count("once") == 1


def test_minus_q_hides_warnings_and_progress_bars(capsys):
    configure_cli(-1)
    logging.getLogger("sept.x").warning("a warning")
    logging.getLogger("sept.x").error("an error")
    err = capsys.readouterr().err
    assert "a warning" not in err and "an error" in err
    assert progress_bar(3, "x", "it", file=_Terminal()).disable


def _run_argv(tmp_path: Path, model: str) -> list[str]:
    from tests.test_methods_support import make_tone_dataset

    data = make_tone_dataset(tmp_path / "tones", per_class=4, folds=2)
    return [
        "run", "--protocol", "fewshot", "--method", "coop", "--dataset", str(data), "--fold", "2",
        "--seeds", "0", "--shots", "2", "--run-root", str(tmp_path / "runs"),
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
        "--backbone", "clap", "--backbone-opt", f"model={model}", "--set", "optim.epochs=3",
    ]  # fmt: skip


def test_sept_run_prints_epoch_lines_only_with_v(tmp_path, tiny_clap, capsys):
    model = tiny_clap.model_id
    argv = _run_argv(tmp_path, model)
    plain = _python("import sys\nfrom sept.cli.main import main\nsys.exit(main(sys.argv[1:]))", *argv)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "epoch 1/3" not in plain.stderr and "fewshot" in plain.stdout
    assert main([*argv, "--force", "-v"]) == 0  # -v after the sub-command, as users type it
    err = capsys.readouterr().err
    assert "epoch 1/3 loss" in err and "epoch 3/3 loss" in err


def test_training_shows_a_progress_bar_with_epoch_and_loss(tiny_clap, monkeypatch):
    feats, labels = separable_features(tiny_clap.embed_dim, len(CLASSES), per_class=2)
    config = configure("coop", ["optim.epochs=3"])
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(verbosity, "progress_bar", _redraw_every_update(verbosity.progress_bar))
    Trainer(make_method(config, tiny_clap), config).fit(feats, labels)
    drawn = terminal.getvalue()
    assert "train coop seed 0" in drawn and "3/3" in drawn and "loss=" in drawn

    hidden = _Terminal()
    monkeypatch.setattr(sys, "stderr", hidden)
    with progress_bars_disabled():
        Trainer(make_method(config, tiny_clap), config).fit(feats, labels)
    Trainer(make_method(config, tiny_clap), config, progress=False).fit(feats, labels)
    assert hidden.getvalue() == ""


def test_a_sweep_counts_its_cells_in_a_progress_bar(bench_env, tmp_path, monkeypatch):
    from sept.bench import sweep

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sweep, "progress_bar", _redraw_every_update(verbosity.progress_bar))
    lines: list[str] = []
    grid = make_grid(bench_env, tmp_path / "runs", methods=["zeroshot"], seeds=[0])
    result = sweep.run_sweep(grid, echo=lines.append)
    assert not result.failed and len(lines) == 4  # the plan, the features, two cells (2 folds)
    drawn = terminal.getvalue()
    assert "tiny:" in drawn and "2/2" in drawn and "cell" in drawn


def test_a_cell_log_uses_the_sept_logger_not_the_root_logger(tmp_path):
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    path = tmp_path / "cell.log"
    with cell_log(path, "cell-1"):
        assert (list(root.handlers), root.level) == before
        logging.getLogger("sept.training.trainer").info("epoch 1/1 loss 0.1")
        logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    text = path.read_text()
    assert "epoch 1/1 loss 0.1" in text and "HTTPS" not in text
