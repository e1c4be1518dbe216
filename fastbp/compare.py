"""``python -m fastbp compare``: fastbp beside its peers, in one process, on this machine.

For each workload of :mod:`fastbp.peers` (tiny, small, medium, large) and each installed
peer (the NumPy reference, scikit-learn's ``MLPClassifier``, PyTorch eager, JAX with one
jitted ``lax.scan`` per epoch) and fastbp, all from the same initial weights and with the
same plain SGD, it prints:

- training: milliseconds per epoch (the median of ``--repeats`` timed calls of
  ``fit_epochs``, each 100 epochs for tiny and 1 for the others, divided by the epochs),
  samples per second, useful GFLOP/s (``6P - 2P_first`` per sample) and the ratio of
  the peer's time to fastbp's;
- prediction: samples per second over the workload's data, and how many times fastbp's
  throughput is the peer's;
- the float32 and float64 GEMM peak of NumPy's BLAS (measured before and after the
  workloads; the higher is quoted), and for the large workload fastbp's GFLOP/s as a
  share of the float32 peak;
- cold start: a fresh interpreter importing fastbp and fitting the tiny workload, with
  Numba's cache warm and empty (``--no-cold-start`` skips it);
- memory: the peak traced by ``tracemalloc`` during one epoch of fastbp's fit and of
  scikit-learn's on the medium workload (``--no-memory`` skips it).

Every peer is warmed up first (Numba's and XLA's compilation, first-call allocations),
and the repeats are interleaved (repeat r runs every peer once, then repeat r + 1), so
that a noisy neighbour on a shared machine slows all of them alike; each timed call
starts after ``SETTLE_SECONDS`` of quiet, so that the threads the previous peer's
runtime leaves spinning do not take a core from it, and a short call is timed after
``PRIME_SECONDS`` of untimed calls (``PRIME_BELOW_SECONDS``).  Quote the ratios of one run.
"""
import argparse
import contextlib
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from . import peers

#: The peers ``--peers`` can name; fastbp always runs.
PEER_NAMES = ["numpy", "sklearn", "torch", "jax"]
#: Epochs one timed ``fit_epochs`` call runs: an epoch of the tiny workload takes
#: microseconds, so a call trains 100 of them, as a real fit would.
EPOCHS_PER_CALL = {"tiny": 100, "small": 1, "medium": 1, "large": 1}
#: Side of the square matrices of the GEMM peak.
GEMM_SIZE = 2048
#: Set by some machines; both slow NumPy's and SciPy's OpenBLAS.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

_INSTALL = {"sklearn": "pip install scikit-learn", "torch": "pip install 'fastbp[peers]'",
            "jax": "pip install 'fastbp[peers]'", "numpy": "pip install numpy"}
#: library: the modules to import before the thread limits are set, so that they cover
#: every BLAS and OpenMP runtime the library loads.
_IMPORTS = {"fastbp": ["scipy.linalg"], "numpy": [], "sklearn": ["sklearn.neural_network"],
            "torch": ["torch"], "jax": ["jax"]}
#: library: the distributions whose versions the JSON records
_DISTRIBUTIONS = {"fastbp": ["fastbp", "numpy", "numba", "scipy", "threadpoolctl"],
                  "numpy": ["numpy"], "sklearn": ["scikit-learn"], "torch": ["torch"],
                  "jax": ["jax", "jaxlib"]}
DESCRIPTION = ("fastbp beside its peers (the NumPy reference, scikit-learn, PyTorch, JAX): "
               "training and prediction speed on four workloads, the GEMM peak, cold start "
               "and memory, measured in one process on this machine.")
_NEEDS_MATPLOTLIB = "--plot needs matplotlib: pip install 'fastbp[plot]'"


# ---------------------------------------------------------------------------------------
# Command line


def _names(choices, what, allow_empty=False):
    """An argparse type: a comma-separated list of names out of ``choices``, in the order
    of ``choices`` and without repeats; an unknown name is an error that names it."""

    def parse(value):
        names = [v.strip() for v in value.split(",") if v.strip()]
        for name in names:
            if name not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {name!r} (choose from {', '.join(choices)})")
        if not names and not allow_empty:
            raise argparse.ArgumentTypeError(f"name at least one {what}")
        return [c for c in choices if c in names]

    return parse


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


