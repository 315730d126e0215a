"""``download_dataset``: fetch a benchmark dataset (``MahiA/<Name>`` on the Hugging Face Hub) into its folder.

``huggingface_hub.snapshot_download`` resumes partial downloads and skips complete files; zipped
datasets are then unzipped atomically (into a temporary folder beside the data, then renamed into
place) and a marker under ``<root>/.sept/`` records each finished zip, so a rerun after any
interruption picks up where it stopped.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import zipfile
from pathlib import Path

from sept.data.clips import is_inside
from sept.data.registry import dataset_info, default_root
from sept.errors import DataError, SeptError
from sept.utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

#: folder (inside a dataset's root) for sept's download markers and temporary files
STATE_DIR = ".sept"


class HubUnreachableError(SeptError):
    """The Hugging Face Hub could not be reached (no network, proxy, firewall)."""


def _is_connection_error(exc: BaseException) -> bool:
    """Connection failures of huggingface_hub and its HTTP clients (httpx, requests), by class name."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    markers = {
        "LocalEntryNotFoundError",  # hub unreachable and no complete local snapshot
        "OfflineModeIsEnabled",
        "ConnectError",
        "ConnectTimeout",
        "TimeoutException",
        "ProxyError",
        "ConnectionError",
        "NetworkError",
    }
    return bool(names & markers)


def _snapshot(repo_id: str, root: Path, revision: str | None) -> None:
    import huggingface_hub
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        huggingface_hub.snapshot_download(
            repo_id=repo_id, repo_type="dataset", local_dir=str(root), revision=revision
        )
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise DataError(
            f"the Hugging Face Hub ({endpoint}) has no dataset {repo_id!r} (or it is gated): {exc}"
        ) from exc
    except Exception as exc:
        if _is_connection_error(exc):
            raise HubUnreachableError(
                f"cannot reach the Hugging Face Hub at {endpoint} to download dataset {repo_id!r} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). Check the "
                "network or proxy, set HF_ENDPOINT to a reachable mirror, or download "
                f"https://huggingface.co/datasets/{repo_id} manually into {str(root)!r} (audios/, train.csv, "
                "test.csv, csv_files/); rerunning the command resumes a partial download"
            ) from exc
        if isinstance(exc, HfHubHTTPError):
            raise SeptError(f"the Hugging Face Hub refused the download of {repo_id!r}: {exc}") from exc
        raise


def _content_root(tmp: Path, dataset: str) -> Path:
    """Strip a single top-level folder that wraps the dataset (``<Name>/audios/...``, ``x/train.csv``)."""
    entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        top = entries[0]
        if top.name == dataset or (top / "audios").is_dir() or (top / "train.csv").is_file():
            return top
    return tmp


def _merge_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` by renames; an existing folder is merged, an existing file kept."""
    if not dst.exists():
        os.replace(src, dst)
        return
    if src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_move(child, dst / child.name)
        src.rmdir()


def unzip_atomic(zip_path: Path, root: Path, dataset: str, progress: bool = True) -> bool:
    """Extract ``zip_path`` into ``root`` unless its marker says it was done; True if extracted now.

    Members are extracted into ``root/.sept/unzip-<zip>/`` (never outside it), then renamed into
    ``root``; the marker is written last.
    """
    from sept.utils.verbosity import progress_bar

    rel = zip_path.relative_to(root).as_posix().replace("/", "__")
    marker = root / STATE_DIR / f"unzipped-{rel}.json"
    if marker.exists():
        return False
    tmp = root / STATE_DIR / f"unzip-{rel}"
    if tmp.exists():
        shutil.rmtree(tmp)  # a previous run stopped mid-extraction
    tmp.mkdir(parents=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            for member in progress_bar(
                len(members), f"unzipping {zip_path.name}", "file", enabled=progress, iterable=members
            ):
                target = tmp / member.filename
                if not is_inside(tmp, target):
                    raise DataError(
                        f"zip {str(zip_path)!r} member {member.filename!r} escapes the extraction folder"
                    )
                zf.extract(member, tmp)
    except zipfile.BadZipFile as exc:
        raise DataError(
            f"{str(zip_path)!r} is not a valid zip ({exc}); delete it and rerun the download to fetch it again"
        ) from exc
    content = _content_root(tmp, dataset)
    for child in sorted(content.iterdir()):
        if child.name != "__MACOSX":
            _merge_move(child, zip_path.parent / child.name)
    shutil.rmtree(tmp)
    atomic_write_json(marker, {"zip": zip_path.name, "members": len(members), "unzipped_at": time.time()})
    return True


def download_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    force: bool = False,
    delete_zips: bool = False,
    progress: bool = True,
) -> Path:
    """Download benchmark dataset ``name`` into ``root`` (default ``$SEPT_DATA_ROOT/<Name>``); returns it.

    Resumable: rerunning continues a partial download and skips finished unzips; once complete
    (marker ``.sept/download.json``) a rerun does nothing unless ``force`` (which re-verifies the
    files against the hub). ``delete_zips`` removes each zip after extraction. Raises
    :class:`HubUnreachableError` when the hub cannot be reached.
    """
    info = dataset_info(name)
    if info.hub_repo is None:
        raise DataError(
            f"dataset {info.name!r} is not on the Hugging Face Hub; put its files in a folder and pass it with --root"
        )
    folder = default_root(info.name, root)
    done = folder / STATE_DIR / "download.json"
    if done.exists() and not force:
        log.info(
            "%s is already downloaded in %s (pass force=True / --force to verify it again)", info.name, folder
        )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s", info.hub_repo, folder)
    _snapshot(info.hub_repo, folder, revision)
    zips: list[Path] = []
    if info.zipped:
        hidden = {STATE_DIR, ".cache"}
        zips = sorted(p for p in folder.rglob("*.zip") if p.relative_to(folder).parts[0] not in hidden)
        if not zips and not any((folder / STATE_DIR).glob("unzipped-*.json")):
            log.warning("dataset %s is listed as zipped but %s holds no .zip file", info.name, folder)
        for zip_path in zips:
            if unzip_atomic(zip_path, folder, info.name, progress):
                log.info("unzipped %s", zip_path)
            if delete_zips:
                zip_path.unlink()
    atomic_write_json(
        done,
        {
            "repo": info.hub_repo,
            "revision": revision,
            "zips": [z.name for z in zips],
            "finished_at": time.time(),
        },
    )
    return folder
