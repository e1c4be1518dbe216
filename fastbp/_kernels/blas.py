"""General matrix products through BLAS, with transposes, strides and scaling chosen at run time.

``np.dot(a, b, out)`` in a kernel fixes, at compile time, which operand is transposed
from the layouts of its arrays: every mix of C- and F-ordered views makes Numba compile
the calling kernel again, and ``np.dot`` cannot accumulate (``beta``) nor scale
(``alpha``).  ``matmul`` takes flat arrays, offsets, row strides and transpose flags
as values, so one compiled kernel serves every layout.

Which BLAS: NumPy's own.  Compiled kernels call two external symbols,
``fastbp_dgemm64`` and ``fastbp_sgemm64``, with the ABI of BLAS's Fortran ``?gemm``
with 64-bit integers; this module binds them at import (``_bind``), before any kernel is
compiled or loaded from the cache, so cached kernels stay valid whatever they are bound
to.  With NumPy's wheels they are the ``scipy_?gemm_64_`` of the OpenBLAS that NumPy
itself links: one thread pool for fastbp's products and NumPy's.  Numba's ``np.dot``
calls SciPy's OpenBLAS instead, a second pool: measured here (2 cores), a kernel
following a NumPy product ran 2x slower while NumPy's threads still spun, and SciPy's
older OpenBLAS ran a 200 x 100 x 100 float64 product slower on two threads than on one
(25 against 31 GFLOP/s; NumPy's: 45-55).  Where NumPy has no such symbols (another BLAS),
the symbols are bound to an adapter that calls SciPy's BLAS through Numba's
``numba_xxgemm``, as ``np.dot`` does in a kernel.  ``FASTBP_BLAS=scipy`` in the
environment forces the adapter.
"""
import ctypes
import os

from llvmlite import binding, ir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np import linalg

from .._config import njit

#: Transpose flags of ``matmul``: the operand as it is stored, or transposed.
N = ord("n")
T = ord("t")

#: The external symbols kernels call, by dtype letter.
SYMBOLS = {"d": "fastbp_dgemm64", "s": "fastbp_sgemm64"}

_CHAR = ir.IntType(8)
_VOID_P = _CHAR.as_pointer()
_I64 = ir.IntType(64)


def _gemm_type(dtype):
    """LLVM type of Fortran ``?gemm`` with 64-bit integers, every argument by address."""
    f = dtype.as_pointer()
    i = _I64.as_pointer()
    return ir.FunctionType(ir.VoidType(), [_VOID_P, _VOID_P, i, i, i, f, f, i, f, i, f, f, i])


@intrinsic
def _gemm64(typingctx, ta, tb, m, n, k, alpha, a, ia, lda, b, ib, ldb, beta, c, ic, ldc):
    """Column-major ``c[ic:] = alpha * op(a[ia:]) @ op(b[ib:]) + beta * c[ic:]`` (BLAS
    ``?gemm``) on 1-D arrays of one float dtype, through ``SYMBOLS``."""
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) and x.ndim == 1 for x in arrays):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    sig = types.void(ta, tb, m, n, k, alpha, a, ia, lda, b, ib, ldb, beta, c, ic, ldc)

    def codegen(context, builder, sig, args):
        st = sig.args
        llty = context.get_value_type(dtype)

        def slot(i, ty):  # an argument in a stack slot of the type BLAS reads
            return cgutils.alloca_once_value(builder, context.cast(builder, args[i], st[i], ty))

        def char(i):
            return builder.bitcast(slot(i, types.int8), _VOID_P)

        def data(i):  # address of element args[i + 1] of array args[i]
            base = context.make_array(st[i])(context, builder, args[i]).data
            offset = context.cast(builder, args[i + 1], st[i + 1], types.intp)
            return builder.bitcast(builder.gep(base, [offset]), llty.as_pointer())

        name = SYMBOLS["s" if dtype == types.float32 else "d"]
        fn = cgutils.get_or_insert_function(builder.module, _gemm_type(llty), name)
        i64 = types.int64
        builder.call(fn, (char(0), char(1), slot(2, i64), slot(3, i64), slot(4, i64),
                          slot(5, dtype), data(6), slot(8, i64), data(9), slot(11, i64),
                          slot(12, dtype), data(13), slot(15, i64)))
        return context.get_dummy_value()

    return sig, codegen


