"""Dense layers on feature-major buffers: fused forward, backward, GEMM dispatch.

A layer with ``n_in`` inputs and ``n_out`` outputs keeps its weights row-major
``(n_in, n_out)`` (scikit-learn's ``coefs_`` layout) at ``params[w0:]`` and its
bias at ``params[b0:]``.  Activations are flat ``(width, nb)`` blocks.  Narrow
layers run as Numba loops along the batch with bias and activation fused; small ones
go through register-blocked tiles (``tiles.product``) and large ones through BLAS
(``blas.matmul``), with the epilogue after (``use_tiles``, ``use_blas``); the tiles
take the weight gradients of larger layers too (``use_gradient_tiles``).  A BLAS layer's input
block in the forward pass is any row-major matrix inside a flat array: ``A[ia:]``,
feature-major ``(n_in, nb)``, or, with ``a_rows``, sample-major ``(nb, n_in)`` (rows of X
read in place by prediction), which BLAS reads transposed.
"""
import numpy as np

from .._config import (BLAS_MIN_WIDTH, BLAS_MIN_WORK, TILE_MAX_BATCH, TILE_MAX_GRAD_WEIGHTS,
                       TILE_MAX_WEIGHTS, njit)
from ._features import WITH_BLAS, WITH_BN, WITH_DROPOUT, WITH_SHORTCUT, WITH_TILES
from .activations import IDENTITY, RELU, backprop_row, bias_activation
from .batchnorm import normalize_row
from .blas import N, T, matmul
from .dropout import apply_row
from .tiles import BIAS, BIAS_RELU, product, product_epilogue, transpose


@njit
def _runtime():
    """``((N, T), 0)`` typed as plain integers, not literals: a literal argument makes Numba
    compile the callee once more for that value (see ``epoch._RUNTIME``)."""
    return (np.int64(N), np.int64(T)), np.int64(0)


@njit
def use_blas(n_in, n_out, nb):
    """Whether a layer of this shape goes through BLAS (thresholds measured, see _config)."""
    return past_loops(n_in, n_out, nb) and not use_tiles(n_in, n_out, nb)


@njit
def past_loops(n_in, n_out, nb):
    """Whether a layer is too large for the fused loops (BLAS or tiles then)."""
    return min(n_in, n_out) >= BLAS_MIN_WIDTH and n_in * n_out * nb >= BLAS_MIN_WORK


@njit
def _tiles_take(n_in, n_out, nb, max_weights):
    """Whether a layer past the loops' line, of at most ``max_weights`` weights, on a batch
    of at most ``TILE_MAX_BATCH`` rows, goes to the tiles."""
    return (past_loops(n_in, n_out, nb) and n_in * n_out <= max_weights
            and nb <= TILE_MAX_BATCH)


@njit
def use_tiles(n_in, n_out, nb):
    """Whether a layer past the loops' line is small enough for ``tiles`` to beat BLAS."""
    return _tiles_take(n_in, n_out, nb, TILE_MAX_WEIGHTS)


@njit
def use_gradient_tiles(n_in, n_out, nb):
    """Whether a layer past the loops' line takes its weight gradient from the tiles (up
    to ``TILE_MAX_GRAD_WEIGHTS`` weights, at least those of ``use_tiles``)."""
    return _tiles_take(n_in, n_out, nb, TILE_MAX_GRAD_WEIGHTS)


@njit
def blas_on_some_batch(n_in, n_out, nb):
    """Whether a layer goes through BLAS on some batch of at most ``nb`` rows: past the
    loops at ``nb`` rows (the line rises as the rows fall) and not to the tiles, which take
    every smaller batch too (``network._calls_blas``)."""
    return past_loops(n_in, n_out, nb) and not (WITH_TILES and use_tiles(n_in, n_out, nb))


@njit
def combine_rows(out, W, first, stride, count, rows, nb):
    """``out = sum_k W[first + k * stride] * rows[k]`` over the ``count`` rows of a flat ``(count, nb)`` block.

    One output row of the forward pass (a column of W) or of the backward pass (a row of W).
    """
    w = W[first]
    for b in range(nb):
        out[b] = w * rows[b]
    for k in range(1, count):
        w = W[first + k * stride]
        r = rows[k * nb:(k + 1) * nb]
        for b in range(nb):
            out[b] += w * r[b]


@njit
def finish_rows(Z, n_out, nb, params, b0, code, P, g0, mode, U, stats, s0):
    """After ``Z = W.T @ A`` (flat ``(n_out, nb)``): add the bias and apply the activation
    to every row, in place (``P`` as in ``blas_forward``).  A batch-normalized layer
    (``g0`` >= 0, the offset of its scales) first normalizes each row over the batch, in
    ``mode``, with the block ``U`` and the running statistics ``stats[s0:]``, and scales
    it; its bias is then the shift after normalization (see ``batchnorm``)."""
    if WITH_BN and g0 >= 0:
        for j in range(n_out):
            normalize_row(Z[j * nb:(j + 1) * nb], params[g0 + j], mode, U, stats, s0, j, n_out,
                          nb)
    for j in range(n_out):
        bias_activation(Z[j * nb:(j + 1) * nb], params[b0 + j], code, P[j * nb:(j + 1) * nb])


