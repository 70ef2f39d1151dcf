"""Timing helpers shared by the benchmark scripts: device synchronisation and the matmul rate that MFU is
measured against (in the same run as the step it normalises)."""

from __future__ import annotations

import time

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(device: torch.device, n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """Best-of-``repeats`` FLOP/s of ``torch.matmul`` on two n x n matrices of ``dtype`` (2 n^3 FLOPs each)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
