"""`python -m lcnet_fast.train --help` lists every config key (section.key) with its type, default
and help, grouped by section, generated from the config dataclasses (lcnet_fast/config/help.py);
the listed keys are still parsed as overrides, not by argparse."""

import dataclasses
import re
from typing import get_type_hints

import pytest

from lcnet_fast.config import RunConfig
from lcnet_fast.config.help import format_default, type_name
from lcnet_fast.train import parse_args


def normalise(text: str) -> str:
    """Whitespace collapsed, and argparse's line breaks after a hyphen ("per-\\nclass") undone."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def every_field():
    """(section, field, type, default value) from the dataclasses themselves."""
    defaults = RunConfig()
    for section in dataclasses.fields(RunConfig):
        cls = get_type_hints(RunConfig)[section.name]
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(getattr(defaults, section.name), f.name)
            yield section.name, f, hints[f.name], value


def test_help_lists_every_config_key_with_type_default_and_help(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["--help"])
    assert stop.value.code == 0
    text = normalise(capsys.readouterr().out)

    rows = list(every_field())
    assert len(rows) > 80
    starts = []
    for section, f, annotation, _ in rows:
        entry = f"--{section}.{f.name} {type_name(annotation)} "
        at = text.find(entry, starts[-1] if starts else 0)
        assert at >= 0, f"{section}.{f.name} is not listed (in field order) in --help"
        starts.append(at)
    starts.append(len(text))
    for (section, f, _, value), begin, end in zip(rows, starts, starts[1:], strict=False):
        block = text[begin:end]
        assert f"(default: {format_default(value)})" in block, (section, f.name, block)
        help_line = f.metadata.get("help", "")
        assert help_line and normalise(help_line) in block, (section, f.name, block)

    # one group per section, in RunConfig's order, and a few entries spelt out
    headings = [text.find(f"config section '{s.name}'") for s in dataclasses.fields(RunConfig)]
    assert -1 not in headings and headings == sorted(headings)
    assert "--optim.lr FLOAT peak learning rate (OneCycleLR's max_lr) (default: 0.002)" in text
    assert "--data.mean FLOAT,... " in text and "(default: 0.485,0.456,0.406)" in text
    assert "--train.compile BOOL torch.compile the model (default: false)" in text
    assert '--train.output STR run directory; "" = runs/<name or timestamp> (default: "")' in text
    # the usage line stays short: the config keys are not spelt out there
    usage = text[: text.find("Train LCNet.")]
    assert "[--section.key VALUE ...]" in usage and "--optim.lr" not in usage


def test_listed_keys_are_overrides_not_argparse_options():
    """The keys shown by --help reach the override mechanism unchanged (bare keys, switches,
    key=value, lists), with --data-root/--output as aliases, exactly as before the listing."""
    args, overrides = parse_args(
        [
            "--optim.lr",
            "1e-3",
            "--batch-size",
            "8",
            "--train.compile",
            "--data.mean=0.5,0.5,0.5",
            "--data-root",
            "/data",
            "--threads",
            "1",
        ]
    )
    assert overrides == {
        "optim.lr": "1e-3",  # YAML 1.1 text; the field's type (float) converts it later
        "batch-size": 8,
        "train.compile": True,
        "data.mean": "0.5,0.5,0.5",
        "data.root": "/data",
    }
    assert args.threads == 1 and not hasattr(args, "optim.lr")


def test_evaluate_help_lists_the_data_keys_only(capsys):
    """evaluate takes data.* overrides only: its --help lists each of them, and no other section."""
    from lcnet_fast.evaluate import parse_args as evaluate_args

    with pytest.raises(SystemExit) as stop:
        evaluate_args(["--help"])
    assert stop.value.code == 0
    text = normalise(capsys.readouterr().out)
    data_fields = [(f, hints) for s, f, hints, _ in every_field() if s == "data"]
    assert len(data_fields) > 20
    for f, annotation in data_fields:
        assert f"--data.{f.name} {type_name(annotation)} " in text, f.name
    assert "config section 'data'" in text and "--optim." not in text and "--model." not in text
    assert "evaluate starts from the run's" in text
