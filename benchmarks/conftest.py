"""Benchmarks run with `pytest benchmarks/` (pytest-benchmark); they are not part of `pytest`."""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
