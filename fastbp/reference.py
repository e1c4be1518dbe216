"""The same mathematics in plain, readable NumPy: the test oracle and the "numpy" peer.

Notation follows the seed article (section 3), with samples as rows:

    z(l) = a(l-1) @ W(l) + b(l)          a(l) = g(z(l))
    delta(L) = dLoss/dz(L)
    delta(l) = (delta(l+1) @ W(l+1).T) * g'(z(l))
    dLoss/dW(l) = a(l-1).T @ delta(l)    dLoss/db(l) = sum of delta(l) over samples

Losses follow scikit-learn: squared error is the mean over samples and outputs
of (y - p)**2 / 2; log losses are summed over outputs and averaged over samples.
Nothing here is fast on purpose: every line maps to an equation.
"""
import numpy as np

LEAKY_SLOPE = 0.01


def _sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))


GELU_C = np.sqrt(2 / np.pi)
GELU_K = 0.044715


def _gelu(z):
    return 0.5 * z * (1 + np.tanh(GELU_C * (z + GELU_K * z ** 3)))


def _gelu_derivative(z):
    t = np.tanh(GELU_C * (z + GELU_K * z ** 3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t ** 2) * GELU_C * (1 + 3 * GELU_K * z ** 2)


ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": _sigmoid,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_SLOPE * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "softplus": lambda z: np.logaddexp(0, z),
    "gelu": _gelu,
    "swish": lambda z: z * _sigmoid(z),
    "silu": lambda z: z * _sigmoid(z),
}

# g'(z), written with the activation's input z (the textbook form).
DERIVATIVES = {
    "identity": lambda z: np.ones_like(z),
    "logistic": lambda z: _sigmoid(z) * (1 - _sigmoid(z)),
    "sigmoid": lambda z: _sigmoid(z) * (1 - _sigmoid(z)),
    "tanh": lambda z: 1 - np.tanh(z) ** 2,
    "relu": lambda z: (z > 0).astype(z.dtype),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE).astype(z.dtype),
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0))).astype(z.dtype),
    "softplus": _sigmoid,
    "gelu": _gelu_derivative,
    "swish": lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z))),
    "silu": lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z))),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


OUTPUTS = {"identity": lambda z: z, "sigmoid": _sigmoid, "softmax": _softmax, "poisson": np.exp}


def loss(output, z, y):
    """Mean loss of the output logits ``z`` against targets ``y`` (both (n, n_out))."""
    n = z.shape[0]
    if output == "identity":
        return np.mean((z - y) ** 2) / 2
    if output == "sigmoid":
        # -y log p - (1 - y) log(1 - p) with p = sigmoid(z), written without overflow
        return np.sum(np.logaddexp(0.0, z) - y * z) / n
    if output == "poisson":
        # y log(y / p) - y + p with p = exp(z)
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        return np.sum(ylogy - y * z - y + np.exp(z)) / n
    log_p = z - z.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return -np.sum(y * log_p) / n


def output_delta(output, z, y):
    """dLoss/dz for the mean loss above."""
    n, n_out = z.shape
    if output == "identity":
        return (z - y) / (n * n_out)
    if output == "softmax":  # (the targets' sums: probability rows may be off 1 by rounding)
        return (OUTPUTS[output](z) * y.sum(axis=1, keepdims=True) - y) / n
    return (OUTPUTS[output](z) - y) / n


BN_EPS = 1e-5  # PyTorch's BatchNorm1d default


def forward(coefs, intercepts, X, activation, output, residual=False, scales=None, running=None):
    """All layer outputs ``[X, h1, ..., hL]``; the last entry holds the output *logits*.

    With ``residual``, a hidden layer whose input and output widths match outputs
    ``act(z) + input``.  ``scales`` and ``running``: batch normalization, see ``_forward``."""
    return _forward(coefs, intercepts, X, activation, residual, None, scales, running)[0]


def _shortcut(coefs, l, residual):
    return residual and l < len(coefs) - 1 and coefs[l].shape[0] == coefs[l].shape[1]


def _forward(coefs, intercepts, X, activation, residual=False, masks=None, scales=None,
             running=None):
    """Layer outputs ``[X, h1, ..., hL]``, activations' inputs ``[z1, ..., zL]`` and, per
    layer, the batch normalization's ``(u, 1 / sqrt(var + eps))`` (None elsewhere).

    ``masks``: one ``(n_samples, width)`` array of dropout factors per hidden layer
    (0, or ``1 / (1 - p)``), multiplying its activations before any shortcut.
    ``scales``: one array of scales per hidden layer: batch normalization, where a hidden
    layer's input to its activation is ``scale * u + b``, ``u = (x W - mean) / sqrt(var +
    eps)``, with the batch's mean and biased variance, or, when ``running`` (a list of
    ``(mean, var)`` per hidden layer) is given, those."""
    a, zs, norm = [X], [], []
    for l, (W, b) in enumerate(zip(coefs, intercepts)):
        if scales is not None and l < len(coefs) - 1:
            x = a[-1] @ W
            if running is None:
                mean, var = x.mean(axis=0), x.var(axis=0)
            else:
                mean, var = running[l]
            inv = 1 / np.sqrt(var + BN_EPS)
            u = (x - mean) * inv
            norm.append((u, inv))
            z = scales[l] * u + b
        else:
            norm.append(None)
            z = a[-1] @ W + b
        zs.append(z)
        h = z if l == len(coefs) - 1 else ACTIVATIONS[activation](z)
        if masks is not None and l < len(coefs) - 1:
            h = h * masks[l]
        a.append(h + a[-1] if _shortcut(coefs, l, residual) else h)
    return a, zs, norm


