"""What the device can do and what a run used: a measured matmul peak (the MFU denominator) and peak memory."""

import math
import resource
import time

import torch


def sync(device: torch.device) -> None:
    """Wait for the device (benchmark timing only; never called inside a training step)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None, repeats: int = 5):
    """Measured dense matmul throughput (FLOP/s) on ``device``: the best of ``repeats`` timings of an n x n matmul.

    Args:
        device: Where to measure.
        dtype: float32 (TF32 follows ``torch.backends.cuda.matmul.allow_tf32``), bfloat16 or float16.
        n: Matrix side; 8192 on CUDA, 1024 on CPU by default.
        repeats: Timed repetitions (after one warm-up).

    Returns:
        FLOP/s, ``2 n^3 / best time``.
    """
    n = n or (8192 if device.type == 'cuda' else 1024)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    inner = 10 if device.type == 'cuda' else 1
    best = math.inf
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        if i:  # the first round warms up the kernel / allocator
            best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n**3 / best


def reset_peak_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: max allocated since the last reset. CPU: the process's peak resident set (lifetime, not resettable)."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
