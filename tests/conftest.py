"""Shared test setup.

TRITON_INTERPRET must be decided before any Triton kernel module is imported (Triton reads it at
decoration time), so it is set here, at collection start: on a machine without a usable GPU the
Triton kernels run in the interpreter on CPU tensors.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TEST_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The drivers' main() sets torch's thread count for its process (--threads, data workers);
    in one pytest process that would leak into later tests, and runs compared bitwise (resume vs
    uninterrupted) must use the same count, since it changes CPU reduction order."""
    yield
    if torch.get_num_threads() != TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)
