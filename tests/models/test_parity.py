"""The fast model and the paper reference agree: same state_dict, same logits, same gradients."""

import pytest
import torch


def images_for(model, batch: int, seed: int = 1) -> torch.Tensor:
    side = model.crop_level * model.image_size
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def assert_same_gradients(reference, fast, rtol=1e-4):
    fast_params = dict(fast.named_parameters())
    checked = 0
    for name, ref_param in reference.named_parameters():
        fast_grad = fast_params[name].grad
        if ref_param.grad is None:
            assert fast_grad is None, f"{name}: fast model has a gradient the reference does not"
            continue
        assert fast_grad is not None, f"{name}: gradient missing in the fast model"
        scale = ref_param.grad.abs().max().item()
        error = (ref_param.grad - fast_grad).abs().max().item()
        assert error <= rtol * scale + 1e-9, (
            f"{name}: gradient differs by {error:.3g} (scale {scale:.3g})"
        )
        checked += 1
    assert checked > 20


def assert_same_logits(ref_logits, fast_logits):
    scale = max(1.0, ref_logits.abs().max().item())
    error = (ref_logits - fast_logits).abs().max().item()
    assert error <= 1e-4 * scale, f"logits differ by {error:.3g} at logit scale {scale:.3g}"


CASES = [  # (crop level, decoder layers, classes, batch)
    (1, 1, 1, 1),
    (2, 2, 7, 3),
    (3, 3, 5, 2),
    (2, 1, 7, 1),
]


@pytest.mark.parametrize("reading", ["literal", "residual"])
@pytest.mark.parametrize("level,layers,classes,batch", CASES)
def test_eval_logits_and_gradients_match(
    level, layers, classes, batch, reading, pair_factory, attention_form
):
    reference, fast = pair_factory(
        classes, crop_level=level, num_layers=layers, llcd_reading=reading
    )
    reference.eval(), fast.eval()
    x = images_for(fast, batch)
    ref_logits, fast_logits = reference(x), fast(x)
    assert fast_logits.shape == (batch, classes)
    assert_same_logits(ref_logits, fast_logits)
    target = torch.randn_like(ref_logits)
    (ref_logits * target).sum().backward()
    (fast_logits * target).sum().backward()
    assert_same_gradients(reference, fast)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(use_graph=False),
        dict(mirror_inputs=True),
        dict(num_gat_layers=2, label_embeddings=torch.randn(7, 5)),
        dict(backbone="test_vit", crop_level=2, image_size=32),
        dict(llcd_reading="residual", use_graph=False, num_layers=3),
        dict(llcd_reading="residual", token_norm=True, position_encoding=False),
        dict(token_norm=True),
        dict(llcd_reading="residual", mirror_inputs=True),
    ],
)
def test_variants_match(overrides, pair_factory, attention_form):
    reference, fast = pair_factory(7, **overrides)
    reference.eval(), fast.eval()
    x = images_for(fast, 2)
    ref_logits, fast_logits = reference(x), fast(x)
    assert_same_logits(ref_logits, fast_logits)
    ref_logits.square().sum().backward()
    fast_logits.square().sum().backward()
    assert_same_gradients(reference, fast)


@pytest.mark.parametrize("reading", ["literal", "residual"])
def test_train_mode_matches_with_per_view_backbone_calls(reading, pair_factory, attention_form):
    """In train mode BatchNorm statistics depend on which images share a backbone call; with one
    view position per call (max_views_per_call = batch) the fast model follows the reference."""
    reference, fast = pair_factory(6, dropout=0.0, crop_level=2, llcd_reading=reading)
    fast.max_views_per_call = 3
    reference.train(), fast.train()
    x = images_for(fast, 3)
    ref_logits, fast_logits = reference(x), fast(x)
    assert_same_logits(ref_logits, fast_logits)
    ref_logits.sum().backward()
    fast_logits.sum().backward()
    assert_same_gradients(reference, fast)
    for (name, ref_buffer), fast_buffer in zip(
        reference.named_buffers(), fast.buffers(), strict=True
    ):
        if ref_buffer.is_floating_point():  # BatchNorm running statistics updated identically
            torch.testing.assert_close(fast_buffer, ref_buffer, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("views_per_call", [1, 4, 10])
def test_backbone_chunking_does_not_change_eval_output(views_per_call, pair_factory):
    _, fast = pair_factory(4, crop_level=3)
    fast.eval()
    x = images_for(fast, 2)
    expected = fast(x)
    fast.max_views_per_call = views_per_call
    torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)


