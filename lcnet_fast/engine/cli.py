"""The one way every `python -m lcnet_fast.<tool>` turns a known user error into one clear line,
and the tools' shared --threads option.

Imports only the error types (lcnet_fast/errors.py), never a driver: every tool, train included,
imports this module."""

import os
import sys
from collections.abc import Callable

from lcnet_fast import errors

#: every known user error (lcnet_fast/errors.py)
USER_ERRORS: tuple[type[BaseException], ...] = errors.USER_ERRORS


def run_cli(main: Callable[[], int], extra_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a CLI's main(); a known user error (bad config, missing file, corrupt image, wrong
    checkpoint, ...) prints `error: <message>` and returns exit code 2 instead of a traceback."""
    try:
        return main()
    except (*USER_ERRORS, *extra_errors) as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2


def one_line(text: str) -> str:
    """A message's lines joined into one ("a:\n  b\n  c" -> "a: b; c")."""
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    out = parts[0] if parts else ""
    for part in parts[1:]:
        out += (" " if out.endswith(":") else "; ") + part
    return out


THREADS_HELP = (
    "CPU threads of torch's operators (torch.set_num_threads); 0 (default) = torch's own choice "
    "(one per core, 1 under torchrun), less the --num-workers data loader processes on a machine "
    "with few cores so they do not compete for them"
)


def add_threads_argument(parser) -> None:
    parser.add_argument("--threads", type=int, default=0, metavar="N", help=THREADS_HELP)


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def apply_threads(threads: int, data_workers: int = 0) -> int:
    """torch.set_num_threads for --threads (see THREADS_HELP); returns the count now in use.
    Raises ValueError for a negative count (argparse callers report it as a usage error)."""
    import torch

    if threads < 0:
        raise ValueError(f"--threads must be >= 0 (0 = automatic), got {threads}")
    if threads == 0:
        threads = torch.get_num_threads()
        if data_workers > 0:
            threads = max(1, min(threads, cpu_count() - data_workers))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
