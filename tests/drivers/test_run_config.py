"""Config resolution: defaults < preset < YAML < CLI, strict keys and types, resume rules."""

import pytest
import yaml

from lcnet_fast.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    config_from_dict,
    config_to_dict,
    parse_override_tokens,
    resolve_config,
    save_config,
)
from lcnet_fast.train import parse_args


def test_precedence_defaults_preset_yaml_cli(tmp_path):
    defaults = RunConfig()
    assert resolve_config().train.epochs == defaults.train.epochs

    preset = resolve_config("paper-voc")
    assert (preset.model.backbone, preset.model.image_size, preset.model.crop_level) == (
        "tresnet_l.miil_in1k_448",
        448,
        3,
    )
    assert (
        preset.model.num_layers,
        preset.optim.lr,
        preset.train.batch_size,
        preset.train.epochs,
    ) == (6, 5e-5, 56, 80)
    assert (preset.loss.gamma_neg, preset.loss.gamma_pos, preset.loss.clip) == (4.0, 0.0, 0.05)
    assert resolve_config("paper-rope").model.crop_level == 4

    path = tmp_path / "run.yaml"
    path.write_text(
        yaml.safe_dump({"preset": "paper-coco", "optim": {"lr": 1e-4}, "train": {"epochs": 5}})
    )
    from_file = resolve_config(config_file=str(path))
    assert from_file.data.dataset == "coco"  # the file's preset
    assert from_file.optim.lr == 1e-4 and from_file.train.epochs == 5  # the file beats its preset

    args, overrides = parse_args(
        [
            "--config",
            str(path),
            "--preset",
            "paper-voc",
            "--epochs",
            "7",
            "--optim.weight-decay",
            "0.5",
            "--data-root",
            "/data",
        ]
    )
    cli = resolve_config(args.preset, args.config, overrides)
    assert cli.data.dataset == "voc"  # CLI preset beats the file's preset
    assert cli.optim.lr == 1e-4  # file beats preset
    assert (
        cli.train.epochs == 7 and cli.optim.weight_decay == 0.5 and cli.data.root == "/data"
    )  # CLI beats file


def test_override_parsing_and_types():
    tokens = parse_override_tokens(
        ["--lr", "3e-4", "--skip-bad-images", "--betas", "0.8,0.9", "--ema=false"]
    )
    cfg = config_from_dict(tokens)
    assert cfg.optim.lr == 3e-4 and cfg.data.skip_bad_images is True
    assert cfg.optim.betas == [0.8, 0.9] and cfg.train.ema is False
    with pytest.raises(ConfigError, match="unknown config key 'lrr'.*lr"):
        config_from_dict({"lrr": 1})
    with pytest.raises(ConfigError, match="train.epochs must be an integer"):
        config_from_dict({"epochs": "many"})
    with pytest.raises(ConfigError, match="train.epochs must be >= 1"):
        resolve_config(overrides={"epochs": 0})
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_config("paper-imagenet")
    with pytest.raises(ConfigError, match="report_ema"):
        resolve_config(overrides={"ema": False, "report_ema": True})
    with pytest.raises(ConfigError, match="synthetic_image_size"):
        resolve_config(overrides={"crop_level": 3})


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_config("paper-coco", overrides={"epochs": 3})
    save_config(cfg, str(tmp_path / "config.yaml"))
    again = resolve_config(config_file=str(tmp_path / "config.yaml"))
    assert config_to_dict(again) == config_to_dict(cfg)
    assert set(PRESETS) == {"paper-coco", "paper-voc", "paper-rope"}
