"""A dataset as a table of clips: from a CSV ``path,classname[,fold]`` or a folder per class."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sept.errors import DataError

#: extensions taken as audio when scanning a folder per class
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")


@dataclass(frozen=True)
class Clip:
    """One labelled clip. ``path`` is absolute; ``relpath`` is as written in the dataset; ``fold`` is
    the fold (or group, e.g. a speaker) the clip belongs to, when the table gives one."""

    path: Path
    relpath: str
    classname: str
    fold: str | None = None


def is_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True when ``path`` lies under ``root`` once ``..`` and ``.`` are resolved (lexically).

    Symlinks are not followed: a link the dataset's owner put inside the root (audio kept on
    another disk) is allowed, while a listed path such as ``../../etc/x`` or an absolute path
    elsewhere is not.
    """
    return _under(_normabs(root), path)


def _normabs(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.path.abspath(path))


def _under(root_norm: str, path: str | os.PathLike[str]) -> bool:
    full = _normabs(path)
    return full == root_norm or full.startswith(root_norm.rstrip(os.sep) + os.sep)


_inside = is_inside


def read_clip_csv(
    csv_path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    class_column: str = "classname",
    fold_column: str = "fold",
    allow_escaping: bool = False,
    allow_absolute: bool = False,
    require_class: bool = True,
) -> list[Clip]:
    """Read a CSV with columns ``path`` and ``classname`` (optional ``fold``).

    Paths are relative to ``root`` (default: the CSV's folder). A path that escapes ``root``, a
    missing column or an empty field raises :class:`DataError` naming the file, line and field.
    ``class_column`` / ``fold_column`` read the label / fold (or group) from other columns;
    ``allow_escaping=True`` keeps escaping rows instead of raising (for ``sept data check``,
    which reports them and never opens them). ``allow_absolute=True`` accepts absolute paths
    anywhere (a user's own list; the metadata of a downloaded dataset stays inside its root).
    ``require_class=False`` reads a list without a class column (unlabelled clips, classname "").
    """
    csv_path = Path(csv_path)
    base = Path(root) if root is not None else csv_path.parent
    base_norm = _normabs(base)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot read CSV {str(csv_path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV {str(csv_path)!r} is not UTF-8 text: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    labelled = require_class or class_column in fields
    needed = ("path", class_column) if labelled else ("path",)
    missing = [c for c in needed if c not in fields]
    if missing:
        raise DataError(
            f"CSV {str(csv_path)!r} lacks column(s) {', '.join(missing)}; it has: {', '.join(fields) or '(none)'}"
        )
    clips = []
    for line_no, row in enumerate(reader, start=2):
        if None in row:
            raise DataError(
                f"CSV {str(csv_path)!r} line {line_no}: more fields than the header's {len(fields)}"
            )
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        for col in needed:
            if not row.get(col):
                raise DataError(f"CSV {str(csv_path)!r} line {line_no}: empty field {col!r}")
        full = (base / row["path"]) if not os.path.isabs(row["path"]) else Path(row["path"])
        absolute_ok = allow_absolute and os.path.isabs(row["path"])
        if not allow_escaping and not absolute_ok and not _under(base_norm, full):
            raise DataError(
                f"CSV {str(csv_path)!r} line {line_no}: path {row['path']!r} escapes the dataset root {str(base)!r}"
            )
        classname = row[class_column] if labelled else ""
        clips.append(Clip(full, row["path"], classname, row.get(fold_column) or None))
    if not clips:
        raise DataError(f"CSV {str(csv_path)!r} lists no clips")
    return clips


def scan_class_folders(
    root: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[Clip]:
    """A folder per class: ``root/<classname>/**/<file>``; files sorted for determinism."""
    root = Path(root)
    exts = {e.lower() for e in extensions}
    clips = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(class_dir.rglob("*")):
            if f.is_file() and f.suffix.lower() in exts:
                clips.append(Clip(f, f.relative_to(root).as_posix(), class_dir.name))
    if not clips:
        raise DataError(
            f"folder {str(root)!r} has no class sub-folders with audio files ({', '.join(sorted(exts))})"
        )
    return clips


def is_audiofolder(root: str | os.PathLike[str]) -> bool:
    """True for the audiofolder layout: ``root/train/<classname>/...`` and ``root/test/<classname>/...``."""
    root = Path(root)
    train, test = root / "train", root / "test"
    return (
        train.is_dir()
        and test.is_dir()
        and any(p.is_dir() and not p.name.startswith(".") for p in train.iterdir())
    )


def scan_audiofolder(
    root: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[Clip]:
    """The audiofolder layout: a folder per class under ``root/train`` and ``root/test``.

    ``fold`` is ``"train"`` or ``"test"`` and ``relpath`` is relative to ``root``
    (``train/dog/1.wav``). Other sub-folders (``validation``) are not read.
    """
    root = Path(root)
    clips = []
    for side in ("train", "test"):
        for clip in scan_class_folders(root / side, extensions):
            clips.append(Clip(clip.path, f"{side}/{clip.relpath}", clip.classname, side))
    return clips


def load_clips(source: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[Clip]:
    """Clips from a user's CSV file (absolute paths allowed), a folder per class, or an audiofolder
    (``train/`` and ``test/`` folders per class; each clip's ``fold`` is then ``train`` or ``test``)."""
    source = Path(source)
    if source.is_file():
        return read_clip_csv(source, root, allow_absolute=True)
    if source.is_dir():
        return scan_audiofolder(source) if is_audiofolder(source) else scan_class_folders(source)
    raise DataError(f"dataset source {str(source)!r} is neither a CSV file nor a folder")


def class_names(clips: Iterable[Clip]) -> list[str]:
    """Sorted unique class names (labels are indices into this list, as in the benchmark)."""
    return sorted({c.classname for c in clips})
