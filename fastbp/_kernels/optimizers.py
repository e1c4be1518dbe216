"""Update rules, L2 penalty and gradient clipping, each one fused loop over the flat vector,
or over a range ``lo:hi`` of it (the threads of a sliced fit each update their share).

The optimizer arrives as an integer ``kind`` and a float64 array ``hyper`` laid
out by the ``H_*`` indices below (built by ``fastbp.optim``); its state is a
``(2, n_params)`` array in the parameters' dtype (velocity, or Adam's first and
second moments).  ``hyper[H_STEP]`` counts the updates taken: ``advance`` moves it
once per update for the rules that need it (Adam's bias corrections).
"""
import numpy as np

from .._config import njit
from .dense import past_loops

SGD = 0
MOMENTUM = 1
NESTEROV = 2
ADAM = 3
ADAMW = 4

H_LR = 0
H_MOMENTUM = 1
H_BETA1 = 2
H_BETA2 = 3
H_EPS = 4
H_WEIGHT_DECAY = 5
H_ALPHA = 6
H_CLIP_NORM = 7
H_CLIP_VALUE = 8
H_STEP = 9
N_HYPER = 10


@njit
def l2_penalty(params, grad, layers, alpha, n):
    """Add scikit-learn's L2 term to the gradient of a mean over ``n`` samples.

    ``grad`` of every weight (not bias) gains ``alpha * W / n``.  Returns
    ``0.5 * alpha * sum(W**2)``, the term's contribution to the loss summed over
    the ``n`` samples.
    """
    return l2_range(params, grad, layers, alpha, n, np.int64(0), np.int64(params.shape[0]))


@njit
def l2_range(params, grad, layers, alpha, n, lo, hi):
    """``l2_penalty`` on the elements ``lo:hi`` of the flat vectors only (the weights among
    them); returns their share of the loss term."""
    if alpha == 0.0:
        return 0.0
    scale = grad.dtype.type(alpha / n)
    sq = 0.0
    for l in range(layers.shape[0]):
        w0 = max(layers[l, 3], lo)
        w1 = min(layers[l, 3] + layers[l, 0] * layers[l, 1], hi)
        if w1 <= w0:
            continue
        # Slices, then loops from 0: Numba cannot vectorize ``for k in range(w0, ...)``
        # over ``params[k]`` (negative indices would wrap around), which ran 8x slower.
        W, G = params[w0:w1], grad[w0:w1]
        for k in range(w1 - w0):
            w = W[k]
            sq += np.float64(w) * np.float64(w)
            G[k] += scale * w
    return 0.5 * alpha * sq


@njit
def weight_squares(grad, layers, lo, hi, out):
    """``out[l]`` = the sum of squares of layer ``l``'s weight gradient (biases left out)
    among the elements ``lo:hi``.  Summed in the gradient's dtype (a diagnostic: float32's
    precision is plenty, and the sum vectorizes twice as wide)."""
    for l in range(layers.shape[0]):
        w0 = max(layers[l, 3], lo)
        w1 = min(layers[l, 3] + layers[l, 0] * layers[l, 1], hi)
        sq = grad.dtype.type(0)
        if w1 > w0:
            g = grad[w0:w1]
            for k in range(g.shape[0]):
                sq += g[k] * g[k]
        out[l] = np.float64(sq)


@njit
def clear_weight_gradients(grad, layers, nb):
    """Zero the weight gradients that ``sgd_update`` with ``clear`` ``nb`` zeroes, all of
    them at once (before a call's first batch)."""
    zero = grad.dtype.type(0)
    for l in range(layers.shape[0]):
        if past_loops(layers[l, 0], layers[l, 1], nb):
            g = grad[layers[l, 3]:layers[l, 3] + layers[l, 0] * layers[l, 1]]
            for k in range(g.shape[0]):
                g[k] = zero


@njit
def sgd_update(params, grad, extra, add_extra, layers, alpha, n, clip_value, lr, lo, hi,
               squares, clear):
    """Plain SGD without norm clipping on the elements ``lo:hi`` of the flat vectors, in one
    pass: the gradient ``grad`` (plus ``extra``, a second slice's, when ``add_extra``), its
    L2 term (``l2_range``), each layer's sum of squares of its weight gradient into
    ``squares[l]`` (``weight_squares``), each element clipped to ``+-clip_value`` (0: no
    limit, ``clip_values``), then ``p -= lr g`` (``step``).  The same arithmetic as those
    calls in turn, without writing the summed gradient back.  Returns the L2 term's share
    of the loss.  One pass instead of four: with two threads, the second writing the sum
    into the first's buffer also moved those cache lines between the cores every batch.

    ``clear`` > 0 (without ``add_extra``): the weight gradients of the layers past the
    loops at ``clear`` rows (``dense.past_loops``: every layer whose weight gradient BLAS
    may add into them, on a batch of at most ``clear`` rows) are left zero, for the next
    batch's BLAS to add its products into (``beta`` = 1).  With ``beta`` = 0, OpenBLAS first zeroes the product's output in a
    pass of its own: 3% of the ``large`` workload's time.  ``grad`` is otherwise left as
    it was."""
    n_layers = layers.shape[0]
    zero = grad.dtype.type(0)
    scale = grad.dtype.type(alpha / n) if alpha > 0.0 else grad.dtype.type(0)
    limit = grad.dtype.type(clip_value) if clip_value > 0.0 else grad.dtype.type(np.inf)
    rate = params.dtype.type(lr)
    sq_w = 0.0
    for l in range(n_layers):
        w0 = layers[l, 3]
        w1 = w0 + layers[l, 0] * layers[l, 1]
        end = layers[l + 1, 3] if l + 1 < n_layers else params.shape[0]
        a, b = max(w0, lo), min(w1, hi)
        sq = grad.dtype.type(0)
        if b > a:
            # (slices, then loops from 0, as in l2_range; the flags tested outside the
            # loops, so that each one vectorizes)
            P, G, E = params[a:b], grad[a:b], extra[a:b]
            if alpha > 0.0:
                for k in range(b - a):
                    w = P[k]
                    sq_w += np.float64(w) * np.float64(w)
            wipe = past_loops(layers[l, 0], layers[l, 1], clear)
            if add_extra:
                for k in range(b - a):
                    g = G[k] + E[k] + scale * P[k]
                    sq += g * g
                    P[k] -= rate * min(max(g, -limit), limit)
            elif wipe:
                for k in range(b - a):
                    g = G[k] + scale * P[k]
                    G[k] = zero
                    sq += g * g
                    P[k] -= rate * min(max(g, -limit), limit)
            else:
                for k in range(b - a):
                    g = G[k] + scale * P[k]
                    sq += g * g
                    P[k] -= rate * min(max(g, -limit), limit)
        squares[l] = np.float64(sq)
        a, b = max(w1, lo), min(end, hi)  # the layer's bias (and batch-norm scales)
        if b > a:
            P, G, E = params[a:b], grad[a:b], extra[a:b]
            if add_extra:
                for k in range(b - a):
                    P[k] -= rate * min(max(G[k] + E[k], -limit), limit)
            else:
                for k in range(b - a):
                    P[k] -= rate * min(max(G[k], -limit), limit)
    return 0.5 * alpha * sq_w


