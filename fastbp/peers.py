"""Workloads and peers: the same network trained the same way by fastbp and by other libraries.

A :class:`Workload` is a network (ReLU hidden layers, a sigmoid or softmax output), its
training settings (dtype, batch size, learning rate of plain SGD) and a sample count.
Four are defined, the ones ``python -m fastbp compare`` and the asv suite in
``benchmarks/`` measure:

========  =====================  =======  =======  ===========  ====  =======
workload  layers                 output   dtype    batch        rate  samples
========  =====================  =======  =======  ===========  ====  =======
tiny      2-10-1 (the article)   sigmoid  float64  full (800)   0.1   800
small     64-128-64-10           softmax  float32  32           0.01  1,437
medium    784-256-128-10         softmax  float32  128          0.01  60,000
large     1024-2048-2048-10      softmax  float32  256          0.01  16,384
========  =====================  =======  =======  ===========  ====  =======

Their data is random (:func:`get_data`: standard normal inputs, balanced labels, a fixed
seed), so no measurement depends on a download.

A peer trains one workload's network in one library.  Every peer starts from the same
initial weights (by default those of ``fastbp.Network(layers, random_state=0)``), takes
plain SGD steps on shuffled minibatches, and offers:

``warm_up(X, y)``
    Compile (Numba's kernels, XLA's programs) and touch every first-call cost, so that
    none of it lands in a timed call.
``fit_epochs(X, y, epochs)``
    ``epochs`` epochs of minibatch training, continuing from the current weights.
``predict(X)``
    Class labels.
``loss_and_gradients(X, y)``
    The mean loss over ``(X, y)`` and its gradient with respect to every parameter.

The peers: ``fastbp``; ``numpy`` (``fastbp.reference``, always there); ``sklearn``
(``MLPClassifier``, which has no public gradient); ``torch`` (eager) and ``jax`` (one
jitted ``lax.scan`` per epoch), when installed (``pip install 'fastbp[peers]'``).
A library that is not installed fails in :func:`make_peer` with its ``ImportError``;
ask :func:`installed` first.
"""
import functools
import importlib.util
import warnings
from dataclasses import dataclass

import numpy as np

SEED = 0

#: Every library a peer exists for, fastbp first.
LIBRARIES = ["fastbp", "numpy", "sklearn", "torch", "jax"]
_MODULES = {"fastbp": "fastbp", "numpy": "numpy", "sklearn": "sklearn", "torch": "torch",
            "jax": "jax"}

WORKLOAD_NAMES = ["tiny", "small", "medium", "large"]


@dataclass(frozen=True)
class Workload:
    """A network, its training settings and the size of its data in one measurement.

    ``n_full`` is the sample count the workload is defined with, ``n_samples`` the count a
    measurement uses (the same, or fewer for a quick run); ``epochs`` is how many epochs
    one timed call runs (several where an epoch is very short, so that the once-per-call
    cost of ``fit`` is spread over epochs as it is in a real fit).
    """

    name: str
    layers: tuple
    output: str
    dtype: str
    batch_size: int
    learning_rate: float
    n_full: int
    n_samples: int
    epochs: int

    @property
    def n_classes(self):
        return 2 if self.output == "sigmoid" else self.layers[-1]

    @property
    def batch(self):
        """The batch size, capped at the samples (the tiny workload is full batch)."""
        return min(self.batch_size, self.n_samples)

    @property
    def n_weights(self):
        return sum(a * b for a, b in zip(self.layers[:-1], self.layers[1:]))

    @property
    def flops_per_sample(self):
        """Useful floating-point operations of one training sample: a multiply-add per
        weight forward (2P), two backward (the weight gradient and the delta passed down,
        4P), less the delta the first layer never passes down (2 P_first)."""
        return 6 * self.n_weights - 2 * self.layers[0] * self.layers[1]


#: name: (layers, output, dtype, batch, learning rate, samples in the workload's definition)
_SPECS = {
    "tiny": ((2, 10, 1), "sigmoid", "float64", 800, 0.1, 800),
    "small": ((64, 128, 64, 10), "softmax", "float32", 32, 0.01, 1437),
    "medium": ((784, 256, 128, 10), "softmax", "float32", 128, 0.01, 60000),
    "large": ((1024, 2048, 2048, 10), "softmax", "float32", 256, 0.01, 16384),
}


