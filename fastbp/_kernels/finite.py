"""Whether an array holds only finite values: the check every input of a fit goes through."""
from .._config import njit_entry


@njit_entry
def all_finite(a):
    """Whether every element of the 1-D float array ``a`` is finite.  ``a[i] * 0`` is 0 for a
    finite element and NaN for NaN or an infinity (the kernels' flags leave out ``nnan`` and
    ``ninf``, so LLVM keeps the product), and a sum of those never overflows, unlike a sum
    of the values; the loop vectorizes.  One pass over memory: 4.5 us for the ``small``
    workload's X where NumPy's sum took 23 us, 11.7 ms for ``medium``'s 188 MB (15 ms)."""
    zero = a.dtype.type(0)
    acc = zero
    for i in range(a.shape[0]):
        acc += a[i] * zero
    return acc == zero
