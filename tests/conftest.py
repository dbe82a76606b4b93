"""Shared test setup.

TRITON_INTERPRET must be decided before any Triton kernel module is imported (Triton reads it at
decoration time), so it is set here, at collection start: on a machine without a usable GPU the
Triton kernels run in the interpreter on CPU tensors.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
