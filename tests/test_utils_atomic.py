"""Atomic writes give files the user's usual permissions (0o666 less the umask)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sept.utils import atomic
from sept.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_json


@pytest.fixture
def group_readable_umask() -> Iterator[int]:
    """A umask of 0o022 (files 0o644) for the test; the cached umask is re-read."""
    old = os.umask(0o022)
    atomic._umask.cache_clear()
    try:
        yield 0o644
    finally:
        os.umask(old)
        atomic._umask.cache_clear()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_safetensors_written_through_atomic_path_get_the_umask_permissions(
    tmp_path: Path, group_readable_umask: int
) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "prompt.safetensors"
    with atomic_path(path) as tmp:
        save_file({"ctx": np.zeros((2, 3), dtype=np.float32)}, str(tmp))  # recreates tmp as 0600
    assert _mode(path) == group_readable_umask
    assert [p.name for p in tmp_path.iterdir()] == ["prompt.safetensors"]  # no temporary left


def test_a_writer_that_replaces_the_temporary_file_still_gets_the_umask_permissions(
    tmp_path: Path, group_readable_umask: int
) -> None:
    path = tmp_path / "out.bin"
    with atomic_path(path) as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"data")
        os.close(fd)
    assert path.read_bytes() == b"data"
    assert _mode(path) == group_readable_umask


def test_other_atomic_writers_use_the_umask(tmp_path: Path, group_readable_umask: int) -> None:
    assert _mode(atomic_write_json(tmp_path / "a.json", {"x": 1})) == group_readable_umask
    assert _mode(atomic_write_bytes(tmp_path / "b.bin", b"x")) == group_readable_umask


def test_saved_prompt_and_semantic_structure_are_not_private(
    tmp_path: Path, group_readable_umask: int
) -> None:
    import torch

    from sept.analysis.structure import MATRICES_FILE, StructureMatrices, save_matrices

    m = StructureMatrices(
        classes=["a", "b"],
        phrases=["p", "q"],
        owner=torch.tensor([0, 1]),
        frozen=torch.eye(2),
        tuned=torch.eye(2),
    )
    save_matrices(tmp_path, m)
    assert _mode(tmp_path / MATRICES_FILE) == group_readable_umask
