"""Writing a training run's checkpoints (lcnet_fast/checkpoint.py holds the file format).

``last.safetensors`` holds everything a resume needs (weights, EMA, optimizer, scheduler,
position, best-so-far, skipped-image counts) and is written after every epoch (and every
train.checkpoint_every_steps steps); ``best.safetensors`` holds only the reported weights of the
best validation epoch. Only rank 0 writes; a failed write stops training with SAVE_HINT and keeps
the last complete checkpoint (the writes are atomic).
"""

from __future__ import annotations

import os

import torch

from lcnet_fast.checkpoint import optimizer_state_to_tensors, save_checkpoint
from lcnet_fast.config import RunConfig, config_to_dict
from lcnet_fast.engine.rundir import writing

SAVE_HINT = (
    "; training stopped, the last saved checkpoint (if any) is kept: make room (or fix the "
    "permission) and continue with --resume"
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


class RunCheckpoints:
    """The checkpoint writing of engine.run.Run (a mixin: it reads the run's cfg, classes,
    model_config, raw_model, ema, optimizer, scheduler, position, dist, best, skip_counts, main and
    ckpt_dir)."""

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