def workload(name, n_samples=None, epochs=1):
    """The :class:`Workload` called ``name`` with ``n_samples`` samples (default: all of
    its definition) and ``epochs`` epochs per timed call."""
    if name not in _SPECS:
        raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOAD_NAMES)}")
    layers, output, dtype, batch, lr, n_full = _SPECS[name]
    n = n_full if n_samples is None else int(n_samples)
    if n < 1 or epochs < 1:
        raise ValueError(f"n_samples and epochs must be at least 1, got {n} and {epochs}")
    return Workload(name, layers, output, dtype, batch, lr, n_full, n, int(epochs))


@functools.lru_cache(maxsize=8)
def _random_data(n, n_in, n_classes, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in), dtype=np.float64).astype(dtype)
    y = rng.permutation(np.arange(n) % n_classes)  # every class, in equal shares
    return X, y


def get_data(w, dtype=None):
    """Random inputs (standard normal) and balanced random class labels of workload ``w``,
    from a fixed seed.

    Labels are integer class indices for a softmax output and 0.0 / 1.0 for a sigmoid
    one.  The arrays are cached: never write into them.
    """
    dtype = np.dtype(dtype or w.dtype)
    X, y = _random_data(w.n_samples, w.layers[0], w.n_classes, dtype.name, SEED)
    if w.output == "sigmoid":
        y = y.astype(dtype)
    return X, y


def installed(library):
    """Whether the peer ``library`` (a name in :data:`LIBRARIES`) can be imported."""
    try:
        return importlib.util.find_spec(_MODULES[library]) is not None
    except (ImportError, ValueError):  # a broken install, or a module set to None
        return False


def initial_weights(w, dtype=None, seed=SEED):
    """Copies of the weights and biases of ``fastbp.Network(w.layers, random_state=seed)``."""
    coefs, intercepts = _initial_weights(w.layers, w.output, np.dtype(dtype or w.dtype).name, seed)
    return [W.copy() for W in coefs], [b.copy() for b in intercepts]


@functools.lru_cache(maxsize=4)
def _initial_weights(layers, output, dtype, seed):
    from .network import Network

    net = Network(list(layers), activation="relu", output=output, dtype=dtype, random_state=seed)
    return [W.copy() for W in net.coefs_], [b.copy() for b in net.intercepts_]


def make_peer(library, w, dtype=None, init=None):
    """A peer of ``library`` for workload ``w`` (in ``dtype``, default the workload's),
    starting from ``init = (coefs, intercepts)`` or from :func:`initial_weights`.

    Raises ``ImportError`` when ``library`` is not installed."""
    if library not in PEERS:
        raise ValueError(f"unknown peer {library!r}; choose from {', '.join(LIBRARIES)}")
    dtype = np.dtype(dtype or w.dtype)
    coefs, intercepts = init if init is not None else initial_weights(w, dtype)
    coefs = [np.array(W, dtype=dtype) for W in coefs]
    intercepts = [np.array(b, dtype=dtype).ravel() for b in intercepts]
    return PEERS[library](w, coefs, intercepts, dtype)


def _sgd_only(library, optimizer):
    if optimizer != "sgd":
        raise NotImplementedError(f"the {library} peer trains with plain SGD only")


class FastbpPeer:
    """``fastbp.Network``: each ``fit_epochs`` is one ``fit(epochs=..., warm_start=True)``."""

    def __init__(self, w, coefs, intercepts, dtype):
        from .network import Network

        self.w = w
        self.net = Network(list(w.layers), activation="relu", output=w.output, dtype=dtype,
                           random_state=SEED)
        for dst, src in zip(self.net.coefs_ + self.net.intercepts_, coefs + intercepts):
            dst[...] = src

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        # Numba compiles per dtype and layout, not per shape: a slice of the data will do
        # (the kernels are loaded from Numba's cache when it is warm).  L-BFGS evaluates the
        # whole slice many times in its line search: a few rows.
        rows = min(len(X), 16 if optimizer == "lbfgs" else 2 * self.w.batch_size)
        self.fit_epochs(X[:rows], y[:rows], 1, optimizer, learning_rate)
        self.net.predict(X[:2])
        self.net.loss_and_gradients(X[:2], y[:2])

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        self.net.fit(X, y, epochs=epochs, batch_size=self.w.batch_size, optimizer=optimizer,
                     learning_rate=learning_rate or self.w.learning_rate, warm_start=True)

    def predict(self, X):
        return self.net.predict(X)

    def loss_and_gradients(self, X, y):
        return self.net.loss_and_gradients(X, y)


