"""LLCD layer (fast and reference): shapes, per-layer weights, eq. (1)'s dependency structure."""

import lcnet_reference
import pytest
import torch

import lcnet_fast

LAYERS = {"fast": lcnet_fast.LLCDLayer, "reference": lcnet_reference.LLCDLayer}


def inputs(batch=2, labels=5, tokens=11, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, labels, d, generator=g),
        torch.randn(batch, tokens, d, generator=g),
        torch.randn(batch, labels, d, generator=g),
    )


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("batch,labels,tokens", [(1, 1, 1), (2, 5, 11), (3, 7, 13)])
def test_shapes(kind, batch, labels, tokens):
    layer = LAYERS[kind](24, 3, 40, 0.1).eval()
    q, img, graph = inputs(batch, labels, tokens)
    q_out, img_out, graph_out = layer(q, img, graph)
    assert q_out.shape == q.shape and img_out.shape == img.shape and graph_out.shape == graph.shape


@pytest.mark.parametrize("kind", LAYERS)
def test_dependency_structure_of_eq1(kind, attention_form):
    """Q' reads all three inputs; KV'_img (INT6) and KV'_graph (INT5) never read Q_lbl."""
    torch.manual_seed(0)
    layer = LAYERS[kind](24, 3, 40, 0.0).eval()
    q, img, graph = (t.requires_grad_() for t in inputs())
    q_out, img_out, graph_out = layer(q, img, graph)

    def reads(output, source):
        grad = torch.autograd.grad(output.sum(), source, retain_graph=True, allow_unused=True)[0]
        return grad is not None and grad.abs().sum().item() > 0

    assert reads(q_out, q) and reads(q_out, img) and reads(q_out, graph)
    assert reads(img_out, img) and reads(img_out, graph) and not reads(img_out, q)
    assert reads(graph_out, graph) and reads(graph_out, img) and not reads(graph_out, q)


