"""Command line: ``python -m fastbp [demo]``."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastbp", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="train the seed article's example with fastbp and with NumPy (default)")
    args = parser.parse_args(argv)
    if args.command in (None, "demo"):
        from .demo import main as demo

        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
