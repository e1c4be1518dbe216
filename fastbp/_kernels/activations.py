"""Hidden-layer activations and their derivatives, one row of a batch at a time.

Each derivative is written in terms of the activation's *output* ``a`` (as
scikit-learn does), so the forward pass need not keep pre-activations, except
for ``gelu`` and ``swish``, whose derivatives need the input ``z``: for them
the forward pass also stores ``z`` (``pre``), see ``keeps_pre``.  Every
function branches on the activation code once, outside its loop, so that the
loop itself vectorizes.
"""
import numpy as np

from .._config import njit, njit_inline
from . import mathfn
from ._features import (WITH_ELU, WITH_GELU, WITH_LEAKY_RELU, WITH_LOGISTIC, WITH_RELU,
                        WITH_SOFTPLUS, WITH_SWISH, WITH_TANH)

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
ELU = 5
SOFTPLUS = 6
GELU = 7   # the tanh approximation
SWISH = 8  # z * sigmoid(z), also called SiLU

GELU_C = 0.7978845608028654  # sqrt(2 / pi)
GELU_K = 0.044715

#: Slope of ``leaky_relu`` for negative inputs (PyTorch's default).
LEAKY_SLOPE = 0.01


@njit
def keeps_pre(code):
    """Whether the derivative of activation ``code`` needs its input ``z`` kept."""
    return (WITH_GELU and code == GELU) or (WITH_SWISH and code == SWISH)


@njit
def bias_activation(row, bias, code, pre):
    """``row[:] = act(row + bias)`` in place, for one output unit over the batch; when
    ``keeps_pre(code)``, ``pre[:]`` receives ``row + bias`` (otherwise it is not touched:
    pass ``row``)."""
    zero = row.dtype.type(0)
    n = row.shape[0]
    if code == IDENTITY:
        for b in range(n):
            row[b] += bias
    # The rectifiers are written as min / max and products with a comparison, not as
    # conditional expressions: LLVM may turn those into branches when it does not
    # vectorize a loop, and a branch on the sign of shuffled data is mispredicted half
    # the time (measured: a third of a tiny epoch).
    elif WITH_RELU and code == RELU:
        for b in range(n):
            row[b] = max(row[b] + bias, zero)
    elif WITH_LEAKY_RELU and code == LEAKY_RELU:
        slope = row.dtype.type(LEAKY_SLOPE)
        for b in range(n):
            v = row[b] + bias
            row[b] = max(v, zero) + slope * min(v, zero)
    elif WITH_TANH and code == TANH:
        for b in range(n):
            row[b] = row.dtype.type(mathfn.tanh(row[b] + bias))
    elif WITH_LOGISTIC and code == LOGISTIC:
        for b in range(n):
            row[b] = row.dtype.type(mathfn.sigmoid(row[b] + bias))
    elif WITH_ELU and code == ELU:  # alpha = 1 (PyTorch's default): z above 0, e^z - 1 below
        for b in range(n):
            v = row[b] + bias
            row[b] = max(v, zero) + row.dtype.type(mathfn.expm1(min(v, zero)))
    elif WITH_SOFTPLUS and code == SOFTPLUS:  # log(1 + e^z), without overflow
        for b in range(n):
            v = np.float64(row[b] + bias)
            row[b] = row.dtype.type(max(v, 0.0) + mathfn.log1p(mathfn.exp(-abs(v))))
    elif WITH_GELU and code == GELU:
        for b in range(n):
            v = row[b] + bias
            pre[b] = v
            x = np.float64(v)
            row[b] = row.dtype.type(0.5 * x * (1.0 + mathfn.tanh(GELU_C * (x + GELU_K * x * x * x))))
    elif WITH_SWISH and code == SWISH:
        for b in range(n):
            v = row[b] + bias
            pre[b] = v
            row[b] = row.dtype.type(np.float64(v) * mathfn.sigmoid(v))


# (inlined by Numba into its caller, where ``out`` may be ``a``: see dense._delta_rows)
@njit_inline
def backprop_row(out, t, a, pre, code):
    """``out[:] = t * act'(z)``, the derivative taken from the output ``a = act(z)``, or for
    ``keeps_pre`` codes from the input ``pre = z``.

    ``out`` may be ``a`` itself: each element is read before it is written.
    """
    one = t.dtype.type(1)
    zero = t.dtype.type(0)
    n = t.shape[0]
    if WITH_RELU and code == RELU:
        for b in range(n):
            out[b] = t[b] * (a[b] > zero)
    elif WITH_LEAKY_RELU and code == LEAKY_RELU:
        slope = t.dtype.type(LEAKY_SLOPE)
        rest = one - slope
        for b in range(n):
            out[b] = t[b] * (slope + rest * (a[b] > zero))
    elif WITH_TANH and code == TANH:
        for b in range(n):
            out[b] = t[b] * (one - a[b] * a[b])
    elif WITH_LOGISTIC and code == LOGISTIC:
        for b in range(n):
            out[b] = t[b] * (a[b] * (one - a[b]))
    elif WITH_ELU and code == ELU:  # 1 above 0, e^z = a + 1 below
        for b in range(n):
            out[b] = t[b] * (one + min(a[b], zero))
    elif WITH_SOFTPLUS and code == SOFTPLUS:  # sigmoid(z) = 1 - e^-a
        for b in range(n):
            out[b] = t[b] * t.dtype.type(-mathfn.expm1(-np.float64(a[b])))
    elif WITH_GELU and code == GELU:
        for b in range(n):
            x = np.float64(pre[b])
            th = mathfn.tanh(GELU_C * (x + GELU_K * x * x * x))
            d = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * GELU_C * (1.0 + 3.0 * GELU_K * x * x)
            out[b] = t[b] * t.dtype.type(d)
    elif WITH_SWISH and code == SWISH:
        for b in range(n):
            x = np.float64(pre[b])
            s = mathfn.sigmoid(x)
            out[b] = t[b] * t.dtype.type(s * (1.0 + x * (1.0 - s)))
    else:
        for b in range(n):
            out[b] = t[b]