@pytest.mark.parametrize("reading", ["literal", "residual"])
def test_fast_layer_matches_reference_layer_with_dropout_off(reading, attention_form):
    torch.manual_seed(0)
    reference = lcnet_reference.LLCDLayer(24, 3, 40, 0.0, reading)
    fast = lcnet_fast.LLCDLayer(24, 3, 40, 0.0, reading)
    fast.load_state_dict(reference.state_dict(), strict=True)
    q, img, graph = inputs(3, 7, 13)
    for expected, actual in zip(reference(q, img, graph), fast(q, img, graph), strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_broadcast_inputs_give_the_same_result_as_materialised_ones(attention_form):
    """The once-per-batch path (stride-0 batch) must equal the per-image computation."""
    torch.manual_seed(0)
    layer = lcnet_fast.LLCDLayer(24, 3, 40, 0.0).train()
    q_one, img, graph_one = inputs(1, 5, 11)[0][0], inputs(4, 5, 11)[1], inputs(1, 5, 11)[2][0]
    q_b, graph_b = q_one.expand(4, -1, -1), graph_one.expand(4, -1, -1)
    expanded = layer(q_b, img, graph_b)
    materialised = layer(q_b.contiguous(), img, graph_b.contiguous())
    for a, b in zip(expanded, materialised, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reading", ["literal", "residual"])
def test_skipping_kv_outputs_keeps_the_label_output(reading, attention_form):
    torch.manual_seed(0)
    layer = lcnet_fast.LLCDLayer(24, 3, 40, 0.1, reading).eval()
    q, img, graph = inputs()
    full = layer(q, img, graph)
    short = layer(q, img, graph, compute_kv=False)
    torch.testing.assert_close(short[0], full[0], rtol=0, atol=0)
    assert short[1] is None and short[2] is None


@pytest.mark.parametrize("model_class", [lcnet_fast.LCNet, lcnet_reference.LCNet])
def test_stacked_layers_own_their_weights(model_class):
    model = model_class(
        4,
        backbone="test_resnet",
        crop_level=1,
        image_size=32,
        d_model=16,
        num_heads=2,
        num_layers=3,
        dim_feedforward=16,
    )
    first, second = model.decoder[0], model.decoder[1]
    assert first is not second
    pointers = [{p.data_ptr() for p in layer.parameters()} for layer in model.decoder]
    assert not (pointers[0] & pointers[1]) and not (pointers[1] & pointers[2])
    with torch.no_grad():
        first.mha1.in_proj_weight.add_(1.0)
    assert not torch.equal(first.mha1.in_proj_weight, second.mha1.in_proj_weight)


def test_mirror_inputs_swaps_image_and_graph():
    torch.manual_seed(0)
    kwargs = dict(
        backbone="test_resnet",
        crop_level=1,
        image_size=64,
        d_model=16,
        num_heads=2,
        num_layers=1,
        dim_feedforward=16,
    )
    plain = lcnet_reference.LCNet(3, **kwargs).eval()
    mirrored = lcnet_reference.LCNet(3, mirror_inputs=True, **kwargs).eval()
    mirrored.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = plain.image_tokens(x)
        nodes = plain.label_graph().unsqueeze(0).expand(2, -1, -1)
        queries = plain.query_embed.weight.unsqueeze(0).expand(2, -1, -1)
        swapped = plain.head(plain.decoder[0](queries, nodes, tokens)[0])
        torch.testing.assert_close(mirrored(x), swapped)
        assert not torch.allclose(plain(x), swapped)


def test_layer_rejects_mismatched_inputs():
    layer = lcnet_fast.LLCDLayer(24, 3, 40, 0.1)
    q, img, graph = inputs()
    with pytest.raises(ValueError, match="kv_img"):
        layer(q, img[..., :20], graph)
    with pytest.raises(ValueError, match="kv_graph"):
        layer(q, img, graph[:1])


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("reading", ["literal", "residual"])
def test_readings_of_eq1_differ_in_the_label_residual_only(kind, reading):
    """With MHA2 and the MLP silenced (zero output projections), literal eq. (1) gives
    Q' = AddNorm(0 + 0): the same constant for every label query; the residual reading carries
    INT1, and with it each query, through to Q'. The image/graph outputs are the same."""
    torch.manual_seed(0)
    layer = LAYERS[kind](24, 3, 40, 0.0, reading).eval()
    with torch.no_grad():
        for module in (layer.mha2.out_proj, layer.mlp[3]):
            module.weight.zero_()
            module.bias.zero_()
    q, img, graph = inputs()
    q_out, img_out, graph_out = layer(q, img, graph)
    twin = LAYERS[kind](24, 3, 40, 0.0, "residual" if reading == "literal" else "literal").eval()
    twin.load_state_dict(layer.state_dict(), strict=True)  # same parameters, same keys
    twin_out = twin(q, img, graph)
    torch.testing.assert_close(img_out, twin_out[1])
    torch.testing.assert_close(graph_out, twin_out[2])
    spread = (q_out - q_out[:, :1]).abs().max().item()
    if reading == "literal":
        assert spread < 1e-5, "literal eq. (1): Q' cannot depend on the label query"
    else:
        norm1 = layer.norm_int1
        int1 = torch.nn.functional.layer_norm(2 * q, (24,), norm1.weight, norm1.bias)
        int3 = layer.norm_int3(int1)
        torch.testing.assert_close(q_out, layer.norm_out(int3), rtol=1e-5, atol=1e-5)
        assert spread > 0.1


@pytest.mark.parametrize("layer_class", LAYERS.values())
def test_unknown_reading_is_refused(layer_class):
    with pytest.raises(ValueError, match="reading must be one of literal, residual"):
        layer_class(24, 3, 40, 0.0, "residul")


def test_without_position_encoding_tokens_are_a_set():
    """position_encoding=False: the decoder sees content only, so reordering the views (which
    permutes their tokens) leaves the logits unchanged; with the encoding it does not. (The
    reference takes whole images only; test_parity holds it to the fast model.)"""
    torch.manual_seed(0)
    kwargs = dict(backbone="test_resnet", crop_level=2, image_size=32, d_model=16, num_heads=2,
                  num_layers=2, dim_feedforward=16, llcd_reading="residual")
    x = torch.randn(2, 5, 3, 32, 32)  # (B, V, 3, M, M) views: global + 4 tiles
    swapped = x[:, [0, 4, 2, 3, 1]]
    for encoded in (False, True):
        model = lcnet_fast.LCNet(3, position_encoding=encoded, **kwargs).eval()
        assert (model.view_embed is not None) == encoded
        with torch.no_grad():
            same = torch.allclose(model(x), model(swapped), rtol=1e-5, atol=1e-5)
        assert same is not encoded
