"""General matrix products through BLAS, with transposes, strides and scaling chosen at run time.

``np.dot(a, b, out)`` in a kernel fixes, at compile time, which operand is transposed
from the layouts of its arrays: every mix of C- and F-ordered views makes Numba compile
the calling kernel again, and ``np.dot`` cannot accumulate (``beta``) nor scale
(``alpha``).  ``matmul`` takes flat arrays, offsets, row strides and transpose flags
as values, so one compiled kernel serves every layout; it calls the same BLAS as
``np.dot`` does in a kernel (SciPy's, through Numba's ``numba_xxgemm`` wrapper, a
symbol Numba registers itself, so kernels that use it stay cacheable).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np import linalg

from .._config import njit

linalg.ensure_blas()

#: Transpose flags of ``matmul``: the operand as it is stored, or transposed.
N = ord("n")
T = ord("t")

_CHAR = ir.IntType(8)
_VOID_P = _CHAR.as_pointer()


@intrinsic
def _xgemm(typingctx, ta, tb, m, n, k, alpha, a, ia, lda, b, ib, ldb, beta, c, ic, ldc):
    """Column-major ``c[ic:] = alpha * op(a[ia:]) @ op(b[ib:]) + beta * c[ic:]`` (BLAS
    ``?gemm``) on 1-D arrays of one float dtype; integer arguments as BLAS takes them."""
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) and x.ndim == 1 for x in arrays):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    sig = types.void(ta, tb, m, n, k, alpha, a, ia, lda, b, ib, ldb, beta, c, ic, ldc)

    def codegen(context, builder, sig, args):
        (ta_v, tb_v, m_v, n_v, k_v, alpha_v, a_v, ia_v, lda_v, b_v, ib_v, ldb_v, beta_v, c_v,
         ic_v, ldc_v) = args
        intp = context.get_value_type(types.intp)

        def integer(value, ty):
            return context.cast(builder, value, ty, types.intp)

        def pointer(value, ty, offset, offset_ty):
            data = context.make_array(ty)(context, builder, value).data
            return builder.bitcast(builder.gep(data, [integer(offset, offset_ty)]), _VOID_P)

        def scalar(value, ty):
            return builder.bitcast(
                cgutils.alloca_once_value(builder, context.cast(builder, value, ty, dtype)),
                _VOID_P)

        fnty = ir.FunctionType(ir.IntType(32), [_CHAR, _CHAR, _CHAR, intp, intp, intp,
                                                _VOID_P, _VOID_P, intp, _VOID_P, intp,
                                                _VOID_P, _VOID_P, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        kind = ir.Constant(_CHAR, ord("s" if dtype == types.float32 else "d"))
        st = sig.args
        res = builder.call(fn, (
            kind, builder.trunc(integer(ta_v, st[0]), _CHAR),
            builder.trunc(integer(tb_v, st[1]), _CHAR),
            integer(m_v, st[2]), integer(n_v, st[3]), integer(k_v, st[4]),
            scalar(alpha_v, st[5]), pointer(a_v, st[6], ia_v, st[7]), integer(lda_v, st[8]),
            pointer(b_v, st[9], ib_v, st[10]), integer(ldb_v, st[11]), scalar(beta_v, st[12]),
            pointer(c_v, st[13], ic_v, st[14]), integer(ldc_v, st[15])))
        linalg.check_blas_return(context, builder, res)
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
    _xgemm(tb, ta, n, m, k, alpha, B, ib, ldb, A, ia, lda, beta, C, ic, ldc)
