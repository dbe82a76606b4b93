"""Tiny settings for the experiment CLIs: seconds per run on 2 CPU cores."""

import pytest

# a test_resnet LCNet on 16-px views (crop level k -> k*16 px synthetic scenes), 16 train images
TINY_TRAIN = [
    "--backbone",
    "test_resnet",
    "--model.image_size",
    "16",
    "--d-model",
    "32",
    "--num-heads",
    "2",
    "--dim-feedforward",
    "64",
    "--synthetic-num-train",
    "16",
    "--synthetic-num-val",
    "8",
    "--synthetic-num-test",
    "12",
    "--synthetic-num-classes",
    "10",
    "--batch-size",
    "8",
    "--eval-batch-size",
    "12",
    "--log-every",
    "100",
    "--device",
    "cpu",
]


@pytest.fixture(scope="session")
def tiny_train_args():
    return list(TINY_TRAIN)
