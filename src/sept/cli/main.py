"""Entry point of the ``sept`` command: dispatches to one module per sub-command.

Each sub-command module exposes ``register(subparsers)`` that adds its parser and sets
``func=run`` where ``run(args) -> int``. Modules are imported when the parser is built, and each
keeps its heavy imports (torch, transformers) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from sept import __version__
from sept.errors import SeptError
from sept.utils.verbosity import configure_cli

#: sub-command modules under sept.cli, in the order ``sept --help`` lists them
SUBCOMMANDS = [
    "embed",
    "evaluate",
    "data",
    "run",
    "predict",
    "neighbors",
    "bench",
    "report",
    "analyze",
    "demo",
    "backbones",
    "setup",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sept", description="Generalizable prompt tuning of audio-language models (SEPT and its hosts)."
    )
    parser.add_argument("--version", action="version", version=f"sept {__version__}")
    add_verbosity_args(parser, default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"sept.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sept.cli.{name}":
                raise
            continue  # sub-command not built yet
        module.register(sub)
    for command in _all_subparsers(sub):
        add_verbosity_args(command, default=argparse.SUPPRESS)  # `sept run ... -v` as `sept -v run ...`
    return parser


def add_verbosity_args(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v`` (repeatable) and ``-q``; sub-commands default to SUPPRESS so they add to the top level's."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="say more: -v logs each epoch and each step (INFO), -vv debug messages",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="only errors and results: no warnings, no progress bars",
    )


def _all_subparsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Every sub-command parser, nested ones (``sept data check``) included."""
    out = []
    for parser in dict.fromkeys(sub.choices.values()):
        out.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                out.extend(_all_subparsers(action))
    return out


def verbosity(args: argparse.Namespace) -> int:
    """``-v`` count minus ``-q`` count."""
    return int(getattr(args, "verbose", 0) or 0) - int(getattr(args, "quiet", 0) or 0)


def _quiet_openmp_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning (must precede torch's import).

    With the default policy, torch's threads busy-wait for each other, and on a machine whose
    cores are shared (2-core CPUs, parallel sweeps) a training step runs up to 7x slower
    (benchmarks/README.md, "Threads"). A user's own setting wins.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _why(exc: OSError) -> str:
    if isinstance(exc, NotADirectoryError):
        return "a part of this path is a file, not a folder"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    return exc.strerror or str(exc)


def main(argv: list[str] | None = None) -> int:
    _quiet_openmp_threads()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_cli(verbosity(args))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SeptError as exc:
        print(f"sept {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError) as exc:
        # a path the user gave that cannot hold what sept writes (e.g. a run root that is a file)
        if exc.filename is None:
            raise
        print(f"sept {args.command}: error: cannot write {str(exc.filename)!r}: {_why(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sept ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"sept {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
