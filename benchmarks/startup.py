"""Cold start: ``import fastbp`` and a first ``fit`` in a fresh interpreter.

The kernels come from Numba's on-disk cache, which ``setup`` fills by running the
same code once in a subprocess: this measures what a user pays at every new
process, not the one-off compilation after an install.  The interpreter's own start
and ``import numpy`` are not counted (they are in the timed child's setup).
"""
import subprocess
import sys
import textwrap

from .common import workload


def _code(name):
    w = workload(name)
    y = "rng.integers(0, 2, 64).astype(float)" if w.output == "sigmoid" else \
        f"rng.integers(0, {w.n_classes}, 64)"
    setup = textwrap.dedent(f"""
        import numpy as np
        rng = np.random.default_rng(0)
        X = rng.standard_normal((64, {w.layers[0]})).astype({w.dtype!r})
        y = {y}
        """)
    stmt = textwrap.dedent(f"""
        import fastbp
        net = fastbp.Network({list(w.layers)}, activation="relu", output={w.output!r},
                             dtype={w.dtype!r}, random_state=0)
        net.fit(X, y, epochs=1, batch_size={min(w.batch_size, 64)}, learning_rate={w.learning_rate})
        """)
    return stmt, setup


class ColdStart:
    """tiny: the float64 kernels (sigmoid output); small: the float32 ones (softmax)."""

    params = ["tiny", "small"]
    param_names = ["workload"]
    repeat = (1, 3, 20.0)
    timeout = 120

    def setup(self, name):
        stmt, setup = _code(name)
        subprocess.run([sys.executable, "-c", setup + stmt], check=True)

    def timeraw_import_and_fit(self, name):
        return _code(name)
