"""Command line: ``python -m fastbp [demo] [--plot PATH]``, ``python -m fastbp compare [options]``,
``python -m fastbp dashboard``."""
import argparse
import sys

_PLOT_HELP = ("also write a PNG of the fastbp.Network's decision boundary on the moons and "
              "its loss curve to PATH (needs matplotlib: pip install 'fastbp[plot]')")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastbp", description=__doc__)
    parser.add_argument("--plot", metavar="PATH", dest="demo_plot", default=None, help=_PLOT_HELP)
    sub = parser.add_subparsers(dest="command")
    demo_parser = sub.add_parser(
        "demo", help="train the seed article's example with fastbp and with NumPy (default)")
    # SUPPRESS: `python -m fastbp --plot a.png demo` keeps the top-level value.
    demo_parser.add_argument("--plot", metavar="PATH", dest="demo_plot", default=argparse.SUPPRESS,
                             help=_PLOT_HELP)
    # The comparison's options live with it; its module imports nothing heavy.
    from .compare import DESCRIPTION as compare_description, add_arguments as compare_arguments
    from .compare import check_output_path

    compare_parser = sub.add_parser(
        "compare", help="time fastbp against its peers (NumPy, scikit-learn, PyTorch, JAX) on "
                        "four workloads", description=compare_description)
    compare_arguments(compare_parser)
    dashboard_parser = sub.add_parser(
        "dashboard", help="make the asv dashboard work offline: its JavaScript and CSS from the "
                          "npm registry (npm pack) beside index.html, after `asv publish`")
    dashboard_parser.add_argument("--html-dir", default=".asv/html",
                                  help="the folder asv publish wrote (default: %(default)s)")
    dashboard_parser.add_argument("--cache-dir", default=None,
                                  help="where the npm packages are kept "
                                       "(default: ~/.cache/fastbp/npm)")
    args = parser.parse_args(argv)
    if args.command in ("compare", "dashboard") and args.demo_plot is not None:
        parser.error(f"--plot before '{args.command}' is the demo's"
                     + (": give it after compare for the comparison's chart"
                        if args.command == "compare" else ""))
    if args.command == "dashboard":
        from .dashboard import main as dashboard

        return dashboard(args.html_dir, args.cache_dir)
    if args.command == "compare":
        from .compare import run as compare

        return compare(args, compare_parser)
    check_output_path(parser, "--plot", args.demo_plot)
    if args.command in (None, "demo"):
        from .demo import main as demo

        demo(plot=args.demo_plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