@njit
def blas_forward(params, w0, b0, n_in, n_out, A, ia, a_rows, Z, nb, code, P, g0, mode, U,
                 stats, s0):
    """``Z = act(W.T @ A + b)`` through BLAS for the input block at ``A[ia:]`` (see the
    module's docstring for ``a_rows``).  ``P`` (flat ``(n_out, nb)``) receives the
    activation's input when ``keeps_pre(code)``; otherwise pass ``Z``.  ``g0``, ``mode``,
    ``U``, ``stats``, ``s0``: batch normalization, see ``finish_rows``."""
    tn, zero = _runtime()
    matmul(tn[1], tn[1] if a_rows else tn[0], n_out, nb, n_in, 1.0, params, w0, n_out, A, ia,
           n_in if a_rows else nb, 0.0, Z, zero, nb)
    finish_rows(Z, n_out, nb, params, b0, code, P, g0, mode, U, stats, s0)


@njit
def dense_forward(params, w0, b0, n_in, n_out, A, Z, nb, code, P, g0, mode, U, stats, s0):
    """``Z = act(W.T @ A + b)`` for the flat blocks ``A`` ``(n_in, nb)`` and ``Z`` ``(n_out, nb)``
    (the other arguments as in ``blas_forward``)."""
    if WITH_BLAS and use_blas(n_in, n_out, nb):
        blas_forward(params, w0, b0, n_in, n_out, A, np.int64(0), np.bool_(False), Z, nb, code,
                     P, g0, mode, U, stats, s0)
        return
    if WITH_TILES and use_tiles(n_in, n_out, nb):
        # Z = W.T @ A: P is W (n_in x n_out) read transposed.
        if (not WITH_BN or g0 < 0) and (code == RELU or code == IDENTITY):
            # The bias and the activation in the tiles' epilogue, before they store the
            # block (finish_rows's arithmetic, without its pass: 2-3% of the small
            # workload's time).
            product_epilogue(n_out, nb, n_in, params, w0, n_out, np.int64(1), A, np.int64(0),
                             nb, Z, np.int64(0), nb, params, b0,
                             np.int64(BIAS_RELU if code == RELU else BIAS))
            return
        product(n_out, nb, n_in, params, w0, n_out, np.int64(1), A, np.int64(0), nb, Z,
                np.int64(0), nb)
        finish_rows(Z, n_out, nb, params, b0, code, P, g0, mode, U, stats, s0)
        return
    W = params[w0:w0 + n_in * n_out]
    if WITH_BN and g0 >= 0:  # normalization needs whole rows first
        for j in range(n_out):
            combine_rows(Z[j * nb:(j + 1) * nb], W, j, n_out, n_in, A, nb)
        finish_rows(Z, n_out, nb, params, b0, code, P, g0, mode, U, stats, s0)
        return
    # Without normalization each row gets its bias and activation while it is in cache.
    for j in range(n_out):
        z = Z[j * nb:(j + 1) * nb]
        combine_rows(z, W, j, n_out, n_in, A, nb)
        bias_activation(z, params[b0 + j], code, P[j * nb:(j + 1) * nb])


@njit
def bias_gradient(grad, b0, n_out, D, nb):
    """db = D summed over the batch, into ``grad[b0:b0 + n_out]``."""
    zero = D.dtype.type(0)
    for j in range(n_out):
        d = D[j * nb:(j + 1) * nb]
        s = zero
        for b in range(nb):
            s += d[b]
        grad[b0 + j] = s


@njit
def blas_weight_gradient(grad, w0, n_in, n_out, A, D, nb, add):
    """dW = A @ D.T through BLAS, into ``grad[w0:]``, for the feature-major input block
    ``A``; with ``add``, added to what ``grad`` holds there (zeros left by
    ``optimizers.sgd_update``: BLAS then skips its pass zeroing the output)."""
    tn, zero = _runtime()
    matmul(tn[0], tn[1], n_in, n_out, nb, 1.0, A, zero, nb, D, zero, nb,
           1.0 if add else 0.0, grad, w0, n_out)


