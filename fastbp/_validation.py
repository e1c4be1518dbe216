"""Input and parameter checks.  Every message names the argument, what was expected and what was given."""
import numbers
import threading

import numpy as np

from . import _config
from ._kernels.finite import all_finite

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_choice(name, value, options):
    """``value`` must be one of ``options`` (a dict or a sequence of names)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def check_int(name, value, low=1, high=None):
    """A Python or numpy integer (not a bool) of at least ``low`` (and at most ``high``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return int(value)


def check_positive_float(name, value, allow_zero=False):
    """A finite real number greater than zero (or equal to it, with ``allow_zero``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    # float() first: np.isfinite cannot take every numbers.Real (a Fraction, for one).
    try:
        finite = bool(np.isfinite(float(value)))
    except OverflowError:  # an integer beyond any float
        finite = False
    if not finite or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {value!r}")
    return float(value)


def check_nonnegative_float(name, value):
    """A finite real number of at least zero."""
    return check_positive_float(name, value, allow_zero=True)


def check_optional_positive_float(name, value):
    """None, or a finite real number greater than zero."""
    return None if value is None else check_positive_float(name, value)


def check_bool(name, value):
    """A Python or numpy bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_random_state(seed):
    """A ``RandomState`` from None (NumPy's global one), an int seed, or a RandomState itself.

    The same contract as scikit-learn's helper, without importing scikit-learn
    (which would cost a second of every cold start).
    """
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise TypeError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}")


def check_float_dtype(dtype):
    """The training dtype: float32 or float64."""
    if dtype is None:
        raise TypeError("dtype must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_layers(layers):
    """A sequence of at least two positive integer widths ``[n_in, h1, ..., n_out]``."""
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
        raise TypeError(f"layers must be a list of layer widths such as [2, 10, 1], got {layers!r}")
    if len(layers) < 2:
        raise ValueError(f"layers must give at least an input and an output width, got {list(layers)!r}")
    widths = tuple(check_int(f"layers[{i}]", w) for i, w in enumerate(layers))
    n_params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    if n_params >= MAX_PARAMS:
        raise ValueError(f"layers {list(widths)!r} make {n_params} parameters, more than a "
                         f"network can index ({MAX_PARAMS})")
    return widths


#: Parameters a network may have: its offsets and sizes are int64 (and products of them
#: with the batch size must not overflow either).
MAX_PARAMS = 2 ** 48


def _as_numeric(name, a):
    """``a`` as a numpy array of a real numeric dtype, or a TypeError/ValueError naming ``name``."""
    if hasattr(a, "tocsr") or type(a).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array ({name}.toarray())")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as a numeric array: {exc}") from None
    if arr.dtype.kind == "O":
        arr = _pandas_numbers(a, arr)
    kind = arr.dtype.kind
    if kind in "biuf":
        return arr
    if kind == "c":
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")


def _pandas_numbers(a, arr):
    """A pandas DataFrame or Series whose columns all hold numbers, with nullable extension
    dtypes among them (Int64, Float64, boolean), as float64 with ``pd.NA`` as NaN; NumPy
    reads those as object arrays.  Anything else comes back as ``arr``, the object array."""
    dtypes = getattr(a, "dtypes", None)
    if dtypes is None or not hasattr(a, "to_numpy"):
        return arr
    dtypes = dtypes.tolist() if hasattr(dtypes, "tolist") else [dtypes]
    if not dtypes or any(getattr(dt, "kind", "O") not in "biuf" for dt in dtypes):
        return arr
    return a.to_numpy(dtype=np.float64, na_value=np.nan)


def _all_finite(flat):
    """``all_finite(flat)``; for arrays of at least ``_config.FINITE_SPLIT_VALUES`` values,
    when a fit here may use two threads (``network._thread_count``), its second half in
    another thread at once (the kernel releases the GIL)."""
    if flat.shape[0] < _config.FINITE_SPLIT_VALUES:
        return all_finite(flat)
    from .network import _thread_count  # (network imports this module)

    if _thread_count() < 2:
        return all_finite(flat)
    half = flat.shape[0] // 2
    second = []
    helper = threading.Thread(target=lambda: second.append(all_finite(flat[half:])),
                              name="fastbp-finite", daemon=True)
    helper.start()
    try:
        first = all_finite(flat[:half])
    finally:
        helper.join()
    return first and second[0]


