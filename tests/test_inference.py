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


def test_compile_cuda_graph_and_channels_last_options(run_dir, capsys):
    """compile and cuda_graph: "auto" gives way to compile, both explicitly on is an error; bad
    values fail before the checkpoint is read; the CLI says "choose one" in one argparse line."""
    from lcnet_fast.inference import resolve_channels_last, resolve_cuda_graph
    from lcnet_fast.predict import main as predict_main

    cuda = torch.device("cuda", 0)
    assert resolve_cuda_graph("auto", cuda, compile=True) is False
    assert resolve_cuda_graph("auto", cuda, compile=False) is True
    with pytest.raises(ValueError, match="compile=True and cuda_graph=True: choose one"):
        resolve_cuda_graph(True, cuda, compile=True)
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        lcnet_fast.Predictor.from_pretrained("no/such/run", device="cpu", compile="yes")
    assert resolve_channels_last("auto", torch.device("cpu")) is True
    assert resolve_channels_last("auto", cuda) is False
    with pytest.raises(ValueError, match='channels_last must be "auto", True or False'):
        lcnet_fast.Predictor.from_pretrained("no/such/run", device="cpu", channels_last="on")
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--checkpoint", str(run_dir[0]), "x.jpg", "--compile", "--cuda-graph", "on"])
    assert exit_info.value.code == 2
    assert "error: --compile and --cuda-graph on: choose one" in capsys.readouterr().err


def test_channels_last_predictor_equals_contiguous(run_dir, photo):
    """The CPU default (channels-last backbone, views stored view-major NHWC) gives the
    contiguous-layout probabilities to float32 rounding, and the layout is the one intended."""
    root, _ = run_dir
    images = [photo, torch.zeros(3, 50, 70, dtype=torch.uint8), photo]
    nhwc = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2)
    nchw = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2,
                                                channels_last=False)
    assert nhwc.channels_last and not nchw.channels_last
    torch.testing.assert_close(nhwc.probabilities(images), nchw.probabilities(images),
                               rtol=0, atol=1e-6)
    views = nhwc.batch([photo, photo])
    assert views.shape == (2, 5, 3, 32, 32)
    flat = views.transpose(0, 1).reshape(10, 3, 32, 32)  # the backbone's view-major flatten
    assert flat.data_ptr() == views.data_ptr()  # a view, no copy
    assert flat.is_contiguous(memory_format=torch.channels_last)
    conv = next(m for m in nhwc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_failed_compile_is_one_line(run_dir, photo, capsys, monkeypatch):
    """A torch.compile that cannot build (here: inductor finding no C++ compiler, raised as
    dynamo wraps it) ends as one BackendUnavailableError line naming the cause, from the API
    and from `predict --compile`."""
    from torch._dynamo.exc import BackendCompilerFailed
    from torch._inductor.exc import InvalidCxxCompiler

    from lcnet_fast.engine.cli import run_cli
    from lcnet_fast.errors import BackendUnavailableError
    from lcnet_fast.predict import main as predict_main

    def no_compiler(*args, **kwargs):
        raise BackendCompilerFailed("inductor", InvalidCxxCompiler(), None)

    root, _ = run_dir
    predictor = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", compile=True)
    monkeypatch.setattr(predictor, "_forward", no_compiler)
    with pytest.raises(BackendUnavailableError,
                       match=r"^torch.compile failed \(InvalidCxxCompiler: No working C\+\+ "
                             r"compiler found.*run without --compile") as info:
        predictor.probabilities(photo)
    assert "\n" not in str(info.value)

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: no_compiler)
    code = run_cli(lambda: predict_main(["--checkpoint", str(root), photo, "--compile"]))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torch.compile failed (InvalidCxxCompiler" in err[0], err


# Tolerance of the compiled-vs-eager checks: inductor fuses and reorders fp32 reductions
# (different summation order, FMA), so logits move by a few float32 ulps per layer (~5e-7 seen at
# this size); sigmoid's slope is <= 1/4, so 1e-5 on probabilities is > 10x that, still far below
# anything a label decision could notice.
COMPILE_ATOL = 1e-5


@pytest.mark.slow  # one inductor compilation: ~50 s on 2 cold CPU cores, ~5 s from its cache
def test_compiled_predictor_equals_eager(run_dir, photo):
    """4 images in batches of 2 (one batch size, so one compilation; the CLI test below reuses
    it): the compiled forward gives the eager probabilities to float32 rounding."""
    root, _ = run_dir
    images = [photo, torch.zeros(3, 50, 70, dtype=torch.uint8), photo,
              np.full((40, 30, 3), 200, dtype=np.uint8)]
    eager = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2)
    compiled = lcnet_fast.Predictor.from_pretrained(str(root), device="cpu", batch_size=2,
                                                    compile=True)
    assert compiled.compiled and not compiled.cuda_graph
    assert isinstance(compiled._forward, torch._dynamo.eval_frame.OptimizedModule)
    expected = eager.probabilities(images)
    for _ in range(2):  # the second pass runs the compiled code without compiling
        torch.testing.assert_close(compiled.probabilities(images), expected, rtol=0,
                                   atol=COMPILE_ATOL)
    pair = [photo, photo]  # batch size 2 again: a single image would compile for size 1
    assert [list(r) for r in compiled(pair, top_k=2)] == [list(r) for r in eager(pair, top_k=2)]


