"""The drivers: whole epochs of minibatch training, full-data gradients, prediction.

The architecture arrives as ``layers``, an int64 array of shape ``(L, 8)`` with one
row per dense layer: ``n_in, n_out, code, w_off, b_off, flags, g_off, s_off`` (see
``fastbp._spec``).  ``code`` is the hidden activation for every layer but the last,
whose code is the output kind (``losses.OUT_*``).  ``abuf`` holds the activations of
every layer for one batch, ``sum(widths) * batch`` values, followed, when a hidden
layer's derivative reads something other than its output (the activation ``keeps_pre``,
or the layer has a shortcut or dropout), by the kept region: its pre-activations, or
its activation before dropout and the shortcut (``sum(hidden widths) * batch``); then,
with batch normalization, each normalized layer's block (``bn_offset``).  With
shortcuts, the second half of ``tmp`` carries their gradients down the backward pass;
``tmp`` is scratch of ``max(max(widths), 4) * batch``.
"""
import numpy as np

from .._config import SPLIT_MIN_ROWS, njit, njit_entry, njit_inline
from ._features import (WITH_BLAS, WITH_BN, WITH_DROPOUT, WITH_KEPT, WITH_SHORTCUT,
                        WITH_SPLIT_FIRST, WITH_TILES)
from .activations import IDENTITY, bias_activation, keeps_pre
from . import batchnorm
from .batchnorm import EVAL, TRAIN, TRAIN_UPDATE
from .dropout import apply_row, batch_seed
from .blas import matmul
from .dense import (_runtime, bias_gradient, blas_forward, blas_on_some_batch, dense_backward,
                    dense_forward, use_blas, use_gradient_tiles, use_tiles)
from .losses import loss_and_delta, output_activation
from .optimizers import (H_ALPHA, H_CLIP_NORM, H_CLIP_VALUE, H_LR, SGD, advance,
                         clear_weight_gradients, clip_norm_scale, clip_values, l2_penalty,
                         l2_range, sgd_update, step, weight_squares)
from .sync import STOP, atomic_load, atomic_store, barrier
from .tiles import VECTOR_BYTES, gather_block, product, transpose


#: _RUNTIME: the integers that kernels pass to other kernels are made ``np.int64(...)``,
#: and no kernel has default arguments, because Numba compiles a callee again for each
#: literal constant or omitted argument it is called with (``f(x, 0)`` and ``f(x, 1)``
#: are two compilations): those copies made a first fit compile twice as much.


@njit
def gather(X, order, start, nb, f_lo, f_hi, A):
    """Copy the features ``f_lo:f_hi`` of rows ``order[start:start+nb]`` of ``X`` into ``A``
    as a flat ``(f_hi - f_lo, nb)`` block: whole ``V x V`` blocks transposed in registers
    (``tiles.gather_block``), the edges element by element (which, for all of it, took 2%
    of the small workload's time)."""
    n_features = X.shape[1]
    v = VECTOR_BYTES // A.itemsize
    b_full = nb - nb % v
    i_full = f_hi - (f_hi - f_lo) % v
    X1 = X.reshape(-1)
    for b in range(0, b_full, v):
        for i in range(f_lo, i_full, v):
            gather_block(X1, order, start + b, n_features, i, A, (i - f_lo) * nb + b, nb)
    for b in range(nb):
        r = order[start + b]
        for i in range(i_full if b < b_full else f_lo, f_hi):
            A[(i - f_lo) * nb + b] = X[r, i]


@njit
def rows_first(layers, nb):
    """Whether prediction reads a chunk of consecutive rows of X in place, the first layer
    through BLAS reading them transposed (``forward_from_rows``), rather than gathered
    feature-major (``gather``).  Training always gathers feature-major: with the transposes
    in registers (``tiles.gather_block``) the gather costs little, and BLAS ran the first
    layer's product faster on the feature-major block (784 x 256 on 64 rows, one thread:
    121 against 133 us); medium's epoch ran about 7% faster than with rows gathered
    sample-major (10th percentiles of 190 and 177 ms over eight alternated processes each),
    large's as fast (median ratio 0.998)."""
    return use_blas(layers[0, 0], layers[0, 1], nb)


@njit
def has_shortcut(layers, l):
    """Whether dense layer ``l`` adds its input to its output."""
    return (layers[l, 5] & 1) != 0


@njit
def has_dropout(layers, l):
    """Whether dense layer ``l``'s activations are dropped out in training."""
    return (layers[l, 5] & 2) != 0


@njit
def keeps_separately(layers, l):
    """Whether hidden layer ``l``'s output is not what its derivative reads, so that the
    kept region holds that (the pre-activation, or the activation before dropout and
    shortcut)."""
    return keeps_pre(layers[l, 2]) or has_shortcut(layers, l) or has_dropout(layers, l)


