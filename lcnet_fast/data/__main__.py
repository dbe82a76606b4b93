"""``python -m lcnet_fast.data check ...``: see lcnet_fast.data.check."""

import sys

from lcnet_fast.config import ConfigError
from lcnet_fast.data.check import main


def cli() -> int:
    try:
        return main()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