@pytest.mark.slow  # the same graph as the test above: inductor's cache makes it seconds
def test_predict_cli_compile(run_dir, photo, capsys, monkeypatch):
    import json

    from lcnet_fast.inference import Predictor
    from lcnet_fast.predict import main as predict_main

    used = []  # which forward each CLI run used
    original = Predictor.probabilities
    monkeypatch.setattr(Predictor, "probabilities",
                        lambda self, images: used.append(self.compiled) or original(self, images))
    root, _ = run_dir
    argv = ["--checkpoint", str(root), photo, photo, "--format", "json", "--threshold", "0",
            "--batch-size", "2", "--device", "cpu"]
    assert predict_main(argv) == 0
    eager = json.loads(capsys.readouterr().out)
    assert predict_main([*argv, "--compile"]) == 0
    compiled = json.loads(capsys.readouterr().out)
    assert used == [False, True] and len(compiled) == 2
    for got, want in zip(compiled, eager, strict=True):
        assert got["image"] == want["image"]
        assert [x["label"] for x in got["labels"]] == [x["label"] for x in want["labels"]]
        np.testing.assert_allclose([x["probability"] for x in got["labels"]],
                                   [x["probability"] for x in want["labels"]], rtol=0,
                                   atol=COMPILE_ATOL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("bf16", 2e-2)])
def test_compiled_predictor_equals_eager_on_cuda(run_dir, photo, precision, atol):
    """4 images in batches of 2 (one compilation per precision, to stay within gpu_check.sh's
    test stage), eager vs compiled, no CUDA graph on either side. fp32: in inductor's default
    mode both run convolutions and matmuls through cuDNN/cuBLAS (TF32 convolutions included);
    only the fused elementwise kernels round differently; bf16: inductor keeps fused
    intermediates in fp32 where eager rounds each op's output to bf16 (8-bit mantissa)."""
    root, _ = run_dir
    images = [photo] * 3 + [torch.zeros(3, 50, 70, dtype=torch.uint8)]
    eager = lcnet_fast.Predictor.from_pretrained(str(root), device="cuda", batch_size=2,
                                                 precision=precision, cuda_graph=False)
    compiled = lcnet_fast.Predictor.from_pretrained(str(root), device="cuda", batch_size=2,
                                                    precision=precision, compile=True)
    assert compiled.compiled and not compiled.cuda_graph and not compiled.channels_last
    expected = eager.probabilities(images)
    for _ in range(2):
        torch.testing.assert_close(compiled.probabilities(images), expected, rtol=0, atol=atol)
