"""float64 through every op and through the fast model (`model.double()`).

The C++/CUDA/Triton kernels compute in fp32/fp16/bf16 only; float64 inputs run each op's
pure-PyTorch reference, in float64 (auto picks torch; a forced kernel backend raises, naming
the dtype). Here: each op in float64 equals an independent float64 formula to ~1e-12 (so no
step is secretly done in float32, which would be off by ~1e-7), torch.autograd.gradcheck
passes on each differentiable op, and a tiny LCNet.double() runs forward and backward in
float64 and passes gradcheck with respect to part of its input image and a parameter.
crop_views takes uint8 images and returns fresh values: it has no gradient to check.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck

import lcnet_fast
from lcnet_fast.ops import _backend
from lcnet_fast.ops.crop_views import crop_views, crop_views_reference
from lcnet_fast.ops.cross_attention import cross_attention, cross_attention_reference
from lcnet_fast.ops.dropout_add_layer_norm import (
    dropout_add_layer_norm,
    dropout_add_layer_norm_reference,
    make_keep_mask,
)

F64 = torch.float64
TIGHT = dict(rtol=1e-12, atol=1e-12)  # float64 rounding; a float32 step would be ~1e-7 off
OPS = ("dropout_add_layer_norm", "cross_attention", "crop_views")


@pytest.fixture(autouse=True)
def one_thread():
    """Every shape here is tiny: intra-op threads only add synchronisation, and when the cores
    are busy (2 threads on 2 loaded cores) each parallel region waits for a descheduled
    thread: the model gradcheck took 40-55 s with 2 threads there, 1.3 s with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def use_backend(monkeypatch):
    def set_backend(name):
        monkeypatch.setenv(_backend.ENV_VAR, name)

    set_backend("auto")
    return set_backend


def _ln_inputs(shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    d = shape[-1]
    x, r = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
    w = 1 + 0.5 * torch.randn(d, generator=g, dtype=F64)
    b = 0.5 * torch.randn(d, generator=g, dtype=F64)
    return [t.requires_grad_(requires_grad) for t in (x, r, w, b)]


def _ln_formula(x, r, w, b, keep=None, p=0.0, eps=1e-5):
    """LayerNorm(dropout(x) + r) written out in float64, no F.layer_norm."""
    h = (x * keep / (1 - p) if keep is not None else x) + r
    mu = h.mean(-1, keepdim=True)
    var = ((h - mu) ** 2).mean(-1, keepdim=True)
    return (h - mu) / torch.sqrt(var + eps) * w + b


# --- backend choice -------------------------------------------------------------------------


@pytest.mark.parametrize("op", OPS)
def test_auto_chooses_torch_for_float64(use_backend, op):
    for device_type in ("cpu", "cuda"):
        assert _backend.choose_backend(op, device_type, str(F64)) == "torch"
    assert _backend.unavailable_reason("torch", op, "cpu", str(F64)) is None
    for backend in ("cpp", "cuda", "triton"):
        assert "torch.float64" in _backend.unavailable_reason(backend, op, "cpu", str(F64))


def _call_each_op_in_float64():
    x, r, w, b = _ln_inputs((2, 3, 8))
    q = k = v = torch.randn(1, 2, 3, 8, dtype=F64)
    images = torch.randint(0, 256, (1, 4, 4, 3), dtype=torch.uint8)
    yield "dropout_add_layer_norm", lambda: dropout_add_layer_norm(x, r, w, b, 0.1)
    yield "cross_attention", lambda: cross_attention(q, k, v)
    yield "crop_views", lambda: crop_views(images, 2, 2, (0.5,) * 3, (0.25,) * 3, out_dtype=F64)


@pytest.mark.parametrize("backend", ["cpp", "cuda", "triton"])
def test_forced_kernel_backend_with_float64_raises(use_backend, backend):
    """A forced kernel backend cannot take float64: a clear error naming backend and dtype."""
    use_backend(backend)
    for op, call in _call_each_op_in_float64():
        with pytest.raises(_backend.BackendUnavailableError) as info:
            call()
        msg = str(info.value)
        assert f"LCNET_FAST_BACKEND={backend}" in msg and "torch.float64" in msg, (op, msg)
        assert op in msg, msg


def test_forced_torch_backend_runs_float64(use_backend):
    use_backend("torch")
    for op, call in _call_each_op_in_float64():
        assert call().dtype == F64, op


# --- each op in float64 matches its reference and an independent float64 formula ----------


@pytest.mark.parametrize("same", [False, True], ids=["x_residual", "x_is_residual"])
@pytest.mark.parametrize("p,training", [(0.0, True), (0.3, False), (0.3, True)])
def test_dropout_add_layer_norm_float64(use_backend, p, training, same):
    x, r, w, b = _ln_inputs((3, 5, 24), seed=1)
    if same:
        r = x
    out = dropout_add_layer_norm(
        x, r, w, b, p, training=training, generator=torch.Generator().manual_seed(7)
    )
    assert out.dtype == F64 and out.shape == x.shape
    keep = (
        make_keep_mask(x.shape, p, "cpu", torch.Generator().manual_seed(7))
        if training and p > 0
        else None
    )
    torch.testing.assert_close(
        out, dropout_add_layer_norm_reference(x, r, w, b, keep, p), rtol=0, atol=0
    )
    torch.testing.assert_close(out, _ln_formula(x, r, w, b, keep, p), **TIGHT)


def test_dropout_add_layer_norm_float64_with_float32_weight(use_backend):
    """weight/bias may be float32 (as for the other dtypes); the result is still float64."""
    x, r, w, b = _ln_inputs((4, 16), seed=2)
    out = dropout_add_layer_norm(x, r, w.float(), b.float(), 0.0)
    assert out.dtype == F64
    torch.testing.assert_close(
        out, _ln_formula(x, r, w.float().double(), b.float().double()), **TIGHT
    )


def test_cross_attention_float64(use_backend):
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 3, 5, 8, generator=g, dtype=F64)
    k, v = (torch.randn(2, 3, 11, 8, generator=g, dtype=F64) for _ in range(2))
    for scale in (None, 0.3):
        out = cross_attention(q, k, v, scale=scale)
        assert out.dtype == F64 and out.shape == q.shape
        s = 1 / math.sqrt(8) if scale is None else scale
        formula = torch.softmax(q @ k.transpose(-1, -2) * s, dim=-1) @ v
        torch.testing.assert_close(out, formula, **TIGHT)
        torch.testing.assert_close(out, cross_attention_reference(q, k, v, s), rtol=0, atol=0)