def test_checkpoint_loads_both_ways(pair_factory):
    reference, fast = pair_factory(5)
    other = pair_factory(5, seed=3)[0]
    other.load_state_dict(fast.state_dict(), strict=True)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0)


def test_wrong_class_count_does_not_load(pair_factory):
    _, fast = pair_factory(5)
    reference_other, _ = pair_factory(6)
    with pytest.raises(RuntimeError, match="size mismatch"):
        fast.load_state_dict(reference_other.state_dict(), strict=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_error_no_worse_than_reference(dtype, pair_factory, attention_form):
    """Under CPU autocast both models lose precision; the fast one may not lose much more."""
    reference, fast = pair_factory(7)
    reference.eval(), fast.eval()
    x = images_for(fast, 2)
    with torch.no_grad():
        exact = reference.double()(x.double()).float()
        reference.float()
        with torch.autocast("cpu", dtype=dtype):
            ref_logits, fast_logits = reference(x).float(), fast(x).float()
    assert torch.isfinite(fast_logits).all()
    ref_error = (ref_logits - exact).abs().max().item()
    fast_error = (fast_logits - exact).abs().max().item()
    assert fast_error <= 2 * ref_error + 1e-3, (fast_error, ref_error)


def test_compiles_fullgraph(pair_factory, attention_form):
    """No graph break in the whole fast model (backbone included), forward and backward."""
    reference, fast = pair_factory(5)
    fast.eval()
    x = images_for(fast, 2)
    compiled = torch.compile(fast, fullgraph=True, backend="aot_eager")
    logits = compiled(x)
    assert_same_logits(reference.eval()(x), logits)
    logits.sum().backward()
    assert fast.head.weight.grad is not None


def test_triton_kernels_inside_the_model_match_the_reference(pair_factory, monkeypatch):
    """The fast model with every op forced onto its Triton kernels (CPU interpreter here, the GPU
    in gpu_check.sh) against the reference: logits and gradients."""
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    monkeypatch.setenv("LCNET_FAST_BACKEND", "triton")
    reference, fast = pair_factory(
        3, crop_level=2, image_size=32, d_model=16, num_heads=2, num_layers=2, dim_feedforward=16
    )
    reference, fast = reference.eval().to(device), fast.eval().to(device)
    x = images_for(fast, 2).to(device)
    ref_logits, fast_logits = reference(x), fast(x)
    assert_same_logits(ref_logits, fast_logits)
    ref_logits.sum().backward()
    fast_logits.sum().backward()
    assert_same_gradients(reference, fast)


def test_triton_kernels_train_mode_dropout(pair_factory, monkeypatch):
    """Train mode through the Triton kernels, attention dropout included: a seed repeats the
    step exactly, another seed changes it, and every gradient is finite."""
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    monkeypatch.setenv("LCNET_FAST_BACKEND", "triton")
    _, fast = pair_factory(
        3, crop_level=2, image_size=32, d_model=16, num_heads=2, num_layers=2, dim_feedforward=16
    )
    fast = fast.train().to(device)
    for module in fast.modules():  # BatchNorm stats would make repeated steps differ
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    x = images_for(fast, 2).to(device)

    def logits_with_seed(seed):
        torch.manual_seed(seed)
        return fast(x)

    first = logits_with_seed(0)
    assert torch.equal(first, logits_with_seed(0))
    assert not torch.equal(first, logits_with_seed(1))
    first.sum().backward()
    # the last layer's image/graph branch never reaches the logits (no grad, as in eval)
    grads = {n: p.grad for n, p in fast.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    attention = [g for n, g in grads.items() if "in_proj_weight" in n]
    assert len(attention) >= 4 and all(g.abs().sum() > 0 for g in attention)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("level,layers,classes,batch", [(1, 1, 1, 1), (3, 2, 7, 3)])
def test_cuda_default_backends_match_the_reference(
    level, layers, classes, batch, pair_factory, monkeypatch
):
    """On a GPU with the default (auto) backends — Triton kernels for attention and AddNorm — the
    fast model matches the reference in fp32 (logits and gradients) and stays finite in bf16."""
    # true fp32 on both sides: TF32 convolutions would differ between batchings by ~1e-3
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    reference, fast = pair_factory(classes, crop_level=level, num_layers=layers)
    reference, fast = reference.cuda().eval(), fast.cuda().eval()
    x = images_for(fast, batch).cuda()
    ref_logits, fast_logits = reference(x), fast(x)
    assert_same_logits(ref_logits, fast_logits)
    ref_logits.sum().backward()
    fast_logits.sum().backward()
    assert_same_gradients(reference, fast, rtol=1e-3)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        assert torch.isfinite(fast(x).float()).all()
