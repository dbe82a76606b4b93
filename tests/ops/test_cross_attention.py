"""cross_attention: the torch reference and the CPU auto path: the backend rules (auto picks
the torch reference on CPU, SDPA's own dropout there; a forced backend that cannot run says
why), the split-KV rule at the LLCD's shapes, the argument checks (shapes, dtypes, devices,
dropout_p, scale, the int32 row-offset guard of the Triton launchers) and torch.compile of the
torch path. The Triton kernels are tested in test_cross_attention_triton.py (CPU interpreter),
test_cross_attention_dropout.py (attention dropout) and test_cross_attention_gpu.py (-m gpu);
the shared helpers and the tolerance rule are in cross_attention_helpers.py."""

import pytest
import torch
from cross_attention_helpers import (  # tests/ops (rootdir import)
    HAS_CUDA,
    check_parity,
    choose_backend,
    make_qkv,
    needs_interp,
    z,
)

from lcnet_fast.ops import _backend, cross_attention, cross_attention_reference
from lcnet_fast.ops.cross_attention import choose_num_kv_splits


def test_auto_on_cpu_is_the_torch_reference(use_backend):
    use_backend("auto")
    assert choose_backend("cpu", str(torch.float32)) == "torch"
    q, k, v, do = make_qkv(2, 2, 5, 37, 24)
    check_parity(q, k, v, do)
    check_parity(q, k, v, do, scale=0.3)


def test_auto_rules(use_backend):
    use_backend("auto")
    assert choose_backend("cpu", "torch.float16") == "torch"
    if _backend.triton_unavailable_reason() is None:
        assert choose_backend("cuda", "torch.bfloat16") == "triton"
    assert choose_backend("cuda", "torch.float64") == "torch"
    assert choose_backend("cpu", "torch.float64") == "torch"


def test_dropout_on_cpu_auto_runs_sdpa_with_dropout(use_backend):
    use_backend("auto")
    q, k, v, _ = make_qkv(1, 2, 4, 9, 16)
    torch.manual_seed(3)
    out = cross_attention(q, k, v, dropout_p=0.5)
    torch.manual_seed(3)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert torch.equal(out, expected)
    assert not torch.allclose(out, cross_attention(q, k, v))


@pytest.mark.parametrize(
    "backend,dtype,dropout,msg",
    [
        ("cpp", torch.float32, 0.0, "no C\\+\\+/CUDA kernel"),
        ("cuda", torch.float32, 0.0, "no C\\+\\+/CUDA kernel"),
        (
            "triton",
            torch.float64,
            0.0,
            "triton kernels take float32/float16/bfloat16, got torch.float64",
        ),
        ("cpp", torch.float64, 0.0, "cpu torch.float64 tensors: there is no C\\+\\+/CUDA kernel"),
    ],
)
def test_forced_backend_that_cannot_run(use_backend, backend, dtype, dropout, msg):
    use_backend(backend)
    q, k, v, _ = make_qkv(1, 1, 2, 3, 16, dtype=dtype)
    with pytest.raises(_backend.BackendUnavailableError, match=msg):
        cross_attention(q, k, v, dropout_p=dropout)


def test_split_rule_at_llcd_shapes():
    assert choose_num_kv_splits(56, 8, 80, 1960) == 1  # training: grid already full
    assert choose_num_kv_splits(56, 8, 1960, 80) == 1
    assert choose_num_kv_splits(1, 8, 80, 1960) == 7  # single-image inference: split
    assert choose_num_kv_splits(1, 8, 80, 100) == 1  # too few keys to split
    assert choose_num_kv_splits(1, 1, 1, 10**6) == 32  # capped