@njit
def bn_offset(layers, nb, l, size):
    """Where dense layer ``l``'s batch-normalization block (normalized values, then inverse
    deviations; see ``batchnorm``) starts in ``abuf`` (of ``size`` values), after the
    activations and the kept region; ``size`` (an empty block) when the layer is not
    batch-normalized.  (Kernels return offsets, not slices: they run without Numba's
    reference counting, in which a function may not return a view it made.)"""
    if not WITH_BN or layers[l, 6] < 0:
        return size
    n_layers = layers.shape[0]
    units = layers[n_layers - 1, 1]
    kept = False
    for k in range(n_layers):
        units += layers[k, 0]
        if k < n_layers - 1 and keeps_separately(layers, k):
            kept = True
    if kept:
        for k in range(n_layers - 1):
            units += layers[k, 1]
    # S_OFF counts two statistics per unit of the earlier normalized layers.
    return units * nb + (layers[l, 7] // 2) * (nb + 1)


@njit
def pre_offset(layers, nb, l, out_off):
    """Where what dense layer ``l``'s activation derivative reads starts in ``abuf``: its
    block in the kept region when the layer is hidden and its activation ``keeps_pre`` (the
    input z is kept) or it has a shortcut (the activation before the shortcut is kept),
    else the layer's output block itself (``out_off``)."""
    n_layers = layers.shape[0]
    if l >= n_layers - 1 or not keeps_separately(layers, l):
        return out_off
    off = layers[n_layers - 1, 1]
    for k in range(n_layers):
        off += layers[k, 0]
    for k in range(l):
        off += layers[k, 1]
    return off * nb


@njit
def forward_batch(params, layers, abuf, nb, stats, mode, first, drop, seed):
    """Forward pass over a gathered batch, from layer ``first`` on (the earlier layers'
    outputs already in place); returns the offset of the output logits in ``abuf``.
    ``drop`` > 0: training-mode dropout with the batch's ``seed``.  Batch normalization
    runs in ``mode`` (``batchnorm.EVAL``, ``TRAIN`` or ``TRAIN_UPDATE``) with the running
    statistics ``stats``."""
    n_layers = layers.shape[0]
    off = np.int64(0)  # (a literal 0 would be typed, and compiled for, first: _RUNTIME)
    for l in range(first):
        off += layers[l, 0] * nb
    for l in range(first, n_layers):
        n_in, n_out = layers[l, 0], layers[l, 1]
        code = layers[l, 2] if l < n_layers - 1 else IDENTITY
        nxt = off + n_in * nb
        keep = abuf[pre_offset(layers, nb, l, nxt):]
        dense_forward(params, layers[l, 3], layers[l, 4], n_in, n_out,
                      abuf[off:nxt], abuf[nxt:], nb, code, keep, layers[l, 6], mode,
                      abuf[bn_offset(layers, nb, l, abuf.shape[0]):], stats, layers[l, 7])
        if WITH_KEPT and l < n_layers - 1 and keeps_separately(layers, l):
            finish_hidden(layers, l, abuf[nxt:], keep, abuf, off, np.bool_(False), nb, drop, seed)
        off = nxt
    return off


@njit
def finish_hidden(layers, l, Z, keep, A, ia, a_rows, nb, drop, seed):
    """After hidden layer ``l``'s activation: keep it for the backward pass (unless ``keep``
    holds the pre-activation already), apply dropout (``drop`` > 0, training), then add
    the shortcut's input, the layer's input block at ``A[ia:]`` (``a_rows``: sample-major,
    see ``dense``)."""
    n = layers[l, 1]
    if not keeps_pre(layers[l, 2]):
        for k in range(n * nb):
            keep[k] = Z[k]
    if WITH_DROPOUT and drop > 0.0 and has_dropout(layers, l):
        for j in range(n):
            apply_row(Z[j * nb:(j + 1) * nb], seed, l, j, nb, drop)
    if WITH_SHORTCUT and has_shortcut(layers, l):
        for j in range(n):
            z = Z[j * nb:(j + 1) * nb]
            if a_rows:
                for b in range(nb):
                    z[b] += A[ia + b * n + j]
            else:
                a = A[ia + j * nb:ia + (j + 1) * nb]
                for b in range(nb):
                    z[b] += a[b]


@njit
def forward_rows(params, X, order, start, nb, layers, abuf, stats, mode, drop, seed, gathered):
    """Forward pass over the rows ``order[start:start+nb]`` of ``X`` (gathered into ``abuf``
    unless ``gathered``: already in place); returns the offset of the output logits in
    ``abuf``.  ``mode``, ``drop``, ``seed``: as in ``forward_batch``."""
    if not gathered:
        gather(X, order, start, nb, np.int64(0), np.int64(X.shape[1]), abuf)
    return forward_batch(params, layers, abuf, nb, stats, mode, np.int64(0), drop, seed)


@njit_inline
def forward_from_rows(params, layers, A, ia, abuf, nb, stats, mode, drop, seed):
    """``forward_batch`` for a batch whose inputs are the sample-major ``(nb, n_features)``
    block at ``A[ia:]`` (consecutive rows of X read in place), the first layer through BLAS
    (``rows_first``)."""
    n_layers = layers.shape[0]
    n_in0 = layers[0, 0]
    first = np.int64(0)  # (see _RUNTIME)
    keep0 = abuf[pre_offset(layers, nb, first, n_in0 * nb):]
    blas_forward(params, layers[0, 3], layers[0, 4], n_in0, layers[0, 1], A, ia, np.bool_(True),
                 abuf[n_in0 * nb:], nb, layers[0, 2] if n_layers > 1 else IDENTITY, keep0,
                 layers[0, 6], mode, abuf[bn_offset(layers, nb, first, abuf.shape[0]):], stats,
                 layers[0, 7])
    if WITH_KEPT and n_layers > 1 and keeps_separately(layers, first):
        finish_hidden(layers, first, abuf[n_in0 * nb:], keep0, A, ia, np.bool_(True), nb, drop,
                      seed)
    return forward_batch(params, layers, abuf, nb, stats, mode, first + 1, drop, seed)


# (batch_gradient and probe_outputs are inlined into their callers: compiled on their own,
# each was optimized and turned into machine code once for itself and again inside
# run_epochs; inlined, a first fit with an empty cache compiled in 8% less time, medians of
# six fresh processes alternated, and the epochs ran as fast.)
@njit_inline
def batch_gradient(params, X, Y, SW, order, start, nb, layers, abuf, tmp, grad, scale, want_loss,
                   stats, mode, drop, seed, gathered, add_grad):
    """Forward and backward over one batch; ``grad`` receives ``scale`` times the gradient of
    the batch's per-sample losses summed with the weights ``SW``.

    Returns that weighted loss sum (0 unless ``want_loss``).  ``drop`` > 0: dropout
    (training mode) with the batch's ``seed``.  Batch normalization uses the batch's
    statistics (``mode`` ``TRAIN``, or ``TRAIN_UPDATE`` to move the running ``stats``).  With
    ``gathered``, the batch's inputs are already in place at the start of ``abuf``
    (the backward pass never writes there).  ``add_grad``: the weight gradients that go
    through BLAS are added to what ``grad`` holds (zeros, see ``optimizers.sgd_update``).
    """
    n_layers = layers.shape[0]
    off = forward_rows(params, X, order, start, nb, layers, abuf, stats, mode, drop, seed,
                       gathered)
    n_out = layers[n_layers - 1, 1]
    loss = loss_and_delta(layers[n_layers - 1, 2], abuf[off:off + n_out * nb], Y, SW, order,
                          start, nb, n_out, scale, want_loss, tmp)
    backward_layers(params, layers, abuf, tmp, grad, off, nb, np.int64(0), drop, seed, add_grad)
    return loss


@njit_inline
def backward_layers(params, layers, abuf, tmp, grad, off, nb, first, drop, seed, add_grad):
    """The backward pass from the output delta at ``abuf[off:]`` down through the layers
    from the last to ``first``, each one's gradients into ``grad``; layer ``first`` > 0
    leaves the delta of layer ``first - 1``'s output in place of that output.  The
    arguments as in ``batch_gradient``."""
    n_layers = layers.shape[0]
    carry = tmp[tmp.shape[0] // 2:]  # used only with shortcuts, when tmp has two halves
    for l in range(n_layers - 1, first - 1, -1):
        n_in = layers[l, 0]
        prev = off - n_in * nb
        # A batch-normalized layer's shift gets its gradient from batchnorm.backward.
        b0 = layers[l, 4] if layers[l, 6] < 0 else -1
        code_in = layers[l - 1, 2] if l > 0 else IDENTITY
        dense_backward(params, grad, layers[l, 3], b0, n_in, layers[l, 1],
                       abuf[prev:off], abuf[off:], tmp, nb, code_in, l > 0,
                       abuf[pre_offset(layers, nb, l - 1, prev) if l > 0 else prev:],
                       carry, has_shortcut(layers, l), l > 0 and has_shortcut(layers, l - 1),
                       drop, seed, l - 1, add_grad)
        if WITH_BN and l > 0 and layers[l - 1, 6] >= 0:
            # The previous layer's delta is with respect to its normalized, shifted
            # values: through the normalization to its GEMM's output.
            U = abuf[bn_offset(layers, nb, l - 1, abuf.shape[0]):]
            batchnorm.backward(params, grad, layers[l - 1, 4], layers[l - 1, 6], n_in,
                               abuf[prev:off], U, nb)
        off = prev


@njit
def batch_slice(nb, parts, part):
    """How ``parts`` threads share a batch of ``nb`` rows: ``(k, lo, hi)``, the batch cut
    into ``k`` slices of at least ``SPLIT_MIN_ROWS`` rows (at most ``parts``; 1: the whole
    batch, to part 0) and part ``part``'s rows ``lo:hi`` of it (empty past the ``k``-th)."""
    k = max(min(parts, nb // SPLIT_MIN_ROWS), 1)
    if part >= k:
        return k, np.int64(0), np.int64(0)
    return k, (nb * part) // k, (nb * (part + 1)) // k


@njit
def feature_range(n, parts, part):
    """The inputs ``lo:hi`` of a first layer of ``n`` inputs that part ``part`` of ``parts``
    takes when the first layer is split by its inputs (``run_epochs``), cut at multiples of
    16 (whole register blocks of ``gather``); ``network._first_split`` sizes the buffers
    from the same rule."""
    lo = ((n * part) // parts) // 16 * 16
    hi = n if part == parts - 1 else ((n * (part + 1)) // parts) // 16 * 16
    return lo, hi


@njit
def first_partial(params, X, order, start, nb, layers, first, batch_size, parts, part):
    """Part ``part``'s share of the first layer's product for the whole batch of rows
    ``order[start:start+nb]``: its inputs ``feature_range`` gathered into ``first`` (from
    ``layers[0, 1] * batch_size`` on), and ``first[:n_out * nb]`` = the sum over those inputs
    only, ``W[lo:hi].T @ A[lo:hi]`` (flat ``(n_out, nb)``)."""
    n_in, n_out, w0 = layers[0, 0], layers[0, 1], layers[0, 3]
    f_lo, f_hi = feature_range(n_in, parts, part)
    f = f_hi - f_lo
    g0 = n_out * batch_size
    G = first[g0:]
    gather(X, order, start, nb, f_lo, f_hi, G)
    tn, zero = _runtime()
    if WITH_TILES and use_tiles(f, n_out, nb):
        product(n_out, nb, f, params, w0 + f_lo * n_out, n_out, np.int64(1), G, zero, nb, first,
                zero, nb)
    else:
        matmul(tn[1], tn[0], n_out, nb, f, 1.0, params, w0 + f_lo * n_out, n_out, G, zero, nb,
               0.0, first, zero, nb)


@njit_inline
def split_gradient(params, Y, SW, order, start, lo, m, nb, layers, abuf, tmp, grad, scale,
                   want_loss, stats, firsts, parts):
    """``batch_gradient`` for the rows ``lo:lo+m`` of a batch of ``nb`` whose first layer's
    product the parts computed by inputs (``first_partial``, into ``firsts``): its output
    for these rows is the parts' sums added, then the bias and the activation; the other
    layers forward and backward as in ``batch_gradient``.  The first layer's delta is left
    in place of its output (for ``first_weight_gradient``), and its bias gradient over
    these rows goes into ``grad``."""
    n_layers = layers.shape[0]
    n_in0, n_out0 = layers[0, 0], layers[0, 1]
    out0 = n_in0 * m
    Z = abuf[out0:]
    P = abuf[pre_offset(layers, m, np.int64(0), out0):]
    code = layers[0, 2]
    for j in range(n_out0):
        z = Z[j * m:(j + 1) * m]
        s = firsts[0, j * nb + lo:j * nb + lo + m]
        for b in range(m):
            z[b] = s[b]
        for q in range(1, parts):
            s = firsts[q, j * nb + lo:j * nb + lo + m]
            for b in range(m):
                z[b] += s[b]
        bias_activation(z, params[layers[0, 4] + j], code, P[j * m:(j + 1) * m])
    off = forward_batch(params, layers, abuf, m, stats, np.int64(TRAIN_UPDATE), np.int64(1), 0.0,
                        np.int64(0))
    n_out = layers[n_layers - 1, 1]
    loss = loss_and_delta(layers[n_layers - 1, 2], abuf[off:off + n_out * m], Y, SW, order,
                          start + lo, m, n_out, scale, want_loss, tmp)
    backward_layers(params, layers, abuf, tmp, grad, off, m, np.int64(1), 0.0, np.int64(0),
                    np.bool_(False))
    bias_gradient(grad, layers[0, 4], n_out0, Z, m)
    return loss


@njit
def first_weight_gradient(layers, first, abufs, grad, batch_size, nb, parts, part):
    """Part ``part``'s rows of the first layer's weight gradient (its inputs
    ``feature_range``), ``A[lo:hi] @ D.T`` over the whole batch of ``nb`` rows: its gathered
    inputs in ``first`` times the deltas that each part's slice left in its row of
    ``abufs`` (``split_gradient``), one product per slice, into ``grad``."""
    n_in, n_out, w0 = layers[0, 0], layers[0, 1], layers[0, 3]
    f_lo, f_hi = feature_range(n_in, parts, part)
    tn, zero = _runtime()
    if WITH_TILES and use_gradient_tiles(f_hi - f_lo, n_out, nb // parts):
        # (the tiles' rule for a slice's own weight gradient, their sum then over all the
        # parts' slices: the medium epoch ran 3-5% faster than with one BLAS product per
        # slice, four alternated pairs of processes)
        # The deltas transposed, (nb, n_out), where the parts' sums were (read by now).
        for q in range(parts):
            _, lo, hi = batch_slice(nb, parts, q)
            m = hi - lo
            transpose(n_out, m, abufs[q], n_in * m, m, first, lo * n_out, n_out)
        product(f_hi - f_lo, n_out, nb, first, n_out * batch_size, np.int64(1), nb, first, zero,
                n_out, grad, w0 + f_lo * n_out, n_out)
        return
    for q in range(parts):
        _, lo, hi = batch_slice(nb, parts, q)
        m = hi - lo
        matmul(tn[0], tn[1], f_hi - f_lo, n_out, m, 1.0, first, n_out * batch_size + lo, nb,
               abufs[q], n_in * m, m, 0.0 if q == 0 else 1.0, grad, w0 + f_lo * n_out, n_out)


@njit
def weight_sum(SW, order, start, nb):
    """Sum of the sample weights of one batch."""
    total = 0.0
    for b in range(nb):
        total += SW[order[start + b]]
    return total


@njit_entry
def run_epochs(params, X, Y, SW, orders, layers, batch_size, kind, hyper, state, abufs, tmps,
               firsts, grad, parts, grads, rates, drop, seeds, losses, norms, want_loss, stats,
               stopping, probe, part, sync, shared):
    """Train for ``losses.shape[0]`` epochs, updating ``params`` after every minibatch.

    Epoch ``e`` visits the rows ``orders[e % len(orders)]`` of ``X`` (all of them, or
    a training subset).  A batch's loss is the ``SW``-weighted mean of its samples'
    losses (scikit-learn's convention); a batch whose weights sum to 0 is skipped.
    Each batch's gradient gets the L2 term and clipping, then the optimizer ``kind``
    takes a step (see ``optimizers``).  ``losses[e]`` receives the epoch's mean of
    the batch losses weighted by batch size, each taken before its batch's update
    (only the L2 part when ``want_loss`` is false).  When ``rates`` is not empty, epoch
    ``e`` runs at the learning rate ``rates[e]``; otherwise at ``hyper``'s.
    ``norms[e, l]`` receives the mean over the epoch's batches of the norm of layer ``l``'s
    weight gradient (with the L2 term, before clipping).  ``drop`` > 0: dropout on the
    layers marked for it, epoch ``e`` seeded by ``seeds[e]``.  Batch-normalized layers
    normalize with each batch's statistics and move their running ones, ``stats``.

    ``stopping`` (float64: tol, patience, best loss, epochs without improvement): with
    tol >= 0, scikit-learn's rule after each epoch (an epoch whose loss is above the best
    minus tol counts one more epoch without improvement, any other resets the count)
    updates the last two, and the call ends after the epoch that takes the count above
    the patience.  Returns the number of epochs run (-1: released by ``sync``'s abort flag).

    ``probe`` (int64 rows of ``X``, may be empty): after the last epoch, the outputs of
    these rows with the final weights, in evaluation mode, cut into slices as a batch;
    each part writes into ``shared[part, 0]`` how many of its slice's are not finite
    (the losses, taken before each update, do not see the call's last one).

    ``parts`` > 1: ``parts`` threads run this call at once, each with its ``part`` (0 to
    ``parts - 1``) and the same arguments, and meet at ``sync.barrier`` on ``sync``
    (``sync.SYNC_SIZE`` zeros).  Each batch of at least ``2 * SPLIT_MIN_ROWS`` rows is cut
    into up to ``parts`` slices, slice ``p`` to part ``p``: its forward and backward pass
    on the part's row of ``abufs`` and ``tmps`` (sized for
    ``max(ceil(batch_size / parts), 2 * SPLIT_MIN_ROWS)`` rows), its gradient into
    ``grad`` (part 0) or ``grads[p - 1]``.  Then each part updates its share of the
    parameters (``parts`` consecutive ranges of the flat vector: the gradients summed,
    the L2 term, clipping, the step); the sums the whole vector needs (the clipping norm,
    the loss's L2 term, the layers' gradient norms) go through the part's row of
    ``shared`` (float64, ``(parts, 3 + len(layers))``: the slice's loss, the share of the
    L2 term, of the clipping's squares, of each layer's squares).  Part 0 alone writes
    ``hyper``, ``losses``, ``norms`` and ``stopping``.  The parts meet twice a batch (after
    the gradients, after the update), three times with norm clipping (its norm before the
    step).  The BLAS the parts call must then be single-threaded.  ``parts`` = 1: one
    call, whole batches.

    ``firsts`` not empty (``(parts, (layers[0, 1] + inputs) * batch_size)``, see
    ``network._first_split``): a batch cut into ``parts`` slices has its first layer split
    by its inputs instead.  Each part gathers its share of the inputs (``feature_range``)
    over the whole batch into its row of ``firsts`` and sums the product over them
    (``first_partial``); after one more barrier, each part's slice adds the parts' sums
    (``split_gradient``) and runs the other layers as before; after the gradients'
    barrier, each part takes the first layer's weight gradient of its inputs, over the
    whole batch (``first_weight_gradient``), and updates those weights alone, with its
    share of the rest of the flat vector.  The first layer's weights, most of a network
    like ``medium``'s, then never cross between the cores, nor their gradient.
    """
    n = orders.shape[1]
    n_params = params.shape[0]
    n_layers = layers.shape[0]
    alpha = hyper[H_ALPHA]
    lead = part == 0
    # Full batches in a fixed order see the same inputs every epoch: gather them once.
    same_batch = batch_size >= n and orders.shape[0] == 1
    # Plain SGD's one-pass update leaves zeros where BLAS adds the next weight gradients
    # (``optimizers.sgd_update``'s ``clear``), from zeros set here.  Not with slices: a
    # part zeroing the other's buffer would take its cache lines from the other core
    # (alternated runs of ``medium`` showed no gain either way).
    clear = np.int64(0)
    if WITH_BLAS and kind == SGD and hyper[H_CLIP_NORM] <= 0.0 and parts == 1:
        for l in range(n_layers):
            if blas_on_some_batch(layers[l, 0], layers[l, 1], batch_size):
                clear = np.int64(batch_size)
        if clear > 0:
            clear_weight_gradients(grad, layers, clear)
    ran = losses.shape[0]
    for e in range(losses.shape[0]):
        order = orders[e % orders.shape[0]]
        if lead:
            if rates.shape[0] > 0:
                hyper[H_LR] = rates[e]
            for l in range(n_layers):
                norms[e, l] = 0.0
        total = 0.0
        n_batches = 0
        for start in range(0, n, batch_size):
            nb = min(batch_size, n - start)
            sw_sum = weight_sum(SW, order, start, nb)
            if sw_sum <= 0.0:
                continue
            seed = batch_seed(seeds[e], start) if WITH_DROPOUT and drop > 0.0 else np.int64(0)
            k, lo, hi = batch_slice(nb, parts, part)
            gathered = same_batch and e > 0
            if lead:
                # (before the barrier: the other parts' steps read the count after it)
                advance(kind, hyper)
            part_loss = 0.0
            # (every use below tests the flag first: without it, the branch is not compiled)
            split = firsts.shape[1] > 0 and k == parts
            if WITH_SPLIT_FIRST and split:
                first_partial(params, X, order, start, nb, layers, firsts[part], batch_size,
                              parts, part)
                if barrier(sync, parts):
                    return -1
                part_loss = split_gradient(
                    params, Y, SW, order, start, lo, hi - lo, nb, layers, abufs[part], tmps[part],
                    grad if lead else grads[part - 1], 1.0 / sw_sum, want_loss, stats, firsts,
                    parts)
            elif hi > lo:
                # The part's slice of the batch (the whole batch, part 0's, when k is 1;
                # dropout only then, see network._split_parts).
                part_loss = batch_gradient(
                    params, X, Y, SW, order, start + lo, hi - lo, layers, abufs[part],
                    tmps[part], grad if lead else grads[part - 1], 1.0 / sw_sum, want_loss,
                    stats, np.int64(TRAIN_UPDATE), drop if k == 1 else 0.0,
                    seed if k == 1 else np.int64(0), gathered, clear > 0)
            if barrier(sync, parts):
                return -1
            # The update, each part on its share lo:hi of the flat vectors: the slices'
            # gradients summed, the L2 term, the norms' and the clipping's sums of squares.
            # ``shared`` is written only between this barrier and the batch's last one, and
            # part 0 reads it after that one (the others cannot pass the next batch's first
            # barrier before it does).
            mine = shared[part]
            mine[0] = part_loss
            own = grad if lead else grads[part - 1]
            # With the first layer split, the part's inputs' rows of its weights, own_lo:own_hi,
            # have their whole gradient in the part's own buffer; the rest of the flat vector
            # from r0 on is shared out as usual.
            r0 = np.int64(0)
            own_lo = own_hi = np.int64(0)
            if WITH_SPLIT_FIRST and split:
                first_weight_gradient(layers, firsts[part], abufs, own, batch_size, nb, parts,
                                      part)
                f_lo, f_hi = feature_range(layers[0, 0], parts, part)
                own_lo = layers[0, 3] + f_lo * layers[0, 1]
                own_hi = layers[0, 3] + f_hi * layers[0, 1]
                r0 = layers[0, 3] + layers[0, 0] * layers[0, 1]
            lo = r0 + ((n_params - r0) * part) // parts
            hi = r0 + ((n_params - r0) * (part + 1)) // parts
            if kind == SGD and hyper[H_CLIP_NORM] <= 0.0 and k <= 2:
                # Nothing needs the whole gradient's norm before the step: one pass.
                l2 = 0.0
                sq_own = 0.0
                if WITH_SPLIT_FIRST and split:
                    l2 = sgd_update(params, own, own, np.bool_(False), layers, alpha, sw_sum,
                                    hyper[H_CLIP_VALUE], hyper[H_LR], own_lo, own_hi, mine[3:],
                                    clear)
                    sq_own = mine[3]  # (the rest holds none of the first layer's weights)
                mine[1] = l2 + sgd_update(params, grad, grads[0] if k > 1 else grad, k > 1,
                                          layers, alpha, sw_sum, hyper[H_CLIP_VALUE],
                                          hyper[H_LR], lo, hi, mine[3:], clear)
                mine[3] += sq_own
                mine[2] = 0.0
            else:
                if k > 1:
                    gp = grad[lo:hi]
                    for q in range(1, k):
                        g = grads[q - 1][lo:hi]
                        for i in range(g.shape[0]):
                            gp[i] += g[i]
                l2 = 0.0
                sq_own = 0.0
                clip_sq = 0.0
                if WITH_SPLIT_FIRST and split:
                    l2 = l2_range(params, own, layers, alpha, sw_sum, own_lo, own_hi)
                    weight_squares(own, layers, own_lo, own_hi, mine[3:])
                    sq_own = mine[3]
                    clip_sq = clip_values(own[own_lo:own_hi], hyper[H_CLIP_VALUE],
                                          hyper[H_CLIP_NORM])
                mine[1] = l2 + l2_range(params, grad, layers, alpha, sw_sum, lo, hi)
                weight_squares(grad, layers, lo, hi, mine[3:])
                mine[3] += sq_own
                mine[2] = clip_sq + clip_values(grad[lo:hi], hyper[H_CLIP_VALUE],
                                                hyper[H_CLIP_NORM])
                if hyper[H_CLIP_NORM] > 0.0:
                    # The norm of the whole gradient, from every part's share.
                    if barrier(sync, parts):
                        return -1
                    sq = 0.0
                    for q in range(parts):
                        sq += shared[q, 2]
                    factor = clip_norm_scale(sq, hyper[H_CLIP_NORM])
                    if factor != 1.0:
                        f = grad.dtype.type(factor)
                        gp = grad[lo:hi]
                        for i in range(gp.shape[0]):
                            gp[i] *= f
                        if WITH_SPLIT_FIRST and split:
                            gp = own[own_lo:own_hi]
                            for i in range(gp.shape[0]):
                                gp[i] *= f
                step(params, grad, kind, hyper, state, lo, hi)
                if WITH_SPLIT_FIRST and split:
                    step(params, own, kind, hyper, state, own_lo, own_hi)
            # The next batch's passes read the weights just updated.
            if barrier(sync, parts):
                return -1
            if lead:
                loss = shared[0, 0]
                for q in range(1, parts):
                    loss += shared[q, 0]
                for q in range(parts):
                    loss += shared[q, 1]
                total += loss * (nb / sw_sum)
                for l in range(n_layers):
                    sq = 0.0
                    for q in range(parts):
                        sq += shared[q, 3 + l]
                    norms[e, l] += np.sqrt(sq)
                n_batches += 1
        stop = False
        if lead:
            losses[e] = total / n
            for l in range(n_layers):
                norms[e, l] /= max(n_batches, 1)
            if stopping[0] >= 0.0:
                if losses[e] <= stopping[2] - stopping[0]:
                    stopping[3] = 0.0
                else:
                    stopping[3] += 1.0
                if losses[e] < stopping[2]:
                    stopping[2] = losses[e]
                stop = stopping[3] > stopping[1]
        if parts > 1 and stopping[0] >= 0.0:
            # Every part ends the call after the same epoch.
            if stop:
                atomic_store(sync, STOP, np.int64(1))
            if barrier(sync, parts):
                return -1
            stop = atomic_load(sync, STOP) != 0
        if stop:
            ran = e + 1
            break
    # Part 0 may still be reading the last batch's rows of ``shared``, which the probe's
    # counts overwrite.
    if parts > 1 and barrier(sync, parts):
        return -1
    shared[part, 0] = probe_outputs(params, X, probe, layers, parts, part, abufs[part],
                                    tmps[part], stats)
    return ran


@njit_inline
def probe_outputs(params, X, probe, layers, parts, part, abuf, tmp, stats):
    """How many of the outputs of the rows ``probe`` of ``X`` are not finite, in evaluation
    mode, among those of slice ``part`` when ``parts`` threads cut them as a batch (see
    ``run_epochs``)."""
    _, lo, hi = batch_slice(probe.shape[0], parts, part)
    m = hi - lo
    if m == 0:
        return 0.0
    off = forward_rows(params, X, probe, lo, m, layers, abuf, stats, np.int64(EVAL), 0.0,
                       np.int64(0), np.bool_(False))
    n_layers = layers.shape[0]
    Z = abuf[off:off + layers[n_layers - 1, 1] * m]
    output_activation(layers[n_layers - 1, 2], Z, m, layers[n_layers - 1, 1], tmp)
    bad = 0.0
    for i in range(Z.shape[0]):
        if not np.isfinite(Z[i]):
            bad += 1.0
    return bad


@njit_entry
def data_gradient(params, X, Y, SW, order, layers, chunk, alpha, abuf, tmp, grad, total_grad,
                  stats):
    """``SW``-weighted mean loss (with the L2 term ``alpha``) and its gradient over the rows
    ``order`` of ``X``, processed ``chunk`` rows at a time (batch normalization, in
    training mode, normalizes each chunk by its own statistics and leaves ``stats``).

    ``total_grad`` receives the gradient; ``grad`` is scratch of the same size.
    """
    n = order.shape[0]
    sw_sum = weight_sum(SW, order, np.int64(0), n)
    total_grad[:] = 0
    total = 0.0
    for start in range(0, n, chunk):
        nb = min(chunk, n - start)
        total += batch_gradient(params, X, Y, SW, order, start, nb, layers, abuf, tmp, grad,
                                1.0 / sw_sum, True, stats, np.int64(TRAIN), 0.0, np.int64(0),
                                nb < 0, nb < 0)
        for k in range(grad.shape[0]):
            total_grad[k] += grad[k]
    total += l2_penalty(params, total_grad, layers, alpha, sw_sum)
    return total / sw_sum


@njit_entry
def predict_rows(params, X, order, layers, chunk, abuf, tmp, out, stats):
    """Output-layer values (probabilities for sigmoid and softmax) for the rows of ``X``, in
    order (``order`` is ``arange(len(X))``: the gather of the loop path reads through it).
    Batch normalization uses the running statistics ``stats``."""
    n = X.shape[0]
    n_layers = layers.shape[0]
    n_out = layers[n_layers - 1, 1]
    n_in0 = layers[0, 0]
    mode, seed = np.int64(EVAL), np.int64(0)  # (see _RUNTIME)
    X1 = X.reshape(-1)
    for start in range(0, n, chunk):
        nb = min(chunk, n - start)
        if WITH_BLAS and rows_first(layers, nb):
            # The rows are consecutive: BLAS reads them in place, without a gather.
            off = forward_from_rows(params, layers, X1, start * n_in0, abuf, nb, stats, mode,
                                    0.0, seed)
        else:
            gather(X, order, start, nb, np.int64(0), np.int64(X.shape[1]), abuf)
            off = forward_batch(params, layers, abuf, nb, stats, mode, np.int64(0), 0.0, seed)
        Z = abuf[off:off + n_out * nb]
        output_activation(layers[n_layers - 1, 2], Z, nb, n_out, tmp)
        for b in range(nb):
            for k in range(n_out):
                out[start + b, k] = Z[k * nb + b]
