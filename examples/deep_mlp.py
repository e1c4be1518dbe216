"""Vanishing gradients in a deep MLP, and the remedies: residual connections and batch norm.

A network of 20 hidden tanh layers of width 64 learns the digits data set (8x8 images,
scaled) for a fixed budget, three ways:

- plain, with the seed article's initialisation (weights normal with standard deviation
  0.01): every layer shrinks the signal, the first layer's gradient is vanishingly small
  and the network stays at chance;
- the same network and initialisation with ``residual=True, batch_norm=True``;
- plain again with Glorot initialisation, for comparison: scaled for tanh, it keeps
  this depth trainable at this learning rate on its own (at 0.003 its units saturate
  and it fails as well; the normalized residual network does not).

Run ``python examples/deep_mlp.py --plot deep_mlp.png`` to also draw each layer's
gradient norm per epoch (needs matplotlib).
"""
import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastbp

DEPTH, WIDTH = 20, 64

VARIANTS = {
    "plain": dict(init="normal", init_scale=0.01),
    "residual + batch_norm": dict(init="normal", init_scale=0.01, residual=True,
                                  batch_norm=True),
    "plain, Glorot init": dict(init="glorot"),
}


def digits_split(seed=0):
    """Scaled digits, 75% to train and 25% to test, stratified."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def train(variant, X_train, y_train, epochs=50, seed=0):
    """A fitted 20 x 64 tanh network of the named variant (Adam, lr 0.001, batches of 32)."""
    net = fastbp.Network([X_train.shape[1]] + [WIDTH] * DEPTH + [10], activation="tanh",
                         output="softmax", random_state=seed, **VARIANTS[variant])
    net.fit(X_train, y_train, epochs=epochs, batch_size=32, optimizer="adam",
            learning_rate=0.001)
    return net


def run(epochs=50, seed=0):
    """Train every variant; returns ``{variant: (network, test accuracy, seconds)}``."""
    X_train, X_test, y_train, y_test = digits_split(seed)
    results = {}
    for variant in VARIANTS:
        t0 = time.perf_counter()
        net = train(variant, X_train, y_train, epochs, seed)
        results[variant] = (net, net.score(X_test, y_test), time.perf_counter() - t0)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="save the gradient-norm plot there")
    args = parser.parse_args()
    results = run(args.epochs, args.seed)
    print(f"{DEPTH} hidden tanh layers of {WIDTH}, digits, {args.epochs} epochs of Adam")
    print(f"{'variant':<24} {'test acc':>8} {'|g1|/|g21| first':>17} {'last epoch':>11} "
          f"{'time':>7}")
    for variant, (net, acc, seconds) in results.items():
        g = net.gradient_norms_
        first, last = g[0, 0] / g[0, -1], g[-1, 0] / g[-1, -1]
        print(f"{variant:<24} {acc:>8.3f} {first:>17.1e} {last:>11.1e} {seconds:>6.1f}s")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from fastbp import plot

        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, variant in zip(axes, ("plain", "residual + batch_norm")):
            net, acc, _ = results[variant]
            plot.gradient_norms(net, ax=ax)
            ax.set_title(f"{variant} (test accuracy {acc:.2f})")
            ax.set_ylabel("weight-gradient norm")
            if ax is not axes[0]:
                ax.set_ylabel("")
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
        fig.suptitle("Weight-gradient norm of each of the 21 layers, per epoch "
                     "(darker: closer to the input)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=90)
        print(f"plot saved to {args.plot}")


if __name__ == "__main__":
    main()
