"""The 2D sine position table and its per-(shape, device, dtype) cache."""
import math

import torch

from lcnet_fast.models.positional import position_table, sine_position_encoding_2d


def test_table_values_follow_the_formula():
    h, w, d = 3, 5, 8
    table = sine_position_encoding_2d(h, w, d, dtype=torch.float64)
    quarter = d // 4
    freq = 10000.0 ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    for r in range(h):
        for c in range(w):
            row = (r + 1) * 2 * math.pi / h * freq
            col = (c + 1) * 2 * math.pi / w * freq
            expected = torch.cat([torch.stack([row.sin(), row.cos()], -1).flatten(),
                                  torch.stack([col.sin(), col.cos()], -1).flatten()])
            torch.testing.assert_close(table[r * w + c], expected, rtol=0, atol=1e-12)


def test_cache_returns_one_tensor_per_key():
    a = position_table(4, 6, 16, "cpu", torch.float32)
    assert position_table(4, 6, 16, torch.device("cpu"), torch.float32) is a
    torch.testing.assert_close(a, sine_position_encoding_2d(4, 6, 16), rtol=0, atol=0)
    b = position_table(4, 6, 16, "cpu", torch.bfloat16)
    assert b is not a and b.dtype == torch.bfloat16
    assert position_table(6, 4, 16, "cpu", torch.float32).shape == (24, 16)


def test_table_first_built_in_inference_mode_serves_training():
    with torch.inference_mode():
        table = position_table(3, 7, 12, "cpu", torch.float32)
    assert not table.is_inference()
    weight = torch.ones(12, requires_grad=True)
    (position_table(3, 7, 12, "cpu", torch.float32) * weight).sum().backward()
    torch.testing.assert_close(weight.grad, table.sum(0))