ERRORS = [
    (dict(q=z(2, 3, 4)), ValueError, "q must have shape \\(B, H, N, Dh\\), got rank 3"),
    (dict(k=z(1, 2, 3, 4, 5)), ValueError, "k must have shape .* rank 5"),
    (dict(v=[1.0]), TypeError, "v must be a torch.Tensor"),
    (dict(k=z(2, 2, 7, 16), v=z(2, 2, 7, 16)), ValueError, "k shape .* batch, heads and head"),
    (dict(k=z(1, 3, 7, 16), v=z(1, 3, 7, 16)), ValueError, "k shape .* batch, heads"),
    (dict(v=z(1, 2, 7, 8)), ValueError, "v shape .* head dim"),
    (dict(v=z(1, 2, 6, 16)), ValueError, "k and v must have the same length Nk"),
    (
        dict(q=z(1, 2, 5, 300), k=z(1, 2, 7, 300), v=z(1, 2, 7, 300)),
        ValueError,
        "Dh = 300 .* exceeds the maximum 256",
    ),
    (dict(k=z(1, 2, 7, 16).half()), TypeError, "k dtype torch.float16 must match q dtype"),
    (dict(q=z(1, 2, 5, 16).int()), TypeError, "q must be one of"),
    (dict(k=z(1, 2, 0, 16), v=z(1, 2, 0, 16)), ValueError, "at least one key"),
    (dict(dropout_p=1.0), ValueError, "dropout_p must be in \\[0, 1\\), got 1.0"),
    (dict(dropout_p=-0.1), ValueError, "dropout_p must be in \\[0, 1\\)"),
    (dict(scale=float("nan")), ValueError, "scale must be finite"),
    (dict(num_kv_splits=0), ValueError, "num_kv_splits must be None or an int >= 1"),
]
if HAS_CUDA:
    ERRORS.append(
        (
            dict(k=z(1, 2, 7, 16).cuda(), v=z(1, 2, 7, 16).cuda()),
            ValueError,
            "k is on cuda:0 but q is on cpu",
        )
    )


@pytest.mark.parametrize("change,exc,msg", ERRORS)
def test_bad_arguments(change, exc, msg):
    kwargs = dict(q=z(1, 2, 5, 16), k=z(1, 2, 7, 16), v=z(1, 2, 7, 16))
    kwargs.update(change)
    with pytest.raises(exc, match=msg):
        cross_attention(**kwargs)


def test_triton_rejects_slices_beyond_int32_row_offsets():
    """The kernels' in-slice offsets are int32: a (batch, head) slice spanning 2**31 elements
    must be refused before launch, never addressed with wrapped offsets. (Meta tensors: the
    strides are real, the 8 GiB of memory is not.)"""
    from lcnet_fast.ops.triton.cross_attention import _check_int32_rows

    def meta(shape, strides):
        return torch.empty_strided(shape, strides, device="meta")

    fits = meta((2, 3, 2**20 + 1, 16), (3 * 2**31, 2**31, 2**11 - 1, 1))  # < 2**31
    _check_int32_rows(q=fits)
    wraps = meta((2, 3, 2**20 + 1, 16), (3 * 2**31, 2**31, 2**11, 1))  # 2**31 + 15
    with pytest.raises(RuntimeError, match="k of shape .* spans more than 2\\*\\*31"):
        _check_int32_rows(q=fits, k=wraps)
    # the batch and head strides alone may exceed int32 (those offsets are int64)
    _check_int32_rows(v=meta((4, 8, 16, 16), (2**40, 2**33, 16, 1)))


@needs_interp
@pytest.mark.parametrize("splits", [1, 2])
def test_triton_launchers_check_int32_rows(monkeypatch, splits):
    """Both launchers (forward, plain and split, and backward) run the int32 guard on every
    tensor they address."""
    from lcnet_fast.ops.triton import cross_attention as ca

    checked = []
    monkeypatch.setattr(ca, "_check_int32_rows", lambda **t: checked.append(sorted(t)))
    q, k, v, do = make_qkv(1, 2, 5, 40, 16)
    q.requires_grad_(True)
    out, _ = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 0.25, splits)
    out.backward(do)
    expected = [["k", "out", "q", "v"]] + ([["split_partials"]] if splits > 1 else [])
    expected.append(["dk", "dout", "dq", "dv", "k", "out", "q", "v"])
    assert checked == expected


def test_device_mismatch_message():
    q = z(1, 2, 5, 16)
    k = torch.zeros(1, 2, 7, 16, device="meta")
    with pytest.raises(ValueError, match="k is on meta but q is on cpu"):
        cross_attention(q, k, k)


def test_compile_fullgraph_torch_path(use_backend):
    use_backend("auto")
    q, k, v, _ = make_qkv(2, 2, 5, 11, 24)
    f = torch.compile(
        lambda a, b, c: cross_attention(a, b, c) * 2, fullgraph=True, backend="aot_eager"
    )
    torch.testing.assert_close(f(q, k, v), cross_attention_reference(q, k, v) * 2)
