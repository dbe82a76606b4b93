"""python -m lcnet_fast.visualize graph: the CSV is the model's matrix, the PNG a real picture."""

import numpy as np
import pytest
import torch

from lcnet_fast.visualize import VisualizeError, plot_label_graph, read_matrix_csv
from lcnet_fast.visualize.__main__ import main
from lcnet_fast.visualize.graph import edge_strengths, kept_edges


@pytest.mark.parametrize("transform", ["softmax", "raw"])
def test_csv_is_the_models_matrix_and_png_is_valid(tiny_checkpoint, tmp_path, transform,
                                                    assert_png, classes):
    path, model = tiny_checkpoint
    result = plot_label_graph(path, str(tmp_path), transform=transform, threshold=0.5)
    a = model.label_graph.correlation.detach().double()
    expected = torch.softmax(a, dim=-1) if transform == "softmax" else a
    read_classes, matrix = read_matrix_csv(result["csv"])
    assert read_classes == classes
    np.testing.assert_array_equal(matrix, expected.numpy())  # 17 digits: exact round trip
    assert_png(result["png"])
    assert result["png"].endswith(f"label_graph_{transform}.png")


def test_edges_follow_the_threshold_and_layout_puts_strong_pairs_closer(tiny_checkpoint,
                                                                       tmp_path, classes):
    path, model = tiny_checkpoint
    result = plot_label_graph(path, str(tmp_path), threshold=0.4)
    w = torch.softmax(model.label_graph.correlation.detach().double(), dim=-1).numpy()
    s = (w + w.T) / 2
    pairs = [(i, j) for i in range(len(classes)) for j in range(i + 1, len(classes))]
    low, high = min(s[p] for p in pairs), max(s[p] for p in pairs)
    kept = {(i, j) for i, j, _ in result["edges"]}
    for i, j in pairs:
        r = (s[i, j] - low) / (high - low)
        assert ((i, j) in kept) == (r >= 0.4), (i, j, r)
    # nodes of the strongest pairs sit closer than the weakest pairs
    pos = result["positions"]
    pairs = sorted((s[i, j], np.linalg.norm(pos[i] - pos[j]))
                    for i in range(len(classes)) for j in range(i + 1, len(classes)))
    weak, strong = pairs[:3], pairs[-3:]
    assert np.mean([d for _, d in strong]) < np.mean([d for _, d in weak])


def test_kept_edges_are_min_max_scaled_and_flat_graphs_have_none():
    # s01 = 0.5, s02 = -1, s12 = 0.1 -> r = 1, 0, 1.1 / 1.5
    s = edge_strengths(np.array([[0.0, 1.0, -2.0], [0.0, 0.0, 0.2], [0.0, 0.0, 0.0]]))
    assert kept_edges(s, 0.8) == [(0, 1, 1.0)]
    assert kept_edges(s, 0.5) == [(0, 1, 1.0), (1, 2, pytest.approx(1.1 / 1.5))]
    assert [e[:2] for e in kept_edges(s, 0.0)] == [(0, 1), (1, 2)]  # the weakest pair never
    flat = edge_strengths(np.full((4, 4), 0.3))  # e.g. softmax of an untrained one-hot graph
    assert kept_edges(flat, 0.0) == []
    with pytest.raises(VisualizeError, match="threshold"):
        kept_edges(s, 2.0)


def test_cli_on_a_training_run_and_no_graph_error(trained_run, tiny_checkpoint_no_graph,
                                                  tmp_path, assert_png):
    assert main(["graph", "--checkpoint", str(trained_run), "--threshold", "0.3"]) == 0
    figures = trained_run / "figures"  # default output: <run dir>/figures
    assert_png(figures / "label_graph_softmax.png")
    classes, _ = read_matrix_csv(str(figures / "label_graph_softmax.csv"))
    assert len(classes) == 4
    with pytest.raises(VisualizeError, match="use_graph=False"):
        main(["graph", "--checkpoint", tiny_checkpoint_no_graph, "--out", str(tmp_path)])


def test_pooled_baseline_has_no_graph_or_attention_to_draw(tmp_path):
    from lcnet_fast import PooledClassifier
    from lcnet_fast.inference import save_pretrained

    path = tmp_path / "pooled.safetensors"
    save_pretrained(PooledClassifier(4, "test_resnet", input_size=32), path, list("abcd"))
    with pytest.raises(VisualizeError, match="pooled baseline"):
        main(["graph", "--checkpoint", str(path), "--out", str(tmp_path)])
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    with pytest.raises(VisualizeError, match="pooled baseline"):
        main(["attention", "--checkpoint", str(path), str(image), "--out", str(tmp_path)])
