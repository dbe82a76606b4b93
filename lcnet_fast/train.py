"""Train LCNet: ``python -m lcnet_fast.train [--preset NAME] [--config FILE.yaml] [--key value]``.

With no argument it trains the built-in synthetic job (a tiny backbone on procedurally drawn
scenes) and prints the test-split metric table. ``--resume RUN_DIR`` continues a stopped run to the
same result as an uninterrupted one (under another world size or ``--batch-size`` it continues
elastically: lcnet_fast/engine/elastic.py). Under ``torchrun --nproc_per_node N -m
lcnet_fast.train ...`` it runs DistributedDataParallel (NCCL on GPU, gloo on CPU); only rank 0
writes files.

This module is the command line and the top-level train(); the run itself (setup, epochs,
checkpoints, test) is lcnet_fast/engine/run.py, resuming lcnet_fast/engine/resume.py, the
optimizer, schedule and loss lcnet_fast/engine/optim.py. Their public names stay importable from
here (``lcnet_fast.train.Run``, ``build_optimizer``, ``resume_config``, ``USER_ERRORS``, ...).

Everything that can fail because of the input (config, data, classes, model, checkpoint) is checked
before the run directory is written; a new run that fails before its first checkpoint leaves no
directory behind (engine/rundir.py).

Run directory (``--output DIR``, default ``runs/<name or timestamp>``)::

    config.yaml                 the resolved config (repeat the run with --config DIR/config.yaml)
    log.csv                     one row per epoch
    checkpoints/last.safetensors  everything needed to resume (weights, EMA, optimizer, scheduler,
                                  position)
    checkpoints/best.safetensors  the reported weights of the best epoch on the VALIDATION split
    metrics.json                test-split metrics of the final weights (train.final_weights)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import yaml

from lcnet_fast.checkpoint import Checkpoint
from lcnet_fast.config import (
    ConfigError,
    ConfigHelpAction,
    RunConfig,
    config_to_dict,
    parse_override_tokens,
    resolve_config,
)
from lcnet_fast.engine import distributed

# The names below are re-exported: callers and tests address them as lcnet_fast.train.<name>
# (e.g. monkeypatch.setattr(lcnet_fast.train.Run, "save_last", ...) patches the class itself).
from lcnet_fast.engine.cli import USER_ERRORS, add_threads_argument, apply_threads  # noqa: F401
from lcnet_fast.engine.model import label_graph_init  # noqa: F401
from lcnet_fast.engine.optim import (  # noqa: F401
    build_criterion,
    build_optimizer,
    build_scheduler,
    lr_peaks,
)
from lcnet_fast.engine.resume import RESUME_OVERRIDABLE, resume_config  # noqa: F401
from lcnet_fast.engine.run import Run
from lcnet_fast.engine.run_checkpoints import SAVE_HINT, preprocess_record  # noqa: F401
from lcnet_fast.errors import (  # noqa: F401
    BackendUnavailableError,
    DivergenceError,
    EmptySplitError,
    NonFiniteLossError,
    NonFiniteScoresError,
)

# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    """(the driver's own options, the config overrides). The overrides are every token argparse
    does not know, parsed by parse_override_tokens; -h/--help lists the config keys as argument
    groups (lcnet_fast/config/help.py) but they are never parsed by argparse."""
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_fast.train",
        description="Train LCNet. Every config key listed below by section can be set with "
        "--section.key VALUE, or --key VALUE when the name is unique across sections (dashes and "
        "underscores alike; a boolean key alone means true; lists comma-separated). Precedence: "
        "command line > --config YAML > --preset > the defaults shown. --print-config prints "
        "the resolved config.",
        add_help=False,
    )
    parser.add_argument(
        "-h",
        "--help",
        action=ConfigHelpAction,
        help="show this help, with every config key by section, and exit",
    )
    parser.add_argument("--config", help="YAML file with (nested) config values")
    parser.add_argument(
        "--preset", help="paper-coco | paper-voc | paper-rope: the paper's settings"
    )
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint"
    )
    parser.add_argument("--data-root", dest="data_root", help="dataset root (= --data.root)")
    parser.add_argument("--output", help="run directory (= --train.output)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    add_threads_argument(parser)
    args, rest = parser.parse_known_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0 (0 = automatic), got {args.threads}")
    overrides = parse_override_tokens(rest)
    if args.data_root is not None:
        overrides["data.root"] = args.data_root
    if args.output is not None:
        overrides["train.output"] = args.output
    return args, overrides


def default_run_dir(cfg: RunConfig) -> str:
    if cfg.train.output:
        return cfg.train.output
    name = cfg.train.name or time.strftime("%Y%m%d-%H%M%S")
    path, suffix = os.path.join("runs", name), 1
    while os.path.exists(path):
        suffix += 1
        path = os.path.join("runs", f"{name}-{suffix}")
    return path


# ----------------------------------------------------------------------------- the run


def train(cfg: RunConfig, run_dir: str | None = None, resume: Checkpoint | None = None) -> dict:
    """Train (or continue) a run; return its test-split result (also <run dir>/metrics.json)."""
    run = Run(cfg, run_dir or default_run_dir(cfg), resume)
    try:
        run.setup()
        run.fit()
        return run.test()
    except BaseException as exc:
        run.discard()
        if run.dist.enabled and distributed.is_collective_failure(exc):
            raise distributed.explain_collective_failure(
                exc, run.dist, run.heartbeat, cfg.train.collective_timeout_s
            ) from exc
        raise
    finally:
        run.heartbeat.stop()
        distributed.cleanup()


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    if args.resume:
        if args.preset or args.config:
            raise ConfigError(
                "--resume takes the recorded config; do not pass --preset or --config with it"
            )
        cfg, checkpoint = resume_config(args.resume, overrides)
        apply_threads(args.threads, cfg.data.num_workers)
        train(cfg, args.resume, checkpoint)
    else:
        cfg = resolve_config(args.preset, args.config, overrides)
        if args.print_config:
            print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
            return 0
        apply_threads(args.threads, cfg.data.num_workers)
        train(cfg)
    return 0


def cli() -> int:
    """Console entry: known user errors print one clear line instead of a traceback."""
    from lcnet_fast.engine.cli import run_cli

    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
