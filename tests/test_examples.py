"""The examples, run as a user runs them."""
import pathlib
import runpy
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_deep_mlp_shows_vanishing_gradients_and_their_remedy():
    deep_mlp = runpy.run_path(str(EXAMPLES / "deep_mlp.py"))
    results = deep_mlp["run"]()
    plain, plain_acc, _ = results["plain"]
    fixed, fixed_acc, _ = results["residual + batch_norm"]
    g = plain.gradient_norms_
    assert g.shape == (50, 21)
    # The first layer's gradient lies many orders of magnitude below the last one's, and
    # the plain network stays near chance (10 classes).
    assert g[0, 0] / g[0, -1] < 1e-6 and g[-1, 0] / g[-1, -1] < 1e-3
    assert plain_acc < 0.3
    # With shortcuts and batch normalization every layer learns, in the same budget.
    g = fixed.gradient_norms_
    assert 0.1 < g[0, 0] / g[0, -1] < 10
    assert fixed_acc >= 0.95
    assert results["plain, Glorot init"][1] >= 0.9


@pytest.mark.slow
def test_deep_mlp_script_prints_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "norms.png"
    done = subprocess.run([sys.executable, str(EXAMPLES / "deep_mlp.py"), "--epochs", "2",
                           "--plot", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 6 and "residual + batch_norm" in done.stdout
    assert out.stat().st_size > 10_000