@njit
def dense_backward(params, grad, w0, b0, n_in, n_out, A, D, tmp, nb, code_in, propagate, P,
                   carry, add_carry, save_carry, drop, seed, l_in, add_grad):
    """Gradients of one layer from its output delta ``D`` (flat ``(n_out, nb)``).

    Writes dW = A @ D.T and db = D summed over the batch into ``grad`` (not db when
    ``b0`` < 0: a batch-normalized layer's shift has its gradient from ``batchnorm``).  When
    ``propagate``, overwrites ``A`` (the layer's input, the previous layer's output)
    with the previous layer's delta ``g * act'(z)``, where ``g = W @ D`` is the gradient
    with respect to ``A``, plus ``carry`` when ``add_carry`` (this layer's shortcut
    passes its output's gradient straight down); with ``save_carry`` (the previous layer
    has a shortcut) ``g`` is saved into ``carry`` for the next call; with ``drop`` > 0 it
    then goes through the dropout mask of layer ``l_in`` (the previous one) for the batch
    ``seed``.  The derivative of
    activation ``code_in`` is taken from ``P``: the activation's output, or its input
    for ``keeps_pre`` codes (``P`` is ``A`` itself when nothing else was kept).  ``tmp``
    is scratch of at least ``n_in * nb``.  ``add_grad``: BLAS adds dW into ``grad``
    (``blas_weight_gradient``'s ``add``).
    """
    zero = D.dtype.type(0)
    W = params[w0:w0 + n_in * n_out]
    gW = grad[w0:w0 + n_in * n_out]
    if b0 >= 0:
        bias_gradient(grad, b0, n_out, D, nb)
    if WITH_BLAS and past_loops(n_in, n_out, nb):  # tiles or BLAS
        tn, zero = _runtime()
        if WITH_TILES and use_gradient_tiles(n_in, n_out, nb):
            # dW = A @ D.T, with D transposed first (into tmp, free until the delta) so
            # that the tiles read it along dW's rows.
            transpose(n_out, nb, D, zero, nb, tmp, zero, n_out)
            product(n_in, n_out, nb, A, zero, np.int64(1), nb, tmp, zero, n_out, grad, w0,
                    n_out)
        else:
            blas_weight_gradient(grad, w0, n_in, n_out, A, D, nb, add_grad)
        if propagate:
            if WITH_TILES and use_tiles(n_in, n_out, nb):  # tmp = W @ D: P is W (n_in x n_out) as it is stored
                product(n_in, nb, n_out, params, w0, np.int64(1), n_out, D, zero, nb, tmp, zero,
                        nb)
            else:
                matmul(tn[0], tn[0], n_in, nb, n_out, 1.0, params, w0, n_out, D, zero, nb, 0.0,
                       tmp, zero, nb)
            _delta_rows(A, tmp, P, carry, n_in, nb, code_in, add_carry, save_carry, drop, seed,
                        l_in)
        return
    for i in range(n_in):
        a = A[i * nb:(i + 1) * nb]
        # Four outputs per pass over the row: four independent sums, so the loop is not
        # bound by the latency of one chain of adds (a 100 -> 4 layer: 2x faster).
        for j in range(0, n_out - 3, 4):
            d0, d1 = D[j * nb:(j + 1) * nb], D[(j + 1) * nb:(j + 2) * nb]
            d2, d3 = D[(j + 2) * nb:(j + 3) * nb], D[(j + 3) * nb:(j + 4) * nb]
            s0 = s1 = s2 = s3 = zero
            for b in range(nb):
                x = a[b]
                s0 += x * d0[b]
                s1 += x * d1[b]
                s2 += x * d2[b]
                s3 += x * d3[b]
            gW[i * n_out + j] = s0
            gW[i * n_out + j + 1] = s1
            gW[i * n_out + j + 2] = s2
            gW[i * n_out + j + 3] = s3
        for j in range(n_out - n_out % 4, n_out):
            d = D[j * nb:(j + 1) * nb]
            s = zero
            for b in range(nb):
                s += a[b] * d[b]
            gW[i * n_out + j] = s
    if propagate:
        for i in range(n_in):
            combine_rows(tmp[i * nb:(i + 1) * nb], W, i * n_out, np.int64(1), n_out, D,
                         nb)  # (epoch._RUNTIME)
        _delta_rows(A, tmp, P, carry, n_in, nb, code_in, add_carry, save_carry, drop, seed, l_in)


@njit
def _delta_rows(A, T, P, carry, n, nb, code, add_carry, save_carry, drop, seed, l_in):
    """The previous layer's delta from its gradient ``T`` (flat ``(n, nb)``, overwritten),
    into ``A``: each step over the whole block at once (the steps are elementwise, rows
    apart only in dropout's mask).  Row by row, a call per row cost more than the row's
    arithmetic (the ``small`` workload: 4% of its time in the calls' argument passing)."""
    m = n * nb
    t = T[:m]
    if WITH_SHORTCUT and (add_carry or save_carry):
        c = carry[:m]
        if add_carry:
            for k in range(m):
                t[k] += c[k]
        if save_carry:
            for k in range(m):
                c[k] = t[k]
    if WITH_DROPOUT and drop > 0.0:
        for i in range(n):
            apply_row(t[i * nb:(i + 1) * nb], seed, l_in, i, nb, drop)
    a = A[:m]
    if P.ctypes.data == A.ctypes.data:
        # In place: LLVM vectorizes the loop only where it sees one array read and
        # written, not two arguments holding the same block (its runtime overlap check
        # sent those to the scalar loop: 12.7% of the tiny workload's samples).
        # backprop_row is too large for LLVM to inline, so Numba inlines it (njit_inline).
        backprop_row(a, t, a, a, code)
    else:
        p = P[:m]
        backprop_row(a, t, p, p, code)