#: The fewest samples ``--max-samples`` takes: the workloads' labels are balanced, so every
#: one of their (at most 10) classes then has a sample, which scikit-learn's warm starts
#: in its peer need.
MIN_SAMPLES = 10


def _sample_cap(value):
    number = _positive_int(value)
    if number < MIN_SAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected at least {MIN_SAMPLES} (a sample of every class), got {value!r}")
    return number


def add_arguments(parser):
    """Add the options of ``compare`` to ``parser`` (its own, or a subcommand's)."""
    parser.add_argument("--workloads", type=_names(peers.WORKLOAD_NAMES, "workload"),
                        default=list(peers.WORKLOAD_NAMES), metavar="NAMES",
                        help="comma-separated workloads out of tiny,small,medium,large "
                             "(default: all four)")
    parser.add_argument("--peers", type=_names(PEER_NAMES + ["fastbp"], "peer", allow_empty=True),
                        default=list(PEER_NAMES), metavar="NAMES",
                        help="comma-separated peers out of numpy,sklearn,torch,jax (default: "
                             "all; fastbp always runs; peers not installed are skipped)")
    parser.add_argument("--threads", type=_positive_int, default=os.cpu_count() or 1,
                        metavar="N", help="threads for BLAS (threadpoolctl), fastbp and PyTorch "
                                          "(default: the CPU count, %(default)s); JAX sizes "
                                          "its own pool")
    parser.add_argument("--repeats", type=_positive_int, default=5, metavar="N",
                        help="timed calls per peer and workload; medians are quoted "
                             "(default: %(default)s)")
    parser.add_argument("--max-samples", type=_sample_cap, default=None, metavar="N",
                        help="cap every workload's samples, for a quick run (default: the "
                             "full workloads, 800, 1437, 60000 and 16384 samples)")
    parser.add_argument("--gemm-size", type=_positive_int, default=GEMM_SIZE, metavar="N",
                        help="side of the square matrices of the GEMM peak "
                             "(default: %(default)s)")
    parser.add_argument("--no-cold-start", dest="cold_start", action="store_false",
                        help="skip the cold-start measurement (fresh interpreters, one of "
                             "them compiling every kernel: about half a minute)")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the tracemalloc measurement of one medium epoch")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write everything measured, and the machine, to PATH")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="also write a bar chart (PNG) of each peer's epoch time over "
                             "fastbp's to PATH (needs matplotlib: pip install 'fastbp[plot]')")
    return parser


