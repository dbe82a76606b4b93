"""Shared tiny settings for the driver tests: a test_resnet LCNet on 32 px synthetic scenes (crop
level 2 x 16 px views), 24 training images, 2 epochs -- seconds per run on 2 CPU cores.

`tiny_run` trains once per session and is shared by the tests that only read a finished run.
"""

import os

import pytest

TINY = [
    "--backbone",
    "test_resnet",
    "--crop-level",
    "2",
    "--model.image_size",
    "16",
    "--d-model",
    "32",
    "--num-heads",
    "2",
    "--num-layers",
    "1",
    "--dim-feedforward",
    "64",
    "--synthetic-image-size",
    "32",
    "--synthetic-num-train",
    "24",
    "--synthetic-num-val",
    "8",
    "--synthetic-num-test",
    "8",
    "--synthetic-num-classes",
    "4",
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--eval-batch-size",
    "8",
    "--log-every",
    "1",
    "--checkpoint-every-steps",
    "1",
    "--lr",
    "1e-3",
    "--device",
    "cpu",
]


def _tiny_args(output, *extra: str) -> list[str]:
    return [*TINY, "--output", str(output), *extra]


def _no_temp_files(directory) -> bool:
    return not any(".tmp" in name for _, _, files in os.walk(directory) for name in files)


@pytest.fixture(scope="session")
def tiny_args():
    """tiny_args(run_dir, *extra) -> argv for lcnet_fast.train.main."""
    return _tiny_args


@pytest.fixture(scope="session")
def no_temp_files():
    """no_temp_files(directory) -> True when no half-written .tmp file is left."""
    return _no_temp_files


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished 2-epoch tiny run directory (checkpoint every step)."""
    from lcnet_fast.train import main

    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    assert main(_tiny_args(run_dir)) == 0
    return run_dir


class Interrupt(Exception):
    """Raised by stop_after_saves: the run dies right after a checkpoint, as under kill -9."""


@pytest.fixture
def stop_after_saves(monkeypatch):
    """stop_after_saves(argv, saves): run lcnet_fast.train.main(argv) and stop it (Interrupt)
    right after its `saves`-th `last` checkpoint; Run.save_last is restored afterwards."""
    import lcnet_fast.train as train_module

    def run(argv, saves):
        original, calls = train_module.Run.save_last, {"n": 0}

        def save_then_stop(self):
            original(self)
            calls["n"] += 1
            if calls["n"] == saves:
                raise Interrupt

        monkeypatch.setattr(train_module.Run, "save_last", save_then_stop)
        try:
            with pytest.raises(Interrupt):
                train_module.main(argv)
        finally:
            monkeypatch.setattr(train_module.Run, "save_last", original)

    return run
