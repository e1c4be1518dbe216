"""Exponential and logarithmic functions that LLVM can vectorize.

Without Intel's SVML, ``np.exp`` and ``np.tanh`` in a Numba loop are one libm call
per element (about 10 ns here); these versions are branch-free arithmetic that the
loop vectorizer turns into SIMD code (about 2.5 ns), accurate to about one unit in
the last place of a float64 over the whole range, with NaN and the infinities
handled.  float32 inputs are computed in float64 and rounded once.

Method: ``exp(x) = 2**k * exp(r)`` with ``k = round(x / ln 2)`` and ``|r| <= ln(2) / 2``,
``exp(r)`` by its Taylor polynomial to degree 13 (truncation below 1e-17), and
``2**k`` assembled from exponent bits in two factors so that results in the
subnormal range come out right.

``log(x) = k ln 2 + log(m)`` with ``m`` the significand moved into
``[sqrt(2)/2, sqrt(2))``; ``log(1 + f)`` from ``s = f / (2 + f)`` and an odd
minimax polynomial in ``s`` (the coefficients of the classic fdlibm method).
``log1p(u)`` is ``log(1 + u)`` corrected for the rounding of ``1 + u``.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .._config import njit_ordered as njit

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
EXP_MAX = 709.8    # above: inf
EXP_MIN = -745.2   # below: 0


@intrinsic
def _bits_to_float64(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _float64_to_bits(typingctx, x):
    """The IEEE-754 bit pattern of the float64 ``x``, as an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


# log(1 + f) = f - f^2 / 2 + s (f^2 / 2 + R(s^2)), s = f / (2 + f): the minimax coefficients
LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01
SQRT2 = 1.4142135623730951
TINY = 2.2250738585072014e-308  # smallest normal float64


@njit(inline="always")  # inlined here, so it keeps this module's flags
def _pow2_halves(k):
    """Two normal float64 factors whose product is ``2.0 ** k``, for an integral float64 ``k``
    in [-1076, 1026]; multiplying by them one at a time never overflows early."""
    ki = np.int64(k)
    k1 = ki >> 1
    return _bits_to_float64((k1 + 1023) << 52), _bits_to_float64((ki - k1 + 1023) << 52)


@njit(inline="always")  # inlined here, so it keeps this module's flags
def _expm1_reduced(r):
    """``exp(r) - 1`` for ``|r| <= ln(2) / 2``, without cancellation near 0."""
    return r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
        1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (
            1 / 3628800 + r * (1 / 39916800 + r * (1 / 479001600 + r * (1 / 6227020800)))))))))))))


@njit(inline="always")  # inlined here, so it keeps this module's flags
def _reduce(x):
    x = min(max(x, EXP_MIN), EXP_MAX)
    k = np.floor(x * LOG2E + 0.5)
    return k, (x - k * LN2_HI) - k * LN2_LO


@njit
def exp(x):
    """``e ** x`` as float64."""
    x = np.float64(x)
    k, r = _reduce(x)
    s1, s2 = _pow2_halves(k)
    y = ((1.0 + _expm1_reduced(r)) * s1) * s2
    return x if x != x else y


@njit
def expm1(x):
    """``e ** x - 1`` as float64, accurate near 0."""
    x = np.float64(x)
    k, r = _reduce(x)
    s1, s2 = _pow2_halves(k)
    q = _expm1_reduced(r)
    # Near 0 (k = 0) this is q itself; far above, e ** x - 1 rounds to e ** x.
    y = (s1 * s2) * q + (s1 * s2 - 1.0) if k < 1000.0 else ((1.0 + q) * s1) * s2
    return x if x != x else y


# Inlined into its caller by Numba (its own arithmetic is safe under any flags), so that
# LLVM sees one small call, to expm1, which it inlines and vectorizes.
@njit(inline="always")
def tanh(x):
    """Hyperbolic tangent as float64: ``-u / (u + 2)`` with ``u = expm1(-2|x|)``, signed."""
    x = np.float64(x)
    u = expm1(-2.0 * abs(x))
    t = -u / (u + 2.0)
    return t if x >= 0.0 else -t  # (np.copysign would be a libm call, which blocks SIMD)


@njit
def sigmoid(x):
    """Logistic function as float64, exact in both tails: ``1 / (1 + e)`` or ``e / (1 + e)``
    with ``e = exp(-|x|)``."""
    x = np.float64(x)
    e = exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


@njit(inline="always")  # inlined here, so it keeps this module's flags
def _log_positive(x):
    """``log(x)`` for a finite ``x > 0`` (subnormals included)."""
    sub = x < TINY
    x = x * 18014398509481984.0 if sub else x  # 2**54: subnormals made normal
    bits = _float64_to_bits(x)
    k = np.float64((bits >> 52) - 1023) - (54.0 if sub else 0.0)
    m = _bits_to_float64((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)  # in [1, 2)
    big = m > SQRT2
    m = m * 0.5 if big else m
    k = k + 1.0 if big else k
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = w * (LG2 + w * (LG4 + w * LG6)) + z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    hfsq = 0.5 * f * f
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)


@njit
def log(x):
    """Natural logarithm as float64 (NaN below 0, -inf at 0, inf at inf)."""
    x = np.float64(x)
    y = _log_positive(min(max(x, 5e-324), 1.7976931348623157e308))
    y = y if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    return y if x < np.inf else x


@njit
def log1p(u):
    """``log(1 + u)`` as float64, accurate for small ``u`` (NaN below -1, -inf at -1)."""
    u = np.float64(u)
    t = 1.0 + u
    tc = min(max(t, 5e-324), 1.7976931348623157e308)
    # 1 + u rounded to t: log(1 + u) = log(t) + log(1 + (u - (t - 1)) / t), to first order
    y = _log_positive(tc) + (u - (t - 1.0)) / tc
    y = y if t > 0.0 else (-np.inf if t == 0.0 else np.nan)
    return y if u < np.inf else u
