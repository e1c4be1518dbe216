"""The one place for compile options shared by every kernel.

``FASTMATH`` lets LLVM reassociate and contract floating-point operations so
that reductions and multiply-adds vectorize.  It deliberately leaves out
``nnan`` and ``ninf``: kernels must keep their guards against overflow and
propagate NaN so that divergence can be detected above them.

Numba's cache (``cache=True``) keys each kernel on its own source file only: an
edit to a kernel it calls in another file, or to a constant here, is not seen.
After such an edit, delete the cached files (``*.nbi``, ``*.nbc``) under
``fastbp/_kernels/__pycache__``.  (The copies of the kernels that fits compile, see
``fastbp._variants``, sit in folders named after a digest of every kernel source and of
this file: an edit gives them new folders, compiled afresh.)
"""
import numba
from llvmlite import binding


def _wide_vectors():
    """Whether the CPU Numba compiles for has AVX-512's 64-byte registers: the host's
    features, or those given in ``NUMBA_CPU_FEATURES``; without them, when
    ``NUMBA_CPU_NAME`` names another CPU (a cache meant for several machines), no.
    (Numba's cache keys its entries on the CPU and its features, so code compiled for one
    answer is never loaded on a machine that gives the other.)"""
    features = numba.config.CPU_FEATURES
    if features:
        return "+avx512f" in features.split(",")
    if numba.config.CPU_NAME and numba.config.CPU_NAME != "host":
        return False
    return bool(binding.get_host_cpu_features().get("avx512f", False))


#: See ``_wide_vectors``: the tile shape (``_kernels.tiles``) and ``SPLIT_MAX_WORK`` follow it.
WIDE_VECTORS = _wide_vectors()


