"""A run folder's state: finished, to resume, of another configuration, or damaged.

- :func:`finished_results`: the results of a finished run made with the same configuration, or
  None. A run whose results or prompt are damaged (unreadable, truncated, off the schema) is not
  finished: its damaged files are moved aside (``<name>.damaged``, kept for inspection) with a
  warning naming them, so the run is trained again and the rest of a sweep goes on.
- :func:`prepare_run_dir` writes ``config.json`` when a run starts; a damaged one is replaced.
- :func:`write_results` finishes a run (results written atomically, checkpoint dropped).

The same-config check compares the hash of everything that changes what is learned
(:meth:`sept.training.config.RunConfig.training_hash`) and the content hash of the neighbour set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sept.errors import ConfigError
from sept.runs.layout import CHECKPOINT_FILE, CONFIG_FILE, PROMPT_FILE, RESULTS_FILE
from sept.runs.schema import RESULTS_FORMAT, DamagedResultsError, RunResults, read_results
from sept.utils.atomic import atomic_write_json

if TYPE_CHECKING:
    from sept.training.config import RunConfig

log = logging.getLogger(__name__)

#: keys of config.json beside the config itself
_CONFIG_EXTRAS = ("sept_version", "neighbor_set")
DAMAGED_SUFFIX = ".damaged"


class ConfigMismatchError(ConfigError):
    """A run folder holds a run of another configuration (the message names the folder)."""


def prompt_problem(directory: str | os.PathLike[str]) -> str | None:
    """Why the run's prompt file cannot be used (missing, truncated, unreadable), or None."""
    from safetensors import SafetensorError, safe_open

    path = Path(directory) / PROMPT_FILE
    if not path.is_file():
        return f"{str(path)!r} is missing"
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - not a dict
                handle.get_tensor(key)
    except (OSError, SafetensorError, RuntimeError, ValueError) as exc:
        return f"{str(path)!r} is damaged: {exc}"
    return None


def quarantine(directory: Path, reason: str, names: tuple[str, ...] = (RESULTS_FILE,)) -> None:
    """Move the damaged files ``names`` aside (``<name>.damaged``) and warn with ``reason``."""
    moved = []
    for name in names:
        path = directory / name
        if path.exists():
            os.replace(path, path.with_name(name + DAMAGED_SUFFIX))
            moved.append(name)
    log.warning("%s; the run will be trained again (moved aside: %s)", reason, ", ".join(moved) or "nothing")


def _saved_config(path: Path, data: Mapping[str, Any]) -> tuple[str, str | None]:
    """(training hash, neighbour-set hash) of a saved config mapping; ConfigError if invalid."""
    from sept.training.config import RunConfig

    config = RunConfig.from_dict({k: v for k, v in data.items() if k not in _CONFIG_EXTRAS}, source=str(path))
    neighbors = data.get("neighbor_set")
    return config.training_hash(), neighbors.get("hash") if isinstance(neighbors, dict) else None


def _check_same(
    path: Path, data: Mapping[str, Any], config: RunConfig, neighbor_hash: str | None, what: str
) -> None:
    saved_hash, saved_neighbors = _saved_config(path, data)
    if saved_hash != config.training_hash() or (
        saved_neighbors is not None and neighbor_hash is not None and saved_neighbors != neighbor_hash
    ):
        raise ConfigMismatchError(
            f"{str(path.parent)!r} holds {what} with a different configuration ({path.name}); "
            "use another --run-root, or --force to train it again"
        )


def finished_results(
    directory: str | os.PathLike[str],
    config: RunConfig,
    force: bool = False,
    neighbor_hash: str | None = None,
) -> RunResults | None:
    """The results of the finished run in ``directory`` (None: not finished, damaged, or ``force``).

    A finished run of another configuration raises :class:`ConfigError` naming the folder.
    """
    directory = Path(directory)
    path = directory / RESULTS_FILE
    if force or not path.exists():
        return None
    try:
        results = read_results(path)
        _check_same(
            path, {**results.config, "neighbor_set": results.neighbor_set}, config, neighbor_hash, "a run"
        )
    except DamagedResultsError as exc:
        quarantine(directory, str(exc))
        return None
    except ConfigMismatchError:
        raise
    except ConfigError as exc:
        quarantine(directory, f"results {str(path)!r} hold an invalid config: {exc}")
        return None
    problem = prompt_problem(directory)
    if problem is not None:
        quarantine(directory, f"finished run {str(directory)!r}: {problem}", (RESULTS_FILE, PROMPT_FILE))
        return None
    return results


def read_run_config(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The saved ``config.json`` mapping, or None when missing or damaged (a warning names it)."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("config %r is damaged (%s); it will be written again", str(path), exc)
        return None
    if not isinstance(data, dict):
        log.warning("config %r is not a JSON object; it will be written again", str(path))
        return None
    return data


def check_unfinished(
    directory: str | os.PathLike[str], config: RunConfig, neighbor_hash: str | None = None
) -> None:
    """An unfinished run in ``directory`` must have this configuration to resume (ConfigError
    otherwise); a damaged ``config.json`` is not an obstacle (it is written again)."""
    path = Path(directory) / CONFIG_FILE
    data = read_run_config(directory)
    if data is None:
        return
    try:
        _check_same(path, data, config, neighbor_hash, "an unfinished run")
    except ConfigMismatchError:
        raise
    except ConfigError as exc:
        log.warning("config %r is invalid (%s); it will be written again", str(path), exc)


def prepare_run_dir(
    directory: str | os.PathLike[str],
    config: RunConfig,
    force: bool,
    neighbor_set: Mapping[str, Any] | None = None,
) -> None:
    """Create the folder and write ``config.json`` (with the resolved neighbour set); ``force``
    clears earlier outputs first. An unfinished run of another configuration raises ConfigError."""
    from sept import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if force:
        for name in (RESULTS_FILE, PROMPT_FILE, CHECKPOINT_FILE):
            (directory / name).unlink(missing_ok=True)
    else:
        check_unfinished(directory, config, (neighbor_set or {}).get("hash"))
    data = {"sept_version": __version__, **config.to_dict()}
    if neighbor_set is not None:
        data["neighbor_set"] = dict(neighbor_set)
    atomic_write_json(directory / CONFIG_FILE, data)


def write_results(directory: str | os.PathLike[str], results: dict[str, Any]) -> Path:
    """Write the results atomically (the run is then finished) and drop the checkpoint.

    ``results`` gains its ``format`` key and is checked against the schema first, so a run never
    writes results it could not read back.
    """
    from sept.runs.schema import validate_results

    directory = Path(directory)
    results["format"] = RESULTS_FORMAT
    as_written = json.loads(json.dumps(results, default=str))
    validate_results(as_written, str(directory / RESULTS_FILE))
    path = atomic_write_json(directory / RESULTS_FILE, results)
    (directory / CHECKPOINT_FILE).unlink(missing_ok=True)
    return path
