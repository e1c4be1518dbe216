"""The same network trained the same way by fastbp and by its peers.

Each peer starts from the same initial weights (by default those of
``fastbp.Network(layers, random_state=0)``), trains with plain minibatch SGD on
shuffled batches, and exposes the three things the suites time:

``fit_epochs(X, y, epochs)``
    ``epochs`` epochs of minibatch training, continuing from the current weights.
``predict(X)``
    Class labels.
``loss_and_gradients(X, y)``
    The mean loss over ``(X, y)`` and its gradient with respect to every parameter.

and ``warm_up(X, y, optimizer)``, which a benchmark's ``setup`` calls so that no
compilation (Numba's, XLA's) or first-call allocation lands in a timed sample.

Peers: ``fastbp``; ``numpy`` (``fastbp.reference``, always there); ``sklearn``
(``MLPClassifier``, which has no public gradient); ``torch`` and ``jax`` when installed
(``pip install -e ".[peers]"``).  A peer that is not installed raises
``NotImplementedError``, which asv reports as a skipped benchmark.
"""
import functools
import warnings

import numpy as np

from .common import SEED, get_data, require, workload


def initial_weights(w, dtype=None, seed=SEED):
    """Copies of the weights and biases of ``fastbp.Network(w.layers, random_state=seed)``."""
    coefs, intercepts = _initial_weights(w.layers, w.output, np.dtype(dtype or w.dtype).name, seed)
    return [W.copy() for W in coefs], [b.copy() for b in intercepts]


@functools.lru_cache(maxsize=4)
def _initial_weights(layers, output, dtype, seed):
    import fastbp

    net = fastbp.Network(list(layers), activation="relu", output=output, dtype=dtype,
                         random_state=seed)
    return [W.copy() for W in net.coefs_], [b.copy() for b in net.intercepts_]


def make_peer(library, w, dtype=None, init=None):
    """A peer of ``library`` for workload ``w`` (in ``dtype``, default the workload's),
    starting from ``init = (coefs, intercepts)`` or from :func:`initial_weights`."""
    require(library)
    dtype = np.dtype(dtype or w.dtype)
    coefs, intercepts = init if init is not None else initial_weights(w, dtype)
    coefs = [np.array(W, dtype=dtype) for W in coefs]
    intercepts = [np.array(b, dtype=dtype).ravel() for b in intercepts]
    return _PEERS[library](w, coefs, intercepts, dtype)


def warm_peer(name, library, dtype=None):
    """Workload ``name``, its data and a peer training on it, compiled and warmed up, so that
    no timing includes compilation: ``(w, X, y, peer)``."""
    w = workload(name)
    X, y = get_data(w, dtype)
    peer = make_peer(library, w, dtype)
    peer.warm_up(X, y)
    return w, X, y, peer