def _check_finite(name, arr, source=None):
    """``arr`` must be finite; ``source`` is what it was converted from, if anything.

    A finite ``source`` that overflowed in the conversion (1e39 into float32) is
    reported as such, not as NaN or infinity in the input.
    """
    if arr.dtype.kind != "f":
        return
    if arr.dtype in FLOAT_DTYPES and (arr.flags.c_contiguous or arr.flags.f_contiguous):
        if _all_finite(arr.ravel(order="K")):  # (a view, in memory order)
            return
    elif np.isfinite(arr).all():  # (other float dtypes and layouts: rare)
        return
    if source is not None and source.dtype.kind == "f" and np.isfinite(source).all():
        raise ValueError(
            f"{name} has values too large for {arr.dtype} (largest magnitude "
            f"{np.abs(source).max():.3g}, {arr.dtype} holds up to {np.finfo(arr.dtype).max:.3g}); "
            f"scale them or use dtype=np.float64")
    raise ValueError(f"{name} contains NaN or infinity")


def _convert(arr, dtype):
    """``arr`` in C order as ``dtype``; overflow is left to ``_check_finite`` to report."""
    if arr.dtype == dtype and arr.flags.c_contiguous:
        return arr
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)


def assign_array(target, value, name):
    """Write ``value`` into the array ``target`` (a view of a network's parameters, say):
    numeric, of ``target``'s shape, finite in ``target``'s dtype; else a TypeError or
    ValueError naming ``name``, and ``target`` unchanged."""
    arr = _as_numeric(name, value)
    if arr.shape != target.shape:
        raise ValueError(f"{name} must have shape {target.shape}, got {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(target.dtype)
    _check_finite(name, out, source=arr)
    target[...] = out


def check_X(X, dtype, n_features=None, name="X"):
    """A finite 2-D array of ``dtype`` in C order, with at least one row and one column.

    Converts at most once; an input of the right dtype and layout is returned as is.
    """
    arr = _as_numeric(name, X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got an array of shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; at least 1 is required")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features; at least 1 is required")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but the network expects {n_features}")
    out = _convert(arr, dtype)
    _check_finite(name, out, source=arr)
    return out


def check_targets(y, n_samples, n_out, output, dtype, name="y"):
    """Targets as a finite 2-D ``(n_samples, n_out)`` array of ``dtype``.

    ``output`` is the output layer's name: ``'sigmoid'`` needs values in [0, 1];
    ``'softmax'`` takes integer class indices of shape ``(n,)`` or rows of class
    probabilities of shape ``(n, n_out)``.
    """
    arr = _as_numeric(name, y)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got an array of shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"X and {name} have different numbers of samples: {n_samples} and {arr.shape[0]}")
    _check_finite(name, arr)  # (integers and booleans are finite)
    if output == "softmax" and arr.ndim == 1:
        if arr.size and arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name}: class indices for a softmax output must be whole numbers")
        if arr.size and (arr.min() < 0 or arr.max() >= n_out):
            raise ValueError(
                f"{name}: class indices must lie in [0, {n_out - 1}] for {n_out} outputs, "
                f"got values from {arr.min()} to {arr.max()}")
        # (rows of the identity: a third of the time of zeros and a scattered assignment)
        return np.eye(n_out, dtype=dtype).take(arr.astype(np.intp, copy=False), axis=0)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_out:
        raise ValueError(f"{name} has {arr.shape[1]} column(s), but the network has {n_out} output(s)")
    if output in ("sigmoid", "softmax") and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name}: targets of a {output} output must lie in [0, 1], "
                         f"got values from {arr.min()} to {arr.max()}")
    if output == "poisson" and arr.min() < 0:
        raise ValueError(f"{name}: targets of a poisson output must be non-negative, "
                         f"got a minimum of {arr.min()}")
    if output == "softmax" and not np.allclose(arr.sum(axis=1), 1, atol=1e-4):
        raise ValueError(f"{name}: each row of a softmax target must sum to 1 (one-hot or probabilities)")
    out = _convert(arr, dtype)
    _check_finite(name, out, source=arr)
    return out


def check_sample_weight(sample_weight, n_samples, dtype):
    """Finite, non-negative weights of shape (n_samples,) as ``dtype``; ones when None."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if np.ndim(sample_weight) == 0 and isinstance(sample_weight, numbers.Real):
        sample_weight = np.full(n_samples, sample_weight)
    sw = _as_numeric("sample_weight", sample_weight)
    if sw.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {sw.shape}")
    out = _convert(sw, dtype)
    _check_finite("sample_weight", out, source=sw)
    sw = out
    if (sw < 0).any():
        raise ValueError("sample_weight must be non-negative")
    if not sw.any():
        raise ValueError("sample_weight sums to 0: at least one sample needs a positive weight")
    return sw
