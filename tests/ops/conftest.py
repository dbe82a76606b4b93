"""Fixtures shared by the tests in tests/ops: use_backend (force a backend through its
environment variable) and gpu_block_configs (the Triton interpreter launches with the GPU block
sizes). A test module may still define its own fixture of the same name, which takes precedence."""

import pytest
import torch

from lcnet_fast.ops import _backend


@pytest.fixture
def use_backend(monkeypatch):
    def set_backend(name):
        monkeypatch.setenv(_backend.ENV_VAR, name)

    return set_backend


@pytest.fixture
def gpu_block_configs(monkeypatch):
    """The interpreter launches with the block sizes and warps of a GPU launch."""
    import lcnet_fast.ops.triton.cross_attention_config as config

    fwd, bwd = config.fwd_config, config.bwd_config
    monkeypatch.setattr(config, "fwd_config", lambda bd, dt, _device: fwd(bd, dt, "cuda"))
    monkeypatch.setattr(config, "bwd_config", lambda bd, dt, _device: bwd(bd, dt, "cuda"))
    assert config.fwd_config(128, torch.float16, "cpu")["BLOCK_M"] == 64  # patched: GPU sizes
