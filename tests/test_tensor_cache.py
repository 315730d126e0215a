"""sept.utils.tensor_cache: computed once, read back, recomputed when damaged."""

from __future__ import annotations

import torch

from sept.utils.tensor_cache import cached_tensor


def test_kept_read_back_and_recomputed_when_damaged(tmp_path, caplog) -> None:
    path = tmp_path / "c" / "t.safetensors"
    calls: list[int] = []

    def compute() -> torch.Tensor:
        calls.append(1)
        return torch.arange(6.0).reshape(2, 3)

    first = cached_tensor(path, "t", (2, 3), compute)
    assert torch.equal(cached_tensor(path, "t", (2, 3), compute), first) and len(calls) == 1
    assert torch.equal(cached_tensor(path, "t", (3, 2), lambda: first.T.contiguous()), first.T)  # other shape
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with caplog.at_level("WARNING"):
        assert torch.equal(cached_tensor(path, "t", (3, 2), lambda: first.T.contiguous()), first.T)
    assert "damaged" in caplog.text and str(path) in caplog.text


def test_non_finite_values_are_not_served(tmp_path) -> None:
    path = tmp_path / "t.safetensors"
    cached_tensor(path, "t", (2,), lambda: torch.tensor([1.0, float("nan")]))
    assert torch.equal(cached_tensor(path, "t", (2,), lambda: torch.ones(2)), torch.ones(2))


def test_an_unwritable_cache_is_not_fatal(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level("WARNING"):
        value = cached_tensor(blocker / "t.safetensors", "t", (1,), lambda: torch.ones(1))
    assert torch.equal(value, torch.ones(1)) and "cannot keep" in caplog.text
