"""The one place for compile options shared by every kernel.

``FASTMATH`` lets LLVM reassociate and contract floating-point operations so
that reductions and multiply-adds vectorize.  It deliberately leaves out
``nnan`` and ``ninf``: kernels must keep their guards against overflow and
propagate NaN so that divergence can be detected above them.
"""
import numba

FASTMATH = frozenset({"reassoc", "contract", "nsz"})

#: Keyword arguments of every ``@njit`` in ``fastbp._kernels``.
JIT = dict(cache=True, nogil=True, fastmath=set(FASTMATH), error_model="numpy")

#: Rows per chunk in prediction and full-data gradients, to bound buffer memory.
FORWARD_CHUNK = 1024

#: A layer goes through BLAS when ``n_in * n_out * batch`` is at least this many
#: multiply-adds; below it the fused Numba loops run.  A first estimate, not yet
#: measured shape by shape: the performance work replaces it with a benchmarked rule.
BLAS_MIN_WORK = 65536


def njit(func):
    """Compile ``func`` with fastbp's options."""
    return numba.njit(**JIT)(func)
