"""The seed article's example, trained by fastbp and by the plain NumPy reference side by side."""
import time

import numpy as np

from . import reference
from .compat import NeuralNetwork
from .network import Network


def moons_split():
    """The article's data: make_moons(1000, noise 0.1, seed 42), 80/20 split with seed 42."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    X, y = make_moons(n_samples=1000, noise=0.1, random_state=42)
    return train_test_split(X, y, test_size=0.2, random_state=42)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _accuracy(y, pred):
    return float(np.mean(np.ravel(pred) == y))


#: The demo's Network: two hidden ReLU layers, sigmoid output, plain SGD.
NETWORK_LAYERS = [2, 16, 16, 1]
NETWORK_FIT = dict(epochs=200, batch_size=32, learning_rate=0.1)


def run_seed_example(X_train, y_train, X_test, y_test, seed=0):
    """The article's NeuralNetwork(2, 10, 1), lr 0.1, 1000 full-batch epochs: fastbp and NumPy."""
    np.random.seed(seed)
    fast = NeuralNetwork(2, 10, 1)
    np.random.seed(seed)
    slow = reference.SeedNetwork(2, 10, 1)
    t_fast = _timed(lambda: fast.train(X_train, y_train, learning_rate=0.1, epochs=1000))
    t_slow = _timed(lambda: slow.train(X_train, y_train, learning_rate=0.1, epochs=1000))
    return dict(
        name="NeuralNetwork(2, 10, 1): article settings, lr 0.1, 1000 full-batch epochs",
        train=_accuracy(y_train, fast.predict(X_train)), test=_accuracy(y_test, fast.predict(X_test)),
        ref_test=_accuracy(y_test, slow.predict(X_test)), t_fast=t_fast, t_ref=t_slow)


def run_network_example(X_train, y_train, X_test, y_test, seed=0):
    """A deeper fastbp.Network, and the NumPy reference doing the same steps from the same start."""
    net = Network(NETWORK_LAYERS, activation="relu", output="sigmoid", random_state=seed)
    coefs = [W.copy() for W in net.coefs_]
    intercepts = [b.copy() for b in net.intercepts_]
    t_fast = _timed(lambda: net.fit(X_train, y_train, **NETWORK_FIT))

    Xr = X_train.astype(net.dtype)
    Yr = y_train.astype(net.dtype).reshape(-1, 1)
    rng = np.random.RandomState(seed)

    def ref_fit():
        for _ in range(NETWORK_FIT["epochs"]):
            reference.sgd_epoch(coefs, intercepts, Xr, Yr, "relu", "sigmoid",
                                NETWORK_FIT["learning_rate"], NETWORK_FIT["batch_size"],
                                rng.permutation(len(Xr)))

    t_slow = _timed(ref_fit)
    ref_pred = reference.predict(coefs, intercepts, X_test.astype(net.dtype), "relu", "sigmoid") > 0.5
    return dict(
        name=(f"Network({NETWORK_LAYERS}, relu, sigmoid out): sgd lr {NETWORK_FIT['learning_rate']}, "
              f"batch {NETWORK_FIT['batch_size']}, {NETWORK_FIT['epochs']} epochs, float32"),
        train=_accuracy(y_train, net.predict(X_train)), test=_accuracy(y_test, net.predict(X_test)),
        ref_test=_accuracy(y_test, ref_pred), t_fast=t_fast, t_ref=t_slow, model=net)


def save_plot(net, X, y, path):
    """Write a PNG of ``net``'s decision boundary over ``(X, y)`` beside its loss curve."""
    from matplotlib.figure import Figure  # no pyplot: no backend or display needed

    from .plot import decision_boundary, loss_curve

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_boundary, ax_loss = fig.subplots(1, 2)
    decision_boundary(net, X, y, ax=ax_boundary)
    ax_boundary.set_title(f"Network({list(net.layers)}, {net.activation}): P(class 1), "
                          f"moons test set")
    loss_curve(net, ax=ax_loss)
    fig.savefig(path, dpi=100, format="png")
    return path


def warm_up():
    """Compile (or load from the cache) the kernels the demo uses; returns the seconds it took.
    The networks are the demo's own: a fit compiles the kernels for what its network uses
    (its activations, and whether its widths reach the tiles and BLAS, see
    ``fastbp._variants``), so a narrower network would leave the timed fit to compile; and a
    fit of several epochs draws their shuffles in a kernel of its own."""
    X = np.zeros((4, 2))
    y = np.array([0, 1, 0, 1])

    def go():
        NeuralNetwork(2, 10, 1).train(X, y, learning_rate=0.1, epochs=1)
        net = Network(NETWORK_LAYERS, activation="relu", output="sigmoid", random_state=0)
        net.fit(X, y, epochs=2, batch_size=2)  # (two epochs a call: the shuffles' kernel)
        net.predict(X)

    return _timed(go)


def main(plot=None):
    """Run the demo and print its table; with ``plot`` (a path), also write a PNG of the
    fastbp.Network's decision boundary and loss curve there."""
    if plot is not None:
        from .plot import _matplotlib

        _matplotlib()  # fail before training when matplotlib is missing
    X_train, X_test, y_train, y_test = moons_split()
    print("fastbp demo: the seed article's example")
    print("data: make_moons(n_samples=1000, noise=0.1, random_state=42), 80/20 split (random_state=42)")
    print(f"kernels compiled or loaded from cache in {warm_up():.2f} s (not counted below)\n")
    rows = [run_seed_example(X_train, y_train, X_test, y_test),
            run_network_example(X_train, y_train, X_test, y_test)]
    for r in rows:
        print(r["name"])
        print(f"  fastbp:          train accuracy {r['train']:.3f}   test accuracy {r['test']:.3f}   "
              f"time {r['t_fast'] * 1e3:8.1f} ms")
        print(f"  numpy reference: {'':>18}     test accuracy {r['ref_test']:.3f}   "
              f"time {r['t_ref'] * 1e3:8.1f} ms   ({r['t_ref'] / r['t_fast']:.1f}x slower)")
    if plot is not None:
        print(f"\nplot written to {save_plot(rows[1]['model'], X_test, y_test, plot)}")
    return rows
