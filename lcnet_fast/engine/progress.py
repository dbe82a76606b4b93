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


def format_duration(seconds: float) -> str:
    """12:34 (m:ss) or 1:02:03 (h:mm:ss)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.mark_time = time.perf_counter()
        self.mark_images = 0
        self.mark_step = 0

    def print(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def reset(self, images_seen: int, step: int = 0) -> None:
        """Start measuring at `images_seen` images and optimizer step `step` of the epoch."""
        self.mark_time, self.mark_images, self.mark_step = time.perf_counter(), images_seen, step

    def step(
        self,
        epoch: int,
        epochs: int,
        step: int,
        steps: int,
        loss: float,
        lr: float,
        images_seen: int,
        run_steps_left: int | None = None,
    ) -> None:
        """`images_seen`: images processed so far in this epoch, over all ranks.
        `run_steps_left`: optimizer steps left in the whole run (for the run's ETA)."""
        now = time.perf_counter()
        elapsed = max(now - self.mark_time, 1e-9)
        rate = (images_seen - self.mark_images) / elapsed
        eta = ""
        if step > self.mark_step:  # seconds per optimizer step since the last line
            per_step = elapsed / (step - self.mark_step)
            eta = f"  eta {format_duration((steps - step) * per_step)}"
            if run_steps_left is not None:
                eta += f" (run {format_duration(run_steps_left * per_step)} + evaluation)"
        self.mark_time, self.mark_images, self.mark_step = now, images_seen, step
        self.print(
            f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {loss:.4f}  lr {lr:.2e}  "
            f"{rate:.1f} img/s{eta}"
        )


class CountProgress:
    """`evaluate`-style progress: one line per tenth of the work (and at the end)."""

    def __init__(self, what: str, total: int, enabled: bool = True, stream=None):
        self.what, self.total, self.enabled = what, total, enabled
        self.stream = stream or sys.stderr
        self.start, self.shown = time.perf_counter(), -1

    def __call__(self, done: int) -> None:
        tenth = done * 10 // max(self.total, 1)
        if not self.enabled or (tenth == self.shown and done < self.total):
            return
        self.shown = tenth
        seconds = time.perf_counter() - self.start
        eta = seconds / max(done, 1) * (self.total - done)
        print(
            f"{self.what}: {done}/{self.total} images  [{format_duration(seconds)}, "
            f"eta {format_duration(eta)}]",
            file=self.stream,
            flush=True,
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
