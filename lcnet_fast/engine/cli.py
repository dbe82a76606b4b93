"""The one way every `python -m lcnet_fast.<tool>` turns a known user error into one clear line."""

import sys
from collections.abc import Callable


def run_cli(main: Callable[[], int], extra_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a CLI's main(); a known user error (bad config, missing file, corrupt image, wrong
    checkpoint, ...) prints `error: <message>` and returns exit code 2 instead of a traceback."""
    from lcnet_fast.train import USER_ERRORS  # late: train imports the whole engine

    try:
        return main()
    except (*USER_ERRORS, *extra_errors) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
