"""Train LCNet: ``python -m lcnet_fast.train [--preset NAME] [--config FILE.yaml] [--key value]``.

With no argument it trains the built-in synthetic job (a tiny backbone on procedurally drawn
scenes) and prints the test-split metric table. ``--resume RUN_DIR`` continues a stopped run to the
same result as an uninterrupted one (under another world size or ``--batch-size`` it continues
elastically: lcnet_fast/engine/elastic.py). Under ``torchrun --nproc_per_node N -m
lcnet_fast.train ...`` it runs DistributedDataParallel (NCCL on GPU, gloo on CPU); only rank 0
writes files.

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
import warnings

import numpy as np
import torch
import yaml

from lcnet_fast.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    load_weights_into,
    optimizer_state_from_tensors,
    optimizer_state_to_tensors,
    save_checkpoint,
)
from lcnet_fast.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    canonical_key,
    config_from_dict,
    config_to_dict,
    parse_override_tokens,
    resolve_config,
    save_config,
)
from lcnet_fast.engine import distributed, elastic, seeding
from lcnet_fast.engine.cli import USER_ERRORS, add_threads_argument, apply_threads  # noqa: F401
from lcnet_fast.engine.data import (
    DeviceViews,
    Splits,
    build_splits,
    make_loader,
)
from lcnet_fast.engine.ema import ModelEMA
from lcnet_fast.engine.loop import (
    Position,
    TrainParts,
    check_finite_scores,
    resolve_precision,
    score_split,
    steps_in_epoch,
    train_epoch,
    weight_norm,
)
from lcnet_fast.engine.model import architecture, build_model, model_config_from
from lcnet_fast.engine.progress import EpochCSV, Progress
from lcnet_fast.engine.report import (
    collapse_warning,
    compute_metrics,
    format_table,
    summary,
    write_json,
)
from lcnet_fast.engine.rundir import OutputError, RunDirectory, writing
from lcnet_fast.engine.sampler import EpochSampler, SeededAugmentation, ShardSampler
from lcnet_fast.errors import (  # noqa: F401 (re-exported: their names under lcnet_fast.train)
    BackendUnavailableError,
    DivergenceError,
    EmptySplitError,
    NonFiniteLossError,
    NonFiniteScoresError,
)

# Settings that may differ when resuming (where the data lives, how fast, how chatty); anything else
# would make the resumed run a different run.
RESUME_OVERRIDABLE = {
    "data.root",
    "data.num_workers",
    "data.csv_image_dir",
    "data.skip_bad_images",
    "train.device",
    "train.log_every",
    "train.eval_batch_size",
    "train.output",
    "train.batch_size",  # continues elastically (lcnet_fast/engine/elastic.py)
    "train.max_weight_growth",
    "train.collective_timeout_s",
}

SAVE_HINT = (
    "; training stopped, the last saved checkpoint (if any) is kept: make room (or fix the "
    "permission) and continue with --resume"
)



# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_fast.train",
        description="Train LCNet. Any config value can be set with --section.key VALUE or "
        "--key VALUE (see lcnet_fast/config.py or --print-config); precedence: "
        "CLI > --config YAML > --preset > defaults.",
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


def resume_config(run_dir: str, overrides: dict) -> tuple[RunConfig, Checkpoint]:
    last = os.path.join(run_dir, "checkpoints", "last.safetensors")
    if not os.path.isfile(last):
        raise CheckpointError(
            f"cannot resume: {last} does not exist (no checkpoint was saved in {run_dir})"
        )
    checkpoint = load_checkpoint(last)
    if checkpoint.meta.get("kind") != "training":
        raise CheckpointError(
            f"cannot resume from {last}: it holds weights only, not a training state"
        )
    cfg = config_from_dict(checkpoint.meta["config"])
    changed = {canonical_key(k) for k in overrides}
    refused = sorted(changed - RESUME_OVERRIDABLE)
    if refused:
        raise ConfigError(
            "--resume continues the recorded run; these settings cannot change: "
            f"{', '.join(refused)} "
            f"(allowed: {', '.join(sorted(RESUME_OVERRIDABLE))})"
        )
    cfg = apply_overrides(cfg, overrides)
    cfg.train.output = run_dir
    return cfg.validate(), checkpoint


# ----------------------------------------------------------------------------- building blocks


def label_graph_init(cfg: RunConfig, splits: Splits) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(label embeddings (C, E), correlation init (C, C) or None = cosine of the embeddings)."""
    num_classes = len(splits.classes)
    if cfg.data.label_embeddings == "one_hot":
        embeddings = torch.eye(num_classes)
    else:
        from lcnet_fast.data import load_word_vectors

        embeddings = torch.as_tensor(
            load_word_vectors(cfg.data.label_embeddings, splits.classes), dtype=torch.float32
        )
    if cfg.data.correlation_init == "cosine":
        return embeddings, None
    if cfg.data.correlation_init == "cooccurrence":
        from lcnet_fast.data import cooccurrence

        return embeddings, torch.as_tensor(cooccurrence(splits.train.labels), dtype=torch.float32)
    raise ConfigError(
        f"data.correlation_init must be cosine or cooccurrence, got {cfg.data.correlation_init!r}"
    )


