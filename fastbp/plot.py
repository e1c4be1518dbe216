"""Plots of a trained network: its loss curve and, for two input features, its decision boundary.

Needs matplotlib (``pip install 'fastbp[plot]'``), imported only when a function is called.
The functions draw on the Axes given, or on a new figure from ``matplotlib.pyplot``; they
never choose a backend (set ``MPLBACKEND=Agg`` or call ``matplotlib.use("Agg")`` to draw
without a display).
"""
import numpy as np

_NEEDS_MATPLOTLIB = "fastbp.plot needs matplotlib: pip install 'fastbp[plot]'"


def _matplotlib():
    """matplotlib itself (no pyplot, no backend chosen), or the ImportError naming the extra."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_NEEDS_MATPLOTLIB) from exc
    return matplotlib


def _pyplot():
    _matplotlib()
    import matplotlib.pyplot as plt

    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax


def _network(net, what, compat=True):
    """The ``fastbp.Network`` behind ``net`` (a Network, or with ``compat`` the article's
    NeuralNetwork, which wraps one)."""
    from .compat import NeuralNetwork
    from .network import Network

    if compat and isinstance(net, NeuralNetwork):
        net = net.net
    if not isinstance(net, Network):
        raise TypeError(f"{what} needs a fastbp.Network, got {type(net).__name__}")
    return net


def loss_curve(net, ax=None):
    """Plot the training loss of every epoch, and the validation score when there is one.

    Parameters
    ----------
    net : fastbp.Network
        A fitted network; its ``loss_curve_`` is plotted against the (1-based) epoch.
        When ``validation_scores_`` is not empty it is plotted on a second y axis
        (``ax.twinx()``) sharing the epochs.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made with ``plt.subplots()``.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes holding the loss line (the validation line, if any, is on its twin).

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    TypeError
        When ``net`` is not a ``fastbp.Network``.
    ValueError
        When ``net`` has not been fitted (its ``loss_curve_`` is empty).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from fastbp.plot import loss_curve
    >>> ax = loss_curve(net)                          # doctest: +SKIP
    >>> ax.figure.savefig("loss.png")                 # doctest: +SKIP
    """
    # The article's NeuralNetwork records no losses: it is not accepted here.
    net = _network(net, "loss_curve", compat=False)
    losses = np.asarray(net.loss_curve_, dtype=np.float64)
    if losses.size == 0:
        raise ValueError(f"{net!r} has no loss curve: fit it first")
    ax = _axes(ax)
    epochs = np.arange(1, losses.size + 1)
    lines = ax.plot(epochs, losses, color="C0", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    scores = np.asarray(net.validation_scores_, dtype=np.float64)
    if scores.size:
        twin = ax.twinx()
        # The scores are those of the last len(scores) epochs (usually all of them).
        lines += twin.plot(np.arange(losses.size - scores.size + 1, losses.size + 1), scores,
                           color="C1", label="validation score")
        twin.set_ylabel("validation score", color="C1")
        ax.set_ylabel("training loss", color="C0")
        ax.set_title("Training loss and validation score")
        # On the twin, drawn above both lines; a falling loss and a rising score usually
        # leave the middle of the right edge free.
        twin.legend(lines, [line.get_label() for line in lines], loc="center right",
                    framealpha=0.9)
    else:
        ax.legend(loc="best")
    return ax


def gradient_norms(net, ax=None):
    """Plot each layer's weight-gradient norm per epoch on a log scale.

    A first layer whose norm lies orders of magnitude below the last layer's is barely
    learning (vanishing gradients); norms that climb epoch after epoch warn of exploding
    ones.

    Parameters
    ----------
    net : fastbp.Network
        A fitted network; its ``gradient_norms_`` (epochs x layers) are plotted, one line
        per dense layer, layer 1 being the first.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made with ``plt.subplots()``.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    TypeError
        When ``net`` is not a ``fastbp.Network``.
    ValueError
        When ``net`` has recorded no gradient norms (it has not been fitted).
    """
    net = _network(net, "gradient_norms", compat=False)
    norms = net.gradient_norms_
    if norms.shape[0] == 0:
        raise ValueError(f"{net!r} has no gradient norms: fit it first")
    ax = _axes(ax)
    epochs = np.arange(1, norms.shape[0] + 1)
    cmap = _matplotlib().colormaps["viridis"]
    n_layers = norms.shape[1]
    for l in range(n_layers):
        # Zero norms (a dead layer) have no place on a log axis: they are left as gaps.
        values = np.where(norms[:, l] > 0, norms[:, l], np.nan)
        ax.plot(epochs, values, color=cmap(l / max(n_layers - 1, 1)), label=f"layer {l + 1}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weight-gradient norm (mean over the epoch's batches)")
    ax.set_title("Gradient norm per layer")
    ax.legend(loc="best", ncol=max(1, n_layers // 8), fontsize="small")
    return ax


def _margin(lo, hi):
    span = hi - lo
    return 0.1 * span if span > 0 else 0.5


def decision_boundary(net, X, y, ax=None, resolution=200):
    """Plot a classifier's predictions over the plane of its two input features, with data.

    Parameters
    ----------
    net : fastbp.Network
        A network with exactly 2 inputs and a ``sigmoid`` or ``softmax`` output
        (the article's ``fastbp.NeuralNetwork(2, h, 1)`` is accepted too).  With one
        sigmoid output the filled contour shows P(class 1), from 0 to 1, with the 0.5
        boundary drawn as a line; with softmax it shows the predicted class.
    X : array-like of shape (n_samples, 2)
        Points to draw; the grid spans them with a 10% margin on each side.
    y : array-like of shape (n_samples,) or None
        Labels (0/1, or class indices) that colour the points; None draws them in black.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; by default a new figure is made with ``plt.subplots()``.
    resolution : int, default=200
        Grid points along each axis (at least 2).

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes, holding the filled contour and a scatter of ``X``.

    Raises
    ------
    ImportError
        When matplotlib is not installed.
    TypeError
        When ``net`` is not a ``fastbp.Network``.
    ValueError
        When the network does not have 2 inputs, its output is ``identity``, it has
        several sigmoid outputs (multilabel), ``X`` does not have 2 columns or holds
        non-finite values, ``y`` does not have one label per row of ``X``, or
        ``resolution`` is below 2.

    Examples
    --------
    >>> from fastbp.plot import decision_boundary
    >>> ax = decision_boundary(net, X_test, y_test)   # doctest: +SKIP
    >>> ax.figure.savefig("boundary.png")             # doctest: +SKIP
    """
    net = _network(net, "decision_boundary")
    if net.n_features_in_ != 2:
        raise ValueError(f"decision_boundary needs a network with 2 inputs, got "
                         f"{net.n_features_in_} ({net!r})")
    if net.output == "identity":
        raise ValueError("decision_boundary needs output='sigmoid' or 'softmax'; this network's "
                         "output is 'identity'")
    if net.output == "sigmoid" and net.n_outputs_ != 1:
        raise ValueError(f"decision_boundary needs a single sigmoid output (or softmax), got "
                         f"{net.n_outputs_} sigmoid outputs (multilabel)")
    if isinstance(resolution, (bool, np.bool_)) or not isinstance(resolution, (int, np.integer)) \
            or resolution < 2:
        raise ValueError(f"resolution must be an int of at least 2, got {resolution!r}")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary needs X with 2 columns (n_samples, 2), got shape "
                         f"{X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X has no rows")
    try:
        X = X.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be numeric, got dtype {X.dtype}") from exc
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinity")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
        if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
            y = np.unique(y, return_inverse=True)[1]

    plt = _pyplot()
    ax = _axes(ax)
    lo, hi = X.min(axis=0), X.max(axis=0)
    m = np.array([_margin(lo[j], hi[j]) for j in range(2)])
    g0 = np.linspace(lo[0] - m[0], hi[0] + m[0], resolution)
    g1 = np.linspace(lo[1] - m[1], hi[1] + m[1], resolution)
    xx, yy = np.meshgrid(g0, g1)
    out = net.forward(np.column_stack([xx.ravel(), yy.ravel()]))

    if net.output == "sigmoid":
        cmap = plt.get_cmap("RdBu_r")
        zz = out[:, 0].reshape(xx.shape)
        cs = ax.contourf(xx, yy, zz, levels=np.linspace(0.0, 1.0, 11), cmap=cmap, alpha=0.45)
        ax.contour(xx, yy, zz, levels=[0.5], colors="k", linewidths=1.0)
        ax.figure.colorbar(cs, ax=ax, label="P(class 1)")
        vmin, vmax, title = 0.0, 1.0, "Decision boundary: P(class 1)"
    else:
        k = net.n_outputs_
        from matplotlib.colors import ListedColormap

        if k <= 20:  # the first k colours of a qualitative map, one per class
            cmap = ListedColormap(plt.get_cmap("tab10" if k <= 10 else "tab20").colors[:k])
        else:
            cmap = plt.get_cmap("viridis", k)
        zz = out.argmax(axis=1).reshape(xx.shape)
        cs = ax.contourf(xx, yy, zz, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.35)
        cbar = ax.figure.colorbar(cs, ax=ax, label="predicted class")
        cbar.set_ticks(np.arange(k))
        vmin, vmax, title = -0.5, k - 0.5, "Decision regions: predicted class"

    if y is None:
        ax.scatter(X[:, 0], X[:, 1], c="k", s=12, edgecolors="w", linewidths=0.4)
    else:
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=vmin, vmax=vmax, s=14,
                   edgecolors="k", linewidths=0.4)
    ax.set_xlim(g0[0], g0[-1])
    ax.set_ylim(g1[0], g1[-1])
    ax.set_xlabel("feature 0")
    ax.set_ylabel("feature 1")
    ax.set_title(title)
    return ax
