"""``python -m lcnet_fast.experiments ablation|cost [options]`` (``--help`` on each)."""

import sys

USAGE = "usage: python -m lcnet_fast.experiments {ablation,cost} [options]  (--help on each)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "ablation":
        from lcnet_fast.experiments.ablation import main as run
    elif command == "cost":
        from lcnet_fast.experiments.cost import main as run
    else:
        print(f"error: unknown experiment {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    from lcnet_fast.engine.cli import run_cli

    return run_cli(lambda: run(rest), extra_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
