"""evaluate's argument ranges: one argparse error (exit 2) before anything is loaded."""

import pytest

from lcnet_fast.evaluate import main as evaluate_main
from lcnet_fast.evaluate import parse_args as evaluate_args


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--batch-size", "-1", "--batch-size must be >= 1, got -1"),
        ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
        ("--threshold", "2", "--threshold must be in [0, 1], got 2.0"),
        ("--threshold", "-0.1", "--threshold must be in [0, 1], got -0.1"),
        ("--num-workers", "-1", "--num-workers must be >= 0, got -1"),
    ],
)
def test_out_of_range_options(option, value, message, tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    with pytest.raises(SystemExit) as stop:
        evaluate_main(["--checkpoint", str(missing), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_boundary_values_are_accepted():
    args, _ = evaluate_args(["--checkpoint", "x", "--batch-size", "1", "--threshold", "1"])
    assert args.batch_size == 1 and args.threshold == 1.0
    args, _ = evaluate_args(["--checkpoint", "x"])
    assert args.batch_size is None  # the run's own eval batch size
