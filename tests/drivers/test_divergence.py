"""Divergence guard (issue 11): a huge learning rate stops the run with one clear line (exit 2)
and keeps the last good checkpoint, instead of finishing with weights ~1e16 and chance mAP."""

from types import SimpleNamespace

import pytest
import torch

from lcnet_fast.checkpoint import load_checkpoint
from lcnet_fast.engine import seeding
from lcnet_fast.engine.cli import run_cli
from lcnet_fast.engine.loop import DivergenceError, Position, check_divergence, weight_norm
from lcnet_fast.engine.model import build_model
from lcnet_fast.train import main


def test_huge_learning_rate_stops_and_keeps_the_last_good_checkpoint(tiny_args, tmp_path, capsys):
    run_dir = tmp_path / "run"
    # one rate for the whole model: the step at which it diverges is pinned below
    argv = tiny_args(run_dir, "--lr", "1e2", "--optim.decoder_lr_scale", "1")
    code = run_cli(lambda: main(argv))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: training diverged at step 2 (epoch 1)"), err
    assert "train.max_weight_growth 100" in err[0] and "lower optim.lr" in err[0]
    last = load_checkpoint(str(run_dir / "checkpoints" / "last.safetensors"))
    assert last.meta["step"] == 1  # saved before the step that diverged
    # the run's initial weights (seeded) against the saved ones: grown, but within the bound
    torch.manual_seed(seeding.derive_seed(0, seeding.INIT))
    model = build_model(last.meta["model_config"], torch.eye(4), pretrained=False)
    initial = weight_norm(model)
    model.load_state_dict(last.tensors("model"))
    assert 2 < weight_norm(model) / initial <= 100
    assert not (run_dir / "metrics.json").exists()


def test_inf_weights_stop_even_with_the_growth_limit_off():
    model = torch.nn.Linear(3, 2)
    parts = SimpleNamespace(
        raw_model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        initial_weight_norm=weight_norm(model),
        max_weight_growth=0.0,
    )
    check_divergence(parts, Position())  # in range: nothing happens
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(DivergenceError, match="made the weights NaN/inf"):
        check_divergence(parts, Position(step=4))
    parts.max_weight_growth = 100.0
    with torch.no_grad():
        model.weight.fill_(1e6)
    with pytest.raises(DivergenceError, match="limit train.max_weight_growth 100"):
        check_divergence(parts, Position())