class NumpyPeer:
    """``fastbp.reference``: the plain NumPy implementation of the same mathematics."""

    def __init__(self, w, coefs, intercepts, dtype):
        self.w, self.dtype = w, dtype
        self.coefs, self.intercepts = coefs, intercepts
        self.rng = np.random.RandomState(SEED)

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        _sgd_only("numpy", optimizer)

    def _targets(self, y):
        from . import reference

        if self.w.output == "softmax":
            return reference.one_hot(y, self.w.layers[-1]).astype(self.dtype)
        return np.asarray(y, dtype=self.dtype).reshape(len(y), -1)

    def train_in_order(self, X, y, order, learning_rate=None):
        """One epoch of SGD visiting the rows of ``X`` in ``order`` (batches of the workload's
        size, the last one shorter when they do not divide)."""
        from . import reference

        reference.sgd_epoch(self.coefs, self.intercepts, X, self._targets(y), "relu",
                            self.w.output, learning_rate or self.w.learning_rate,
                            self.w.batch_size, np.asarray(order))

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        from . import reference

        _sgd_only("numpy", optimizer)
        Y = self._targets(y)
        for _ in range(epochs):
            reference.sgd_epoch(self.coefs, self.intercepts, X, Y, "relu", self.w.output,
                                learning_rate or self.w.learning_rate, self.w.batch_size,
                                self.rng.permutation(len(X)))

    def predict(self, X):
        from . import reference

        out = reference.predict(self.coefs, self.intercepts, X, "relu", self.w.output)
        return out.argmax(axis=1) if self.w.output == "softmax" else (out[:, 0] > 0.5).astype(int)

    def loss_and_gradients(self, X, y):
        from . import reference

        return reference.loss_and_gradients(self.coefs, self.intercepts, X, self._targets(y),
                                            "relu", self.w.output)


