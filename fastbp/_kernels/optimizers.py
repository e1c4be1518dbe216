"""Update rules, L2 penalty and gradient clipping, each one fused loop over the flat vector.

The optimizer arrives as an integer ``kind`` and a float64 array ``hyper`` laid
out by the ``H_*`` indices below (built by ``fastbp.optim``); its state is a
``(2, n_params)`` array in the parameters' dtype (velocity, or Adam's first and
second moments).  ``hyper[H_STEP]`` counts the updates taken and is advanced in
place by the rules that need it (Adam's bias corrections).
"""
import numpy as np

from .._config import njit

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
    if alpha == 0.0:
        return 0.0
    scale = grad.dtype.type(alpha / n)
    sq = 0.0
    for l in range(layers.shape[0]):
        # Slices, then loops from 0: Numba cannot vectorize ``for k in range(w0, ...)``
        # over ``params[k]`` (negative indices would wrap around), which ran 8x slower.
        w0, count = layers[l, 3], layers[l, 0] * layers[l, 1]
        W, G = params[w0:w0 + count], grad[w0:w0 + count]
        for k in range(count):
            w = W[k]
            sq += np.float64(w) * np.float64(w)
            G[k] += scale * w
    return 0.5 * alpha * sq


@njit
def clip(grad, clip_norm, clip_value):
    """Clip each gradient element to ``+-clip_value``, then the whole vector's norm to
    ``clip_norm`` (PyTorch's rule: scale by ``clip_norm / (norm + 1e-6)`` when larger).
    A limit of 0 means none."""
    if clip_value > 0.0:
        c = grad.dtype.type(clip_value)
        for k in range(grad.shape[0]):
            grad[k] = min(max(grad[k], -c), c)
    if clip_norm > 0.0:
        sq = 0.0
        for k in range(grad.shape[0]):
            sq += np.float64(grad[k]) * np.float64(grad[k])
        norm = np.sqrt(sq)
        if norm > clip_norm:
            s = grad.dtype.type(clip_norm / (norm + 1e-6))
            for k in range(grad.shape[0]):
                grad[k] *= s


@njit
def step(params, grad, kind, hyper, state):
    """One update of ``params`` from ``grad`` by the rule ``kind``.

    sgd: ``p -= lr g``.  momentum / nesterov (scikit-learn): ``v = mu v - lr g``,
    then ``p += v`` or ``p += mu v - lr g``.  adam (scikit-learn):
    ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``.  adamw (PyTorch):
    ``p *= 1 - lr wd`` then ``p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """
    one = params.dtype.type(1)
    lr = params.dtype.type(hyper[H_LR])
    n = params.shape[0]
    if kind == SGD:
        for k in range(n):
            params[k] -= lr * grad[k]
        return
    if kind == MOMENTUM or kind == NESTEROV:
        mu = params.dtype.type(hyper[H_MOMENTUM])
        v = state[0]
        if kind == MOMENTUM:
            for k in range(n):
                v[k] = mu * v[k] - lr * grad[k]
                params[k] += v[k]
        else:
            for k in range(n):
                v[k] = mu * v[k] - lr * grad[k]
                params[k] += mu * v[k] - lr * grad[k]
        return
    t = hyper[H_STEP] + 1.0
    hyper[H_STEP] = t
    b1, b2 = hyper[H_BETA1], hyper[H_BETA2]
    m, v = state[0], state[1]
    c1, c2 = params.dtype.type(1.0 - b1), params.dtype.type(1.0 - b2)
    fb1, fb2 = params.dtype.type(b1), params.dtype.type(b2)
    eps = params.dtype.type(hyper[H_EPS])
    if kind == ADAM:
        lr_t = params.dtype.type(hyper[H_LR] * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))
        for k in range(n):
            g = grad[k]
            m[k] = fb1 * m[k] + c1 * g
            v[k] = fb2 * v[k] + c2 * g * g
            params[k] -= lr_t * m[k] / (np.sqrt(v[k]) + eps)
        return
    # adamw
    decay = one - params.dtype.type(hyper[H_LR] * hyper[H_WEIGHT_DECAY])
    step_size = params.dtype.type(hyper[H_LR] / (1.0 - b1 ** t))
    root_c2 = params.dtype.type(np.sqrt(1.0 - b2 ** t))
    for k in range(n):
        g = grad[k]
        m[k] = fb1 * m[k] + c1 * g
        v[k] = fb2 * v[k] + c2 * g * g
        params[k] = params[k] * decay - step_size * m[k] / (np.sqrt(v[k]) / root_c2 + eps)
