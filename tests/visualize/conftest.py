"""Checkpoints for the picture tests: tiny models saved with lcnet_fast.inference.save_pretrained
(the checkpoint format the train driver writes; milliseconds), plus one real tiny training run for
the curves (the driver in-process, the approach of tests/drivers/conftest.py)."""

import numpy as np
import pytest
import torch

import lcnet_fast
from lcnet_fast.inference import save_pretrained

CLASSES = ["cat", "dog", "car", "road", "tree"]
TINY_MODEL = dict(backbone="test_resnet", crop_level=2, image_size=64, d_model=32, num_heads=4,
                  num_layers=2, dim_feedforward=48, dropout=0.1)


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = {**TINY_MODEL, **overrides}
    correlation = None
    if config.get("use_graph", True):
        correlation = torch.randn(len(CLASSES), len(CLASSES))  # a graph with structure to draw
    return lcnet_fast.LCNet(len(CLASSES), correlation=correlation, **config).eval()


@pytest.fixture(scope="session")
def classes():
    return list(CLASSES)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(checkpoint file, the model it holds)."""
    model = tiny_model()
    path = tmp_path_factory.mktemp("viz") / "tiny.safetensors"
    save_pretrained(model, path, CLASSES)
    return str(path), model


@pytest.fixture(scope="session")
def tiny_checkpoint_no_graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("viz_nograph") / "nograph.safetensors"
    save_pretrained(tiny_model(use_graph=False), path, CLASSES)
    return str(path)


TRAIN_ARGS = [
    "--backbone", "test_resnet", "--crop-level", "2", "--model.image_size", "16",
    "--d-model", "32", "--num-heads", "2", "--num-layers", "1", "--dim-feedforward", "64",
    "--synthetic-image-size", "32", "--synthetic-num-train", "16", "--synthetic-num-val", "8",
    "--synthetic-num-test", "8", "--synthetic-num-classes", "4", "--epochs", "3",
    "--batch-size", "8", "--eval-batch-size", "8", "--lr", "1e-3", "--device", "cpu",
]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished 3-epoch run directory written by python -m lcnet_fast.train (in-process)."""
    from lcnet_fast.train import main

    run_dir = tmp_path_factory.mktemp("viz_run") / "run"
    assert main([*TRAIN_ARGS, "--output", str(run_dir)]) == 0
    return run_dir


@pytest.fixture(scope="session")
def assert_png():
    """assert_png(path): the file is a valid PNG with something drawn on it."""
    return _assert_png


def _assert_png(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        assert width > 100 and height > 100
        assert len(np.unique(np.asarray(image.convert("L")))) > 8  # something was drawn
