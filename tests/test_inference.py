"""The 3-line inference API: LCNet.from_pretrained and Predictor (lcnet_fast/inference.py)."""

import numpy as np
import pytest
import torch

import lcnet_fast
from lcnet_fast.checkpoint import CheckpointError
from lcnet_fast.inference import preprocess_transform, save_pretrained

CLASSES = ["sky", "sea", "boat", "bird"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run-directory layout holding a weights checkpoint (what the train driver writes)."""
    torch.manual_seed(0)
    model = lcnet_fast.LCNet(len(CLASSES), backbone="test_resnet", crop_level=2, image_size=32,
                             d_model=32, num_heads=4, num_layers=1, dim_feedforward=48).eval()
    root = tmp_path_factory.mktemp("inference") / "run"
    save_pretrained(model, root / "checkpoints" / "best.safetensors", CLASSES)
    return root, model


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return str(path)


def test_from_pretrained_returns_the_model_in_eval_mode(run_dir):
    root, original = run_dir
    model = lcnet_fast.LCNet.from_pretrained(str(root))
    assert isinstance(model, lcnet_fast.LCNet) and not model.training
    assert model.classes == CLASSES
    assert model.preprocess["crop_level"] == 2 and model.preprocess["input_size"] == 64
    assert model.checkpoint_path.endswith("best.safetensors")
    for key, value in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        lcnet_fast.LCNet.from_pretrained(str(root.parent))


def test_three_line_api(run_dir, photo):
    root, _ = run_dir
    predictor = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu")
    result = predictor(photo)
    assert list(result) != [] and sorted(result) == sorted(CLASSES)
    values = list(result.values())
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    # the numbers: sigmoid(model(preprocessed image)), preprocessing as recorded
    model = lcnet_fast.LCNet.from_pretrained(str(root))
    from lcnet_fast.data import load_image

    batch = preprocess_transform(model.preprocess)(load_image(photo)).unsqueeze(0)
    with torch.no_grad():
        expected = torch.sigmoid(model(batch))[0]
    for index, name in enumerate(CLASSES):
        assert result[name] == pytest.approx(expected[index].item(), abs=1e-6)


def test_inputs_threshold_top_k_and_batches(run_dir, photo):
    from PIL import Image

    from lcnet_fast.data import load_image

    root, _ = run_dir
    predictor = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2)
    reference = predictor(photo)
    tensor = load_image(photo)
    array = tensor.permute(1, 2, 0).numpy()
    with Image.open(photo) as pil:
        pil.load()
        for other in (tensor, array, pil):
            got = predictor(other)
            assert list(got) == list(reference)
            assert np.allclose(list(got.values()), list(reference.values()), atol=1e-6)
    top = next(iter(reference.values()))
    assert list(predictor(photo, threshold=top)) == [next(iter(reference))]
    assert len(predictor(photo, top_k=2)) == 2
    many = predictor([photo, tensor, array])  # 3 images in batches of 2
    assert isinstance(many, list) and len(many) == 3
    assert predictor.probabilities([photo, photo]).shape == (2, len(CLASSES))
    with pytest.raises(ValueError, match="uint8 .3, H, W."):
        predictor(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="file path, a PIL image"):
        predictor(42)


def test_predictor_batch_is_crop_views_of_the_eval_pipeline(run_dir, photo):
    """The hot path (uint8 to the device, crop_views) gives the views the float pipeline gives,
    to float32 rounding, and the model takes them directly."""
    from lcnet_fast.data import load_image
    from lcnet_fast.models.crop_forwarding import split_views

    root, _ = run_dir
    predictor = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu")
    views = predictor.batch([photo, photo])
    assert views.shape == (2, 5, 3, 32, 32) and views.dtype == torch.float32
    image = preprocess_transform(predictor.preprocess)(load_image(photo)).unsqueeze(0)
    expected = split_views(image, 2)
    torch.testing.assert_close(views[:1], expected, rtol=0, atol=1e-5)
    assert torch.equal(views[0], views[1])
    with torch.no_grad():
        torch.testing.assert_close(predictor.model(views[:1]), predictor.model(image),
                                   rtol=0, atol=1e-5)


def test_model_takes_views_and_checks_them(run_dir):
    from lcnet_fast.models.crop_forwarding import split_views

    _, model = run_dir
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model(split_views(images, 2)), model(images))
    with pytest.raises(ValueError, match="views must be \\(B, V=5, 3, M, M\\) for crop level 2"):
        model(torch.zeros(2, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="got shape \\(2, 5, 3, 32, 31\\)"):
        model(torch.zeros(2, 5, 3, 32, 31))
    with pytest.raises(TypeError, match="views must be a floating-point tensor"):
        model(torch.zeros(2, 5, 3, 32, 32, dtype=torch.uint8))


def test_cuda_graph_option(run_dir):
    from lcnet_fast.inference import resolve_cuda_graph

    assert resolve_cuda_graph("auto", torch.device("cpu")) is False
    assert resolve_cuda_graph("auto", torch.device("cuda", 0)) is True
    assert resolve_cuda_graph(False, torch.device("cuda", 0)) is False
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device, the predictor "
                                         "is on cpu"):
        lcnet_fast.Predictor.from_pretrained(str(run_dir[0]), device="cpu", cuda_graph=True)
    with pytest.raises(ValueError, match='cuda_graph must be "auto", True or False'):
        resolve_cuda_graph("yes", torch.device("cpu"))


def test_graph_runners_one_per_batch_size_and_reused(run_dir, photo, monkeypatch):
    """The predictor's graph bookkeeping, on CPU with a stand-in for CudaGraphForward (which
    needs a GPU): one capture per batch size met, replayed for later batches of that size."""
    import lcnet_fast.inference as inference

    captured = []

    class FakeGraph:
        def __init__(self, model, autocast_dtype=None, input_shape=None):
            captured.append(input_shape)
            self.model, self.shape = model, input_shape

        def __call__(self, views):
            assert tuple(views.shape) == self.shape
            with torch.no_grad():
                return self.model(views)

    monkeypatch.setattr(inference, "CudaGraphForward", FakeGraph)
    root, _ = run_dir
    eager = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2)
    graphed = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2)
    graphed.cuda_graph = True  # as on a GPU
    images = [photo] * 5  # batches of 2, 2, 1
    expected = eager.probabilities(images)
    torch.testing.assert_close(graphed.probabilities(images), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(graphed.probabilities(images), expected, rtol=0, atol=1e-6)
    assert captured == [(2, 5, 3, 32, 32), (1, 5, 3, 32, 32)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_predictor_equals_eager(run_dir, photo):
    """5 images in batches of 2: graphs for batch sizes 2 and 1, replayed; same probabilities
    as the eager forward (bf16 autocast on both sides)."""
    root, _ = run_dir
    images = [photo] * 5
    eager = lcnet_fast.Predictor.from_pretrained(str(root), device="cuda", batch_size=2,
                                                 cuda_graph=False)
    graphed = lcnet_fast.Predictor.from_pretrained(str(root), device="cuda", batch_size=2)
    assert graphed.cuda_graph
    expected = eager.probabilities(images)
    for _ in range(2):  # the second pass replays the captured graphs
        torch.testing.assert_close(graphed.probabilities(images), expected, rtol=0, atol=2e-3)
    assert sorted(graphed._graphs) == [1, 2]
