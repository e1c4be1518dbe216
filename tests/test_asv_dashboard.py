"""End to end: the asv suite recorded for HEAD, published, made offline by
``python -m fastbp dashboard``, and loaded in headless Chromium.

The page must list the benchmarks and draw a graph, and the browser must report no
error (uncaught exceptions, console errors, failed loads).  A screenshot of one graph
is saved under ``artifacts/`` and its path printed.  Needs git, asv, npm and Debian's
``chromium`` (``.ci/run`` installs it): skipped without them, except in CI (``CI`` set),
where it fails instead.
"""
import base64
import functools
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from fastbp.dashboard import default_cache_dir

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
# fastbp beside its peers: GFLOP/s of each library on the small workload, as bars.  (With
# several series on a parameter axis, asv 0.6's bar chart draws nothing: flot-orderbars
# computes its shift from the category labels, NaN; one series is drawn.)
GRAPH = "tracking.Throughput.track_gflops"
GRAPH_STATE = "?x-axis=library&p-workload='small'"
# Every benchmark, but only the parameter combinations without the larger workloads, the
# peers other than numpy and the rarer optimizers: each combination is a process of its
# own (about 2 s: fastbp's import and kernels from Numba's cache), and the whole suite
# would take minutes.  tests/test_benchmarks.py runs every combination.
SELECTION = r"^(?!.*'(medium|large|sklearn|torch|jax|momentum|nesterov|adamw|lbfgs)')"

pytestmark = pytest.mark.slow


def _need(condition, what):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {what}")
        pytest.skip(f"needs {what}")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(cmd, env, cwd=ROOT, timeout=600):
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n"
                                  f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
    return done.stdout, time.perf_counter() - t0


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """asv check, asv run --quick for HEAD (tiny profile), asv publish, then the offline step."""
    pytest.importorskip("asv")
    _need(shutil.which("git") and (ROOT / ".git").exists(), "a git checkout")
    _need(shutil.which("npm"), "npm (the dashboard's files come from the npm registry)")
    base = tmp_path_factory.mktemp("asv")
    conf = json.loads(_strip_comments((ROOT / "asv.conf.json").read_text()))
    conf.update(repo=str(ROOT), benchmark_dir=str(ROOT / "benchmarks"),
                env_dir=str(base / "env"), results_dir=str(base / "results"),
                html_dir=str(base / "html"))
    conf_path = base / "asv.conf.json"
    conf_path.write_text(json.dumps(conf, indent=2))
    # asv keeps its machine description in ~/.asv-machine.json: a HOME of the test's own, with
    # the caches of npm and of the dashboard step where the user keeps them
    home = base / "home"
    home.mkdir()
    npm_cache = os.environ.get("npm_config_cache", str(Path.home() / ".npm"))
    env = dict(os.environ, HOME=str(home), FASTBP_BENCH_PROFILE="tiny", npm_config_cache=npm_cache)
    asv = [sys.executable, "-m", "asv", "--config", str(conf_path)]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    _run(asv + ["machine", "--yes"], env)
    _run(asv + ["check", "--python=same"], env)
    # asv run exits with 2 when a benchmark fails
    _, seconds = _run(asv + ["run", "--python=same", "--quick", "--set-commit-hash", head,
                             "--show-stderr", "--bench", SELECTION], env)
    print(f"asv run --quick (tiny profile): {seconds:.0f} s")
    _run(asv + ["publish"], env)
    html_dir = base / "html"
    assert (html_dir / "index.html").is_file()
    _run([sys.executable, "-m", "fastbp", "dashboard", "--html-dir", str(html_dir),
          "--cache-dir", str(default_cache_dir())], env)
    return html_dir


def _strip_comments(text):
    """asv.conf.json allows // comments, which json does not."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


@pytest.fixture(scope="module")
def server(published):
    handler = functools.partial(_QuietHandler, directory=str(published))
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=60, what=None, hash=None):
        """Poll ``expression`` until true; with ``hash``, keep the page at that location
        (asv's pages rewrite the hash as they settle, which can undo a change made early)."""
        deadline = time.monotonic() + timeout
        page = None if hash is None else hash.lstrip("#/").split("?")[0]
        while time.monotonic() < deadline:
            here = self.evaluate("location.hash").lstrip("#/")
            if page is not None and not here.startswith(page):
                self.evaluate(f"location.hash = {json.dumps(hash)}")
            elif self.evaluate(expression):
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what or expression}; page: "
                             f"{self.evaluate('location.href')}; body: "
                             f"{str(self.evaluate('document.body.innerText'))[:2000]}")

    def errors(self):
        """Uncaught exceptions, console.error calls and error log entries (failed loads)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text")
                found.append(f"exception: {text}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                found.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        return found

    def close(self):
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = _chromium()
    _need(chromium, "Debian's chromium (apt-get install chromium)")
    pytest.importorskip("websocket", reason="needs websocket-client")
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-allow-origins=*", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_dashboard_renders_offline_in_chromium(server, browser, capsys):
    browser.call("Page.navigate", url=f"{server}/index.html")
    # the summary grid: one thumbnail per benchmark (not error.html's "failed to load")
    browser.wait_for("document.querySelectorAll('.benchmark-container').length >= 9",
                     what="the benchmark grid")
    assert browser.evaluate("location.pathname") == "/index.html"
    # the benchmark list
    browser.wait_for("document.querySelectorAll('#summarylist-body tbody tr').length >= 9",
                     what="the benchmark list", hash="#/summarylist")
    names = browser.evaluate(
        "Array.from(document.querySelectorAll('#summarylist-body tbody tr td:first-child'))"
        ".map(td => td.innerText).join('\\n')")
    for expected in ("time_epoch", "time_predict", "timeraw_import_and_fit", "peakmem_fit",
                     "track_gflops", "track_test_accuracy", "track_speedup_over_numpy"):
        assert expected in names, expected
    # one benchmark's graph, against the workload, drawn by flot on its canvas
    browser.wait_for("document.querySelectorAll('#main-graph canvas.flot-base').length > 0 && "
                     "document.querySelectorAll('#main-graph .flot-tick-label').length > 0",
                     what="the graph", hash=f"#{GRAPH}{GRAPH_STATE}")
    time.sleep(1.0)  # let flot finish drawing
    # flot holds points it can draw: finite x and y (an empty frame would pass the checks above)
    drawn = browser.evaluate(
        "(function () { var plot = $('#main-graph').data('plot'); if (!plot) return 0;"
        "  var n = 0; plot.getData().forEach(function (s) {"
        "    var p = s.datapoints.points, ps = s.datapoints.pointsize;"
        "    for (var i = 0; i < p.length; i += ps)"
        "      if (isFinite(p[i]) && p[i] !== null && isFinite(p[i + 1]) && p[i + 1] !== null) n++;"
        "  }); return n; })()")
    assert drawn >= 2, f"the graph has {drawn} drawable points"
    labels = browser.evaluate("$('#main-graph .flot-x-axis .flot-tick-label').text()")
    assert "fastbp" in labels and "numpy" in labels, labels
    shot = browser.call("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "asv-dashboard-graph.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    with capsys.disabled():
        print(f"\nscreenshot of the asv dashboard ({GRAPH}): {path}")
    errors = browser.errors()
    assert not errors, "the browser reported errors:\n" + "\n".join(errors)