@njit
def clip_values(g, clip_value, clip_norm):
    """Clip each element of ``g`` to ``+-clip_value`` (0: no limit); returns, when there is
    a norm limit ``clip_norm``, the sum of squares after (float64; else 0)."""
    if clip_value > 0.0:
        c = g.dtype.type(clip_value)
        for k in range(g.shape[0]):
            g[k] = min(max(g[k], -c), c)
    sq = 0.0
    if clip_norm > 0.0:
        for k in range(g.shape[0]):
            sq += np.float64(g[k]) * np.float64(g[k])
    return sq


@njit
def clip_norm_scale(sq, clip_norm):
    """The factor that brings a gradient whose squares sum to ``sq`` to the norm limit
    ``clip_norm`` (PyTorch's rule: ``clip_norm / (norm + 1e-6)`` when the norm is larger;
    1 otherwise, and for a limit of 0, none)."""
    if clip_norm > 0.0:
        norm = np.sqrt(sq)
        if norm > clip_norm:
            return clip_norm / (norm + 1e-6)
    return 1.0


@njit
def advance(kind, hyper):
    """Count one more update in ``hyper[H_STEP]`` for the rules that read it (Adam's bias
    corrections); before the ``step`` calls of that update."""
    if kind == ADAM or kind == ADAMW:
        hyper[H_STEP] += 1.0


@njit
def step(params, grad, kind, hyper, state, lo, hi):
    """One update of the elements ``lo:hi`` of ``params`` from ``grad`` by the rule ``kind``
    (``advance`` has counted the update).

    sgd: ``p -= lr g``.  momentum / nesterov (scikit-learn): ``v = mu v - lr g``,
    then ``p += v`` or ``p += mu v - lr g``.  adam (scikit-learn):
    ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``.  adamw (PyTorch):
    ``p *= 1 - lr wd`` then ``p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """
    # (slices, then loops from 0, as in l2_range)
    P, G = params[lo:hi], grad[lo:hi]
    one = params.dtype.type(1)
    lr = params.dtype.type(hyper[H_LR])
    n = P.shape[0]
    if kind == SGD:
        for k in range(n):
            P[k] -= lr * G[k]
        return
    if kind == MOMENTUM or kind == NESTEROV:
        mu = params.dtype.type(hyper[H_MOMENTUM])
        v = state[0][lo:hi]
        if kind == MOMENTUM:
            for k in range(n):
                v[k] = mu * v[k] - lr * G[k]
                P[k] += v[k]
        else:
            for k in range(n):
                v[k] = mu * v[k] - lr * G[k]
                P[k] += mu * v[k] - lr * G[k]
        return
    t = hyper[H_STEP]
    b1, b2 = hyper[H_BETA1], hyper[H_BETA2]
    m, v = state[0][lo:hi], state[1][lo:hi]
    c1, c2 = params.dtype.type(1.0 - b1), params.dtype.type(1.0 - b2)
    fb1, fb2 = params.dtype.type(b1), params.dtype.type(b2)
    eps = params.dtype.type(hyper[H_EPS])
    if kind == ADAM:
        lr_t = params.dtype.type(hyper[H_LR] * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))
        for k in range(n):
            g = G[k]
            m[k] = fb1 * m[k] + c1 * g
            v[k] = fb2 * v[k] + c2 * g * g
            P[k] -= lr_t * m[k] / (np.sqrt(v[k]) + eps)
        return
    # adamw
    decay = one - params.dtype.type(hyper[H_LR] * hyper[H_WEIGHT_DECAY])
    step_size = params.dtype.type(hyper[H_LR] / (1.0 - b1 ** t))
    root_c2 = params.dtype.type(np.sqrt(1.0 - b2 ** t))
    for k in range(n):
        g = G[k]
        m[k] = fb1 * m[k] + c1 * g
        v[k] = fb2 * v[k] + c2 * g * g
        P[k] = P[k] * decay - step_size * m[k] / (np.sqrt(v[k]) / root_c2 + eps)
