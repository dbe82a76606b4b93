"""``python -m lcnet_fast.visualize graph|attention|curves ...`` (see lcnet_fast.visualize)."""

from __future__ import annotations

import argparse
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m lcnet_fast.visualize",
                                     description="Pictures of a trained LCNet.")
    sub = parser.add_subparsers(dest="command", required=True)

    graph = sub.add_parser("graph", help="learned label-correlation graph: PNG + CSV adjacency")
    graph.add_argument("--checkpoint", required=True, help="run directory or .safetensors file")
    graph.add_argument("--out", help="output folder (default: <run dir>/figures)")
    graph.add_argument("--threshold", type=float, default=0.5,
                       help="drop edges weaker than this fraction of the strongest (default 0.5)")
    graph.add_argument("--transform", choices=("softmax", "raw"), default="softmax",
                       help="softmax(A) per row (the GAT's attention prior, default) or raw A")
    graph.add_argument("--weights", choices=("ema", "model"),
                       help="default: the run's reported weights")

    att = sub.add_parser("attention", help="decoder (MHA2) attention of labels over an image")
    att.add_argument("image")
    att.add_argument("--checkpoint", required=True, help="run directory or .safetensors file")
    att.add_argument("--labels", help="comma-separated class names (default: the predicted ones)")
    att.add_argument("--layers", default="all", help="'all' (default), 'last' or 1-based list")
    att.add_argument("--out", help="output folder (default: <run dir>/figures)")
    att.add_argument("--weights", choices=("ema", "model"))

    curves = sub.add_parser("curves", help="training loss / validation mAP / lr per epoch")
    curves.add_argument("run_dir")
    curves.add_argument("--out", help="PNG path (default: <run dir>/figures/curves.png)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "graph":
        from lcnet_fast.visualize.graph import plot_label_graph

        result = plot_label_graph(args.checkpoint, args.out, args.transform, args.threshold,
                                  args.weights)
        print(f"{len(result['edges'])} edges kept; wrote {result['png']} and {result['csv']}")
    elif args.command == "attention":
        from lcnet_fast.visualize.attention import plot_attention

        result = plot_attention(args.checkpoint, args.image, args.labels, args.layers, args.out,
                                args.weights)
        for path in result["pngs"]:
            print(f"wrote {path}")
        print(f"wrote {result['npz']}")
    else:
        from lcnet_fast.visualize.curves import plot_curves

        result = plot_curves(args.run_dir, args.out)
        print(f"wrote {result['png']}")
    return 0


def cli() -> int:
    from lcnet_fast.engine.cli import run_cli
    from lcnet_fast.visualize._common import VisualizeError

    return run_cli(main, extra_errors=(VisualizeError,))


if __name__ == "__main__":
    sys.exit(cli())
