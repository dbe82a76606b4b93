"""Continuing a run from its last checkpoint (``python -m lcnet_fast.train --resume RUN_DIR``).

The recorded config is taken as it is, except the settings in RESUME_OVERRIDABLE (where the data
lives, how fast, how chatty): changing anything else would make the resumed run a different run.
Under the same world size and batch size the run continues bitwise where it stopped; under another
it continues elastically (engine/elastic.py): same images per optimizer step where possible, the
learning-rate schedule restarted at the step that fits the remaining images.
"""

from __future__ import annotations

import os
import warnings

from lcnet_fast.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    load_weights_into,
    optimizer_state_from_tensors,
)
from lcnet_fast.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    canonical_key,
    config_from_dict,
)
from lcnet_fast.engine import elastic
from lcnet_fast.engine.loop import Position
from lcnet_fast.model_config import architecture

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


def resume_config(run_dir: str, overrides: dict) -> tuple[RunConfig, Checkpoint]:
    """The config recorded in RUN_DIR's last checkpoint with `overrides` (RESUME_OVERRIDABLE
    keys only, else ConfigError) applied and validated, and that checkpoint."""
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


class RunResume:
    """Restoring engine.run.Run from a training checkpoint (a mixin: it sets the run's weights,
    EMA, optimizer, scheduler, position, best and skip_counts, which Run.prepare built)."""

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