def main(argv=None):
    """Run ``python -m fastbp compare [options]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fastbp compare", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)


def check_output_path(parser, option, path):
    """``parser.error`` unless ``path`` (None: not asked for) names a file this process can
    write: checked before any work, so that a long run does not end in a traceback."""
    if path is None:
        return
    if not path:
        parser.error(f"{option}: the path is empty")
    if os.path.isdir(path):
        parser.error(f"{option}: {path} is a folder; give a file name in it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        parser.error(f"{option}: folder {folder} does not exist")
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        parser.error(f"{option}: {path} cannot be written here")


def run(args, parser):
    """Measure and print what ``args`` (from :func:`add_arguments`'s options) asks for;
    ``parser`` reports bad paths.  Returns the exit status."""
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        check_output_path(parser, option, path)
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error(_NEEDS_MATPLOTLIB)

    report = compare(workloads=args.workloads, libraries=args.peers, threads=args.threads,
                     repeats=args.repeats, max_samples=args.max_samples,
                     gemm_size=args.gemm_size, cold_start=args.cold_start,
                     memory=args.memory, out=sys.stdout)
    status = 0
    # (checked before the run, but a full disk or a file only root's check passed can
    # still fail: one line, not a traceback, and the other output is still tried)
    if args.json is not None:
        try:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
            print(f"\nJSON written to {args.json}")
        except OSError as exc:
            print(f"--json: could not write {args.json}: {exc.strerror or exc}",
                  file=sys.stderr)
            status = 1
    if args.plot is not None:
        try:
            print(f"plot written to {save_plot(report['training'], args.plot)}")
        except OSError as exc:
            print(f"--plot: could not write {args.plot}: {exc.strerror or exc}",
                  file=sys.stderr)
            status = 1
    return status


# ---------------------------------------------------------------------------------------
# Measurements


def _seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


#: Pause before each timed peer call: BLAS and threading runtimes keep their idle threads
#: spinning for a while after a call (OpenBLAS about 0.1 s), which took a core from the
#: next peer measured, whichever it was (a fit on another OpenBLAS ran 2x slower).
SETTLE_SECONDS = 0.15
#: Calls shorter than ``PRIME_BELOW_SECONDS`` are timed after ``PRIME_SECONDS`` of
#: untimed calls of the same peer: after a pause, a short call also pays for waking its
#: threads and refilling caches (a 0.14 ms predict took 0.41 ms after 0.15 s of sleep),
#: and one call is not enough to get past that.  Measured on the small workload (2 cores,
#: medians of 10 pauses): the calls after the pause took fastbp 1.61, 1.04, then 0.92-0.97
#: ms from about the fourth on; JAX 1.95, 1.38, then 1.27-1.31 from about the sixteenth
#: (some 20 ms in); NumPy 3.83, 3.32, then 3.26-3.31.  Every peer is timed in the state
#: a training loop runs in.
PRIME_BELOW_SECONDS = 0.5
PRIME_SECONDS = 0.05


def _settled_seconds(fn):
    """``_seconds(fn)`` after ``SETTLE_SECONDS`` of quiet and, when a call of ``fn`` is short
    (``PRIME_BELOW_SECONDS``), after untimed calls for ``PRIME_SECONDS``."""
    time.sleep(SETTLE_SECONDS)
    first = _seconds(fn)
    if first >= PRIME_BELOW_SECONDS:
        return first
    spent = first
    while spent < PRIME_SECONDS:
        spent += _seconds(fn)
    return _seconds(fn)


def gemm_peak(dtype, n=GEMM_SIZE, repeats=5):
    """GFLOP/s of NumPy's ``np.dot`` of two ``n x n`` matrices of ``dtype`` into a
    preallocated result: ``2 n**3`` over the median of ``repeats`` calls after one."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    np.dot(a, b, out=out)
    seconds = np.median([_seconds(lambda: np.dot(a, b, out=out)) for _ in range(repeats)])
    return 2.0 * n ** 3 / seconds / 1e9


def _gemm_peaks(n):
    return {dtype: gemm_peak(dtype, n) for dtype in ("float32", "float64")}


def measure_workload(w, libraries, repeats):
    """Train and predict with every peer of ``libraries`` (fastbp first) on workload ``w``.

    Each peer is made from the same initial weights and warmed up; then ``repeats``
    rounds time one ``fit_epochs(X, y, w.epochs)`` of every peer, and as many rounds
    one ``predict(X)``.  Returns ``(training_rows, prediction_rows)``: a dict per peer
    with the raw seconds and the derived figures.
    """
    X, y = peers.get_data(w)
    made = {}
    for library in libraries:
        made[library] = peers.make_peer(library, w)
        made[library].warm_up(X, y)
    fit = {library: [] for library in made}
    for _ in range(repeats):
        for library, peer in made.items():
            fit[library].append(_settled_seconds(lambda: peer.fit_epochs(X, y, w.epochs)))
    predict = {library: [] for library in made}
    for _ in range(repeats):
        for library, peer in made.items():
            predict[library].append(_settled_seconds(lambda: peer.predict(X)))
    del made
    gc.collect()

    base_fit = float(np.median(fit["fastbp"])) / w.epochs
    base_predict = w.n_samples / float(np.median(predict["fastbp"]))
    training, prediction = [], []
    for library in libraries:
        per_epoch = float(np.median(fit[library])) / w.epochs
        training.append(dict(
            workload=w.name, peer=library, samples=w.n_samples, epochs_per_call=w.epochs,
            seconds_per_call=fit[library], seconds_per_epoch=per_epoch,
            ms_per_epoch=per_epoch * 1e3, samples_per_second=w.n_samples / per_epoch,
            gflops=w.flops_per_sample * w.n_samples / per_epoch / 1e9,
            ratio=per_epoch / base_fit))
        throughput = w.n_samples / float(np.median(predict[library]))
        prediction.append(dict(
            workload=w.name, peer=library, samples=w.n_samples, seconds=predict[library],
            samples_per_second=throughput, fastbp_speedup=base_predict / throughput))
    return training, prediction


_COLD_START_CODE = """\
import time
import numpy as np
rng = np.random.default_rng(0)
X = rng.standard_normal(({n}, {n_in}))
y = (rng.random({n}) < 0.5).astype(np.float64)
t0 = time.perf_counter()
import fastbp
net = fastbp.Network({layers}, activation="relu", output={output!r}, dtype={dtype!r},
                     random_state=0)
net.fit(X, y, epochs=1, batch_size={batch}, learning_rate={lr})
print(time.perf_counter() - t0)
"""


def cold_start_seconds(cache_dir=None):
    """A fresh ``python -c`` importing fastbp and fitting the tiny workload once.

    With ``cache_dir``, Numba's cache is that folder (``NUMBA_CACHE_DIR``) instead of its
    default.  Python may write its bytecode cache (``PYTHONDONTWRITEBYTECODE`` is removed
    from the child's environment), as it does for a package installed by pip.  Returns
    ``(seconds, process_seconds)``: the time from ``import fastbp`` to the end of the fit, measured in the child (the interpreter's start, ``import numpy``
    and making the data are not counted), and the whole child process's wall time.
    """
    w = peers.workload("tiny")
    code = _COLD_START_CODE.format(n=w.n_samples, n_in=w.layers[0], layers=list(w.layers),
                                   output=w.output, dtype=w.dtype, batch=w.batch,
                                   lr=w.learning_rate)
    env = dict(os.environ)
    # The child imports this very fastbp, whatever its working directory holds.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    # Python's own compile cache as an installed package has it (pip writes the bytecode
    # at install): without it, every child compiles fastbp's sources again, 0.1 s here.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the cold-start child failed:\n{done.stderr}")
    return float(done.stdout.split()[-1]), wall


def cold_start_times():
    """Cold start with a warm Numba cache (a first child fills it, a second is timed) and
    with an empty one (a fresh temporary ``NUMBA_CACHE_DIR``): a dict of
    :func:`cold_start_seconds` results."""
    cold_start_seconds()
    warm, warm_process = cold_start_seconds()
    with tempfile.TemporaryDirectory(prefix="fastbp-numba-cache-") as folder:
        empty, empty_process = cold_start_seconds(folder)
    return dict(warm_cache_seconds=warm, warm_cache_process_seconds=warm_process,
                empty_cache_seconds=empty, empty_cache_process_seconds=empty_process)


def fit_memory(max_samples=None, libraries=("fastbp", "sklearn")):
    """Peak memory traced by ``tracemalloc`` during one epoch of training on the medium
    workload (at most ``max_samples`` samples), after a warm-up, per library; with the
    size of ``X`` for scale.  NumPy's allocations are traced; memory a Numba kernel
    allocates for itself is not."""
    w = _workload("medium", max_samples)
    X, y = peers.get_data(w)
    result = dict(workload=w.name, samples=w.n_samples, X_bytes=int(X.nbytes), peak_bytes={})
    for library in libraries:
        peer = peers.make_peer(library, w)
        peer.warm_up(X, y)
        gc.collect()
        tracing = tracemalloc.is_tracing()
        if tracing:
            tracemalloc.reset_peak()
        else:
            tracemalloc.start()
        try:
            peer.fit_epochs(X, y, 1)
            result["peak_bytes"][library] = tracemalloc.get_traced_memory()[1]
        finally:
            if not tracing:
                tracemalloc.stop()
        del peer
    return result


def _workload(name, max_samples):
    n_full = peers.workload(name).n_full
    n = n_full if max_samples is None else min(n_full, max_samples)
    return peers.workload(name, n_samples=n, epochs=EPOCHS_PER_CALL[name])


@contextlib.contextmanager
def thread_limits(threads, libraries):
    """BLAS and OpenMP runtimes (threadpoolctl), fastbp and PyTorch limited to ``threads``
    inside; restored after.  The libraries' modules are imported first, so that the
    limits reach every runtime they load."""
    from .network import _threads

    for library in libraries:
        for module in _IMPORTS[library]:
            importlib.import_module(module)
    torch = sys.modules.get("torch") if "torch" in libraries else None
    torch_before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with _threads(threads):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(torch_before)


def _load_average():
    """The one-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_info(libraries):
    """The platform, the CPU count, the BLAS and OpenMP runtimes loaded, and the version of
    every library that runs."""
    from threadpoolctl import threadpool_info

    versions = {}
    for library in ["fastbp", *libraries]:
        for dist in _DISTRIBUTIONS[library]:
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = None
    runtimes = [{key: info.get(key) for key in
                 ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")}
                for info in threadpool_info()]
    return dict(platform=platform.platform(), machine=platform.machine(),
                processor=platform.processor(), python=platform.python_version(),
                cpu_count=os.cpu_count(), load_average=_load_average(), versions=versions,
                threadpools=runtimes,
                environment={v: os.environ.get(v) for v in OPENBLAS_VARIABLES})


def compare(workloads=tuple(peers.WORKLOAD_NAMES), libraries=tuple(PEER_NAMES), threads=None,
            repeats=5, max_samples=None, gemm_size=GEMM_SIZE, cold_start=True, memory=True,
            out=None):
    """Run the comparison and return everything measured as a JSON-ready dict; with
    ``out`` (a text stream), print the tables to it as they come."""
    write = (lambda *a: print(*a, file=out, flush=True)) if out is not None else (lambda *a: None)
    threads = threads or os.cpu_count() or 1
    notes, running = [], ["fastbp"]
    for library in libraries:
        if library == "fastbp" or library in running:
            continue
        if peers.installed(library):
            running.append(library)
        else:
            notes.append(f"{library}: not installed ({_INSTALL[library]})")

    write("fastbp compare: plain-SGD training and prediction, fastbp beside "
          f"{', '.join(running[1:]) or 'no peer'}")
    for variable in OPENBLAS_VARIABLES:
        if os.environ.get(variable):
            write(f"warning: {variable}={os.environ[variable]} is set; it slows NumPy's BLAS "
                  f"(compare with `env -u {' -u '.join(OPENBLAS_VARIABLES)} python -m fastbp "
                  f"compare`)")
    load = _load_average()
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        write(f"warning: the load average over the last minute is {load:.1f} on "
              f"{os.cpu_count()} CPUs: other processes are busy, and parallel runtimes stall "
              f"when one of their threads waits for a core; expect noise (or use --threads 1)")
    for note in notes:
        write(note)
    write(f"threads: {threads} for BLAS (threadpoolctl), fastbp and PyTorch; JAX sizes its own "
          f"thread pool")

    report = dict(settings=dict(workloads=list(workloads), peers=running, threads=threads,
                                repeats=repeats, max_samples=max_samples,
                                epochs_per_call={n: EPOCHS_PER_CALL[n] for n in workloads},
                                gemm_size=gemm_size),
                  notes=notes, training=[], prediction=[], cold_start=None, memory=None)
    with thread_limits(threads, running):
        report["machine"] = machine_info(running[1:])
        m = report["machine"]
        blas = [f"{r['internal_api']} {r['version']} ({r['architecture']})"
                for r in m["threadpools"] if r["user_api"] == "blas"]
        write(f"machine: {m['platform']}, {m['cpu_count']} CPUs, Python {m['python']}, "
              f"BLAS: {'; '.join(blas) or 'none found'}")

        # Measured before and after the workloads, the higher quoted: a busy neighbour
        # during one measurement must not make a peak that training exceeds.
        before = _gemm_peaks(gemm_size)
        write(f"GEMM peak (NumPy, {gemm_size} x {gemm_size}, median of 5): "
              f"float32 {_num(before['float32'])} GFLOP/s, float64 {_num(before['float64'])} "
              f"GFLOP/s (measured again after the workloads)")

        write("\nTraining: ms per epoch = median of "
              f"{repeats} timed calls / epochs per call (tiny: {EPOCHS_PER_CALL['tiny']}, "
              "others: 1); GFLOP/s = (6P - 2P_first) per sample;\n"
              "ratio = the peer's time / fastbp's (above 1: fastbp is faster)")
        write(_TRAIN_HEADER)
        for name in workloads:
            training, prediction = measure_workload(_workload(name, max_samples), running,
                                                    repeats)
            report["training"] += training
            report["prediction"] += prediction
            for row in training:
                write(_train_line(row))

        after = _gemm_peaks(gemm_size)
        peak = {dtype: max(before[dtype], after[dtype]) for dtype in before}
        report["gemm_peak_gflops"] = peak
        report["gemm_peak_gflops_before_after"] = {"before": before, "after": after}
        write(f"GEMM peak after the workloads: float32 {_num(after['float32'])} GFLOP/s, "
              f"float64 {_num(after['float64'])} GFLOP/s; quoted: the higher of the two")
        large = [row for row in report["training"]
                 if row["workload"] == "large" and row["peer"] == "fastbp"]
        if large:
            share = 100.0 * large[0]["gflops"] / peak["float32"]
            report["large_fastbp_percent_of_float32_peak"] = share
            write(f"large: fastbp's {_num(large[0]['gflops'])} GFLOP/s is {share:.0f}% of the "
                  f"float32 GEMM peak ({_num(peak['float32'])} GFLOP/s)")

        write(f"\nPrediction: samples per second over each workload's data, median of {repeats}; "
              "speed-up = fastbp's throughput / the peer's")
        write(_PREDICT_HEADER)
        for row in report["prediction"]:
            write(_predict_line(row))

        if cold_start:
            write("\nCold start: a fresh `python -c`, import fastbp + the first fit of the "
                  "tiny workload (time in the child; whole process in brackets)")
            result = cold_start_times()
            report["cold_start"] = result
            write(f"  warm Numba cache:  {result['warm_cache_seconds']:6.2f} s  "
                  f"({result['warm_cache_process_seconds']:.2f} s)")
            write(f"  empty Numba cache: {result['empty_cache_seconds']:6.2f} s  "
                  f"({result['empty_cache_process_seconds']:.2f} s)")
        if memory:
            result = fit_memory(max_samples)
            report["memory"] = result
            write(f"\nMemory: peak traced by tracemalloc during one epoch of fit, medium "
                  f"workload, {result['samples']:,} samples (X itself: "
                  f"{result['X_bytes'] / 1e6:,.1f} MB); Numba's own allocations are not traced")
            for library, peak_bytes in result["peak_bytes"].items():
                write(f"  {library:<8} {peak_bytes / 1e6:10,.1f} MB")
    return report


# ---------------------------------------------------------------------------------------
# Output


def _num(x):
    """``x`` with three significant digits, never in exponent notation."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


_TRAIN_HEADER = (f"{'workload':<9}{'peer':<9}{'samples':>8}{'ms/epoch':>12}{'samples/s':>15}"
                 f"{'GFLOP/s':>10}{'ratio':>9}")
_PREDICT_HEADER = f"{'workload':<9}{'peer':<9}{'samples':>8}{'samples/s':>15}{'speed-up':>10}"


def _train_line(row):
    return (f"{row['workload']:<9}{row['peer']:<9}{row['samples']:>8,}"
            f"{_num(row['ms_per_epoch']):>12}{row['samples_per_second']:>15,.0f}"
            f"{_num(row['gflops']):>10}{row['ratio']:>9.2f}")


def _predict_line(row):
    return (f"{row['workload']:<9}{row['peer']:<9}{row['samples']:>8,}"
            f"{row['samples_per_second']:>15,.0f}{row['fastbp_speedup']:>10.2f}")


def save_plot(training, path):
    """Write a PNG bar chart of the ``ratio`` of every training row of ``training`` (the
    peer's epoch time over fastbp's), grouped by workload, on a log scale: each bar runs
    from fastbp's line at 1 to the peer's ratio.  Returns ``path``."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no backend or display needed
    except ImportError as exc:
        raise ImportError(_NEEDS_MATPLOTLIB) from exc

    workloads = list(dict.fromkeys(row["workload"] for row in training))
    libraries = list(dict.fromkeys(row["peer"] for row in training if row["peer"] != "fastbp"))
    fig = Figure(figsize=(2 + 1.6 * len(workloads), 4.5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(libraries))
    for i, library in enumerate(libraries):
        rows = [(workloads.index(r["workload"]), r["ratio"]) for r in training
                if r["peer"] == library]
        offset = (i - (len(libraries) - 1) / 2) * width
        # Bars grow from fastbp's line: up where the peer is slower, down where it is faster.
        ax.bar([x + offset for x, _ in rows], [ratio - 1.0 for _, ratio in rows], width,
               bottom=1.0, label=library)
    ax.axhline(1.0, color="black", linewidth=1, label="fastbp")
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("epoch time / fastbp's epoch time")
    ax.set_title("Training time of each peer relative to fastbp (higher: fastbp faster)")
    ax.legend()
    fig.savefig(path, dpi=100, format="png")
    return path
