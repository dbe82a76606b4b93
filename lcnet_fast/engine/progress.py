"""Console progress lines and the per-epoch CSV log (rank 0 only; other ranks get no-op objects).

The progress line is printed every `log_every` optimizer steps, flushed, one line each (readable in
log files and CI output, unlike carriage-return progress bars).
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time

from lcnet_fast.checkpoint import write_bytes_atomic

EPOCH_FIELDS = [
    "epoch",
    "steps",
    "train_loss",
    "lr",
    "images_per_s",
    "epoch_seconds",
    "val_metric",
    "val_mAP",
    "val_score_spread",
    "best",
    "train_images",  # training samples of the epoch, all ranks (with the padding of DDP)
    "skipped_train",  # unreadable images skipped (data.skip_bad_images) in the epoch
    "skipped_val",  # ... and in its validation
]


class Progress:
    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.mark_time = time.perf_counter()
        self.mark_images = 0

    def print(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def reset(self, images_seen: int) -> None:
        self.mark_time, self.mark_images = time.perf_counter(), images_seen

    def step(
        self,
        epoch: int,
        epochs: int,
        step: int,
        steps: int,
        loss: float,
        lr: float,
        images_seen: int,
    ) -> None:
        """`images_seen`: images processed so far in this epoch, over all ranks."""
        now = time.perf_counter()
        rate = (images_seen - self.mark_images) / max(now - self.mark_time, 1e-9)
        self.mark_time, self.mark_images = now, images_seen
        self.print(
            f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {loss:.4f}  lr {lr:.2e}  "
            f"{rate:.1f} img/s"
        )


class EpochCSV:
    """`log.csv` in the run directory, one row per finished epoch.

    On resume the file is cut back to the epochs the checkpoint has finished: a run killed after
    writing epoch e's row but before saving epoch e's checkpoint redoes epoch e and must not list it
    twice.
    """

    def __init__(self, path: str | None):
        self.path = path

    def truncate_after(self, epoch: int) -> None:
        if not self.path or not os.path.isfile(self.path):
            return
        with open(self.path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) <= epoch]
        self._write(rows)

    def append(self, row: dict) -> None:
        if not self.path:
            return
        rows = []
        if os.path.isfile(self.path):
            with open(self.path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        rows.append({key: row.get(key, "") for key in EPOCH_FIELDS})
        self._write(rows)

    def _write(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EPOCH_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_bytes_atomic(self.path, buffer.getvalue().encode("utf-8"))