class FastbpPeer:
    def __init__(self, w, coefs, intercepts, dtype):
        import fastbp

        self.w = w
        self.net = fastbp.Network(list(w.layers), activation="relu", output=w.output, dtype=dtype,
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
        if optimizer != "sgd":
            raise NotImplementedError("the numpy reference trains with plain SGD only")

    def _targets(self, y):
        from fastbp import reference

        if self.w.output == "softmax":
            return reference.one_hot(y, self.w.layers[-1]).astype(self.dtype)
        return np.asarray(y, dtype=self.dtype).reshape(len(y), -1)

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        from fastbp import reference

        if optimizer != "sgd":
            raise NotImplementedError("the numpy reference trains with plain SGD only")
        Y = self._targets(y)
        for _ in range(epochs):
            reference.sgd_epoch(self.coefs, self.intercepts, X, Y, "relu", self.w.output,
                                learning_rate or self.w.learning_rate, self.w.batch_size,
                                self.rng.permutation(len(X)))

    def predict(self, X):
        from fastbp import reference

        out = reference.predict(self.coefs, self.intercepts, X, "relu", self.w.output)
        return out.argmax(axis=1) if self.w.output == "softmax" else (out[:, 0] > 0.5).astype(int)

    def loss_and_gradients(self, X, y):
        from fastbp import reference

        return reference.loss_and_gradients(self.coefs, self.intercepts, X, self._targets(y),
                                            "relu", self.w.output)


class SklearnPeer:
    """scikit-learn's ``MLPClassifier`` with the same settings (alpha 0, no momentum).

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
    """PyTorch: ``nn.Sequential`` of ``Linear`` and ``ReLU``, ``optim.SGD``, the loss from
    logits (``CrossEntropyLoss`` or ``BCEWithLogitsLoss``)."""

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

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        if optimizer != "sgd":
            raise NotImplementedError("the torch peer trains with plain SGD only")
        if self.optimizer is None:
            self.optimizer = self.torch.optim.SGD(self.model.parameters(),
                                                  lr=learning_rate or self.w.learning_rate)
            rows = min(len(X), self.w.batch_size)
            self._epoch(*self._tensors(X[:rows], y[:rows]))
            self.predict(X[:2])

    def _epoch(self, Xt, yt):
        n, b = len(Xt), self.w.batch_size
        order = self.torch.randperm(n, generator=self.generator)
        for start in range(0, n, b):
            rows = order[start:start + b]
            self.optimizer.zero_grad(set_to_none=True)
            self.loss_fn(self.model(Xt[rows]), yt[rows]).backward()
            self.optimizer.step()

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        self.warm_up(X, y, optimizer, learning_rate)
        Xt, yt = self._tensors(X, y)
        for _ in range(epochs):
            self._epoch(Xt, yt)

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
    """JAX: a jitted SGD step (``value_and_grad`` of the loss from logits) per minibatch.

    float64 workloads need ``jax_enable_x64``, which this peer switches on.
    """

    def __init__(self, w, coefs, intercepts, dtype):
        import jax
        import jax.numpy as jnp

        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp, self.w, self.dtype = jax, jnp, w, dtype
        self.params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(coefs, intercepts)]
        self.rng = np.random.RandomState(SEED)
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

        self._logits = jax.jit(logits)
        self._step = jax.jit(step)
        self._value_and_grad = jax.jit(jax.value_and_grad(loss))

    def _arrays(self, X, y):
        jnp = self.jnp
        y = np.asarray(y)
        y = y.astype(np.int32) if self.w.output == "softmax" else y.astype(self.dtype)
        return jnp.asarray(X), jnp.asarray(y)

    def warm_up(self, X, y, optimizer="sgd", learning_rate=None):
        # XLA compiles per shape: the full arrays, and every batch length an epoch uses.
        if optimizer != "sgd":
            raise NotImplementedError("the jax peer trains with plain SGD only")
        Xj, yj = self._arrays(X, y)
        lr = self.dtype.type(learning_rate or self.w.learning_rate)
        n, b = len(X), self.w.batch_size
        for length in {min(b, n), n % b} - {0}:
            self.params = self._step(self.params, Xj, yj, np.arange(length, dtype=np.int32), lr)
        self.predict(X)
        self.loss_and_gradients(X, y)

    def fit_epochs(self, X, y, epochs, optimizer="sgd", learning_rate=None):
        if optimizer != "sgd":
            raise NotImplementedError("the jax peer trains with plain SGD only")
        Xj, yj = self._arrays(X, y)
        lr = self.dtype.type(learning_rate or self.w.learning_rate)
        n, b = len(X), self.w.batch_size
        for _ in range(epochs):
            order = self.rng.permutation(n).astype(np.int32)
            for start in range(0, n, b):
                self.params = self._step(self.params, Xj, yj, order[start:start + b], lr)
        self.jax.block_until_ready(self.params)

    def predict(self, X):
        z = np.asarray(self._logits(self.params, self.jnp.asarray(X)))
        return z.argmax(axis=1) if self.w.output == "softmax" else (z[:, 0] > 0).astype(int)

    def loss_and_gradients(self, X, y):
        value, grads = self._value_and_grad(self.params, *self._arrays(X, y))
        self.jax.block_until_ready(grads)
        return float(value), [g[0] for g in grads], [g[1] for g in grads]


_PEERS = {"fastbp": FastbpPeer, "numpy": NumpyPeer, "sklearn": SklearnPeer, "torch": TorchPeer,
          "jax": JaxPeer}
