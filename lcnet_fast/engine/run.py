"""One training run: `Run.setup()` validates the input and opens the run directory, `fit()`
trains (validating and checkpointing every epoch), `test()` reports the final weights on the test
split. Driven by lcnet_fast/train.py's train().

Invariants: everything that can fail because of the input (config, data, classes, model,
checkpoint) is checked in prepare(), before the first write (open_directory); a new run that fails
before its first checkpoint leaves no directory behind (discard, engine/rundir.py); only rank 0
writes files, and an error on rank 0 is raised on every rank (_on_main), so no rank waits at a
barrier for one that failed. Checkpoint writing is engine/run_checkpoints.py, restoring from one
engine/resume.py.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from lcnet_fast.checkpoint import Checkpoint, load_checkpoint, load_weights_into
from lcnet_fast.config import ConfigError, RunConfig, save_config
from lcnet_fast.device import DeviceViews, pick_device, resolve_precision
from lcnet_fast.engine import distributed, elastic, seeding
from lcnet_fast.engine.data import build_splits, make_loader
from lcnet_fast.engine.ema import ModelEMA
from lcnet_fast.engine.loop import (
    Position,
    TrainParts,
    check_finite_scores,
    score_split,
    steps_in_epoch,
    train_epoch,
    weight_norm,
)
from lcnet_fast.engine.model import build_model, label_graph_init, model_config_from
from lcnet_fast.engine.optim import build_criterion, build_optimizer, build_scheduler
from lcnet_fast.engine.progress import EpochCSV, Progress
from lcnet_fast.engine.report import (
    collapse_warning,
    compute_metrics,
    format_table,
    summary,
    write_json,
)
from lcnet_fast.engine.resume import RunResume
from lcnet_fast.engine.run_checkpoints import SAVE_HINT, RunCheckpoints
from lcnet_fast.engine.rundir import OutputError, RunDirectory, writing
from lcnet_fast.engine.sampler import EpochSampler, SeededAugmentation, ShardSampler


class Run(RunCheckpoints, RunResume):
    """Everything one training run holds; `fit()` trains, `test()` reports."""

    def __init__(self, cfg: RunConfig, run_dir: str, resume: Checkpoint | None = None):
        self.cfg, self.resume_from = cfg, resume
        self.device = pick_device(cfg.train.device, int(os.environ.get("LOCAL_RANK", 0)))
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
        self.scheduler = build_scheduler(self.optimizer, cfg, total_steps)
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
