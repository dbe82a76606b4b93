"""``python -m lcnet_fast.experiments ablation``: the paper's ablations (Tables 4-8) at a CPU scale.

Every (row, seed) is one ordinary training run through ``lcnet_fast.train.train`` -- the same config
system, engine and run directory as ``python -m lcnet_fast.train`` -- so any dataset and any config
value the train driver accepts works here too (``--dataset voc --data-root ...``, ``--lr 1e-3``,
``--preset paper-voc``). Rows differ only in the model settings they name (see ``rows.py``); seeds,
epochs, data and optimiser are shared, so every row gets the same budget.

Outputs (``--output DIR``): ``<stem>.md`` (the table), ``<stem>.json`` (every run's metrics and the
aggregates), ``<stem>.png`` (mAP over depth and crop level). Run directories go to ``--runs-dir``;
a finished run found there (same resolved config) is reused, an unfinished one is resumed, so an
interrupted ablation continues where it stopped. Run directories are not committed; ``--records
<stem>.json`` takes a run that is not under ``--runs-dir`` from a previous ablation's JSON instead,
so a grid can grow across machines without retraining the rows it already has.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import time

from lcnet_fast.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_yaml,
    merge_config,
    parse_override_tokens,
)
from lcnet_fast.data.scene import is_tiny_class
from lcnet_fast.experiments.ablation_table import markdown
from lcnet_fast.experiments.rows import Row, expand_rows
from lcnet_fast.experiments.stats import mean_std

# what the budgeted CPU run uses when --rows is not given
DEFAULT_ROWS = "table4,table5,d1_c1_mirror,d4_c1_mirror,table7"
METRICS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CF1_top3", "OF1_top3")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_fast.experiments ablation",
        description="Train one run per (row, seed) and tabulate test metrics. Unrecognised "
        "--key value pairs are train-config overrides (as for python -m lcnet_fast.train).",
    )
    parser.add_argument(
        "--rows",
        default=DEFAULT_ROWS,
        help="comma-separated rows (d<depth>_c<level>[_nograph][_mirror]) and groups "
        f"(table4..table8); default {DEFAULT_ROWS}",
    )
    parser.add_argument("--seeds", default="0,1", help="comma-separated train.seed values")
    parser.add_argument("--epochs", type=int, help="train.epochs for every run")
    parser.add_argument("--preset", help="train preset (paper-coco, paper-voc, paper-rope)")
    parser.add_argument("--config", help="train config YAML")
    parser.add_argument("--data-root", dest="data_root", help="dataset root (= --data.root)")
    parser.add_argument(
        "--output",
        default=os.path.join("runs", "experiments"),
        help="where <stem>.md/.json/.png go (committed results live in docs/experiments)",
    )
    parser.add_argument("--stem", default="ablation", help="output file name stem")
    parser.add_argument(
        "--runs-dir",
        default=os.path.join("runs", "experiments", "ablation"),
        help="parent of the run directories (<runs-dir>/<row>/seed<k>)",
    )
    parser.add_argument(
        "--baseline", help="row the paired mAP differences are taken against (default: first row)"
    )
    parser.add_argument(
        "--pairs",
        default="",
        help="comma-separated A:B row pairs: per-seed differences A - B of mAP and tiny-class AP "
        "(mean ± std over seeds), e.g. d2_c2:pooled_c2,d2_c2:d1_c2",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete existing run directories of these runs first"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: tabulate the runs that have finished (e.g. while another process "
        "is still training the rest); the table says how many seeds each row has",
    )
    parser.add_argument(
        "--records",
        action="append",
        default=[],
        metavar="JSON",
        help="a previous ablation's <stem>.json (repeatable): a (row, seed) with no finished run "
        "under --runs-dir is taken from it, status 'recorded', when the record's own command "
        "resolves that run to the same config (a record with another config is an error)",
    )
    args, rest = parser.parse_known_args(argv)
    overrides = parse_override_tokens(rest)
    if args.data_root is not None:
        overrides["data.root"] = args.data_root
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.seed_list:
        raise ConfigError("--seeds needs at least one seed")
    return args, overrides


def base_config(args: argparse.Namespace, overrides: dict) -> RunConfig:
    """defaults < preset < YAML < overrides, not yet validated: each row sets the crop level (and
    with it the synthetic image size) afterwards."""
    return merge_config(args.preset, args.config, overrides)


def run_config(args: argparse.Namespace, overrides: dict, row: Row, seed: int, run_dir: str):
    base = base_config(args, overrides)
    dataset = base.data.dataset
    view_size = base.model.image_size
    row_overrides = row.overrides(view_size, dataset)
    row_overrides.update({"train.seed": seed, "train.output": run_dir})
    return apply_overrides(base, row_overrides).validate()


def _comparable(config: dict) -> dict:
    """Config minus what may differ between two attempts of the same run.

    A saved config is read through the current schema first, so a key added to the
    schema after the run was made counts as its default (new keys keep old behaviour).
    """
    config = json.loads(json.dumps(config_to_dict(config_from_dict(config))))
    for section, key in (("train", "output"), ("data", "num_workers"), ("train", "log_every")):
        config.get(section, {}).pop(key, None)
    return config


def config_differences(old: dict, new: dict) -> list[str]:
    """'section.key' of every setting where two configs (as from ``_comparable``) differ, sorted."""
    return sorted(
        f"{section}.{key}"
        for section in set(old) | set(new)
        for key in set(old.get(section, {})) | set(new.get(section, {}))
        if old.get(section, {}).get(key) != new.get(section, {}).get(key)
    )


COMMAND_PREFIX = "python -m lcnet_fast.experiments ablation "


def load_records(paths: list[str]) -> dict[tuple[str, int], dict]:
    """(row, seed) -> that run's record from previous ablation JSONs, with the record's parsed
    command under ``"_source"`` (the first file that has a run wins)."""
    out: dict[tuple[str, int], dict] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        except OSError as exc:
            raise ConfigError(f"--records {path}: cannot read it ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--records {path}: not JSON ({exc.msg}, line {exc.lineno})") from exc
        command = record.get("command") if isinstance(record, dict) else None
        if not isinstance(command, str) or not command.startswith(COMMAND_PREFIX):
            raise ConfigError(f"--records {path}: not an ablation JSON (no ablation 'command')")
        source = (path, *parse_args(shlex.split(command[len(COMMAND_PREFIX) :])))
        for run in record.get("runs", []):
            out.setdefault((run["row"], run["seed"]), {**run, "_source": source})
    return out


def from_record(record: dict, row: Row, seed: int, cfg: RunConfig) -> dict:
    """The recorded run, if the record's command resolves (row, seed) to ``cfg``'s config."""
    path, old_args, old_overrides = record["_source"]
    old_cfg = run_config(old_args, old_overrides, row, seed, cfg.train.output)
    old, new = _comparable(config_to_dict(old_cfg)), _comparable(config_to_dict(cfg))
    differ = config_differences(old, new)
    if differ:
        raise ConfigError(
            f"--records {path} holds {row.name} seed {seed} with another config "
            f"(differs in {', '.join(differ)})"
        )
    run = {k: v for k, v in record.items() if k != "_source"}
    return {**run, "status": "recorded", "seconds": 0.0}


def run_one(
    args: argparse.Namespace, overrides: dict, row: Row, seed: int, records: dict | None = None
) -> dict:
    """Train (or reuse / resume / take from --records) one run; return its record for the JSON."""
    from lcnet_fast.checkpoint import load_checkpoint
    from lcnet_fast.train import train

    run_dir = os.path.join(args.runs_dir, row.name, f"seed{seed}")
    cfg = run_config(args, overrides, row, seed, run_dir)
    if args.fresh and os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    metrics_path = os.path.join(run_dir, "metrics.json")
    config_path = os.path.join(run_dir, "config.yaml")
    last = os.path.join(run_dir, "checkpoints", "last.safetensors")
    finished = os.path.isfile(metrics_path) and os.path.isfile(config_path)
    if not finished and (row.name, seed) in (records or {}):
        return from_record(records[(row.name, seed)], row, seed, cfg)
    if args.finished_only and not finished:
        return None
    status, start = "trained", time.perf_counter()
    if os.path.isfile(config_path):
        saved = _comparable(load_yaml(config_path))
        differ = config_differences(saved, _comparable(config_to_dict(cfg)))
        if differ:
            raise ConfigError(
                f"{run_dir} holds a run with another config (differs in {', '.join(differ)}); "
                f"pass --fresh to replace it or choose another --runs-dir"
            )
    if finished:
        with open(metrics_path, encoding="utf-8") as handle:
            result = json.load(handle)
        status = "reused"
    elif os.path.isfile(last):
        result = train(cfg, run_dir, load_checkpoint(last))
        status = "resumed"
    else:
        result = train(cfg, run_dir)
    seconds = time.perf_counter() - start
    per_class = result["per_class_AP"]
    return {
        "row": row.name,
        "seed": seed,
        "model": row.model_kwargs(),
        "input_size": cfg.model.crop_level * cfg.model.image_size,
        "run_dir": run_dir,
        "status": status,
        "seconds": round(seconds, 1),
        "metrics": {key: result.get(key) for key in METRICS},
        "per_class_AP": per_class,
        "tiny_AP": tiny_class_ap(per_class),
        "score_spread": result.get("score_spread"),
        "collapsed": bool(result.get("collapsed", False)),
    }


def tiny_class_ap(per_class_ap: dict[str, float]) -> float | None:
    """Mean AP of the small-object classes (``is_tiny_class``); None if there are none."""
    tiny = [ap for name, ap in per_class_ap.items() if is_tiny_class(name)]
    return mean_std(tiny)[0] if tiny else None


def aggregate(rows: list[Row], runs: list[dict], baseline: str) -> list[dict]:
    """Per row: mean/std over seeds of every metric, tiny-class AP, and mAP paired by seed
    against the baseline row (mean/std of the per-seed differences). A row without a finished
    run (--finished-only) is left out: it has nothing to average."""
    base_map = {r["seed"]: r["metrics"]["mAP"] for r in runs if r["row"] == baseline}
    out = []
    for row in rows:
        mine = [r for r in runs if r["row"] == row.name]
        if not mine:
            continue
        entry = {"row": row.name, "model": row.model_kwargs(), "seeds": [r["seed"] for r in mine]}
        entry["collapsed_runs"] = sum(bool(r.get("collapsed")) for r in mine)
        entry["input_size"] = mine[0]["input_size"]
        for key in METRICS:
            values = [r["metrics"][key] for r in mine]
            mean, std = mean_std(values)
            entry[key] = {"values": values, "mean": mean, "std": std}
        tiny_names = sorted({n for r in mine for n in r["per_class_AP"] if is_tiny_class(n)})
        entry["tiny_AP"] = {}
        for name in ["mean", *tiny_names]:
            values = [r["tiny_AP"] if name == "mean" else r["per_class_AP"][name] for r in mine]
            mean, std = mean_std(values)
            entry["tiny_AP"][name] = {"values": values, "mean": mean, "std": std}
        diffs = [
            r["metrics"]["mAP"] - base_map[r["seed"]]
            for r in mine
            if r["seed"] in base_map and r["metrics"]["mAP"] is not None
        ]
        mean, std = mean_std(diffs)
        entry["delta_mAP"] = {"values": diffs, "mean": mean, "std": std, "baseline": baseline}
        out.append(entry)
    return out


def paired_differences(runs: list[dict], pairs: list[tuple[str, str]]) -> list[dict]:
    """Per pair (a, b): the per-seed differences a - b of test mAP and mean tiny-class AP, over
    the seeds both rows have."""
    by_row_seed = {(r["row"], r["seed"]): r for r in runs}
    out = []
    for a, b in pairs:
        seeds = sorted(s for (row, s) in by_row_seed if row == a and (b, s) in by_row_seed)
        entry = {"a": a, "b": b, "seeds": seeds}
        for key in ("mAP", "tiny_AP"):

            def value(run, key=key):
                return run["metrics"]["mAP"] if key == "mAP" else run["tiny_AP"]

            values = [value(by_row_seed[(a, s)]) - value(by_row_seed[(b, s)]) for s in seeds]
            mean, std = mean_std(values)
            entry[key] = {"values": values, "mean": mean, "std": std}
        out.append(entry)
    return out


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise ConfigError(f"--pairs: expected A:B row pairs, got {item!r}")
        pairs.append((a.strip(), b.strip()))
    return pairs


def run_ablation(argv: list[str] | None = None) -> dict:
    args, overrides = parse_args(argv)
    rows = expand_rows(args.rows)
    baseline = args.baseline or rows[0].name
    names = {r.name for r in rows}
    if baseline not in names:
        raise ConfigError(f"--baseline {baseline!r} is not among the rows")
    pairs = parse_pairs(args.pairs)
    unknown = sorted({name for pair in pairs for name in pair} - names)
    if unknown:
        raise ConfigError(f"--pairs names rows that are not among the rows: {', '.join(unknown)}")
    base = base_config(args, overrides)
    command = COMMAND_PREFIX + shlex.join(argv or [])
    if args.fresh and args.records:
        raise ConfigError("--fresh retrains runs and --records reuses them: pass one of the two")
    records = load_records(args.records)
    runs = []
    total = len(rows) * len(args.seed_list)
    for seed in args.seed_list:  # all rows of seed 0 first: a stopped ablation has whole seeds
        for row in rows:
            print(f"[ablation {len(runs) + 1}/{total}] {row.name} seed {seed}", flush=True)
            record = run_one(args, overrides, row, seed, records)
            if record is None:
                print(f"  {row.name} seed {seed}: not finished, left out", flush=True)
                continue
            runs.append(record)
            m_ap = runs[-1]["metrics"]["mAP"]
            print(
                f"[ablation {len(runs)}/{total}] {row.name} seed {seed}: test mAP "
                f"{m_ap:.2f} ({runs[-1]['status']}, {runs[-1]['seconds']:.0f} s)",
                flush=True,
            )
    if not runs:
        raise ConfigError("no finished run to tabulate")
    first = runs[0]
    setup = {
        "dataset": base.data.dataset,
        "train_images": base.data.synthetic_num_train if base.data.dataset == "synthetic" else None,
        "test_images": base.data.synthetic_num_test if base.data.dataset == "synthetic" else None,
        "num_classes": len(first["per_class_AP"]),
        "backbone": base.model.backbone,
        "pretrained": base.model.pretrained,
        "view_size": base.model.image_size,
        "d_model": base.model.d_model,
        "llcd_reading": base.model.llcd_reading,
        "synthetic_kind": base.data.synthetic_kind if base.data.dataset == "synthetic" else None,
        "epochs": base.train.epochs,
        "batch_size": base.train.batch_size,
        "lr": base.optim.lr,
        "seeds": args.seed_list,
        "weights": "EMA" if base.train.report_ema else "plain",
    }
    result = {
        "command": command,
        "setup": setup,
        "baseline": baseline,
        "rows": aggregate(rows, runs, baseline),
        "pairs": paired_differences(runs, pairs),
        "runs": runs,
    }
    write_outputs(result, args.output, args.stem, plot=not args.no_plot)
    return result


def write_outputs(result: dict, output: str, stem: str, plot: bool = True) -> dict[str, str]:
    os.makedirs(output, exist_ok=True)
    paths = {"md": os.path.join(output, f"{stem}.md"), "json": os.path.join(output, f"{stem}.json")}
    with open(paths["md"], "w", encoding="utf-8") as handle:
        handle.write(markdown(result))
    with open(paths["json"], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2, allow_nan=True)
        handle.write("\n")
    if plot:
        from lcnet_fast.experiments.plots import plot_ablation

        paths["png"] = os.path.join(output, f"{stem}.png")
        plot_ablation(result, paths["png"])
    print("\n" + markdown(result))
    print("wrote " + ", ".join(paths.values()), flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    run_ablation(argv)
    return 0
