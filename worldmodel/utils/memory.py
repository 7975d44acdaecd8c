"""Memory guards: estimate a run's largest allocation from its settings and refuse, before allocating, what
cannot fit — one line naming the setting, the estimate and what is available — instead of growing until the
kernel's OOM killer ends the run (or a neighbour's job on a shared machine).

Estimates are deliberately rough upper bounds of the dominant tensors (a factor of a few, never of thousands):
they exist to stop settings that are off by orders of magnitude, not to pack memory tightly.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a device is asked about: collection workers load this without it
    import torch

F32 = 4  # bytes per float32


class MemoryBudgetError(ValueError):
    """A setting asks for more memory than the machine (or its cgroup, or the GPU) has available."""


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory for new allocations: the GPU's free memory, or MemAvailable capped by the cgroup's limit."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    avail = _meminfo_available()
    limit = _cgroup_room()
    return min(avail, limit) if limit is not None else avail


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _cgroup_room() -> int | None:
    """Limit minus usage of this process's cgroup (v2, else v1); None when unlimited or unknown."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit == "max" or int(limit) >= 1 << 60:
            return None
        return max(int(limit) - int(usage), 0)
    return None


def human(n: float) -> str:
    """Bytes as '1.2 GB' / '340 MB'."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def check_fits(setting: str, need: float, what: str, device: torch.device | str = "cpu", hint: str = "") -> None:
    """Raise :class:`MemoryBudgetError` when ``need`` bytes exceed what is available on ``device``.

    setting: the user's setting and value at fault (``"planner.samples=200000000"``); what: what needs the
    memory (``"one CEM iteration"``); hint: how to lower it.
    """
    import torch

    avail = available_bytes(device)
    if need > avail:
        tail = f"; {hint}" if hint else ""
        raise MemoryBudgetError(f"{setting}: about {human(need)} needed for {what} (estimate), "
                                f"{human(avail)} available on {torch.device(device).type}{tail}")


def transformer_bytes(sequences: int, tokens: int, width: int, depth: int, mlp_ratio: float = 4.0,
                      backward: bool = True) -> float:
    """Activations of ``sequences`` x ``tokens`` through ``depth`` pre-norm blocks of ``width`` channels:
    per block and token the norms, qkv, attention output and MLP hidden (kept for backward when training)."""
    per_token_block = width * (2 + 3 + 1 + 2 * mlp_ratio) * F32
    live = depth if backward else 2  # inference keeps about two blocks alive at a time
    return float(sequences) * tokens * per_token_block * live
