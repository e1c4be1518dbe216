"""Command line: ``python -m fastbp [demo] [--plot PATH]``."""
import argparse
import os
import sys

_PLOT_HELP = ("also write a PNG of the fastbp.Network's decision boundary on the moons and "
              "its loss curve to PATH (needs matplotlib: pip install 'fastbp[plot]')")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastbp", description=__doc__)
    parser.add_argument("--plot", metavar="PATH", default=None, help=_PLOT_HELP)
    sub = parser.add_subparsers(dest="command")
    demo_parser = sub.add_parser(
        "demo", help="train the seed article's example with fastbp and with NumPy (default)")
    # SUPPRESS: `python -m fastbp --plot a.png demo` keeps the top-level value.
    demo_parser.add_argument("--plot", metavar="PATH", default=argparse.SUPPRESS, help=_PLOT_HELP)
    args = parser.parse_args(argv)
    if args.plot is not None:
        folder = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(folder):
            parser.error(f"--plot: folder {folder} does not exist")
    if args.command in (None, "demo"):
        from .demo import main as demo

        demo(plot=args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
