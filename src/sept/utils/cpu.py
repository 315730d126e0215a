"""What this CPU computes natively (read from the kernel's CPU flags; no flags: assume nothing)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

#: flags of x86 CPUs with bf16 dot products in hardware (AVX512-BF16: AMD Zen 4+, Intel Cooper Lake+;
#: AMX-BF16: Intel Sapphire Rapids+)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The ``flags`` of the first processor in ``cpuinfo`` (default ``/proc/cpuinfo``; empty if unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (then bf16 autocast is ~2x faster than fp32
    for prompt tuning; without it bf16 is emulated and slower)."""
    return bool(cpu_flags() & BF16_FLAGS)