def build_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW. Weight decay on matrices/kernels only; biases and norm scales are left alone (as ASL
    and ML-Decoder do). Parameters outside the timm backbone body (projection, decoder, graph,
    head) run at optim.lr * optim.decoder_lr_scale. Each group's "lr" is its peak learning rate
    (OneCycleLR's max_lr, see lr_peaks)."""
    split = cfg.optim.decoder_lr_scale != 1.0  # one rate: the two-group layout of older runs
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_backbone = not split or name.startswith(("backbone.body.", "body."))
            groups.setdefault((param.ndim >= 2, in_backbone), []).append(param)
    param_groups = [
        {
            "params": params,
            "weight_decay": cfg.optim.weight_decay if decay else 0.0,
            "lr": cfg.optim.lr * (1.0 if in_backbone else cfg.optim.decoder_lr_scale),
        }
        for (decay, in_backbone), params in sorted(groups.items(), reverse=True)
    ]
    return torch.optim.AdamW(param_groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))


def lr_peaks(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each parameter group's peak learning rate, as build_optimizer set it."""
    return [group["lr"] for group in optimizer.param_groups]


def build_criterion(cfg: RunConfig):
    from lcnet_fast.losses import AsymmetricLoss

    return AsymmetricLoss(
        gamma_pos=cfg.loss.gamma_pos,
        gamma_neg=cfg.loss.gamma_neg,
        clip=cfg.loss.clip,
        eps=cfg.loss.eps,
        reduction=cfg.loss.reduction,
    )


def preprocess_record(cfg: RunConfig) -> dict:
    crop_level, view_size = cfg.model.view_geometry()
    return {
        "crop_level": crop_level,
        "image_size": view_size,
        "input_size": cfg.model.crop_level * cfg.model.image_size,
        "mean": list(cfg.data.mean),
        "std": list(cfg.data.std),
    }


class Run:
    """Everything one training run holds; `fit()` trains, `test()` reports."""

    def __init__(self, cfg: RunConfig, run_dir: str, resume: Checkpoint | None = None):
        self.cfg, self.resume_from = cfg, resume
        self.device = distributed.pick_device(
            cfg.train.device, int(os.environ.get("LOCAL_RANK", 0))
        )
        self.dist = distributed.init_distributed(self.device, cfg.train.collective_timeout_s)
        self.heartbeat = distributed.Heartbeat(self.dist)
        self.run_dir = distributed.broadcast_object(run_dir, self.dist)
        self.main = self.dist.is_main
        self.progress = Progress(self.main)
        self.precision = resolve_precision(cfg.train.precision, self.device)
        self.ckpt_dir = os.path.join(self.run_dir, "checkpoints")
        self.directory = RunDirectory(self.run_dir)
        self.csv = EpochCSV(os.path.join(self.run_dir, "log.csv") if self.main else None)

    # -- setup
    def setup(self) -> None:
        """Validate everything (config, data, classes, model, checkpoint), then open the run
        directory: a run that cannot start changes nothing on disk."""
        self.prepare()
        self.open_directory()

    def open_directory(self) -> None:
        """The first write of the run: create the directory (a new run), write config.yaml, cut
        log.csv back to the checkpoint's epoch (a resume), remove stale temporary files."""

        def on_main():
            self.directory.create()
            removed = self.directory.remove_stale_temp_files()
            if removed:
                self.progress.print(
                    f"removed {len(removed)} temporary file(s) of killed saves: "
                    + ", ".join(os.path.basename(p) for p in removed)
                )
            config_path = os.path.join(self.run_dir, "config.yaml")
            with writing("run config", config_path):
                save_config(self.cfg, config_path)
            if self.resume_from is not None:
                with writing("training log", self.csv.path):
                    self.csv.truncate_after(self.position.epoch)

        self._on_main(on_main)

    def _on_main(self, action) -> None:
        """Run `action` on rank 0 only; every rank then raises what it raised, so no rank is left
        waiting at a barrier for one that failed."""
        error = None
        if self.main:
            try:
                action()
            except Exception as exc:  # re-raised below on every rank
                error = exc
        shared = distributed.broadcast_object(
            None if error is None else (type(error).__name__, str(error)), self.dist
        )
        if error is not None:
            raise error
        if shared is not None:
            kind = OutputError if shared[0] == "OutputError" else RuntimeError
            raise kind(f"rank 0 failed: {shared[1]}")

    def discard(self) -> None:
        """After a failure: remove what this attempt created when no checkpoint was saved."""
        if self.main:
            self.directory.discard()

    def prepare(self) -> None:
        """Everything that can fail because of the input, before anything is written."""
        cfg = self.cfg
        if self.resume_from is None and os.path.isfile(
            os.path.join(self.ckpt_dir, "last.safetensors")
        ):
            raise ConfigError(
                f"run directory {self.run_dir} already holds a run; continue it with "
                f"--resume {self.run_dir} or choose another --output"
            )
        self._on_main(self.directory.check_creatable)
        self.splits = build_splits(cfg.data, cfg.model, cfg.train.seed)
        # the loaders yield uint8 batches: views are cut and normalised on the device
        self.to_input = DeviceViews.from_config(cfg.data, cfg.model)
        if self.splits.train is None or self.splits.test is None:
            raise ConfigError("training needs a train and a test split")
        self.classes = self.splits.classes
        embeddings, correlation = label_graph_init(cfg, self.splits)
        self.model_config = model_config_from(cfg.model, len(self.classes), embeddings.shape[1])
        torch.manual_seed(seeding.derive_seed(cfg.train.seed, seeding.INIT))
        model = build_model(self.model_config, embeddings, correlation).to(self.device)
        self.raw_model = model
        # the reference of the divergence guard: the initial weights (seeded, so a resumed run
        # rebuilds the same ones before loading its checkpoint)
        self.initial_weight_norm = weight_norm(model)
        self.ema = (
            ModelEMA(model, cfg.train.ema_decay, cfg.train.ema_warmup) if cfg.train.ema else None
        )
        self.optimizer = build_optimizer(model, cfg)

        self.train_data = SeededAugmentation(self.splits.train, cfg.train.seed)
        # a resume under another world size or batch size continues elastically (engine/elastic)
        self.elastic_from = None
        if self.resume_from is not None:
            self.elastic_from = self._recorded_geometry(self.resume_from.meta)
            new = elastic.adapt(self.elastic_from, self.dist.world_size, cfg.train.batch_size)
            if new == self.elastic_from:
                self.elastic_from = None
            cfg.optim.accumulation_steps = new.accumulation_steps
        # drop_last keeps BatchNorm away from a 1-image batch (see elastic.batches_per_epoch)
        self.batches_per_epoch, self.drop_last = elastic.batches_per_epoch(
            len(self.train_data), self.dist.world_size, cfg.train.batch_size
        )
        self.epoch_batches = self.batches_per_epoch
        total_steps = cfg.train.epochs * steps_in_epoch(
            self.batches_per_epoch, cfg.optim.accumulation_steps
        )
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=lr_peaks(self.optimizer),
            total_steps=total_steps,
            pct_start=cfg.optim.pct_start,
            div_factor=cfg.optim.div_factor,
            final_div_factor=cfg.optim.final_div_factor,
        )
        self.position = Position()
        self.best: dict | None = None
        self.skip_counts: dict[str, int] = {"train": 0, "val": 0, "test": 0}
        if self.resume_from is not None:
            self._restore(self.resume_from)

        self.forward_model = model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # find_unused_parameters: the last LLCD layer's KV_img/KV_graph branch (mha3, mha4,
            # norm_int5, norm_int6) feeds nothing -- only Q_lbl reaches the head -- so those
            # weights get no gradient
            self.forward_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=True
            )
        if cfg.train.compile:
            self.forward_model = torch.compile(self.forward_model)
        self.parts = TrainParts(
            model=self.forward_model,
            raw_model=model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            criterion=build_criterion(cfg),
            ema=self.ema,
            device=self.device,
            precision=self.precision,
            dist=self.dist,
            seed=cfg.train.seed,
            accumulation_steps=cfg.optim.accumulation_steps,
            grad_clip=cfg.optim.grad_clip,
            loss_reduction=cfg.loss.reduction,
            to_input=self.to_input,
            initial_weight_norm=self.initial_weight_norm,
            max_weight_growth=cfg.train.max_weight_growth,
        )
        self.sampler = EpochSampler(
            len(self.train_data), cfg.train.seed, True, self.dist.rank, self.dist.world_size
        )

    def _restore(self, checkpoint: Checkpoint) -> None:
        meta = checkpoint.meta
        if architecture(meta["model_config"]) != architecture(self.model_config):
            from lcnet_fast.checkpoint import compare_model_configs

            compare_model_configs(
                architecture(meta["model_config"]), architecture(self.model_config), checkpoint.path
            )
        if meta["classes"] != self.classes:
            raise CheckpointMismatchError(
                f"{checkpoint.path} was trained on other classes than the dataset has now"
            )
        load_weights_into(self.raw_model, checkpoint.tensors("model"), f"{checkpoint.path} [model]")
        if self.ema is not None:
            load_weights_into(
                self.ema.module, checkpoint.tensors("ema"), f"{checkpoint.path} [ema]"
            )
            self.ema.updates = int(meta["ema_updates"])
        self.optimizer.load_state_dict(
            optimizer_state_from_tensors(checkpoint.tensors("optimizer"), meta["optimizer"])
        )
        self.position = Position(**meta["position"])
        if self.elastic_from is None:
            self.scheduler.load_state_dict(meta["scheduler"])
        else:
            self._continue_elastically()
        self.best = meta.get("best")
        self.skip_counts.update(meta.get("skip_counts", {}))
        self.progress.print(
            f"resumed {self.run_dir} at epoch {self.position.epoch} "
            f"(+{self.position.batch} batches), step {self.position.step}"
        )

    def _recorded_geometry(self, meta: dict) -> elastic.Geometry:
        recorded = config_from_dict(meta["config"])
        return elastic.Geometry(
            elastic.recorded_world_size(meta, len(self.train_data), self.dist.world_size),
            recorded.train.batch_size,
            recorded.optim.accumulation_steps,
        )

    def _continue_elastically(self) -> None:
        """Map the checkpoint's position onto this run's geometry (engine/elastic.py)."""
        cfg, old = self.cfg, self.elastic_from
        new = elastic.Geometry(
            self.dist.world_size, cfg.train.batch_size, cfg.optim.accumulation_steps
        )
        plan = elastic.continuation(
            new, len(self.train_data), cfg.train.epochs, self.position.epoch, self.position.images
        )
        if plan.total_steps != self.scheduler.total_steps:  # built from the same numbers
            raise AssertionError((plan.total_steps, self.scheduler.total_steps))
        self.position.batch = plan.batch
        # OneCycleLR is a closed form of its step: start it where the remaining steps fit exactly
        self.scheduler.last_epoch = plan.schedule_step - 1
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended
            warnings.simplefilter("ignore")
            self.scheduler.step()
        kept = (
            f"{new.images_per_step} images per optimizer step kept"
            if new.images_per_step == old.images_per_step
            else f"images per optimizer step change from {old.images_per_step} to "
            f"{new.images_per_step}: a world size x batch size of {old.images_per_step} or a "
            f"divisor of it keeps them"
        )
        self.progress.print(
            f"elastic resume: {old.describe()} -> {new.describe()} ({kept}); epoch "
            f"{self.position.epoch + 1} continues at image {self.position.images} of "
            f"{len(self.train_data)}; learning-rate schedule at step {plan.schedule_step} of "
            f"{plan.total_steps}"
        )

    # -- checkpoints
    @property
    def reported_prefix(self) -> str:
        return "ema" if self.cfg.train.report_ema else "model"

    def reported_module(self) -> torch.nn.Module:
        return self.ema.module if self.cfg.train.report_ema else self.raw_model

    def _meta(self, kind: str, weights: str) -> dict:
        return {
            "kind": kind,
            "classes": self.classes,
            "model_config": self.model_config,
            "preprocess": preprocess_record(self.cfg),
            "weights": weights,
            "holds_ema": self.ema is not None and (kind == "training" or weights == "ema"),
            "report_ema": self.cfg.train.report_ema,
            "epoch": self.position.epoch,
            "step": self.position.step,
            "config": config_to_dict(self.cfg),
        }

    def save_last(self) -> None:
        if not self.main:
            return
        tensors = {f"model.{k}": v for k, v in self.raw_model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        optimizer_tensors, optimizer_rest = optimizer_state_to_tensors(self.optimizer.state_dict())
        tensors.update(optimizer_tensors)
        meta = self._meta("training", self.reported_prefix)
        meta.update(
            optimizer=optimizer_rest,
            scheduler=self.scheduler.state_dict(),
            ema_updates=self.ema.updates if self.ema else 0,
            position=self.position.state(),
            world_size=self.dist.world_size,
            best=self.best,
            skip_counts=self.skip_counts,
        )
        path = os.path.join(self.ckpt_dir, "last.safetensors")
        with writing("checkpoint", path, SAVE_HINT):
            save_checkpoint(path, tensors, meta)

    def save_best(self, metrics: dict) -> None:
        if not self.main:
            return
        prefix = self.reported_prefix
        tensors = {f"{prefix}.{k}": v for k, v in self.reported_module().state_dict().items()}
        meta = self._meta("weights", prefix)
        meta["val_metrics"] = {k: v for k, v in metrics.items() if k != "AP"}
        path = os.path.join(self.ckpt_dir, "best.safetensors")
        with writing("checkpoint", path, SAVE_HINT):
            save_checkpoint(path, tensors, meta)

    # -- evaluation
    def score(self, module: torch.nn.Module, dataset) -> tuple:
        sampler = ShardSampler(len(dataset), self.dist.rank, self.dist.world_size)
        loader = make_loader(
            dataset,
            self.cfg.train.eval_batch_size,
            sampler,
            self.cfg.data.num_workers,
            drop_last=False,
            pin_memory=self.device.type == "cuda",
        )
        indices, scores, targets, skipped = score_split(
            module, loader, sampler.indices, self.device, self.precision, self.to_input
        )
        num_classes = len(self.classes)
        stand_in = np.asarray([1.0 if paths else 0.0 for paths in skipped]).reshape(-1, 1)
        rows = np.concatenate(
            [scores.reshape(-1, num_classes), targets.reshape(-1, num_classes), stand_in], axis=1
        )
        _, rows = distributed.gather_rows(indices, rows, self.dist)
        bad = distributed.gather_union([p for paths in skipped for p in paths], self.dist)
        # rows of unreadable images (scored on a stand-in) are left out of the metrics
        keep = rows[:, 2 * num_classes] == 0
        return rows[keep, :num_classes], rows[keep, num_classes : 2 * num_classes], bad

    def report_skipped(self, split: str, paths: list[str], when: str) -> None:
        if paths:
            names = ", ".join(os.path.basename(p) for p in paths[:5])
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            self.progress.print(
                f"warning: {when}: skipped {len(paths)} unreadable {split} image(s) "
                f"(data.skip_bad_images): {names}{more}"
            )

    def validate(self) -> dict | None:
        """Validation metrics (None without a val split); skip_counts["val"]: images skipped."""
        if self.splits.val is None:
            return None
        scores, targets, bad = self.score(self.reported_module(), self.splits.val)
        self.report_skipped("validation", bad, f"epoch {self.position.epoch + 1}")
        self.skip_counts["val"] = len(bad)
        check_finite_scores(
            scores,
            f"validation scores after epoch {self.position.epoch + 1}",
            "training stopped, the last saved checkpoint is kept as it was",
        )
        return compute_metrics(scores, targets, self.cfg.train.threshold)

    # -- training
    def _on_step(self, position: Position) -> None:
        every = self.cfg.train.checkpoint_every_steps
        if every > 0 and position.step % every == 0 and position.batch < self.epoch_batches:
            position.seconds = time.perf_counter() - self.epoch_start
            # every rank's skipped images, so a resume from here counts the whole epoch
            position.skipped = distributed.gather_union(position.skipped, self.dist)
            self.save_last()

    def fit(self) -> None:
        cfg = self.cfg
        sizes = [
            len(s) if s is not None else 0
            for s in (self.splits.train, self.splits.val, self.splits.test)
        ]
        processes = f", {self.dist.world_size} processes" if self.dist.enabled else ""
        self.progress.print(
            f"run {self.run_dir}: {cfg.data.dataset} ({sizes[0]} train / {sizes[1]} val / "
            f"{sizes[2]} test images, {len(self.classes)} classes), {cfg.model.backbone} "
            f"crop level {cfg.model.crop_level} x {cfg.model.image_size} px, "
            f"{cfg.train.epochs} epochs on {self.device} ({self.precision}{processes})"
        )
        while self.position.epoch < cfg.train.epochs:
            epoch = self.position.epoch
            self.epoch_start = start = time.perf_counter() - self.position.seconds
            self.train_data.set_epoch(epoch)
            # the epoch's global order from the position reached (Position.images, all ranks)
            self.sampler.set_epoch(epoch, start=self.position.images)
            self.epoch_batches = self.position.batch + elastic.remaining_batches(
                len(self.train_data),
                self.dist.world_size,
                cfg.train.batch_size,
                self.position.images,
            )
            loader = make_loader(
                self.train_data,
                cfg.train.batch_size,
                self.sampler,
                cfg.data.num_workers,
                self.drop_last,
                pin_memory=self.device.type == "cuda",
            )
            train_epoch(
                self.parts,
                loader,
                self.epoch_batches,
                self.position,
                cfg.train.epochs,
                self.progress,
                cfg.train.log_every,
                self._on_step,
            )
            seconds = time.perf_counter() - start
            train_bad = distributed.gather_union(self.position.skipped, self.dist)
            self.report_skipped("train", train_bad, f"epoch {epoch + 1}")
            self.skip_counts["train"] = len(train_bad)
            row = {
                "epoch": epoch + 1,
                "steps": self.position.step,
                "train_loss": f"{self.position.loss_sum / max(self.position.images, 1):.6f}",
                "lr": f"{self.position.lr:.3e}",
                "images_per_s": f"{self.position.images / max(seconds, 1e-9):.2f}",
                "epoch_seconds": f"{seconds:.2f}",
                "skipped_train": len(train_bad),
                "train_images": self.position.images,
            }
            last_epoch = epoch + 1 == cfg.train.epochs
            metrics = (
                self.validate() if ((epoch + 1) % cfg.train.eval_every == 0 or last_epoch) else None
            )
            self.position = Position(epoch=epoch + 1, step=self.position.step)
            if metrics is not None:
                value = metrics[cfg.train.select_metric]
                improved = self.best is None or value > self.best["value"]
                spread = metrics["score_spread"]
                row.update(
                    val_metric=f"{value:.4f}",
                    val_mAP=f"{metrics['mAP']:.4f}",
                    val_score_spread=f"{spread:.5f}",
                    best=int(improved),
                    skipped_val=self.skip_counts["val"],
                )
                if improved:
                    self.best = {
                        "epoch": epoch + 1,
                        "metric": cfg.train.select_metric,
                        "value": value,
                    }
                    self.save_best(metrics)
                self.progress.print(
                    f"epoch {epoch + 1}: val {cfg.train.select_metric} {value:.2f}"
                    f"{' (best)' if improved else ''}  [{seconds:.0f} s]"
                )
                if spread < cfg.train.collapse_spread:
                    self.progress.print(
                        collapse_warning("validation", spread, cfg.train.collapse_spread)
                    )
            if self.main:  # before `last`: a crash in between redoes this epoch (see EpochCSV)
                with writing("training log", self.csv.path, SAVE_HINT):
                    self.csv.append(row)
            self.save_last()
            distributed.barrier(self.dist)

    def final_module(self) -> tuple[torch.nn.Module, str]:
        best = os.path.join(self.ckpt_dir, "best.safetensors")
        if self.cfg.train.final_weights == "best" and self.best is not None:
            distributed.barrier(self.dist)
            checkpoint = load_checkpoint(best)
            module = build_model(self.model_config, pretrained=False).to(self.device)
            load_weights_into(module, checkpoint.reported_weights(), best)
            return (
                module,
                f"best (epoch {self.best['epoch']}, "
                f"val {self.best['metric']} {self.best['value']:.2f})",
            )
        if self.cfg.train.final_weights == "best":
            self.progress.print("no validation split: reporting the last epoch's weights")
        return self.reported_module(), f"last (epoch {self.position.epoch})"

    def test(self) -> dict:
        module, which = self.final_module()
        scores, targets, bad = self.score(module, self.splits.test)
        self.report_skipped("test", bad, "test split")
        self.skip_counts["test"] = len(bad)
        check_finite_scores(
            scores, f"test scores of the {which} weights", "no metrics.json was written"
        )
        metrics = compute_metrics(scores, targets, self.cfg.train.threshold)
        result = summary(
            metrics,
            self.classes,
            self.cfg.data.test_split,
            len(scores),
            self.cfg.train.threshold,
            self.reported_prefix,
            which,
            self.cfg.train.collapse_spread,
        )
        # unreadable images skipped (data.skip_bad_images): in the last training epoch, the last
        # validation and the test split (whose metrics leave them out)
        result["skipped_images"] = dict(self.skip_counts)
        if self.main:
            path = os.path.join(self.run_dir, "metrics.json")
            with writing("test metrics", path):
                write_json(path, result)
            self.progress.print(format_table(result))
            if result["collapsed"]:
                self.progress.print(
                    collapse_warning("test", result["score_spread"], self.cfg.train.collapse_spread)
                )
        return result


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