@njit
def matmul(ta, tb, m, n, k, alpha, A, ia, lda, B, ib, ldb, beta, C, ic, ldc):
    """``C = alpha * op(A) @ op(B) + beta * C`` on row-major matrices inside flat arrays.

    ``C`` is ``m x n`` from ``C[ic]`` with rows ``ldc`` apart; ``op(A)`` is ``m x k`` and
    ``op(B)`` is ``k x n``, where ``op(X)`` is the matrix stored from ``X[ix]`` with rows
    ``ldx`` apart (``N``) or its transpose (``T``).  Row-major ``C`` is column-major
    ``C.T = op(B).T @ op(A).T``: BLAS gets the operands swapped.  ``beta`` = 0 overwrites
    ``C`` (its old values are not read, NaN included).  Every size must be at least 1.
    """
    _gemm64(tb, ta, n, m, k, alpha, B, ib, ldb, A, ia, lda, beta, C, ic, ldc)


# -- binding the symbols -----------------------------------------------------------------------

def _numpy_blas(names):
    """``{name: ctypes function}`` of the BLAS that NumPy links, for the first prefix under
    which every one of ``names`` is found (NumPy 2's wheels: ``scipy_``, NumPy 1.2x's
    openblas64_: none), or None.  (``dlsym`` on NumPy's extension module searches the
    libraries it depends on, so the file name of the BLAS library is not needed.)"""
    try:
        from numpy._core import _multiarray_umath
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath
    try:
        lib = ctypes.CDLL(_multiarray_umath.__file__)
    except OSError:
        return None
    for prefix in ("scipy_", ""):
        try:
            return {name: getattr(lib, prefix + name) for name in names}
        except AttributeError:
            continue
    return None


def _numpy_gemm():
    """Addresses ``{"d": ..., "s": ...}`` of the 64-bit-integer ``?gemm`` of the BLAS that
    NumPy links, or None."""
    found = _numpy_blas([f"{x}gemm_64_" for x in SYMBOLS])
    if found is None:
        return None
    return {x: ctypes.cast(found[f"{x}gemm_64_"], ctypes.c_void_p).value for x in SYMBOLS}


@intrinsic
def _xxgemm(typingctx, kind, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Numba's ``numba_xxgemm`` (SciPy's BLAS) on raw pointers: the adapter's body."""
    sig = types.void(kind, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, sig, args):
        st = sig.args
        intp = context.get_value_type(types.intp)

        def integer(i):
            return context.cast(builder, args[i], st[i], types.intp)

        def char(i):
            return builder.trunc(integer(i), _CHAR)

        fnty = ir.FunctionType(ir.IntType(32), [_CHAR, _CHAR, _CHAR, intp, intp, intp,
                                                _VOID_P, _VOID_P, intp, _VOID_P, intp,
                                                _VOID_P, _VOID_P, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        res = builder.call(fn, [char(0), char(1), char(2), integer(3), integer(4), integer(5)]
                           + [builder.bitcast(args[i], _VOID_P) if i not in (8, 10, 13)
                              else integer(i) for i in range(6, 14)])
        linalg.check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return sig, codegen


def _adapter(letter):
    """A C function with the ABI of ``SYMBOLS[letter]`` that calls SciPy's BLAS."""
    linalg.ensure_blas()
    f = types.CPointer(types.float32 if letter == "s" else types.float64)
    i = types.CPointer(types.int64)
    c = types.CPointer(types.uint8)
    kind = ord(letter)

    def gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c_, ldc):
        _xxgemm(kind, ta[0], tb[0], m[0], n[0], k[0], alpha, a, lda[0], b, ldb[0], beta, c_,
                ldc[0])

    return cfunc(types.void(c, c, i, i, i, f, f, i, f, i, f, f, i), cache=True)(gemm)


def _bind():
    """Bind ``SYMBOLS`` for this process; returns which BLAS: ``"numpy"`` or ``"scipy"``."""
    found = None if os.environ.get("FASTBP_BLAS", "").lower() == "scipy" else _numpy_gemm()
    which = "numpy"
    if found is None:
        found = {x: _adapter(x).address for x in SYMBOLS}
        which = "scipy"
    for x, name in SYMBOLS.items():
        binding.add_symbol(name, found[x])
    return which


#: The BLAS the kernels' products go to in this process.
BACKEND = _bind()


def _numpy_threads():
    """``(get, set)``: ctypes functions reading and setting the thread count of NumPy's
    OpenBLAS, the one the kernels call with ``BACKEND`` ``"numpy"``; None where there are
    none (another BLAS, or the adapter).  Two calls cost about 2 us, threadpoolctl's limit
    and restore about 0.1 ms (it walks every BLAS loaded, in Python)."""
    names = ["openblas_get_num_threads64_", "openblas_set_num_threads64_"]
    found = _numpy_blas(names) if BACKEND == "numpy" else None
    if found is None:
        return None
    get, put = found[names[0]], found[names[1]]
    get.restype, get.argtypes = ctypes.c_int, []
    put.restype, put.argtypes = None, [ctypes.c_int]
    return get, put


#: See ``_numpy_threads``.
THREADS = _numpy_threads()
