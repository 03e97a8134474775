"""Helpers shared by the GPU benchmarks: peak memory and the largest batch that fits in a given memory."""

from __future__ import annotations

import gc

import torch

H100_BYTES = 79 * 2**30
"""What an 80 GB H100 offers a process (about 79 GiB): the cap for "the largest batch that fits in 80 GB"."""


def largest_batch(try_batch, start: int, limit: int = 8192, cap_bytes: int = H100_BYTES) -> dict:
    """Double the batch from `start` until `try_batch(b)` runs out of memory under a cap of `cap_bytes` (CUDA only).

    try_batch(b) runs a few steps at batch b and returns; the largest b that ran and its peak memory come back."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total))
    best, peak, b = None, None, start
    try:
        while b <= limit:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            ok = True
            try:
                try_batch(b)
            except torch.OutOfMemoryError:
                ok = False
            if not ok:  # outside the except block, so the traceback's frames (and their tensors) are gone
                break
            best, peak = b, torch.cuda.max_memory_allocated() / 2**30
            b *= 2
    finally:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0)
    return {"largest_batch_in_79GiB": best, "its_peak_GiB": peak and round(peak, 1),
            "searched_up_to": min(b, limit)}
