"""The run directory of a training run: created only once the run has been validated, cleaned up
when a new run fails before it saved any checkpoint, and the one place where an OSError while
writing it (disk full, no permission, a file where a directory should be) becomes one clear line.

What a failed attempt removes: only what this attempt created -- the run directory itself (and any
parent directory it had to create) when it did not exist before, else the files and the
`checkpoints/` directory it added. Nothing is removed once a checkpoint exists (a run that can be
resumed or evaluated is kept), and nothing that existed before the attempt is ever touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil

from lcnet_fast.checkpoint import remove_stale_temp_files
from lcnet_fast.errors import OutputError

# files of a run directory (train.py's layout)
RUN_FILES = ("config.yaml", "log.csv", "metrics.json")


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        text += " (disk full or over quota)"
    return text


@contextlib.contextmanager
def writing(what: str, path: str, hint: str = ""):
    """An OSError raised inside the block becomes OutputError("cannot write <what> <path>: ...")."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {_reason(exc)}{hint}") from exc


def check_writable_file(path: str, what: str = "output file") -> None:
    """Fail early (before any work) when `path` cannot be written: its directory cannot be created
    or is not writable, or `path` is a directory. Creates nothing."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise OutputError(f"cannot write {what} {path}: it is a directory")
    _check_creatable_dir(os.path.dirname(path), what, path)


def _check_creatable_dir(directory: str, what: str, target: str) -> None:
    probe = directory
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OutputError(f"cannot create {what} {target}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {what} {target}: permission denied on {probe}")


class RunDirectory:
    """Creates a run directory and remembers what this attempt created, to undo it on failure."""

    def __init__(self, path: str):
        self.path = path
        self.checkpoints = os.path.join(path, "checkpoints")
        self.created_dirs: list[str] = []  # created by this attempt, outermost first
        self.existing_files = {
            name for name in RUN_FILES if os.path.exists(os.path.join(path, name))
        }
        self.checkpoints_existed = os.path.isdir(self.checkpoints)

    def check_creatable(self) -> None:
        """Raise OutputError when the directory could not be created (checked before any work)."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise OutputError(
                f"cannot create run directory {self.path}: a file of that name exists"
            )
        _check_creatable_dir(os.path.abspath(self.path), "run directory", self.path)

    def create(self) -> None:
        missing, probe = [], os.path.abspath(self.path)
        while not os.path.exists(probe):
            missing.append(probe)
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        try:
            for directory in reversed(missing):  # outermost first
                os.mkdir(directory)
                self.created_dirs.append(directory)
            if not os.path.isdir(self.checkpoints):
                os.mkdir(self.checkpoints)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot create run directory {self.path}: {_reason(exc)}") from exc

    def remove_stale_temp_files(self) -> list[str]:
        """Remove `*.tmp<pid>` files of saves that were killed (their process is gone)."""
        return remove_stale_temp_files(self.path) + remove_stale_temp_files(self.checkpoints)

    def has_checkpoint(self) -> bool:
        try:
            return any(name.endswith(".safetensors") for name in os.listdir(self.checkpoints))
        except OSError:
            return False

    def discard(self) -> None:
        """Undo this attempt when it saved no checkpoint (see the module doc). Best effort."""
        if not os.path.isdir(self.path) or self.has_checkpoint():
            return
        if self.created_dirs:
            run_dir = os.path.abspath(self.path)
            if run_dir in self.created_dirs:
                shutil.rmtree(run_dir, ignore_errors=True)
            for directory in reversed(self.created_dirs):  # innermost first; only if empty now
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
            self.created_dirs = []
            if not os.path.exists(run_dir):
                return
        for name in RUN_FILES:
            if name not in self.existing_files:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.path, name))
        if not self.checkpoints_existed:
            shutil.rmtree(self.checkpoints, ignore_errors=True)