def _cpu_vendor():
    """The CPU vendor's identifier (``GenuineIntel``, ``AuthenticAMD``, ...) as Linux names
    it in ``/proc/cpuinfo``; empty where that is not found."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""

FASTMATH = frozenset({"reassoc", "contract", "nsz"})

#: Keyword arguments of every ``@njit`` in ``fastbp._kernels``.  Without Numba's reference
#: counting (``_nrt=False``): the kernels allocate nothing (the caller passes every buffer),
#: yet each slice they take of an array, a row of a block say, counted a reference up and
#: down with an atomic instruction, 13% of the ``small`` workload's samples in ``perf``
#: (its epoch 1.12x faster without).  A kernel may then not return a view it made (offsets
#: instead, as ``epoch.pre_offset``); one that allocates uses ``njit_alloc``.  Nor with the
#: C-callable wrapper Numba would otherwise compile beside each kernel (for passing it as a
#: first-class function, which fastbp never does): a first fit with an empty cache compiled
#: 6% faster without (26.6 against 28.4 s, medians of three fresh processes alternated).
#: Nor with the wrapper that lets Python call a kernel, except for the kernels Python calls
#: (``njit_entry``): a first fit with an empty cache then compiled in 5-28% less time (five
#: fresh processes alternated each way, every pair lower).  Python must not call the others:
#: without the wrapper, that crashes the interpreter (tests call them through a compiled
#: function, ``conftest.compiled`` in the tests).
JIT = dict(cache=True, nogil=True, fastmath=set(FASTMATH), error_model="numpy", _nrt=False,
           no_cfunc_wrapper=True, no_cpython_wrapper=True)

#: Rows per chunk in prediction and full-data gradients, to bound buffer memory.
FORWARD_CHUNK = 1024

#: Inputs of at least this many values are checked for NaN and infinity in two threads
#: (``_validation._all_finite``), where the fit may use two: the check is one pass over
#: memory, which one core does not saturate.  The ``medium`` workload's X (47M float32,
#: 188 MB) on the Intel Xeon: 6.4 against 11.5 ms, about 1.6% of its epoch, which every
#: ``fit`` call pays; a thread's start costs some 0.1 ms, a check of 2**22 float32 values
#: about 1 ms.
FINITE_SPLIT_VALUES = 2 ** 22

#: Without per-epoch work (validation, callbacks, ...), ``Network.fit`` hands the kernel
#: several epochs per call, at most this many multiply-adds' worth (samples x parameters)
#: and at most ``EPOCH_CALL_ROWS`` shuffled row indices.  Each call costs about 1.5 ms of
#: Python around the kernel (shuffles, the weights' checks and probe, the history); 10^9
#: is about 0.1-0.3 s of training on 2 cores (load_digits with 100 hidden units: 70 epochs,
#: 0.12 s), which Ctrl-C waits for.  Measured with ``bench_sklearn.py``: at 10^8 the
#: load_digits fit took 0.413 s in 29 calls, at 10^9 0.366 s.
EPOCH_CALL_WORK = 10 ** 9
EPOCH_CALL_ROWS = 2 ** 20

#: A layer goes through BLAS when both its widths are at least ``BLAS_MIN_WIDTH`` and
#: ``n_in * n_out * batch`` is at least ``BLAS_MIN_WORK`` multiply-adds; otherwise the
#: fused Numba loops run.  Measured with ``benchmarks/scripts/bench_gemm.py`` (2 cores, AVX2):
#: the loops win only on very narrow layers (2 -> 10 at batch 800: 2.8 us against
#: 5.3 us for BLAS, float32); from about 8k multiply-adds on layers at least 8 wide,
#: BLAS is as fast or faster (64 -> 10 at batch 32: 4.4 us against 5.4 us; 64 -> 128:
#: 16 us against 55 us).  A register-blocked loop kernel may move this line.
BLAS_MIN_WIDTH = 8
BLAS_MIN_WORK = 8192

#: Of the layers past that line, those with at most ``TILE_MAX_WEIGHTS`` weights on
#: batches of at most ``TILE_MAX_BATCH`` go through ``_kernels.tiles`` rather than BLAS
#: (the forward product, the delta passed down and the weight gradient).  Measured
#: with ``benchmarks/scripts/bench_gemm.py`` (one core, AVX2, float32): batch 32, 64 -> 128
#: and 128 -> 64, the tiles 1.7-1.9x faster than OpenBLAS; batch 200, 64 -> 100 (float64),
#: even; batch 128, 784 -> 256, OpenBLAS 2x faster (its cache blocking wins).  Whole
#: epochs: the ``small`` workload 1.11-1.17x faster with the tiles; a 100-100-2 float64
#: network on batches of 200 1.3x slower (so the batch limit stays at 64).  With AVX-512's
#: 8 x 2 tiles (Intel Xeon, one core, float32, 64 rows), 256 -> 128 ran 1.3-1.4x faster in
#: the tiles than in OpenBLAS (forward 28.7 against 36.9 us, weight gradient 27.6 against
#: 39.6, delta 26.6 against 38.0), while 784 -> 256 was even (forward 214 against 207 us,
#: weight gradient 172 against 220): the limit is 2**16 there, and the ``medium`` epoch
#: (2 threads, slices of 64 rows) ran 338-341 ms against 344-352 ms (six alternated pairs
#: of processes, each faster); 2**18 was no faster again.  Not measured on AMD's AVX-512.
TILE_MAX_WEIGHTS = 2 ** 16 if WIDE_VECTORS else 16384
TILE_MAX_BATCH = 64
#: A layer's weight gradient (dW = A @ D.T, summed over the batch) goes through the tiles
#: up to ``TILE_MAX_GRAD_WEIGHTS`` weights, on the same batches, while its forward
#: product and the delta it passes down stay in BLAS past ``TILE_MAX_WEIGHTS``: the sum
#: runs over the batch, at most 64 values, so a tile's operands stay in the first-level
#: cache however many weights the layer has, where the forward product's run over all the
#: layer's inputs.  On the Intel Xeon (one core, AVX-512), the tiles' weight gradient
#: against OpenBLAS's, float32: 784 -> 256 on 64 rows 200 against 207 us, on 32 rows 93
#: against 122, 784 -> 128 on 64 85 against 108, 1024 -> 256 on 64 260 against 262,
#: 512 -> 512 on 64 272 against 268 (float64: 1024 -> 256 543 against 604, 784 -> 256 on
#: 32 190 against 241); the forward product of 784 -> 256 in the tiles was slower than
#: BLAS's, with its sum over the inputs cut into blocks too.  The ``medium`` epoch (2
#: threads, slices of 64 rows): 329-341 ms against 338-351 (nine alternated pairs of
#: processes, eight faster, about 3%).  Not measured on AVX2, whose limit stays the forward's.
TILE_MAX_GRAD_WEIGHTS = 2 ** 18 if WIDE_VECTORS else TILE_MAX_WEIGHTS
#: Values a tile may read past the last column of its right operand (``_kernels.tiles``
#: loads whole vectors, and discards what lies past the edge): the activation and scratch
#: buffers carry this many more (``_spec.buffer_sizes``).  One AVX-512 vector of float32.
TILE_READ_PAST = 16

#: With two or more threads (``network._thread_count``), a minibatch of at least
#: ``2 * SPLIT_MIN_ROWS`` rows whose work (rows x parameters) is at most ``SPLIT_MAX_WORK`` is
#: cut into one slice per thread, each slice's forward and backward pass on its own core with
#: single-threaded BLAS, and the gradients summed (no batch normalization or dropout: those
#: need the whole batch, or its positions).  Measured per epoch against whole batches with
#: two-threaded BLAS, 2 cores (``benchmarks/scripts/bench_split.py``).  AVX2 (AMD EPYC):
#: 64-100-10 float64 on batches of 200 1.57x faster, 100-100-4 1.60x, the ``tiny`` workload
#: 1.41x, ``small`` 1.28x; ``medium`` (128 rows x 235k parameters) 0.92x and ``large``
#: (256 x 6.3M) 0.89x, where OpenBLAS's own threads do better.  AVX-512 (AMD Zen 5), whose
#: cores multiply twice as fast, so that the threads' hand-overs inside OpenBLAS and the
#: work left on one core between its products weigh more: 64-100-10 2.37x, 100-100-4 2.27x,
#: ``small`` 1.48x, ``medium`` 1.06-1.11x (1.21x in float64), 784-512-512-10 on batches of
#: 128 (86M) 1.04x (0.96x in float64); 1024-1024-1024-10 on 128 (270M) 0.93x, ``large`` 0.92x.
#: AVX-512 (Intel Xeon, 2.6 GHz), the same rule's choices but one: 64-100-10 1.82x,
#: 100-100-4 2.27x, ``tiny`` 1.46x, ``medium`` 1.25x, 784-512-512-10 1.02x, ``large``
#: 0.95x, and ``small`` 0.88x, sliced though slower: there each batch's exchange (every
#: part reads the other's half of the gradient, then of the updated weights, some 68 KB
#: from the other core) took about 20 us, more than half of the whole batch's 27 us (the
#: sliced epoch without its update: 0.75 ms, with it 1.5-1.8 ms).  Where the line falls
#: depends on how fast the cores exchange cache lines: ``SPLIT_MIN_TILED_ROWS``.
SPLIT_MIN_ROWS = 8
#: A sliced batch's first layer is split by its inputs (``network._first_split``,
#: ``_kernels.epoch.run_epochs``) when it has more than ``SPLIT_FIRST_MIN_WEIGHTS`` weights
#: and each part gets at least ``SPLIT_FIRST_MIN_INPUTS`` inputs: each part then sums the
#: first layer's product over its share of the inputs for the whole batch, and takes the
#: weight gradient of those inputs' rows, so that those weights and their gradient stay in
#: its core's cache; the parts exchange the product's partial sums and the first layer's
#: delta instead (a third barrier a batch).  Measured on the Intel Xeon (2 threads,
#: float32, ``benchmarks/scripts/bench_split.py``-like alternated runs in one process,
#: split against sliced as before): 784-256-128-10 on batches of 32 1.35x, 128 1.11-1.29x,
#: 256 0.99-1.11x; 784-512-512-10 1.06x; 400-256-10 1.19x, 1024-128-10 1.06x,
#: 784-128-10 1.00-1.05x; at 2**16 weights and below even or slower (512-128-10 0.93-1.02x,
#: 256-256-10 0.95-0.99x, 784-64-10 0.87-1.00x, 256-64-10 0.89x, 64-100-10 float64 0.80x),
#: where the extra barrier outweighs the exchange saved.  Not measured on other machines.
SPLIT_FIRST_MIN_WEIGHTS = 2 ** 16
SPLIT_FIRST_MIN_INPUTS = 32
SPLIT_MAX_WORK = 2 ** 27 if WIDE_VECTORS else 2 ** 24

#: A batch none of whose layers goes through BLAS whole (only the tiles and the loops) is
#: cut only into slices of at least ``SPLIT_MIN_TILED_ROWS`` rows: whole, it runs on one
#: core with nothing shared, so the slices must earn the exchange between the cores, whose
#: cost (per parameter, so per row of work saved) depends on the machine.  On the Intel
#: Xeon (``bench_split.py`` with more batch sizes, 2 threads, medians of five; sliced
#: against whole): 64-128-64-10 in float32 on batches of 32 0.80x, 48 0.96x, 64 1.25x,
#: 96 1.70x; 64-100-10 in float64 on 32 0.91x, 64 1.29x; 100-100-4 on 32 0.88x, 64 1.18x;
#: while medium's shape, whose first layer goes through BLAS, ran 1.30x faster sliced on
#: batches of 32 (BLAS on two threads does poorly on a whole batch that small).  On the AMD
#: machines (``SPLIT_MAX_WORK``), slices of 16 rows paid (``small``: 1.48x on Zen 5, 1.28x
#: on the AVX2 EPYC).  The line is 32 rows on Intel CPUs and ``SPLIT_MIN_ROWS`` on others:
#: measured on one machine kind of each vendor (Intel's server cores exchange cache lines
#: through a mesh, AMD's within a core complex through its shared L3), and the same on
#: every run of a machine, so that a fit's weights depend on the machine and the threads,
#: never on a timing.
SPLIT_MIN_TILED_ROWS = 32 if _cpu_vendor() == "GenuineIntel" else SPLIT_MIN_ROWS

#: A fit's kernel calls are sliced only when each does at least this much work, counted
#: as rows x (parameters + ``SPLIT_ROW_COST``): handing the slices to the worker threads
#: and back costs about 0.14 ms a call, which the slices earn back only on calls of about
#: 0.4 ms and more.  Measured on the ``tiny`` workload (800 rows, 31 parameters), per
#: ``fit`` call, one thread against two: 1 epoch 0.30 against 0.44 ms, 10 epochs 0.51
#: against 0.63 ms, 30 epochs 1.07 against 1.02 ms, 100 epochs 2.6 against 1.8 ms.
#: (``SPLIT_ROW_COST``: a row's cost beyond its multiply-adds, in parameters' worth.)
SPLIT_MIN_CALL_WORK = 2 ** 22
SPLIT_ROW_COST = 128


def njit(func):
    """Compile ``func`` with fastbp's options."""
    return numba.njit(**JIT)(func)


def njit_entry(func):
    """``njit`` for a kernel that Python calls (the drivers fastbp's modules call)."""
    return numba.njit(**dict(JIT, no_cpython_wrapper=False))(func)


def njit_alloc(func):
    """Compile ``func`` with fastbp's options and Numba's reference counting, which a
    function needs to allocate arrays (the kernels themselves run without it, see
    ``JIT``); Python may call it."""
    return numba.njit(**dict(JIT, _nrt=True, no_cpython_wrapper=False))(func)


def njit_ordered(func=None, inline="never"):
    """Compile ``func`` keeping its floating-point operations in the written order (only
    contraction into fused multiply-adds allowed): for code whose correctness depends on
    that order, such as the range reduction and scaling in ``_kernels.mathfn``.  The
    flags stay with the instructions when the function is inlined into a caller."""
    options = dict(JIT, fastmath={"contract"}, inline=inline)
    return numba.njit(**options) if func is None else numba.njit(**options)(func)


def njit_inline(func):
    """``njit`` for a kernel Numba inlines into each caller (its typed code becomes part of
    the caller's) instead of calling it."""
    return numba.njit(**dict(JIT, inline="always"))(func)
