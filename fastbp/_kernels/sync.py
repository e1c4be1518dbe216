"""A barrier for kernels that run in several Python threads at once.

A sliced fit (``network._Trainer``) calls ``epoch.run_epochs`` once per thread: each
call works on its slice of every minibatch and meets the others at ``barrier`` (after
the slices' gradients, after the update).  Numba's own ``prange`` would need a
``parallel`` copy of the driver: a second compilation of the whole batch pass (about
14 s of a first fit with an empty cache), a threading layer that does not survive a
fork (GNU OpenMP) or two concurrent launches (workqueue), and OpenMP threads that spin
after the call while BLAS wants the cores.  Plain threads and this barrier have none
of those costs.

The counters live in an int64 array ``sync`` (``SYNC_SIZE`` entries) read and written
with atomic instructions (Numba intrinsics); a waiting thread spins, and after
``SPINS`` turns gives its core away (``sched_yield``) at each turn, so that more threads
than cores still make progress.  Spinning threads must each have their own core:
``network._run_parts`` pins each part to one CPU for the call.  ``sync[ABORT]`` set (by
Python, when a thread's call failed) releases every waiting thread: ``barrier`` returns
True and the kernel returns.
"""
import ctypes

from llvmlite import binding
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import njit

#: Entries of ``sync``: threads arrived at the current barrier, barriers passed, the
#: stop decision of the epoch (see ``epoch.run_epochs``), and the abort flag.
COUNT = 0
GENERATION = 1
STOP = 2
ABORT = 3
SYNC_SIZE = 4

#: Turns a waiting thread spins before it starts yielding its core at each turn: a few
#: microseconds.  Measured on 2 cores (tiny and small workloads, parts pinned): 100,000
#: turns no faster; unpinned, the longer the spin the slower (two parts sharing a CPU).
SPINS = 2000

# The kernels call the external symbol; bound here, at import, so cached kernels
# stay valid (as ``blas`` does for its products).
_YIELD = "fastbp_sched_yield"
binding.add_symbol(_YIELD, ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value)
_sched_yield = types.ExternalFunction(_YIELD, types.int32())


def _accepts(arr, idx, value=None):
    """Whether the intrinsics below take these argument types: a 1-D int64 array, an integer
    index and, for those that write, an integer value."""
    return (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1
            and isinstance(idx, types.Integer)
            and (value is None or isinstance(value, types.Integer)))


def _operands(context, builder, sig, args):
    """The element's address and, for the intrinsics that write, the value as int64."""
    aryty = sig.args[0]
    ptr = cgutils.get_item_pointer(context, builder, aryty,
                                   context.make_array(aryty)(context, builder, args[0]),
                                   [args[1]])
    if len(args) < 3:
        return ptr, None
    return ptr, context.cast(builder, args[2], sig.args[2], types.int64)


@intrinsic
def atomic_add(typingctx, arr, idx, value):
    """``arr[idx] += value`` atomically (sequentially consistent); returns the old value."""
    if not _accepts(arr, idx, value):
        return None

    def codegen(context, builder, sig, args):
        ptr, v = _operands(context, builder, sig, args)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return types.int64(arr, idx, value), codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """``arr[idx]``, read atomically with acquire ordering."""
    if not _accepts(arr, idx):
        return None

    def codegen(context, builder, sig, args):
        ptr, _ = _operands(context, builder, sig, args)
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def atomic_store(typingctx, arr, idx, value):
    """``arr[idx] = value``, written atomically with release ordering."""
    if not _accepts(arr, idx, value):
        return None

    def codegen(context, builder, sig, args):
        ptr, v = _operands(context, builder, sig, args)
        builder.store_atomic(v, ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


@njit
def barrier(sync, n):
    """Wait until ``n`` threads have called ``barrier(sync, n)`` (each thread's writes
    before it are then visible to all).  Returns True when released by the abort flag
    instead: the caller must return at once."""
    if n <= 1:
        return atomic_load(sync, ABORT) != 0
    generation = atomic_load(sync, GENERATION)
    if atomic_add(sync, COUNT, 1) == n - 1:
        # The last to arrive resets the count, then lets the others go.
        atomic_store(sync, COUNT, 0)
        atomic_add(sync, GENERATION, 1)
        return atomic_load(sync, ABORT) != 0
    turns = 0
    while atomic_load(sync, GENERATION) == generation:
        if atomic_load(sync, ABORT) != 0:
            return True
        turns += 1
        if turns > SPINS:
            _sched_yield()
    return atomic_load(sync, ABORT) != 0