class SklearnPeer:
    """scikit-learn's ``MLPClassifier`` with the same settings (solver sgd, alpha 0, no
    momentum).

    Each ``fit_epochs`` is one ``fit(max_iter=epochs)`` continuing the previous one
    (``warm_start``), as fastbp's is one ``fit(epochs=epochs, warm_start=True)``.
    """

    def __init__(self, w, coefs, intercepts, dtype):
        self.w, self.dtype = w, dtype
        self.coefs, self.intercepts = coefs, intercepts
        self.clf = None

    def _classifier(self, X, y, optimizer, learning_rate):
        from sklearn.neural_network import MLPClassifier

        solver = "adam" if optimizer == "adam" else "sgd"
        if optimizer not in ("sgd", "momentum", "nesterov", "adam"):
            raise NotImplementedError(f"scikit-learn has no optimizer {optimizer!r}")
        clf = MLPClassifier(
            hidden_layer_sizes=self.w.layers[1:-1], activation="relu", solver=solver, alpha=0.0,
            batch_size=min(self.w.batch_size, len(X)), learning_rate_init=learning_rate,
            momentum=0.0 if optimizer == "sgd" else 0.9, nesterovs_momentum=optimizer == "nesterov",
            max_iter=1, shuffle=True, tol=0.0, n_iter_no_change=10 ** 9, random_state=SEED)
        # Initialise on two rows, then start from the shared weights and continue with
        # warm starts.
        classes = np.arange(self.w.n_classes).astype(np.asarray(y).dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # batch_size clipped to the 2 rows
            clf.partial_fit(X[:2], y[:2], classes=classes)
        for dst, src in zip(clf.coefs_ + clf.intercepts_, self.coefs + self.intercepts):
            dst[...] = src
        clf.warm_start = True
        return clf

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        if self.clf is None:
            self.clf = self._classifier(X, y, optimizer, learning_rate or self.w.learning_rate)

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        from sklearn.exceptions import ConvergenceWarning

        self.warm_up(X, y, optimizer, learning_rate)
        self.clf.max_iter = epochs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(X, y)

    def predict(self, X):
        if self.clf is None:
            raise RuntimeError("call warm_up or fit_epochs first")
        return self.clf.predict(X)

    def loss_and_gradients(self, X, y):
        raise NotImplementedError("scikit-learn has no public loss-and-gradient function")


class TorchPeer:
    """PyTorch, eager: ``nn.Sequential`` of ``Linear`` and ``ReLU``, ``optim.SGD``, the loss
    from logits (``CrossEntropyLoss`` or ``BCEWithLogitsLoss``), a Python loop over the
    minibatches.  It uses the thread count of ``torch.set_num_threads``, which the caller
    sets."""

    def __init__(self, w, coefs, intercepts, dtype):
        import torch

        self.torch, self.w = torch, w
        self.tdtype = torch.float64 if dtype == np.float64 else torch.float32
        modules = []
        for i, (W, b) in enumerate(zip(coefs, intercepts)):
            layer = torch.nn.Linear(W.shape[0], W.shape[1], dtype=self.tdtype)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                layer.bias.copy_(torch.from_numpy(b))
            modules.append(layer)
            if i < len(coefs) - 1:
                modules.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*modules)
        self.loss_fn = (torch.nn.CrossEntropyLoss() if w.output == "softmax"
                        else torch.nn.BCEWithLogitsLoss())
        self.generator = torch.Generator().manual_seed(SEED)
        self.optimizer = None

    def _tensors(self, X, y):
        torch = self.torch
        Xt = torch.from_numpy(np.ascontiguousarray(X))
        if self.w.output == "softmax":
            yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        else:
            yt = torch.from_numpy(np.asarray(y).astype(X.dtype).reshape(-1, 1))
        return Xt, yt

    def _make_optimizer(self, optimizer, learning_rate):
        _sgd_only("torch", optimizer)
        if self.optimizer is None:
            self.optimizer = self.torch.optim.SGD(self.model.parameters(),
                                                  lr=learning_rate or self.w.learning_rate)

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        if self.optimizer is None:
            self._make_optimizer(optimizer, learning_rate)
            rows = min(len(X), self.w.batch_size)
            Xt, yt = self._tensors(X[:rows], y[:rows])
            self._epoch(Xt, yt, self.torch.arange(rows))
            self.predict(X[:2])

    def _epoch(self, Xt, yt, order):
        b = self.w.batch_size
        for start in range(0, len(order), b):
            rows = order[start:start + b]
            self.optimizer.zero_grad(set_to_none=True)
            self.loss_fn(self.model(Xt[rows]), yt[rows]).backward()
            self.optimizer.step()

    def train_in_order(self, X, y, order, learning_rate=None):
        """One epoch of SGD visiting the rows of ``X`` in ``order`` (as :class:`NumpyPeer`)."""
        self._make_optimizer("sgd", learning_rate)
        self._epoch(*self._tensors(X, y), self.torch.from_numpy(np.asarray(order, np.int64)))

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        self.warm_up(X, y, optimizer, learning_rate)
        Xt, yt = self._tensors(X, y)
        for _ in range(epochs):
            self._epoch(Xt, yt, self.torch.randperm(len(Xt), generator=self.generator))

    def predict(self, X):
        with self.torch.no_grad():
            z = self.model(self.torch.from_numpy(np.ascontiguousarray(X)))
        if self.w.output == "softmax":
            return z.argmax(dim=1).numpy()
        return (z[:, 0] > 0).numpy().astype(int)

    def loss_and_gradients(self, X, y):
        Xt, yt = self._tensors(X, y)
        self.model.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(Xt), yt)
        loss.backward()
        linear = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return float(loss.detach()), [m.weight.grad for m in linear], [m.bias.grad for m in linear]