def predict(coefs, intercepts, X, activation, output, residual=False, scales=None, running=None):
    """Output-layer values: probabilities for sigmoid and softmax outputs."""
    return OUTPUTS[output](forward(coefs, intercepts, X, activation, output, residual, scales,
                                   running)[-1])


def loss_and_gradients(coefs, intercepts, X, Y, activation, output, residual=False, masks=None,
                       scales=None):
    """Mean loss over ``(X, Y)`` and its gradients with respect to every W and b (with
    ``masks``, of the network with those dropout masks applied; see ``_forward``).

    With ``scales`` (batch normalization in training mode, see ``_forward``) a fourth
    value follows: the gradients with respect to the scales."""
    a, zs, norm = _forward(coefs, intercepts, X, activation, residual, masks, scales)
    value = loss(output, a[-1], Y)
    delta = output_delta(output, a[-1], Y)
    coef_grads = [None] * len(coefs)
    intercept_grads = [None] * len(coefs)
    scale_grads = [None] * (len(coefs) - 1)
    g_out = None  # the gradient with respect to the current layer's output
    for l in range(len(coefs) - 1, -1, -1):
        intercept_grads[l] = delta.sum(axis=0)
        if norm[l] is not None:
            # delta is dLoss/d(scale * u + b): through the normalization, whose mean and
            # variance depend on every sample of the batch
            u, inv = norm[l]
            scale_grads[l] = (delta * u).sum(axis=0)
            delta = scales[l] * inv * (delta - delta.mean(axis=0)
                                       - u * (delta * u).mean(axis=0))
        coef_grads[l] = a[l].T @ delta
        if l > 0:
            # the gradient with respect to this layer's input h_{l}: through W, and
            # through the shortcut straight from this layer's output
            g = delta @ coefs[l].T + (g_out if _shortcut(coefs, l, residual) else 0)
            g_out = g
            if masks is not None:
                g = g * masks[l - 1]
            delta = g * DERIVATIVES[activation](zs[l - 1])
    if scales is not None:
        return value, coef_grads, intercept_grads, scale_grads
    return value, coef_grads, intercept_grads


def sgd_epoch(coefs, intercepts, X, Y, activation, output, learning_rate, batch_size, order,
              residual=False):
    """One epoch of minibatch SGD visiting rows in ``order``; updates in place, returns mean loss."""
    n = X.shape[0]
    total = 0.0
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        value, gW, gb = loss_and_gradients(coefs, intercepts, X[rows], Y[rows], activation, output,
                                           residual)
        total += value * len(rows)
        for W, b, dW, db in zip(coefs, intercepts, gW, gb):
            W -= learning_rate * dW
            b -= learning_rate * db
    return total / n


def one_hot(y, n_classes):
    """Integer class indices of shape (n,) as a (n, n_classes) indicator matrix."""
    Y = np.zeros((len(y), n_classes))
    Y[np.arange(len(y)), np.asarray(y, dtype=np.intp)] = 1
    return Y


class SeedNetwork:
    """The seed article's example network (section 4), as plain NumPy.

    ReLU hidden layer, sigmoid output; ``backward`` takes one step along the
    gradient of the mean binary log loss, whose output delta is ``a2 - y``.
    Weights are drawn like the article's, from NumPy's global generator.
    """

    def __init__(self, input_size, hidden_size, output_size):
        self.W1 = np.random.randn(input_size, hidden_size) * 0.01
        self.b1 = np.zeros((1, hidden_size))
        self.W2 = np.random.randn(hidden_size, output_size) * 0.01
        self.b2 = np.zeros((1, output_size))

    def forward(self, X):
        self.z1 = X @ self.W1 + self.b1
        self.a1 = np.maximum(0, self.z1)
        self.z2 = self.a1 @ self.W2 + self.b2
        self.a2 = 1 / (1 + np.exp(-self.z2))
        return self.a2

    def backward(self, X, y, learning_rate):
        m = X.shape[0]
        delta2 = self.a2 - y
        grad_W2 = self.a1.T @ delta2 / m
        grad_b2 = delta2.sum(axis=0, keepdims=True) / m
        delta1 = (delta2 @ self.W2.T) * (self.z1 > 0)
        grad_W1 = X.T @ delta1 / m
        grad_b1 = delta1.sum(axis=0, keepdims=True) / m
        self.W1 -= learning_rate * grad_W1
        self.b1 -= learning_rate * grad_b1
        self.W2 -= learning_rate * grad_W2
        self.b2 -= learning_rate * grad_b2

    def train(self, X, y, learning_rate, epochs):
        y = y.reshape(-1, 1)
        for _ in range(epochs):
            self.forward(X)
            self.backward(X, y, learning_rate)

    def predict(self, X):
        return (self.forward(X) > 0.5).astype(int)
