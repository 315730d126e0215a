"""``sept data download`` up to the network boundary: ``snapshot_download`` is replaced by fakes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import huggingface_hub
import numpy as np
import pytest
import soundfile as sf
from huggingface_hub.errors import LocalEntryNotFoundError

from sept.cli.main import main
from sept.data import get_dataset
from sept.data.download import HubUnreachableError, download_dataset
from sept.errors import DataError


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(800) / 5.0)).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


class FakeHub:
    """Writes what the hub would put in ``local_dir``: the CSVs and (for zipped sets) one zip."""

    def __init__(self, top: str | None = "VocalSound", members: list[str] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.top = top
        self.members = members or ["audios/cough_1.wav", "audios/sigh_1.wav"]

    def __call__(self, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        local = Path(kwargs["local_dir"])
        (local / "train.csv").write_text("path,classname\naudios/cough_1.wav,Cough\n")
        (local / "test.csv").write_text("path,classname\naudios/sigh_1.wav,Sigh\n")
        prefix = f"{self.top}/" if self.top else ""
        with zipfile.ZipFile(local / "audios.zip", "w") as zf:
            for m in self.members:
                zf.writestr(prefix + m, _wav_bytes())
        return str(local)


def test_download_unzips_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    root = tmp_path / "VocalSound"
    assert download_dataset("VocalSound", root, progress=False) == root
    assert hub.calls == [
        {"repo_id": "MahiA/VocalSound", "repo_type": "dataset", "local_dir": str(root), "revision": None}
    ]
    assert (root / "audios" / "cough_1.wav").is_file()  # the zip's top folder "VocalSound/" stripped
    assert not (root / "VocalSound").exists()
    assert (root / ".sept" / "download.json").is_file()
    assert not list((root / ".sept").glob("unzip-*"))  # temporary folder removed
    split = get_dataset("VocalSound", root).split()
    assert split.readable == ("cough",) and split.test[0].path.is_file()

    # complete: a rerun does not touch the hub
    download_dataset("VocalSound", root, progress=False)
    assert len(hub.calls) == 1
    # --force verifies against the hub again but does not unzip twice
    (root / "audios" / "cough_1.wav").write_bytes(b"kept")
    download_dataset("VocalSound", root, force=True, progress=False)
    assert len(hub.calls) == 2 and (root / "audios" / "cough_1.wav").read_bytes() == b"kept"


def test_interrupted_unzip_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeHub(top=None))
    root = tmp_path / "NS-Instruments"
    stale = root / ".sept" / "unzip-audios.zip"
    stale.mkdir(parents=True)
    (stale / "half-written.wav").write_bytes(b"partial")
    download_dataset("NS-Instruments", root, progress=False, delete_zips=True)
    assert sorted(p.name for p in (root / "audios").iterdir()) == ["cough_1.wav", "sigh_1.wav"]
    assert not stale.exists() and not (root / "audios.zip").exists()
    assert not (root / "half-written.wav").exists()


def test_failed_download_leaves_no_completion_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> str:
        Path(kwargs["local_dir"], "train.csv").write_text("path,classname\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(huggingface_hub, "snapshot_download", broken)
    root = tmp_path / "SESA"
    with pytest.raises(KeyboardInterrupt):
        download_dataset("SESA", root, progress=False)
    assert not (root / ".sept" / "download.json").exists()
    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    download_dataset("SESA", root, progress=False)  # rerun resumes (the hub client skips finished files)
    assert len(hub.calls) == 1 and (root / ".sept" / "download.json").exists()
    assert (root / "audios.zip").exists() and not (root / "audios").exists()  # SESA is not a zipped set


def test_zip_member_escaping_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeHub(top=None, members=["../../evil.wav"]))
    with pytest.raises(DataError, match="escapes the extraction folder"):
        download_dataset("VocalSound", tmp_path / "VocalSound", progress=False)
    assert not (tmp_path / "evil.wav").exists()


def _unreachable(**kwargs: Any) -> str:
    raise LocalEntryNotFoundError(
        "An error happened while trying to locate the files on the Hub, and we cannot find the appropriate "
        "snapshot folder for the specified revision on the local disk. Please check your internet connection."
    )


class ConnectError(Exception):
    """Stands for httpx's ConnectError (matched by class name, whatever the HTTP client)."""


def _connect_error(**kwargs: Any) -> str:
    raise ConnectError("[Errno -2] Name or service not known")


@pytest.mark.parametrize("fake", [_unreachable, _connect_error])
def test_hub_unreachable_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: Any) -> None:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    root = tmp_path / "ESC50"
    with pytest.raises(HubUnreachableError) as info:
        download_dataset("ESC50", root, progress=False)
    msg = str(info.value)
    assert "cannot reach the Hugging Face Hub" in msg and "MahiA/ESC50" in msg
    assert "HF_ENDPOINT" in msg and str(root) in msg


def test_cli_download_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _unreachable)
    assert main(["data", "download", "CREMA-D", "--root", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "sept data: error: cannot reach the Hugging Face Hub" in err and "HF_ENDPOINT" in err
    assert main(["data", "download", "fsdd", "--root", str(tmp_path / "f")]) == 2
    assert "not on the Hugging Face Hub" in capsys.readouterr().err
    assert main(["data", "download", "nope", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_cli_download_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeHub())
    monkeypatch.setenv("SEPT_DATA_ROOT", str(tmp_path))
    assert main(["data", "download", "VocalSound"]) == 0
    assert (tmp_path / "VocalSound" / "audios" / "sigh_1.wav").is_file()
    assert "sept data check VocalSound" in capsys.readouterr().out