class JaxPeer:
    """JAX: one jitted call per epoch, a ``jax.lax.scan`` over the minibatches.

    Each epoch draws its order with NumPy (the peer's ``RandomState``), splits it into the
    full batches, shape ``(n_batches, batch)``, which the scan walks with the parameters
    as its carry, and a shorter last batch when the batch size does not divide the
    samples, one more jitted step of its own static shape.  The update is plain SGD,
    ``p - lr * g``, with ``g`` from ``jax.grad`` of the loss computed from logits.

    XLA compiles per shape: :meth:`warm_up` compiles and runs, on the data it is given,
    everything ``fit_epochs``, ``predict`` and ``loss_and_gradients`` will call.  The data
    is copied into JAX arrays once per data set (remembered by identity), as a user keeps
    their arrays on the device.  float64 workloads need ``jax_enable_x64``, which this peer
    switches on for the whole process.  JAX sizes its own thread pool.
    """

    def __init__(self, w, coefs, intercepts, dtype):
        import jax
        import jax.numpy as jnp

        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp, self.w, self.dtype = jax, jnp, w, dtype
        self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(coefs, intercepts)]
        self.rng = np.random.RandomState(SEED)
        self._data = None
        softmax = w.output == "softmax"

        def logits(params, X):
            for W, b in params[:-1]:
                X = jax.nn.relu(X @ W + b)
            W, b = params[-1]
            return X @ W + b

        def loss(params, X, y):
            z = logits(params, X)
            if softmax:
                picked = jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], axis=1)
                return -jnp.mean(picked)
            return jnp.mean(jax.nn.softplus(z[:, 0]) - y * z[:, 0])

        def step(params, X, y, rows, lr):
            grads = jax.grad(loss)(params, X[rows], y[rows])
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

        def epoch(params, X, y, batches, lr):
            def body(carry, rows):
                return step(carry, X, y, rows, lr), None

            return jax.lax.scan(body, params, batches)[0]

        self._logits = jax.jit(logits)
        self._step = jax.jit(step)
        self._epoch = jax.jit(epoch)
        self._value_and_grad = jax.jit(jax.value_and_grad(loss))

    def _arrays(self, X, y):
        """``(X, y)`` as JAX arrays, converted once per data set."""
        if self._data is not None and self._data[0] is X and self._data[1] is y:
            return self._data[2]
        y_np = np.asarray(y)
        y_np = y_np.astype(np.int32) if self.w.output == "softmax" else y_np.astype(self.dtype)
        arrays = self.jnp.asarray(X), self.jnp.asarray(y_np)
        self._data = (X, y, arrays)
        return arrays

    def _rate(self, learning_rate):
        return np.asarray(learning_rate or self.w.learning_rate, dtype=self.dtype)

    def _run(self, Xj, yj, order, lr):
        """One epoch visiting the rows in ``order``: the scan over the full batches, then
        the shorter last batch if there is one."""
        b = min(self.w.batch_size, len(order))
        full = len(order) // b * b
        params = self._epoch(self.params, Xj, yj, order[:full].reshape(-1, b), lr)
        if full < len(order):
            params = self._step(params, Xj, yj, order[full:], lr)
        self.params = params

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        _sgd_only("jax", optimizer)
        Xj, yj = self._arrays(X, y)
        # A learning rate of zero leaves the weights as they are: compile and run the
        # epoch's programs for this data's shapes without training.
        self._run(Xj, yj, np.arange(len(X), dtype=np.int32), np.zeros((), self.dtype))
        self.jax.block_until_ready(self.params)
        self.predict(X)
        self.loss_and_gradients(X, y)

    def train_in_order(self, X, y, order, learning_rate=None):
        """One epoch of SGD visiting the rows of ``X`` in ``order`` (as :class:`NumpyPeer`)."""
        self._run(*self._arrays(X, y), np.asarray(order, dtype=np.int32),
                  self._rate(learning_rate))
        self.jax.block_until_ready(self.params)

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        _sgd_only("jax", optimizer)
        Xj, yj = self._arrays(X, y)
        lr = self._rate(learning_rate)
        for _ in range(epochs):
            self._run(Xj, yj, self.rng.permutation(len(X)).astype(np.int32), lr)
        self.jax.block_until_ready(self.params)

    def predict(self, X):
        cached = self._data is not None and self._data[0] is X
        Xj = self._data[2][0] if cached else self.jnp.asarray(X)
        z = np.asarray(self._logits(self.params, Xj))
        return z.argmax(axis=1) if self.w.output == "softmax" else (z[:, 0] > 0).astype(int)

    def loss_and_gradients(self, X, y):
        value, grads = self._value_and_grad(self.params, *self._arrays(X, y))
        self.jax.block_until_ready(grads)
        return float(value), [g[0] for g in grads], [g[1] for g in grads]


#: library name: peer class
PEERS = {"fastbp": FastbpPeer, "numpy": NumpyPeer, "sklearn": SklearnPeer, "torch": TorchPeer,
         "jax": JaxPeer}