@pytest.mark.parametrize("level,size", [(1, 4), (2, 3), (3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_crop_views_float64(use_backend, level, size, channels_last):
    g = torch.Generator().manual_seed(4)
    images = torch.randint(
        0, 256, (2, level * size, level * size, 3), generator=g, dtype=torch.uint8
    )
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # not exact in float32
    out = crop_views(images, level, size, mean, std, out_dtype=F64, channels_last=channels_last)
    assert out.dtype == F64 and out.shape[2:] == (3, size, size)
    m64, s64 = torch.tensor(mean, dtype=F64), torch.tensor(std, dtype=F64)
    torch.testing.assert_close(
        out,
        crop_views_reference(images, level, size, m64, s64, F64, compute_dtype=F64),
        rtol=0,
        atol=0,
    )
    # independent formula: view 0 the level x level mean, then the tiles, normalised in float64
    x = images.permute(0, 3, 1, 2).double() / 255  # (B, 3, H, W)
    views = [x.reshape(2, 3, size, level, size, level).mean((3, 5))]
    if level > 1:
        views += [
            x[:, :, i * size : (i + 1) * size, j * size : (j + 1) * size]
            for i in range(level)
            for j in range(level)
        ]
    formula = (torch.stack(views, 1) - m64.view(3, 1, 1)) / s64.view(3, 1, 1)
    torch.testing.assert_close(out, formula, **TIGHT)


# --- gradcheck, float64 ----------------------------------------------------------------------


@pytest.mark.parametrize("same", [False, True], ids=["x_residual", "x_is_residual"])
@pytest.mark.parametrize("p", [0.0, 0.4])
def test_gradcheck_dropout_add_layer_norm(use_backend, p, same):
    """Dropout off, and on with a fixed mask (a generator seeded afresh on every call)."""
    x, r, w, b = _ln_inputs((2, 3, 6), seed=5, requires_grad=True)

    def fn(x, r, w, b):
        return dropout_add_layer_norm(
            x,
            x if same else r,
            w,
            b,
            p,
            training=p > 0,
            generator=torch.Generator().manual_seed(11),
        )

    assert gradcheck(fn, (x, r, w, b))


@pytest.mark.parametrize("scale", [None, 0.7])
def test_gradcheck_cross_attention(use_backend, scale):
    g = torch.Generator().manual_seed(6)
    q = torch.randn(1, 2, 3, 4, generator=g, dtype=F64, requires_grad=True)
    k, v = (torch.randn(1, 2, 5, 4, generator=g, dtype=F64, requires_grad=True) for _ in range(2))
    assert gradcheck(lambda q, k, v: cross_attention(q, k, v, scale=scale), (q, k, v))


def test_gradcheck_cross_attention_with_fixed_dropout(use_backend):
    """Attention dropout on (SDPA's RNG, re-seeded on every call so the mask is fixed)."""
    g = torch.Generator().manual_seed(8)
    q = torch.randn(1, 1, 3, 4, generator=g, dtype=F64, requires_grad=True)
    k, v = (torch.randn(1, 1, 5, 4, generator=g, dtype=F64, requires_grad=True) for _ in range(2))

    def fn(q, k, v):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12)
            return cross_attention(q, k, v, dropout_p=0.3)

    assert not torch.equal(fn(q, k, v), cross_attention(q, k, v))  # dropout is really on
    assert gradcheck(fn, (q, k, v))


def test_crop_views_float64_has_no_gradient_to_check(use_backend):
    """crop_views' input is uint8 (not differentiable): the float64 output is a leaf."""
    images = torch.randint(0, 256, (1, 4, 4, 3), dtype=torch.uint8)
    out = crop_views(
        images,
        2,
        2,
        torch.tensor([0.5] * 3, dtype=F64, requires_grad=True),
        (0.25,) * 3,
        out_dtype=F64,
    )
    assert out.dtype == F64 and not out.requires_grad


# --- the fast model in float64 ---------------------------------------------------------------


def _tiny_lcnet():
    torch.manual_seed(0)
    return lcnet_fast.LCNet(
        num_classes=3,
        backbone="test_resnet",
        crop_level=1,
        image_size=32,
        d_model=16,
        num_heads=2,
        num_layers=1,
        dim_feedforward=16,
    )


def test_lcnet_double_forward_backward_and_gradcheck(use_backend):
    model = _tiny_lcnet().double().eval()
    assert all(t.dtype == F64 for t in model.parameters())
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(9), dtype=F64)

    logits = model(image)
    assert logits.dtype == F64 and logits.shape == (1, 3)
    logits.sum().backward()

    # the same weights in float32: the same logits and gradients to float32 precision, and
    # gradients for the same parameters (the last layer's MHA3/MHA4 branch does not reach the
    # logits, by design, in both)
    model32 = _tiny_lcnet().eval()
    model32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    logits32 = model32(image.float())
    logits32.sum().backward()
    torch.testing.assert_close(logits32.double(), logits, rtol=1e-4, atol=1e-4)
    params32 = dict(model32.named_parameters())
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert with_grad == [n for n, p in params32.items() if p.grad is not None]
    assert len(with_grad) > len(params32) // 2
    for name in with_grad:
        g64, g32 = model.get_parameter(name).grad, params32[name].grad
        assert g64.dtype == F64 and torch.isfinite(g64).all(), name
        torch.testing.assert_close(
            g32.double(), g64, rtol=1e-3, atol=1e-4 * (1 + g64.abs().max().item()), msg=name
        )

    # gradcheck: a 4 x 4 patch of the image (48 numbers) and the label queries of one class
    weights = torch.tensor([0.7, -1.3, 0.4], dtype=F64)  # a scalar function of the logits
    patch = image[:, :, 10:14, 10:14].clone().requires_grad_(True)
    query = model.query_embed.weight[1].detach().clone().requires_grad_(True)
    params = dict(model.named_parameters())

    def fn(patch, query):
        x = image.clone()
        x[:, :, 10:14, 10:14] = patch
        qe = params["query_embed.weight"].detach().clone()
        qe[1] = query
        out = torch.func.functional_call(model, {**params, "query_embed.weight": qe}, (x,))
        return (out * weights).sum()

    torch.testing.assert_close(fn(patch, query), (logits.detach() * weights).sum(), **TIGHT)
    assert gradcheck(fn, (patch, query))
