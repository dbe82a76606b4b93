"""The plain baseline is one flag away in train / evaluate / predict; a run whose scores do not
depend on the image is reported as collapsed; new model settings are validated and recorded."""

import csv
import json

import pytest
import torch
from torch import nn

from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.config import ConfigError, RunConfig, resolve_config
from lcnet_fast.engine import run as run_module
from lcnet_fast.engine.report import summary
from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.metrics import multilabel_metrics, score_spread
from lcnet_fast.models import PooledClassifier
from lcnet_fast.predict import main as predict_main
from lcnet_fast.train import build_optimizer, main


def test_pooled_baseline_trains_evaluates_and_predicts(tiny_args, tmp_path, capsys):
    run = tmp_path / "pooled"
    assert main(tiny_args(run, "--arch", "pooled")) == 0
    best = load_checkpoint(str(run / "checkpoints" / "best.safetensors"))
    assert best.model_config["arch"] == "pooled"
    # the whole 32-px input (crop level 2 x 16 px) as one view
    assert (best.meta["preprocess"]["crop_level"], best.meta["preprocess"]["image_size"]) == (1, 32)
    recorded = json.loads((run / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    assert evaluate_main(["--checkpoint", str(run), "--output", str(out), "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["mAP"] == pytest.approx(recorded["mAP"], abs=1e-6)

    from lcnet_fast.data import SyntheticScenes, write_dataset

    write_dataset(SyntheticScenes(1, 32, 4, seed=0, split="test"), str(tmp_path / "d"), "csv")
    image = tmp_path / "d" / "images" / "test_000000.png"
    capsys.readouterr()
    argv = ["--checkpoint", str(run), str(image), "--format", "json", "--threshold", "0",
            "--device", "cpu"]
    assert predict_main(argv) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["labels"]) == 4

    from lcnet_fast.inference import load_model

    assert isinstance(load_model(str(run)), PooledClassifier)


class ImageBlind(nn.Module):
    """An LCNet whose logits are its head's per-class bias: the same for every image."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.num_classes = inner.num_classes

    def forward(self, views):
        return self.inner.head.bias.expand(views.shape[0], -1)


def test_collapsed_run_is_reported(tiny_args, tmp_path, monkeypatch, capsys):
    # Run (lcnet_fast/engine/run.py) looks build_model up in its own module
    real_build = run_module.build_model
    monkeypatch.setattr(run_module, "build_model", lambda *a, **k: ImageBlind(real_build(*a, **k)))
    run = tmp_path / "blind"
    assert main(tiny_args(run)) == 0
    printed = capsys.readouterr().out
    assert "warning: COLLAPSED: validation scores" in printed
    assert "warning: COLLAPSED: test scores" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["collapsed"] is True and metrics["score_spread"] < 1e-6
    with open(run / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(r["val_score_spread"]) < 1e-6 for r in rows)


def test_summary_flags_scores_that_do_not_depend_on_the_image():
    targets = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]).numpy()
    constant = torch.full((4, 2), 0.55).numpy()
    varied = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.1, 0.3]]).numpy()
    assert score_spread(constant) == 0.0 and score_spread(varied) > 0.2
    for scores, collapsed in ((constant, True), (varied, False)):
        metrics = multilabel_metrics(scores, targets)
        result = summary(metrics, ["a", "b"], "test", 4, 0.5, "ema", "x", collapse_spread=0.02)
        assert result["collapsed"] is collapsed
        assert result["score_spread"] == pytest.approx(score_spread(scores))


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"model.arch": "mlp"}, "model.arch must be lcnet or pooled"),
        ({"model.llcd_reading": "resid"}, "model.llcd_reading must be literal or residual"),
        ({"data.synthetic_kind": "tiny"}, "data.synthetic_kind must be themes or small_objects"),
        ({"optim.decoder_lr_scale": 0}, "optim.decoder_lr_scale must be > 0"),
        ({"train.collapse_spread": -1}, r"train.collapse_spread must be in \[0, 0.5\)"),
    ],
)
def test_new_settings_are_validated(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(overrides=overrides)


def test_decoder_lr_scale_sets_the_non_backbone_groups():
    from lcnet_fast.models import LCNet

    model = LCNet(3, backbone="test_resnet", crop_level=1, image_size=32, d_model=16, num_heads=2,
                  num_layers=1, dim_feedforward=16)
    cfg = resolve_config(overrides={"optim.lr": 1e-3, "optim.decoder_lr_scale": 0.1})
    optimizer = build_optimizer(model, cfg)
    body = {id(p) for p in model.backbone.body.parameters()}
    seen = 0
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= body or not ids & body, "a group mixes backbone and decoder parameters"
        assert group["lr"] == pytest.approx(1e-3 if ids <= body else 1e-4)
        seen += len(ids)
    assert seen == sum(1 for _ in model.parameters())
    # one rate: the two-group layout (decay / no decay) that older checkpoints hold
    one_rate = resolve_config(overrides={"optim.decoder_lr_scale": 1.0})
    assert len(build_optimizer(model, one_rate).param_groups) == 2
    assert len(build_optimizer(model, RunConfig()).param_groups) == 4  # default scale 0.3


def test_trainer_default_and_paper_presets_decoder_lr_scale():
    assert RunConfig().optim.decoder_lr_scale == 0.3
    for preset in ("paper-coco", "paper-voc", "paper-rope"):
        assert resolve_config(preset=preset).optim.decoder_lr_scale == 1.0
