"""evaluate and predict on a finished tiny run."""

import json

import numpy as np
import pytest
import torch

from lcnet_fast.checkpoint import CheckpointMismatchError, load_checkpoint
from lcnet_fast.engine.model import model_from_checkpoint
from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.metrics import multilabel_metrics
from lcnet_fast.predict import main as predict_main


def _test_split():
    from lcnet_fast.data import SyntheticScenes, build_transforms

    transform = build_transforms(train=False, crop_level=2, image_size=16)
    return SyntheticScenes(8, 32, 4, seed=0, split="test", transform=transform)


def test_evaluate_json_matches_metrics_recomputed_from_the_model(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert (
        evaluate_main(["--checkpoint", str(tiny_run), "--output", str(out), "--device", "cpu"]) == 0
    )
    printed = capsys.readouterr().out
    assert "mAP" in printed and "top-3" in printed and "per-class AP" in printed
    result = json.loads(out.read_text())

    model = model_from_checkpoint(load_checkpoint(str(tiny_run)))
    dataset = _test_split()
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        scores = torch.sigmoid(model(images)).numpy()
    expected = multilabel_metrics(scores, dataset.labels.numpy(), threshold=0.5)
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "CR_top3", "OF1_top3"):
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
    assert list(result["per_class_AP"]) == dataset.classes
    np.testing.assert_allclose(
        [result["per_class_AP"][c] for c in dataset.classes], expected["AP"], atol=1e-6
    )
    # the run's own test metrics were computed the same way
    assert json.loads((tiny_run / "metrics.json").read_text())["mAP"] == pytest.approx(
        result["mAP"], abs=1e-6
    )


def test_evaluate_rejects_a_dataset_with_other_classes(tiny_run):
    with pytest.raises(CheckpointMismatchError, match="checkpoint has 4 classes, dataset has 5"):
        evaluate_main(
            ["--checkpoint", str(tiny_run), "--synthetic-num-classes", "5", "--device", "cpu"]
        )


def test_predict_single_image(tiny_run, tmp_path, capsys):
    from lcnet_fast.data import SyntheticScenes, write_dataset

    write_dataset(SyntheticScenes(1, 32, 4, seed=0, split="test"), str(tmp_path / "d"), "csv")
    image = tmp_path / "d" / "images" / "test_000000.png"
    assert (
        predict_main(
            [
                "--checkpoint",
                str(tiny_run),
                str(image),
                "--format",
                "json",
                "--top-k",
                "2",
                "--threshold",
                "0.0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 1 and results[0]["image"] == str(image)
    labels = results[0]["labels"]
    assert len(labels) == 4 and len(results[0]["top_k"]) == 2  # threshold 0: every class listed
    probabilities = [item["probability"] for item in labels]
    assert probabilities == sorted(probabilities, reverse=True) and all(
        0 <= p <= 1 for p in probabilities
    )
    assert (
        predict_main(
            ["--checkpoint", str(tiny_run), str(tmp_path / "d" / "images"), "--device", "cpu"]
        )
        == 0
    )
    assert str(image) in capsys.readouterr().out


def test_predict_missing_image_names_it(tiny_run, tmp_path):
    from lcnet_fast.data import ImageLoadError

    with pytest.raises(ImageLoadError, match="nothere.png"):
        predict_main(
            ["--checkpoint", str(tiny_run), str(tmp_path / "nothere.png"), "--device", "cpu"]
        )


def test_predict_cuda_graph_on_without_a_gpu_says_so(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="cuda_graph=True needs a CUDA device"):
        predict_main(
            ["--checkpoint", str(tiny_run), str(tmp_path), "--device", "cpu", "--cuda-graph", "on"]
        )
