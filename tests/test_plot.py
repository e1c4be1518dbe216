"""fastbp.plot and the demo's --plot, drawn with the Agg backend."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402

from fastbp import Network, NeuralNetwork, demo  # noqa: E402
from fastbp import __main__ as cli  # noqa: E402
from fastbp.plot import decision_boundary, gradient_norms, loss_curve  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def blobs(n=60, n_classes=2, seed=0):
    """Separable 2-D clusters: X of shape (n, 2), integer labels."""
    rng = np.random.RandomState(seed)
    y = np.arange(n) % n_classes
    centres = np.array([[0.0, 0.0], [3.0, 3.0], [0.0, 3.0], [3.0, 0.0]])[:n_classes]
    X = centres[y] + 0.4 * rng.standard_normal((n, 2))
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    net = Network([2, 4, 1], output="sigmoid", random_state=0)
    net.fit(X, y, epochs=5, batch_size=16, learning_rate=0.1)
    return net, X, y


def _scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _contours(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


# -- loss_curve --------------------------------------------------------------------------------


def test_loss_curve_plots_the_losses_per_epoch(fitted):
    net = fitted[0]
    ax = loss_curve(net)
    assert isinstance(ax, Axes)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), net.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(net.loss_curve_) + 1))
    assert ax.get_xlabel() == "epoch"
    assert "loss" in ax.get_ylabel()
    assert ax.get_title()
    assert ax.get_legend() is not None
    assert len(ax.figure.axes) == 1  # no validation scores: no twin axis


def test_loss_curve_puts_validation_scores_on_a_twin_axis():
    X, y = blobs()
    net = Network([2, 4, 1], output="sigmoid", random_state=0)
    net.fit(X[:40], y[:40], epochs=4, batch_size=16, learning_rate=0.1,
            validation_data=(X[40:], y[40:]))
    ax = loss_curve(net)
    twins = [a for a in ax.figure.axes if a is not ax]
    assert len(twins) == 1
    (score_line,) = twins[0].get_lines()
    np.testing.assert_array_equal(score_line.get_ydata(), net.validation_scores_)
    np.testing.assert_array_equal(score_line.get_xdata(), [1, 2, 3, 4])
    assert "validation" in twins[0].get_ylabel()
    (legend,) = [a.get_legend() for a in ax.figure.axes if a.get_legend() is not None]
    assert [t.get_text() for t in legend.get_texts()] == ["training loss", "validation score"]


def test_loss_curve_draws_on_the_axes_given(fitted):
    fig, (ax0, ax1) = plt.subplots(1, 2)
    assert loss_curve(fitted[0], ax=ax1) is ax1
    assert not ax0.get_lines() and len(ax1.get_lines()) == 1


def test_loss_curve_of_an_unfitted_network_raises():
    with pytest.raises(ValueError, match="has no loss curve: fit it first"):
        loss_curve(Network([2, 3, 1]))


def test_loss_curve_needs_a_network():
    with pytest.raises(TypeError, match="fastbp.Network"):
        loss_curve([0.5, 0.4])
    with pytest.raises(TypeError, match="fastbp.Network"):
        loss_curve(NeuralNetwork(2, 3, 1))  # records no losses


# -- decision_boundary -------------------------------------------------------------------------


def test_decision_boundary_sigmoid(fitted):
    net, X, y = fitted
    ax = decision_boundary(net, X, y, resolution=30)
    assert isinstance(ax, Axes)
    filled = [c for c in _contours(ax) if c.filled]
    assert len(filled) == 1
    assert filled[0].levels[0] == 0.0 and filled[0].levels[-1] == 1.0  # P(class 1)
    (points,) = _scatters(ax)
    assert len(points.get_offsets()) == len(X)
    np.testing.assert_allclose(points.get_offsets(), X)
    np.testing.assert_array_equal(points.get_array(), y)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    assert x0 < X[:, 0].min() and x1 > X[:, 0].max()
    assert y0 < X[:, 1].min() and y1 > X[:, 1].max()


def test_decision_boundary_softmax_shows_the_predicted_class():
    X, y = blobs(n=90, n_classes=3)
    net = Network([2, 8, 3], output="softmax", random_state=0)
    net.fit(X, y, epochs=30, batch_size=16, learning_rate=0.1)
    fig, ax = plt.subplots()
    assert decision_boundary(net, X, y, ax=ax, resolution=25) is ax
    (filled,) = _contours(ax)
    np.testing.assert_array_equal(filled.levels, [-0.5, 0.5, 1.5, 2.5])
    (points,) = _scatters(ax)
    assert len(points.get_offsets()) == len(X)


def test_decision_boundary_accepts_the_articles_network_and_no_labels():
    X, _ = blobs()
    ax = decision_boundary(NeuralNetwork(2, 3, 1), X, None, resolution=10)
    (points,) = _scatters(ax)
    assert len(points.get_offsets()) == len(X)


@pytest.mark.parametrize("make_net, X, match", [
    (lambda: Network([2, 3, 1], output="sigmoid"), np.zeros((5, 3)), "2 columns"),
    (lambda: Network([2, 3, 1], output="sigmoid"), np.zeros(5), "2 columns"),
    (lambda: Network([3, 3, 1], output="sigmoid"), np.zeros((5, 3)), "2 inputs"),
    (lambda: Network([2, 3, 1], output="identity"), np.zeros((5, 2)), "'identity'"),
    (lambda: Network([2, 3, 2], output="sigmoid"), np.zeros((5, 2)), "multilabel"),
    (lambda: Network([2, 3, 1], output="sigmoid"), np.full((5, 2), np.nan), "NaN"),
])
def test_decision_boundary_bad_input(make_net, X, match):
    with pytest.raises(ValueError, match=match):
        decision_boundary(make_net(), X, np.zeros(len(X)))


def test_decision_boundary_bad_labels_and_resolution(fitted):
    net, X, y = fitted
    with pytest.raises(ValueError, match="y must have shape"):
        decision_boundary(net, X, y[:-1])
    with pytest.raises(ValueError, match="resolution"):
        decision_boundary(net, X, y, resolution=1)


def test_missing_matplotlib_names_the_extra(fitted, monkeypatch):
    net, X, y = fitted
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    message = r"fastbp.plot needs matplotlib: pip install 'fastbp\[plot\]'"
    with pytest.raises(ImportError, match=message):
        loss_curve(net)
    with pytest.raises(ImportError, match=message):
        decision_boundary(net, X, y)


# -- the demo's --plot -------------------------------------------------------------------------


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000


def test_demo_save_plot_writes_a_png(fitted, tmp_path):
    net, X, y = fitted
    out = tmp_path / "b.png"
    assert demo.save_plot(net, X, y, out) == out
    _assert_png(out)


def test_cli_rejects_a_plot_path_in_a_missing_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--plot", str(tmp_path / "missing" / "b.png")])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--plot", "FOLDER"], "is a folder; give a file name in it"),
    (["demo", "--plot", ""], "the path is empty"),
    (["--plot", "b.png", "compare"], "--plot before 'compare' is the demo's"),
    (["--plot", "b.png", "dashboard"], "--plot before 'dashboard' is the demo's"),
    (["compare", "--json", "FOLDER"], "--json: .* is a folder"),
    (["compare", "--plot", "FOLDER"], "--plot: .* is a folder"),
])
def test_cli_rejects_output_paths_it_could_not_write_before_any_work(argv, message, tmp_path,
                                                                    capsys, monkeypatch):
    monkeypatch.setattr(demo, "main", lambda plot=None: pytest.fail("the demo ran"))
    with pytest.raises(SystemExit) as exc:
        cli.main([str(tmp_path) if a == "FOLDER" else a for a in argv])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("argv, plot", [
    ([], None),
    (["demo"], None),
    (["--plot", "b.png"], "b.png"),
    (["demo", "--plot", "b.png"], "b.png"),
    (["--plot", "b.png", "demo"], "b.png"),
])
def test_cli_passes_the_plot_path_to_the_demo(argv, plot, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "main", lambda plot=None: calls.append(plot))
    assert cli.main(argv) == 0
    assert calls == [plot]


@pytest.mark.slow
def test_python_m_fastbp_plot_writes_a_png(tmp_path):
    out = tmp_path / "b.png"
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "fastbp", "--plot", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy") == 4
    assert str(out) in done.stdout
    _assert_png(out)


def test_gradient_norms_draws_one_log_line_per_layer():
    X, y = blobs(80, 3)
    net = Network([2, 8, 8, 3], output="softmax", random_state=0).fit(X, y, epochs=6)
    ax = gradient_norms(net)
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    for l, line in enumerate(ax.lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 7))
        np.testing.assert_allclose(line.get_ydata(), net.gradient_norms_[:, l])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["layer 1", "layer 2", "layer 3"]


def test_gradient_norms_of_an_unfitted_network_raises():
    with pytest.raises(ValueError, match="fit it first"):
        gradient_norms(Network([2, 3, 1]))
    with pytest.raises(TypeError, match="fastbp.Network"):
        gradient_norms(object())
