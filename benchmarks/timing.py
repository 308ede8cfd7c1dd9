"""Interleaved timing of forward+backward steps, shared by the benchmark
scripts that compare rows side by side in one run."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List

import torch
from torch import Tensor

from .speed import sync


def interleaved(rows: Dict[str, Callable[[], Tensor]], device: torch.device,
                repeats: int, warmup: int) -> Dict[str, float]:
    """Median milliseconds of forward+backward per row: each round runs one
    step of every row in turn (so that drifts of the machine hit all rows
    alike), after :obj:`warmup` unmeasured rounds."""
    times: Dict[str, List[float]] = {name: [] for name in rows}
    for round_ in range(warmup + repeats):
        for name, forward in rows.items():
            sync(device)
            start = time.perf_counter()
            out = forward()
            out.backward(torch.ones_like(out))
            sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}
